package webadmin

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/qmailkit/qmailkit/vmail"
)

// Sizes of what a form may hold.
const (
	maxAddress  = 254       // RFC 5321 section 4.5.3.1.3: a path holds at most 256 octets with its brackets
	maxLocal    = 64        // RFC 5321 section 4.5.3.1.1
	maxTargets  = 100       // addresses of one forward or alias
	maxSubject  = 200       // bytes of an autoresponder's subject
	maxBody     = 16 << 10  // bytes of an autoresponder's text
	maxRealName = 100       // bytes of a real name
	maxCount    = 1_000_000 // a limit's largest number
)

// Form is a form's values and its errors, each shown next to its field.
// Passwords are never kept in it, so never shown back.
type Form struct {
	Values map[string]string
	Errors map[string]string
}

// newForm returns a Form with the named values of v (nil: none).
func newForm(v url.Values, names ...string) *Form {
	f := &Form{Values: map[string]string{}, Errors: map[string]string{}}
	for _, n := range names {
		f.Values[n] = v.Get(n)
	}
	return f
}

// Value returns a field's value.
func (f *Form) Value(name string) string {
	if f == nil {
		return ""
	}
	return f.Values[name]
}

// Checked reports whether a checkbox is on.
func (f *Form) Checked(name string) bool { return f.Value(name) != "" }

// Error returns a field's error message ("" when it has none).
func (f *Form) Error(name string) string {
	if f == nil {
		return ""
	}
	return f.Errors[name]
}

// OK reports whether the form has no error.
func (f *Form) OK() bool { return len(f.Errors) == 0 }

// printable reports whether s is UTF-8 without control characters (no
// NUL, no CR or LF to split a header or a record).
func printable(s string) bool { return clean(s, "") }

// text reports whether s is UTF-8 text: printable but for newlines and tabs.
func text(s string) bool { return clean(s, "\n\r\t") }

// clean reports whether s is UTF-8 without control characters other
// than those of allowed.
func clean(s, allowed string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if (r < 0x20 || r == 0x7f) && !strings.ContainsRune(allowed, r) {
			return false
		}
	}
	return true
}

// domainOK reports whether d is a domain name: labels of letters, digits
// and hyphens (not at a label's ends), at least two of them.
func domainOK(d string) bool {
	if len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// localOK reports whether l is a local part vpopmail accepts in an
// address: letters, digits and ! # $ & ' * + - . / = ? ^ _ ` { | } ~.
func localOK(l string) bool {
	if l == "" || len(l) > maxLocal {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$&'*+-./=?^_`{|}~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// addressOK reports whether a is local@domain.
func addressOK(a string) bool {
	local, domain, ok := strings.Cut(a, "@")
	return ok && len(a) <= maxAddress && localOK(local) && domainOK(domain)
}

// parseTargets splits a list of addresses as qmailadmin does (spaces,
// commas, semicolons and newlines), completing a bare name with
// @domain; it refuses programs and files ("|...", "/...") and anything
// that is not an address, naming the first bad entry.
func parseTargets(s, domain string) ([]string, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == ',' || r == ';' || r == '\n' || r == '\r' || r == '\t'
	})
	if len(fields) > maxTargets {
		return nil, fmt.Errorf("At most %d addresses.", maxTargets)
	}
	var out []string
	seen := map[string]bool{}
	for _, t := range fields {
		if t[0] == '|' || t[0] == '/' || t[0] == '&' {
			// .qmail's program, file and forward lines: never from a form.
			return nil, fmt.Errorf("%q is not an address.", shorten(t))
		}
		if !strings.Contains(t, "@") {
			t += "@" + domain
		}
		local, dom, _ := strings.Cut(t, "@")
		t = local + "@" + strings.ToLower(dom)
		if !addressOK(t) {
			return nil, fmt.Errorf("%q is not an address.", shorten(t))
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}

// shorten cuts s for an error message.
func shorten(s string) string {
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// formatQuota writes a quota back as a form takes it (vmail.ParseQuota
// reads it): "NOQUOTA", or sizes in M or K when they are whole, and a
// count with C.
func formatQuota(q vmail.Quota) string {
	var parts []string
	switch b := q.Bytes; {
	case b == 0:
	case b%(1<<20) == 0:
		parts = append(parts, strconv.FormatInt(b>>20, 10)+"M")
	case b%(1<<10) == 0:
		parts = append(parts, strconv.FormatInt(b>>10, 10)+"K")
	default:
		parts = append(parts, strconv.FormatInt(b, 10))
	}
	if q.Count != 0 {
		parts = append(parts, strconv.FormatInt(q.Count, 10)+"C")
	}
	if len(parts) == 0 {
		return "NOQUOTA"
	}
	return strings.Join(parts, ",")
}

// weakPassword returns why a new password is refused, or "". The
// Manager has its own rules (a minimum length); these are qmailadmin's
// (the password is not contained in the mailbox's name) and a few more.
func weakPassword(pass, name string) string {
	lower := strings.ToLower(pass)
	switch {
	case pass == "":
		return "Enter a password."
	case len(pass) < 8:
		return "The password must have at least 8 characters."
	case len(pass) > 1024:
		return "The password is too long."
	case !printable(pass):
		return "The password may not hold control characters."
	case name != "" && (strings.Contains(lower, strings.ToLower(name)) || strings.Contains(strings.ToLower(name), lower)):
		return "The password may not contain the mailbox's name."
	case strings.Count(pass, pass[:1]) == len(pass):
		return "The password is too simple."
	}
	for _, w := range []string{"password", "12345678", "qwertyui", "letmein1", "abcdefgh"} {
		if strings.Contains(lower, w) {
			return "The password is too simple."
		}
	}
	return ""
}

// intField reads a non-negative count, empty meaning 0.
func intField(f *Form, name string) int {
	v := strings.TrimSpace(f.Value(name))
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxCount {
		f.Errors[name] = fmt.Sprintf("Enter a number from 0 to %d (0: no limit).", maxCount)
		return 0
	}
	return n
}

// managerError puts an error of the Manager that is the user's (a name
// taken, something invalid, a limit) on field of f and reports true; it
// reports false for any other error, a failure to answer as such.
func managerError(f *Form, field string, err error) bool {
	var msg string
	switch {
	case errors.Is(err, vmail.ErrExists):
		msg = "This name is taken already."
	case errors.Is(err, vmail.ErrNotFound):
		msg = "No such domain, mailbox or alias."
	case errors.Is(err, vmail.ErrLimit):
		msg = "The domain's limit is reached."
	case errors.Is(err, vmail.ErrInvalid):
		msg = "Refused: " + strings.TrimPrefix(shortErr(err), "vmail: ")
	default:
		return false
	}
	f.Errors[field] = msg
	return true
}

// shortErr is an error's text cut for a page.
func shortErr(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
