package smtpclient

import (
	"context"
	"io"
	"strings"
)

// DSN is a message's Delivery Status Notification request (RFC 3461), as
// the queue received it, to be passed on to a server that supports DSN.
// Values are decoded; they are xtext-encoded on the wire.
type DSN struct {
	// Ret is RET: "FULL" or "HDRS"; "" (or anything else) sends none.
	Ret string
	// EnvID is ENVID; "" sends none.
	EnvID string
	// Recipients are the recipients' parameters, in the order of the
	// recipients given to DeliverDSN; it may be shorter, recipients
	// beyond its end having none.
	Recipients []RecipientDSN
}

// RecipientDSN is one recipient's DSN parameters.
type RecipientDSN struct {
	// Notify is NOTIFY: "NEVER" or a comma list of SUCCESS, FAILURE and
	// DELAY; "" (or a value holding anything else) sends none.
	Notify string
	// ORcpt is ORCPT: an address type, ";" and the address
	// ("rfc822;user@example.org"); "" sends none.
	ORcpt string
}

// DeliverDSN is [Client.Deliver] with a DSN request: when the server
// offers DSN (RFC 3461), MAIL carries RET and ENVID and each RCPT its
// NOTIFY and ORCPT, and a recipient the server accepted with a NOTIFY
// has RecipientResult.DSNPassed set: the server, not the caller, now
// reports on it. Without DSN at the server (or in QmailCompat mode) the
// parameters are not sent, and DSNPassed stays false, so that a queue
// reports a success asked for with NOTIFY=SUCCESS itself ("relayed",
// RFC 3464). A nil dsn is Deliver.
func (c *Client) DeliverDSN(ctx context.Context, domain, sender string, recipients []string, msg io.Reader, dsn *DSN) (*Result, error) {
	return c.deliver(ctx, domain, sender, recipients, msg, dsn)
}

// mailDSN returns the DSN parameters of MAIL, with their leading spaces.
func (d *DSN) mailParams() string {
	var b strings.Builder
	if d.Ret == "FULL" || d.Ret == "HDRS" {
		b.WriteString(" RET=" + d.Ret)
	}
	if d.EnvID != "" {
		b.WriteString(" ENVID=" + xtext(d.EnvID))
	}
	return b.String()
}

// rcptParams returns the DSN parameters of recipient i's RCPT, with their
// leading spaces, and whether NOTIFY is among them.
func (d *DSN) rcptParams(i int) (string, bool) {
	if i >= len(d.Recipients) {
		return "", false
	}
	r := d.Recipients[i]
	var b strings.Builder
	notify := validNotify(r.Notify)
	if notify {
		b.WriteString(" NOTIFY=" + strings.ToUpper(r.Notify))
	}
	if typ, addr, ok := strings.Cut(r.ORcpt, ";"); ok && typ != "" && addr != "" && isAtomText(typ) {
		b.WriteString(" ORCPT=" + typ + ";" + xtext(addr))
	}
	return b.String(), notify
}

// validNotify reports whether v is a NOTIFY value that can be sent: NEVER,
// or SUCCESS, FAILURE and DELAY in a comma list.
func validNotify(v string) bool {
	if strings.EqualFold(v, "NEVER") {
		return true
	}
	if v == "" {
		return false
	}
	for w := range strings.SplitSeq(v, ",") {
		switch strings.ToUpper(w) {
		case "SUCCESS", "FAILURE", "DELAY":
		default:
			return false
		}
	}
	return true
}

func isAtomText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0) {
			return false
		}
	}
	return true
}

// xtext encodes s as RFC 3461 section 4 says: "!" to "~" but "+" and "="
// as themselves, every other byte as "+" and two upper-case hexadecimal
// digits. No space, CR or LF can reach the command line.
func xtext(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '!' && c <= '~' && c != '+' && c != '=' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('+')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
