package inject

import "strings"

// quoteNeed is qmail's quote_need: whether s must be a quoted string to
// stand as the local part of an address.
func quoteNeed(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".!#$%&'*+-/=?^_`{|}~", c) >= 0) {
			return true
		}
	}
	return false
}

// quote is qmail's quote (queue.md §6.5).
func quote(s string) string {
	if !quoteNeed(s) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\r', '\n', '"', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// quote2 quotes the local part of addr (before its last "@") as needed.
func quote2(addr string) string {
	if addr == "" {
		return ""
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return quote(addr)
	}
	return quote(addr[:at]) + addr[at:]
}
