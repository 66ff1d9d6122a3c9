package smtpclient

import (
	"errors"
	"github.com/qmailkit/qmailkit"
	"strings"
)

// Result is the outcome of one [Client.Deliver].
type Result struct {
	// Recipients has one entry per recipient, in the order given.
	Recipients []RecipientResult
	// Host is the host the message was delivered to (or attempted at);
	// zero when none answered.
	Host Host
	// TLS says whether the session used STARTTLS, TLSVerified whether the
	// certificate was valid for the host's name.
	TLS, TLSVerified bool
	// Text is qmail-remote's text for a delivered message, such as
	// "192.0.2.1 accepted message.\nRemote host said: 250 ok\n".
	Text string
	// Err is the message's failure, nil when the message was delivered to
	// every recipient the server accepted (qmail's K). It is an [*Error].
	Err error
}

// RecipientResult is what happened to one recipient.
type RecipientResult struct {
	// Address is the recipient as given.
	Address string
	// Err is nil when the server took the message for this recipient; else
	// why not: the rejection of its RCPT, or the message's failure. It is an
	// [*Error]; Permanent tells bounce from retry.
	Err error
	// DSNPassed reports that the server, which offers DSN (RFC 3461), was
	// given the recipient's NOTIFY with its RCPT (see [Client.DeliverDSN]):
	// the server now reports on the recipient as asked.
	DSNPassed bool
	// status is the recipient report qmail-remote printed ('r', 'h', 's'),
	// 0 when the recipient was not reached.
	status byte
	text   string
}

// Report returns qmail-remote's recipient report for this recipient: 'r'
// (accepted), 'h' (permanently rejected) or 's' (temporarily rejected) with
// its text, or 0 when no server answered its RCPT.
func (r *RecipientResult) Report() (byte, string) { return r.status, r.text }

func newResult(rcpts []string) *Result {
	res := &Result{Recipients: make([]RecipientResult, len(rcpts))}
	for i, a := range rcpts {
		res.Recipients[i].Address = a
	}
	return res
}

// fail records a message failure: every recipient not yet settled gets err.
func (res *Result) fail(err error) {
	if res.Err == nil {
		res.Err = err
	}
	for i := range res.Recipients {
		r := &res.Recipients[i]
		if r.Err == nil && r.status != 'r' {
			r.Err = err
		}
	}
}

// Report returns the bytes qmail-remote writes for this result: a recipient
// report for each recipient whose RCPT was answered, then the message report
// (K, Z or D), each ending with NUL.
func (res *Result) Report() []byte {
	var b []byte
	for i := range res.Recipients {
		r := &res.Recipients[i]
		if r.status == 0 {
			continue
		}
		b = append(b, r.status)
		b = append(b, r.text...)
		b = append(b, 0)
	}
	switch {
	case res.Err == nil:
		b = append(b, 'K')
		b = append(b, res.Text...)
	default:
		b = append(b, letter(res.Err))
		b = append(b, ReportText(res.Err)...)
	}
	return append(b, 0)
}

// IsPermanent reports whether err is permanent under the module's
// convention: some error in its chain has a Permanent method returning
// true. It is qmailkit.IsPermanent.
//
// Deprecated: use qmailkit.IsPermanent.
func IsPermanent(err error) bool { return qmailkit.IsPermanent(err) }

// ReportText returns the qmail-remote text for err: the Report of an
// [*Error], otherwise the error's text on one line, ending with LF.
func ReportText(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Report
	}
	return strings.ReplaceAll(err.Error(), "\n", " ") + "\n"
}

// RspawnResult turns a qmail-remote report for a single recipient into the
// one result qmail-rspawn passes on: a letter K, Z or D and a text. The
// letter is that of the first message report (none: D), except that a first
// recipient report 's' makes it Z and 'h' makes it D; the text is the first
// report's, followed by the second's when the second is a message report at
// least as bad as the outcome. Empty input gives
// "Zqmail-remote produced no output.\n".
func RspawnResult(report []byte) []byte {
	if len(report) == 0 {
		return []byte("Zqmail-remote produced no output.\n")
	}
	var reps [][]byte
	for len(report) > 0 {
		i := bytesIndexNUL(report)
		if i < 0 {
			reps = append(reps, report)
			break
		}
		reps = append(reps, report[:i])
		report = report[i+1:]
	}
	value := func(c byte) (int, bool) {
		switch c {
		case 'K':
			return 1, true
		case 'Z':
			return 0, true
		case 'D':
			return -1, true
		}
		return 0, false
	}
	result := -1
	for _, r := range reps {
		if len(r) > 0 {
			if v, ok := value(r[0]); ok {
				result = v
				break
			}
		}
	}
	outcome := result
	first := reps[0]
	if len(first) > 0 {
		switch first[0] {
		case 's':
			outcome = 0
		case 'h':
			outcome = -1
		}
	}
	out := []byte{"DZK"[outcome+1]}
	if len(first) > 0 {
		out = append(out, first[1:]...)
	}
	if result <= outcome && len(reps) > 1 && len(reps[1]) > 0 {
		if _, ok := value(reps[1][0]); ok {
			out = append(out, reps[1][1:]...)
		}
	}
	return out
}

func bytesIndexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// RecipientReport returns the text for recipient i that qmail-send would
// log (and put in a bounce) had qmail-remote delivered to that recipient
// alone: its recipient report and the message report combined as
// [RspawnResult] does, without the status letter. For a delivered
// recipient that is Result.Text ("192.0.2.1 accepted message.\n..."); for
// a rejected one the server's refusal, followed by "Giving up on IP.\n"
// when no recipient was accepted.
func (res *Result) RecipientReport(i int) string {
	r := &res.Recipients[i]
	var b []byte
	if r.status != 0 {
		b = append(b, r.status)
		b = append(b, r.text...)
		b = append(b, 0)
	}
	switch {
	case r.status == 'r' && r.Err != nil:
		b = append(b, letter(r.Err))
		b = append(b, ReportText(r.Err)...)
	case res.Err == nil:
		b = append(b, 'K')
		b = append(b, res.Text...)
	default:
		b = append(b, letter(res.Err))
		b = append(b, ReportText(res.Err)...)
	}
	return string(RspawnResult(append(b, 0))[1:])
}

func letter(err error) byte {
	if qmailkit.IsPermanent(err) {
		return 'D'
	}
	return 'Z'
}
