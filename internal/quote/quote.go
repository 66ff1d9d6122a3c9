// Package quote is qmail's quote.c: an address's local part written as an
// RFC 822 quoted string when it is not a plain dot-atom. qmail-local's
// Return-Path line, qmail-send's bounces and qmail-inject's rewritten
// headers all use it, byte for byte the same.
package quote

import "strings"

// atext holds the bytes, besides letters and digits, that a local part may
// use unquoted.
const atext = "!#$%&'*+-/=?^_`{|}~."

// Need is qmail's quote_need: whether s must be quoted to stand as a local
// part (it is empty, starts or ends with a dot, has two dots in a row, or
// has a byte outside letters, digits and atext).
func Need(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(atext, c) >= 0) {
			return true
		}
	}
	return false
}

// Local is qmail's quote: s unchanged when it needs no quoting, else a
// quoted string with a backslash before CR, LF, '"' and '\'.
func Local(s string) string {
	if !Need(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
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

// Addr is qmail's quote2: the part of addr before its last '@' quoted as
// needed, the rest kept; "" stays "".
func Addr(addr string) string {
	if addr == "" {
		return ""
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return Local(addr)
	}
	return Local(addr[:at]) + addr[at:]
}
