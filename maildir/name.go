package maildir

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Flags is a set of Maildir info flags, kept as their characters in ASCII
// order without duplicates, as they appear after ":2," in a file name:
// "FRS". Characters other than the six defined flags (such as the lowercase
// keyword letters some IMAP servers store) are kept as they are. The
// characters ',', '/' and NUL can never be flags: they are dropped.
//
// The methods of Flags always return normalized sets, so
// Flags("SRS").Add("") == "RS".
type Flags string

// The flags defined by the Maildir format, with the IMAP system flags
// readers map them to.
const (
	Draft   Flags = "D" // \Draft
	Flagged Flags = "F" // \Flagged
	Passed  Flags = "P" // resent, forwarded or bounced by the user
	Replied Flags = "R" // \Answered
	Seen    Flags = "S" // \Seen
	Trashed Flags = "T" // \Deleted
)

// flagSet is a bitmap of the byte values present in a set of flags.
type flagSet [4]uint64

func (s *flagSet) add(f Flags) {
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c == ',' || c == '/' || c == 0 {
			continue
		}
		s[c>>6] |= 1 << (c & 63)
	}
}

func (s *flagSet) has(c byte) bool { return s[c>>6]&(1<<(c&63)) != 0 }

func (s *flagSet) flags() Flags {
	var b []byte
	for c := 0; c < 256; c++ {
		if s.has(byte(c)) {
			b = append(b, byte(c))
		}
	}
	return Flags(b)
}

// Add returns the union of f and g, sorted and de-duplicated.
func (f Flags) Add(g Flags) Flags {
	var s flagSet
	s.add(f)
	s.add(g)
	return s.flags()
}

// Remove returns f without the flags in g, sorted and de-duplicated.
func (f Flags) Remove(g Flags) Flags {
	var s, r flagSet
	s.add(f)
	r.add(g)
	for i := range s {
		s[i] &^= r[i]
	}
	return s.flags()
}

// Has reports whether every flag in g is set in f.
func (f Flags) Has(g Flags) bool {
	var s flagSet
	s.add(f)
	for i := 0; i < len(g); i++ {
		if c := g[i]; c != ',' && c != '/' && c != 0 && !s.has(c) {
			return false
		}
	}
	return true
}

// Name is a message file name split at its first ':' into the unique name
// and the info. The unique name is what POP3 reports as UIDL and what stays
// the same when a message moves from new/ to cur/ or changes flags.
type Name struct {
	Unique string // everything before the first ':'
	Info   string // everything after the first ':'; empty when there is none
}

// ParseName splits a file name found in new/ or cur/. It fails for names
// that are not messages: empty names, names starting with '.', and names
// containing '/' or NUL (which no directory entry can hold).
func ParseName(name string) (Name, error) {
	switch {
	case name == "":
		return Name{}, errors.New("maildir: empty file name")
	case name[0] == '.':
		return Name{}, fmt.Errorf("maildir: %q is not a message: name starts with '.'", name)
	case strings.ContainsAny(name, "/\x00"):
		return Name{}, fmt.Errorf("maildir: %q is not a message: name contains '/' or NUL", name)
	}
	u, info, _ := strings.Cut(name, ":")
	if u == "" {
		return Name{}, fmt.Errorf("maildir: %q is not a message: empty unique name", name)
	}
	return Name{Unique: u, Info: info}, nil
}

// String returns the file name: Unique, then ':' and Info when Info is not
// empty.
func (n Name) String() string {
	if n.Info == "" {
		return n.Unique
	}
	return n.Unique + ":" + n.Info
}

// Size returns the message size from a Maildir++ ",S=<bytes>" field of the
// unique name, and whether there is one.
func (n Name) Size() (int64, bool) {
	return sizeTag(n.Unique)
}

// sizeTag finds the ",S=<digits>" field among the comma-separated fields
// that follow the host part of a unique name.
func sizeTag(unique string) (int64, bool) {
	_, rest, ok := strings.Cut(unique, ",")
	for ok {
		var field string
		field, rest, ok = strings.Cut(rest, ",")
		if v, found := strings.CutPrefix(field, "S="); found && v != "" && v[0] != '+' && v[0] != '-' {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}

// Flags returns the flags of a "2," info, sorted and de-duplicated. Any
// other info (none, the experimental "1," form, or something unknown) has
// no flags.
func (n Name) Flags() Flags {
	f, _, ok := n.flagsExtra()
	if !ok {
		return ""
	}
	return f.Add("")
}

// flagsExtra splits a "2," info into its flags and the ",extra" text that
// some servers append after them.
func (n Name) flagsExtra() (flags Flags, extra string, ok bool) {
	rest, ok := strings.CutPrefix(n.Info, "2,")
	if !ok {
		return "", "", false
	}
	if i := strings.IndexByte(rest, ','); i >= 0 {
		return Flags(rest[:i]), rest[i:], true
	}
	return Flags(rest), "", true
}

// WithFlags returns n with its info set to "2," and f (sorted and
// de-duplicated). A ",extra" part after the old flags is kept. An info that
// is not of the "2," form (the experimental "1," form, for example) is
// replaced, since its meaning is unknown; leave such a name untouched to
// preserve it.
func (n Name) WithFlags(f Flags) Name {
	_, extra, _ := n.flagsExtra()
	n.Info = "2," + string(f.Add("")) + extra
	return n
}

// Unique returns the unique name of a message file name: the name cut at
// its first ':' (this is qmail-pop3d's UIDL).
func Unique(name string) string {
	u, _, _ := strings.Cut(name, ":")
	return u
}

// uniqueName builds "<sec>.M<usec>P<pid>Q<n>R<16 hex>.<host>", the modern
// unique name of [NamingModern].
func uniqueName(t time.Time, pid int, q uint64, r [8]byte, host string) string {
	const hexdig = "0123456789abcdef"
	b := make([]byte, 0, 64+len(host))
	b = strconv.AppendInt(b, t.Unix(), 10)
	b = append(b, ".M"...)
	b = strconv.AppendInt(b, int64(t.Nanosecond()/1000), 10)
	b = append(b, 'P')
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, 'Q')
	b = strconv.AppendUint(b, q, 10)
	b = append(b, 'R')
	for _, c := range r {
		b = append(b, hexdig[c>>4], hexdig[c&15])
	}
	b = append(b, '.')
	b = append(b, host...)
	return string(b)
}

// qmailName builds qmail-local's "<sec>.<pid>.<host>".
func qmailName(t time.Time, pid int, host string) string {
	return strconv.FormatInt(t.Unix(), 10) + "." + strconv.Itoa(pid) + "." + host
}

// escapeHost maps the host name to a valid name component: '/' becomes
// `\057` and ':' becomes `\072`. ',' becomes `\054`, as Dovecot does, so
// that a host name can never be mistaken for a Maildir++ ",S=" field.
func escapeHost(h string) string {
	if !strings.ContainsAny(h, "/:,") {
		return h
	}
	var b strings.Builder
	for i := 0; i < len(h); i++ {
		switch h[i] {
		case '/':
			b.WriteString(`\057`)
		case ':':
			b.WriteString(`\072`)
		case ',':
			b.WriteString(`\054`)
		default:
			b.WriteByte(h[i])
		}
	}
	return b.String()
}
