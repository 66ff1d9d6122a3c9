package smtpclient

import "strings"

// quoteAddr formats an address for MAIL FROM and RCPT TO as qmail's quote2
// does: the text after the last '@' is sent unchanged; the local part is sent
// bare unless it needs quoting, and then wrapped in double quotes with '\\',
// '"', CR and LF escaped. An address without '@' (including the empty sender)
// is sent unchanged.
func quoteAddr(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	local, domain := addr[:at], addr[at:]
	if !needQuote(local) {
		return addr
	}
	var b strings.Builder
	b.Grow(len(addr) + 4)
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		switch c := local[i]; c {
		case '\r', '\n', '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	b.WriteString(domain)
	return b.String()
}

// atextOK marks the bytes a local part may hold unquoted (RFC 5321 atext and '.').
var atextOK = func() (t [128]bool) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~." {
		t[c] = true
	}
	return t
}()

func needQuote(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return true
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 128 || !atextOK[c] {
			return true
		}
	}
	return false
}

// isASCII reports whether s has only 7-bit bytes.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
