package smtpserver

import (
	"context"
	"io"
	"strings"
)

// DSNEnqueuer is an [Enqueuer] that also takes the Delivery Status
// Notification parameters of RFC 3461. A server whose Enqueuer implements
// it offers DSN in its EHLO (or LHLO) reply, except in Compat mode, and
// calls EnqueueDSN instead of Enqueue for a message that came with any of
// them; a message without DSN parameters still goes through Enqueue.
//
// The parameters are given with standard types, so that a queue satisfies
// the interface without importing this package. They have been checked
// and decoded (xtext, RFC 3461 section 4), and hold no control character:
//
//   - mail has the keys "RET" ("FULL" or "HDRS") and "ENVID" (the envelope
//     identifier, decoded), each only when given; nil when neither was;
//   - rcpt has one map per recipient, in the order of to (nil when no
//     recipient had a parameter, and a nil map for one without), with the
//     keys "NOTIFY" ("NEVER", or a comma list of SUCCESS, FAILURE and
//     DELAY in that order) and "ORCPT" (the address type, ";" and the
//     decoded original recipient, as in "rfc822;user@example.org").
//
// The rules of [Enqueuer] apply otherwise.
type DSNEnqueuer interface {
	Enqueuer
	EnqueueDSN(ctx context.Context, from string, to []string, mail map[string]string, rcpt []map[string]string, msg io.Reader) (id string, err error)
}

// Limits of RFC 3461 on the encoded parameter values.
const (
	maxEnvID = 100 // section 4.4
	maxORcpt = 500 // section 4.2
)

// dsnOffered reports whether the session offers the DSN extension: in
// modern mode, when the Enqueuer takes the parameters.
func (s *session) dsnOffered() bool {
	if s.compat {
		return false
	}
	_, ok := s.srv.Enqueuer.(DSNEnqueuer)
	return ok
}

// decodeXtext decodes RFC 3461's xtext: characters from "!" to "~" other
// than "+" and "=" stand for themselves, "+" and two hexadecimal digits
// for any byte. The decoded value must hold no control character (it ends
// up in header fields of reports), so "+00", "+0D" and "+0A" are refused.
// Lower-case hexadecimal digits are accepted, as other servers do.
func decodeXtext(s string) (string, bool) {
	if !strings.Contains(s, "+") {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < '!' || c > '~' || c == '=' {
				return "", false
			}
		}
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+2 >= len(s) {
				return "", false
			}
			h, ok1 := unhex(s[i+1])
			l, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", false
			}
			c = h<<4 | l
			if c < 0x20 || c == 0x7f {
				return "", false
			}
			i += 2
		case c < '!' || c > '~' || c == '=':
			return "", false
		}
		b = append(b, c)
	}
	return string(b), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// parseNotify checks a NOTIFY value (RFC 3461 section 4.1) and returns it
// in canonical form: "NEVER" alone, or SUCCESS, FAILURE and DELAY, each at
// most once, in that order.
func parseNotify(v string) (string, bool) {
	if strings.EqualFold(v, "NEVER") {
		return "NEVER", true
	}
	var success, failure, delay bool
	for _, w := range strings.Split(v, ",") {
		var seen *bool
		switch strings.ToUpper(w) {
		case "SUCCESS":
			seen = &success
		case "FAILURE":
			seen = &failure
		case "DELAY":
			seen = &delay
		default: // NEVER among others, an empty item, anything else
			return "", false
		}
		if *seen {
			return "", false
		}
		*seen = true
	}
	var out []string
	for _, x := range []struct {
		on   bool
		word string
	}{{success, "SUCCESS"}, {failure, "FAILURE"}, {delay, "DELAY"}} {
		if x.on {
			out = append(out, x.word)
		}
	}
	return strings.Join(out, ","), true
}

// parseORcpt checks an ORCPT value, addr-type ";" xtext (RFC 3461 section
// 4.2), and returns the address type, ";" and the decoded address.
func parseORcpt(v string) (string, bool) {
	if len(v) > maxORcpt {
		return "", false
	}
	typ, addr, ok := strings.Cut(v, ";")
	if !ok || typ == "" || addr == "" || !isAtom(typ) {
		return "", false
	}
	dec, ok := decodeXtext(addr)
	if !ok {
		return "", false
	}
	return typ + ";" + dec, true
}

// isAtom reports whether s is an RFC 5322 atom (the addr-type of ORCPT):
// letters, digits and "!#$%&'*+-/=?^_`{|}~".
func isAtom(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0 {
			continue
		}
		return false
	}
	return s != ""
}

// parseRcptParams checks RCPT's parameters: NOTIFY and ORCPT when dsn is
// offered, each at most once; anything else is not supported (555). It
// returns nil when none was given.
func parseRcptParams(rest string, dsn bool) (map[string]string, *Reply) {
	var p map[string]string
	for _, f := range strings.Fields(rest) {
		k, v, hasV := strings.Cut(f, "=")
		k = strings.ToUpper(k)
		if !dsn || k != "NOTIFY" && k != "ORCPT" {
			return nil, &replyBadParam
		}
		if _, dup := p[k]; dup || !hasV {
			return nil, &replyArgSyntax
		}
		var ok bool
		if k == "NOTIFY" {
			v, ok = parseNotify(v)
		} else {
			v, ok = parseORcpt(v)
		}
		if !ok {
			return nil, &replyArgSyntax
		}
		if p == nil {
			p = make(map[string]string, 2)
		}
		p[k] = v
	}
	return p, nil
}

// enqueue hands the message to the Enqueuer, with the DSN parameters when
// there are any and it takes them.
func (s *session) enqueue(from string, rcpts []string, mail map[string]string, rcpt []map[string]string, msg io.Reader) (string, error) {
	if s.srv.Enqueuer == nil {
		return "", Reply{451, "4.3.0", "qqt failure (#4.3.0)"}
	}
	if mail != nil || rcpt != nil {
		if d, ok := s.srv.Enqueuer.(DSNEnqueuer); ok {
			return d.EnqueueDSN(s.ctx, from, rcpts, mail, rcpt, msg)
		}
	}
	return s.srv.Enqueuer.Enqueue(s.ctx, from, rcpts, msg)
}
