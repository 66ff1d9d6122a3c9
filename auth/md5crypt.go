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

	for i := range 1000 {
		h.Reset()
		if i&1 != 0 {
			h.Write(p)
		} else {
			h.Write(f)
		}
		if i%3 != 0 {
			h.Write(s)
		}
		if i%7 != 0 {
			h.Write(p)
		}
		if i&1 != 0 {
			h.Write(f)
		} else {
			h.Write(p)
		}
		f = h.Sum(f[:0])
	}

	out := make([]byte, 0, len(magic)+len(salt)+1+22)
	out = append(out, magic...)
	out = append(out, salt...)
	out = append(out, '$')
	b64 := func(b2, b1, b0 byte, n int) {
		w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
		for range n {
			out = append(out, cryptAlphabet[w&0x3f])
			w >>= 6
		}
	}
	b64(f[0], f[6], f[12], 4)
	b64(f[1], f[7], f[13], 4)
	b64(f[2], f[8], f[14], 4)
	b64(f[3], f[9], f[15], 4)
	b64(f[4], f[10], f[5], 4)
	b64(0, 0, f[11], 2)
	return string(out), true
}
