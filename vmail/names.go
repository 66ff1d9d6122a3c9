package vmail

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/qmailkit/qmailkit/auth"
)

// The lengths vpopmail allows (vpasswd's field limits).
const (
	// MaxNameLength is the longest mailbox or alias name, in bytes.
	MaxNameLength = 64
	// MaxDomainLength is the longest domain name, in bytes.
	MaxDomainLength = 96
)

// ValidDomain checks a domain name as vadddomain does: 3 to 96 bytes of
// letters, digits, '-' and '.', at least one '.', no empty label (so no
// "..", no leading or trailing '.'), no label starting or ending with
// '-', labels of at most 63 bytes and a last label of at least 2. It does
// not lower-case: callers pass the name lower-cased. The error wraps
// [ErrInvalid].
func ValidDomain(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: domain %q: %s", ErrInvalid, truncate(name), why)
	}
	if len(name) < 3 || len(name) > MaxDomainLength {
		return bad(fmt.Sprintf("length %d not in 3..%d", len(name), MaxDomainLength))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return bad(fmt.Sprintf("byte %q not allowed (letters, digits, '-' and '.' only, lower case)", c))
		}
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return bad("no '.'")
	}
	for _, l := range labels {
		switch {
		case l == "":
			return bad("empty label")
		case len(l) > 63:
			return bad("label longer than 63 bytes")
		case l[0] == '-' || l[len(l)-1] == '-':
			return bad("label starts or ends with '-'")
		}
	}
	if len(labels[len(labels)-1]) < 2 {
		return bad("last label shorter than 2 bytes")
	}
	return nil
}

// ValidName checks a mailbox or alias name (an address's local part):
// 2 to 64 bytes of lower-case letters, digits and ". - _ + = &", not
// starting with '.' or '-'. vpopmail allowed more (among them '/', a path
// hazard since the name is a directory's); like vpopmail with hashed
// directories it refuses a name of one character, which could be the name
// of a hash directory ("0" to "z") beside it. The error wraps [ErrInvalid].
func ValidName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: name %q: %s", ErrInvalid, truncate(name), why)
	}
	if len(name) < 2 || len(name) > MaxNameLength {
		return bad(fmt.Sprintf("length %d not in 2..%d", len(name), MaxNameLength))
	}
	if name[0] == '.' || name[0] == '-' {
		return bad("starts with '.' or '-'")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte(".-_+=&", c) >= 0) {
			return bad(fmt.Sprintf("byte %q not allowed (letters, digits and . - _ + = & only, lower case)", c))
		}
	}
	return nil
}

// validPassword checks a new password: at least min bytes, at most
// auth.MaxPasswordLength, no NUL, CR or LF (which no login protocol can
// carry).
func validPassword(pw string, min int) error {
	if len(pw) < min {
		return fmt.Errorf("%w: password too short (min=%d)", ErrInvalid, min)
	}
	if len(pw) > auth.MaxPasswordLength {
		return fmt.Errorf("%w: password too long (max=%d)", ErrInvalid, auth.MaxPasswordLength)
	}
	if strings.ContainsAny(pw, "\x00\r\n") {
		return fmt.Errorf("%w: password contains NUL, CR or LF", ErrInvalid)
	}
	return nil
}

