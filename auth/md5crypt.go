package auth

import (
	"crypto/md5"
	"strings"
)

// md5Crypt is Poul-Henning Kamp's MD5-crypt ("$1$", FreeBSD 1994), the
// hash vpopmail 5.4 and many old /etc/shadow files hold, for the salt of
// setting ("$1$salt" or "$1$salt$hash"; at most 8 salt characters count).
// It returns the whole "$1$salt$hash" string. MD5-crypt is weak (1000 MD5
// rounds): VerifyPassword reads it so imported mailboxes keep working;
// HashPassword never writes it.
func md5Crypt(password, setting string) (string, bool) {
	const magic = "$1$"
	rest, ok := strings.CutPrefix(setting, magic)
	if !ok {
		return "", false
	}
	salt, _, _ := strings.Cut(rest, "$")
	if len(salt) > 8 {
		salt = salt[:8]
	}
	p, s := []byte(password), []byte(salt)

	alt := md5.New()
	alt.Write(p)
	alt.Write(s)
	alt.Write(p)
	b := alt.Sum(nil)

	h := md5.New()
	h.Write(p)
	h.Write([]byte(magic))
	h.Write(s)
	for n := len(p); n > 0; n -= 16 {
		h.Write(b[:min(n, 16)])
	}
	// The original writes a NUL for a set bit and the password's first
	// byte (NUL when it is empty) for a clear one.
	first := byte(0)
	if len(p) > 0 {
		first = p[0]
	}
	for n := len(p); n > 0; n >>= 1 {
		if n&1 != 0 {
			h.Write([]byte{0})
		} else {
			h.Write([]byte{first})
		}
	}
	f := h.Sum(nil)

	f = cryptRounds(h, f, p, s, 1000)

	out := make([]byte, 0, len(magic)+len(salt)+1+22)
	out = append(out, magic...)
	out = append(out, salt...)
	out = append(out, '$')
	for _, t := range [...][3]int{{0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}} {
		out = crypt64(out, f[t[0]], f[t[1]], f[t[2]], 4)
	}
	out = crypt64(out, 0, 0, f[11], 2)
	return string(out), true
}
