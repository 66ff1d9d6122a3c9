package pop3

import "strings"

// ParseCommand splits a command line, its line end already removed, into
// the verb, upper-cased, and the argument, as qmail's commands.c does: the
// verb ends at the first space and the argument starts after the spaces
// that follow it (spaces only: a tab belongs to the verb or the argument).
// The argument keeps everything else, inner and trailing spaces included,
// which is how qmail-popup takes a user name.
func ParseCommand(line string) (verb, arg string) {
	i := strings.IndexByte(line, ' ')
	if i < 0 {
		return upper(line), ""
	}
	return upper(line[:i]), strings.TrimLeft(line[i:], " ")
}

// upper upper-cases ASCII letters only, without allocating for the usual
// upper-case verb.
func upper(s string) string {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'a' <= b[j] && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// scanUlong is djb's scan_ulong: it reads the leading decimal digits of s
// into an unsigned integer that wraps around on overflow, as qmail's does,
// and returns how many bytes it used (0: no digits).
func scanUlong(s string) (u uint64, n int) {
	for n < len(s) && '0' <= s[n] && s[n] <= '9' {
		u = u*10 + uint64(s[n]-'0')
		n++
	}
	return u, n
}

// parseNumber parses a modern message number or line count: decimal
// digits only, no overflow. ok is false for anything else.
func parseNumber(s string) (u uint64, ok bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	u, n := scanUlong(s)
	return u, n == len(s)
}

// topArgs splits the arguments of qmail-pop3d's TOP (and RETR): the
// message number's digits, then spaces, then the line count's digits. It
// returns the count plus one (qmail's "limit", where 0 means no limit)
// given the text after the message number.
func topLimit(rest string) uint64 {
	rest = strings.TrimLeft(rest, " ")
	k, n := scanUlong(rest)
	if n == 0 {
		return 0
	}
	return k + 1 // wraps to 0, no limit, for the largest count, as in qmail
}