// truncate shortens what an error message quotes.
func truncate(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// SplitLogin splits a login name as vchkpw does: lower-cased, then cut at
// the first '@', else the first '%', else the first '/' ("joe@example.com",
// "joe%example.com" and "joe/example.com" are the same login). A login
// without a domain part takes defaultDomain; the error wraps ErrInvalid
// when there is none, or when the name or the domain is empty. The parts
// are not otherwise checked.
func SplitLogin(login, defaultDomain string) (name, domain string, err error) {
	login = strings.ToLower(login)
	i := strings.IndexByte(login, '@')
	if i < 0 {
		i = strings.IndexByte(login, '%')
	}
	if i < 0 {
		i = strings.IndexByte(login, '/')
	}
	if i < 0 {
		name, domain = login, strings.ToLower(defaultDomain)
	} else {
		name, domain = login[:i], login[i+1:]
	}
	if name == "" {
		return "", "", fmt.Errorf("%w: login %q: empty name", ErrInvalid, truncate(login))
	}
	if domain == "" {
		return "", "", fmt.Errorf("%w: login %q: no domain", ErrInvalid, truncate(login))
	}
	return name, domain, nil
}

// splitAddress splits and lower-cases name@domain at the last '@'.
func splitAddress(address string) (name, domain string, err error) {
	address = strings.ToLower(address)
	i := strings.LastIndexByte(address, '@')
	if i <= 0 || i == len(address)-1 {
		return "", "", fmt.Errorf("%w: address %q: not name@domain", ErrInvalid, truncate(address))
	}
	return address[:i], address[i+1:], nil
}

// ParseQuota parses a quota as vpopmail's commands accept it (vsetuserquota,
// vadduser -q): "NOQUOTA" or "" is no quota; otherwise comma-separated
// items, an item ending in 'C' a message count, any other a size whose
// trailing 'S' and then 'B' (either case) are dropped and which is
// multiplied by 1048576 for a final 'M' or 1024 for a final 'K' (either
// case): "50M" is 52428800 bytes, "10MB,500C" 10485760 bytes and 500
// messages, "52428800S,1000C" stays as it is, "0" is no quota. Unlike
// vpopmail, which took the leading digits and ignored the rest, an item
// that is not a number with those suffixes is refused (ErrInvalid), as is
// a negative or overflowing one.
func ParseQuota(s string) (Quota, error) {
	var q Quota
	t := strings.TrimSpace(s)
	if t == "" || strings.EqualFold(t, "NOQUOTA") {
		return q, nil
	}
	bad := func() (Quota, error) { return Quota{}, fmt.Errorf("%w: quota %q", ErrInvalid, truncate(s)) }
	if len(t) > 64 {
		return bad()
	}
	for item := range strings.SplitSeq(t, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return bad()
		}
		if item[len(item)-1] == 'C' || item[len(item)-1] == 'c' {
			n, ok := parseCount(item[:len(item)-1], 1)
			if !ok {
				return bad()
			}
			q.Count = n
			continue
		}
		if c := item[len(item)-1]; c == 'S' || c == 's' {
			item = item[:len(item)-1]
		}
		if item != "" {
			if c := item[len(item)-1]; c == 'B' || c == 'b' {
				item = item[:len(item)-1]
			}
		}
		mult := int64(1)
		if item != "" {
			switch item[len(item)-1] {
			case 'M', 'm':
				mult, item = 1<<20, item[:len(item)-1]
			case 'K', 'k':
				mult, item = 1<<10, item[:len(item)-1]
			}
		}
		n, ok := parseCount(item, mult)
		if !ok {
			return bad()
		}
		q.Bytes = n
	}
	return q, nil
}

// parseCount parses decimal digits times mult, refusing signs, other bytes
// and overflow.
func parseCount(s string, mult int64) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, false
	}
	return n * mult, true
}

// String returns the quota in Maildir++ terms, as vpopmail stores it and
// maildirsize's first line holds it: "NS", "NC" or "NS,MC", zero parts
// left out; "" for no quota.
func (q Quota) String() string {
	var items []string
	if q.Bytes > 0 {
		items = append(items, strconv.FormatInt(q.Bytes, 10)+"S")
	}
	if q.Count > 0 {
		items = append(items, strconv.FormatInt(q.Count, 10)+"C")
	}
	return strings.Join(items, ",")
}

// The hash alphabet of vpopmail's dir_control, in its order.
const hashAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// hashSlots is the number of directories of the sequence before it wraps:
// the domain's own, 62, 62² and 62³.
const hashSlots = 1 + 62 + 62*62 + 62*62*62

// HashDir returns the directory, relative to its domain's, of the n-th
// mailbox added to a domain (n from 1), as vpopmail's dir_control places
// it: "" (the domain's directory itself) for the first 99, then "0" from
// the 100th, "1" from the 200th, ... "z" from the 6200th, "0/0" from the
// 6300th, ... "z/z" from the 390600th, "0/0/0" from the 390700th; after
// "z/z/z" the sequence starts again. Each directory thus receives 100
// mailboxes. n < 1 is taken as 1.
func HashDir(n int) string {
	if n < 100 {
		return ""
	}
	k := (n / 100) % hashSlots
	switch {
	case k == 0:
		return ""
	case k <= 62:
		return hashAlphabet[k-1 : k]
	case k <= 62+62*62:
		j := k - 63
		return hashAlphabet[j/62:j/62+1] + "/" + hashAlphabet[j%62:j%62+1]
	default:
		j := k - 63 - 62*62
		return hashAlphabet[j/3844:j/3844+1] + "/" + hashAlphabet[j/62%62:j/62%62+1] + "/" + hashAlphabet[j%62:j%62+1]
	}
}

// validHashDir reports whether h is a directory HashDir could return: up
// to three one-symbol components of the hash alphabet.
func validHashDir(h string) bool {
	if h == "" {
		return true
	}
	parts := strings.Split(h, "/")
	if len(parts) > 3 {
		return false
	}
	for _, p := range parts {
		if len(p) != 1 || strings.IndexByte(hashAlphabet, p[0]) < 0 {
			return false
		}
	}
	return true
}
