package smtpclient

import (
	"errors"
	"strings"
)

// Sentinel errors, found with [errors.Is] on an [*Error] (or on the error
// Deliver returns) for the conditions a caller may branch on.
var (
	// ErrNoHost: the domain does not exist (NXDOMAIN or no address), qmail's #5.1.2.
	ErrNoHost = errors.New("smtpclient: no such host")
	// ErrNoExchanger: MX records exist but none has an address, qmail's #5.4.4.
	ErrNoExchanger = errors.New("smtpclient: no mail exchanger with an address")
	// ErrNullMX: the domain publishes a null MX (RFC 7505) and accepts no mail.
	ErrNullMX = errors.New("smtpclient: null MX")
	// ErrLocalMX: this host is a best-preference MX for the domain, which is
	// therefore not remote (qmail-remote's #5.4.6).
	ErrLocalMX = errors.New("smtpclient: best MX is this host")
	// ErrDNSTemporary: a lookup failed temporarily (qmail's #4.1.2).
	ErrDNSTemporary = errors.New("smtpclient: temporary DNS failure")
	// ErrNoConnection: no address could be connected to (qmail's #4.4.1).
	ErrNoConnection = errors.New("smtpclient: no SMTP connection")
	// ErrConnectionDied: the connection was lost or timed out during the
	// dialogue (qmail's #4.4.2). [Error.Duplicate] says whether it happened
	// after the final dot, when the server may have accepted the message.
	ErrConnectionDied = errors.New("smtpclient: connection died")
	// ErrPartialLine: the message's last line has no LF and
	// [Client.QmailCompat] is set (qmail's #5.6.2).
	ErrPartialLine = errors.New("smtpclient: partial final line")
	// ErrMessageRead: reading the message failed (qmail's #4.3.0).
	ErrMessageRead = errors.New("smtpclient: unable to read message")
	// ErrTooBig: the message exceeds the server's SIZE limit (RFC 1870).
	ErrTooBig = errors.New("smtpclient: message too big")
	// ErrTLSRequired: the policy requires TLS and it could not be had.
	ErrTLSRequired = errors.New("smtpclient: TLS required")
	// ErrUTF8: an address needs SMTPUTF8 and the server does not offer it.
	ErrUTF8 = errors.New("smtpclient: SMTPUTF8 not offered")
	// ErrAuth: authentication to a smarthost failed or could not be attempted.
	ErrAuth = errors.New("smtpclient: authentication failed")
)

// Error is a delivery failure, for the message or for one recipient. It
// carries qmail-remote's report text (Report), and the server's reply when the
// failure came from one. It is permanent (qmail's D or h) when Permanent
// says so, temporary (Z or s) otherwise.
type Error struct {
	// Code is the server's reply code, 0 when the failure is not a reply.
	Code int
	// Enhanced is the RFC 3463 status code ("5.1.1"): the server's, or the
	// one qmail-remote puts in its text ("#4.4.1" gives "4.4.1"); "" if none.
	Enhanced string
	// Reply holds the server's reply lines as received (CR removed, NUL
	// shown as '?'), at most 5000 bytes in all, as qmail-remote keeps them.
	Reply []string
	// Host is the address talked to ("192.0.2.1"), "" before any connection.
	Host string
	// Report is qmail-remote's report text without the status letter, such
	// as "Connected to 192.0.2.1 but sender was rejected.\nRemote host said:
	// 553 no\n". It always ends with LF.
	Report string
	// Duplicate is set when the connection died after the final dot: the
	// server may have delivered the message (qmail's "Possible duplicate!").
	Duplicate bool

	perm bool
	err  error
}

// Permanent reports whether the failure is permanent (bounce) rather than
// temporary (retry).
func (e *Error) Permanent() bool { return e.perm }

// Error returns "smtpclient: " and the report text on one line.
func (e *Error) Error() string {
	s := strings.TrimSuffix(e.Report, "\n")
	return "smtpclient: " + strings.ReplaceAll(s, "\n", " ")
}

// Unwrap returns the cause: one of the sentinel errors, a network or DNS
// error, or nil.
func (e *Error) Unwrap() error { return e.err }

// newError builds an error from a report text. The enhanced code is taken from
// a trailing "(#x.y.z)" when the text has one.
func newError(perm bool, report string, cause error) *Error {
	e := &Error{Report: report, perm: perm, err: cause}
	if i := strings.LastIndex(report, "(#"); i >= 0 {
		if j := strings.IndexByte(report[i:], ')'); j > 0 {
			e.Enhanced = report[i+2 : i+j]
		}
	}
	return e
}

// replyError builds an error from a server reply: text is qmail-remote's
// sentence (ending with LF), to which "Remote host said: " and the reply are
// added.
func replyError(perm bool, host, text string, r *Reply, cause error) *Error {
	e := &Error{Host: host, perm: perm, err: cause}
	var b strings.Builder
	b.WriteString(text)
	if r != nil && len(r.Lines) > 0 {
		e.Code = r.Code
		e.Enhanced = r.Enhanced()
		e.Reply = r.Lines
		b.WriteString("Remote host said: ")
		b.WriteString(strings.Join(r.Lines, "\n"))
		b.WriteByte('\n')
	}
	e.Report = b.String()
	return e
}
