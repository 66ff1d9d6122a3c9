package auth

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// APOPDigest returns the APOP digest of a shared secret for a greeting
// timestamp: the lower-case hex MD5 of timestamp followed by secret
// (RFC 1939 section 7).
func APOPDigest(timestamp, secret string) string {
	sum := md5.Sum([]byte(timestamp + secret))
	return hex.EncodeToString(sum[:])
}

// CheckSecret reports whether the presented credentials match the user's
// clear-text secret: equality for USER/PASS and AUTH PLAIN, the APOP digest
// for APOP. It compares in constant time.
func CheckSecret(c Credentials, secret string) bool {
	want := secret
	if c.Method == MethodAPOP {
		want = APOPDigest(c.Challenge, secret)
		return subtle.ConstantTimeCompare([]byte(strings.ToLower(c.Secret)), []byte(want)) == 1
	}
	return subtle.ConstantTimeCompare([]byte(c.Secret), []byte(want)) == 1
}

// MaxPasswordLength is the longest password [VerifyPassword] checks, in
// bytes: 1024. SHA-crypt's cost grows with the square of the password's
// length (an 8 KB password takes a quarter of a second), so a longer one
// is refused, as a wrong password, before any hashing.
const MaxPasswordLength = 1024

// MaxRounds is the most SHA-crypt rounds [VerifyPassword] computes: a
// stored hash asking for more (SHA-crypt allows 999,999,999) never
// matches, so that no entry, whoever wrote it, makes each login spin.
// Hashes made by [HashPassword], mkpasswd and Dovecot use 5000.
const MaxRounds = 1_000_000

// VerifyPassword checks credentials against a stored password:
//
//	{PLAIN}secret          clear text (the only form APOP can use)
//	$5$salt$hash           SHA-256-crypt, optionally $5$rounds=N$...
//	$6$salt$hash           SHA-512-crypt (glibc's crypt(3), mkpasswd -m sha-512)
//	{CRYPT}$6$...          the same, with Dovecot's scheme prefix
//	{SHA512-CRYPT}$6$...   the same, as Dovecot's doveadm pw writes it (and {SHA256-CRYPT}$5$...)
//	$1$salt$hash           MD5-crypt (vpopmail 5.4, old shadow files), also {MD5-CRYPT}$1$... and {CRYPT}$1$...
//
// An empty password, or one starting with '!' or '*' (a locked account),
// never matches, nor does an unknown scheme, a secret longer than
// [MaxPasswordLength] or a hash of more than [MaxRounds] rounds.
func VerifyPassword(stored string, c Credentials) bool {
	if len(c.Secret) > MaxPasswordLength {
		return false
	}
	if strings.HasPrefix(stored, "{PLAIN}") {
		secret := strings.TrimPrefix(stored, "{PLAIN}")
		return secret != "" && CheckSecret(c, secret)
	}
	var h func() hash.Hash
	switch {
	case strings.HasPrefix(stored, "{SHA512-CRYPT}$6$"):
		stored = strings.TrimPrefix(stored, "{SHA512-CRYPT}")
	case strings.HasPrefix(stored, "{SHA256-CRYPT}$5$"):
		stored = strings.TrimPrefix(stored, "{SHA256-CRYPT}")
	case strings.HasPrefix(stored, "{MD5-CRYPT}$1$"):
		stored = strings.TrimPrefix(stored, "{MD5-CRYPT}")
	default:
		stored = strings.TrimPrefix(stored, "{CRYPT}")
	}
	if c.Method == MethodAPOP || stored == "" {
		return false
	}
	switch {
	case strings.HasPrefix(stored, "$5$"):
		h = sha256.New
	case strings.HasPrefix(stored, "$6$"):
		h = sha512.New
	case strings.HasPrefix(stored, "$1$"):
		got, ok := md5Crypt(c.Secret, stored)
		return ok && subtle.ConstantTimeCompare([]byte(got), []byte(stored)) == 1
	default:
		return false
	}
	got, ok := shaCrypt(h, c.Secret, stored)
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(stored)) == 1
}

// HashPassword returns password hashed for a password file: SHA-512-crypt
// with the default 5000 rounds and a random 16-character salt, with
// Dovecot's scheme prefix, "{SHA512-CRYPT}$6$salt$hash", a form both
// [VerifyPassword] and Dovecot read. It refuses an empty password and one
// longer than [MaxPasswordLength], which could never log in.
func HashPassword(password string) (string, error) {
	if password == "" || len(password) > MaxPasswordLength {
		return "", fmt.Errorf("auth: hash password: length %d not in 1..%d", len(password), MaxPasswordLength)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	for i := range b {
		b[i] = cryptAlphabet[b[i]&63]
	}
	h, ok := shaCrypt(sha512.New, password, "$6$"+string(b[:]))
	if !ok {
		return "", errors.New("auth: hash password: failed")
	}
	return "{SHA512-CRYPT}" + h, nil
}

const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// shaCrypt is Ulrich Drepper's SHA-crypt ("Unix crypt using SHA-256 and
// SHA-512", 2007) for the salt and rounds of setting ("$5$..." or
// "$6$...", with or without a hash after the salt).
func shaCrypt(newHash func() hash.Hash, password, setting string) (string, bool) {
	prefix := setting[:3]
	rest := setting[3:]
	rounds, custom := 5000, false
	if r, ok := strings.CutPrefix(rest, "rounds="); ok {
		i := strings.IndexByte(r, '$')
		if i < 0 {
			return "", false
		}
		n, err := strconv.ParseUint(r[:i], 10, 32)
		if err != nil {
			return "", false
		}
		rounds, custom, rest = min(max(int(n), 1000), 999999999), true, r[i+1:]
	}
	salt := rest
	if i := strings.IndexByte(salt, '$'); i >= 0 {
		salt = salt[:i]
	}
	if len(salt) > 16 {
		salt = salt[:16]
	}
	if rounds > MaxRounds {
		return "", false // refuse to be made to spin by a stored setting
	}
	p, s := []byte(password), []byte(salt)
	h := newHash()
	size := h.Size()

	h.Write(p)
	h.Write(s)
	h.Write(p)
	b := h.Sum(nil)

	h.Reset()
	h.Write(p)
	h.Write(s)
	n := len(p)
	for ; n > size; n -= size {
		h.Write(b)
	}
	h.Write(b[:n])
	for n := len(p); n > 0; n >>= 1 {
		if n&1 != 0 {
			h.Write(b)
		} else {
			h.Write(p)
		}
	}
	a := h.Sum(nil)

	h.Reset()
	for range len(p) {
		h.Write(p)
	}
	dp := h.Sum(nil)
	pp := make([]byte, 0, len(p))
	for len(pp)+size <= len(p) {
		pp = append(pp, dp...)
	}
	pp = append(pp, dp[:len(p)-len(pp)]...)

	h.Reset()
	for range 16 + int(a[0]) {
		h.Write(s)
	}
	ds := h.Sum(nil)
	ss := make([]byte, 0, len(s))
	for len(ss)+size <= len(s) {
		ss = append(ss, ds...)
	}
	ss = append(ss, ds[:len(s)-len(ss)]...)

	c := cryptRounds(h, a, pp, ss, rounds)

	out := []byte(prefix)
	if custom {
		out = fmt.Appendf(out, "rounds=%d$", rounds)
	}
	out = append(out, salt...)
	out = append(out, '$')
	// The byte order of the encoding rotates the triples (k, k+d, k+2d),
	// one way for SHA-512 and the other for SHA-256.
	d, last := 21, 2
	if size == 32 {
		d, last = 10, 1
	}
	for k := range d {
		x, y, z := c[k], c[k+d], c[k+2*d]
		switch {
		case k%3 == 0:
		case (k%3 == 1) == (size == 64):
			x, y, z = y, z, x
		default:
			x, y, z = z, x, y
		}
		out = crypt64(out, x, y, z, 4)
	}
	if last == 2 {
		out = crypt64(out, 0, 0, c[63], 2)
	} else {
		out = crypt64(out, 0, c[31], c[30], 3)
	}
	return string(out), true
}

// cryptRounds is the loop md5-crypt (1000 rounds) and SHA-crypt (rounds=)
// share: each round hashes the previous digest c with the password p and
// the salt s, in an order set by the round's number.
func cryptRounds(h hash.Hash, c, p, s []byte, rounds int) []byte {
	for i := range rounds {
		h.Reset()
		if i&1 != 0 {
			h.Write(p)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(s)
		}
		if i%7 != 0 {
			h.Write(p)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(p)
		}
		c = h.Sum(c[:0])
	}
	return c
}

// crypt64 appends the n characters of crypt's base-64 for the bytes b2,
// b1, b0 (least significant six bits first).
func crypt64(out []byte, b2, b1, b0 byte, n int) []byte {
	w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
	for range n {
		out = append(out, cryptAlphabet[w&0x3f])
		w >>= 6
	}
	return out
}
