package auth

import (
	"os/exec"
	"strings"
	"testing"
)

// Vectors from openssl passwd -1 -salt SALT PASSWORD.
var md5CryptTests = []struct{ pass, hash string }{
	{"password", "$1$abcdefgh$G//4keteveJp0qb8z2DxG/"},
	{"secret", "$1$saltsalt$9xy1btjgzLYfb7hivXtC//"},
	{"a", "$1$x$P8VObTrxaqT4VBmnH06P8."},
	{"0123456789abcdef0123456789", "$1$12345678$zZveUjTHgtbjkXRgU00Ig/"},
	{"correct-horse-battery-staple-and-more-than-thirty-two-bytes-long", "$1$aB.3/z9Q$ZzIXoNtL1vrCPeCoqOocH1"},
	{"", "$1$abc$Or2rbeUYTvt12aiVzMuS/."},
	// A salt longer than 8 characters counts only its first 8.
	{"pw", "$1$toolongs$cARG.ecOrMi6EP6awI4Z50"},
}

func TestMD5Crypt(t *testing.T) {
	for _, tt := range md5CryptTests {
		got, ok := md5Crypt(tt.pass, tt.hash)
		if !ok || got != tt.hash {
			t.Errorf("md5Crypt(%q, %q) = %q, %v", tt.pass, tt.hash, got, ok)
		}
	}
	if got, _ := md5Crypt("pw", "$1$toolongsaltvalue"); got != "$1$toolongs$cARG.ecOrMi6EP6awI4Z50" {
		t.Errorf("long salt: %s", got)
	}
	if _, ok := md5Crypt("pw", "$6$abc"); ok {
		t.Error("md5Crypt accepted a $6$ setting")
	}
}

func TestVerifyPasswordMD5Crypt(t *testing.T) {
	for _, tt := range md5CryptTests {
		if tt.pass == "" {
			continue // VerifyPassword's callers never check an empty secret; see below
		}
		for _, prefix := range []string{"", "{MD5-CRYPT}", "{CRYPT}"} {
			stored := prefix + tt.hash
			c := Credentials{Secret: tt.pass, Method: MethodUser}
			if !VerifyPassword(stored, c) {
				t.Errorf("VerifyPassword(%q, %q) = false", stored, tt.pass)
			}
			for _, wrong := range []string{tt.pass + "x", strings.ToUpper(tt.pass) + "!", tt.pass[:len(tt.pass)-1], tt.pass + "\x00"} {
				c.Secret = wrong
				if VerifyPassword(stored, c) {
					t.Errorf("VerifyPassword(%q, %q) = true", stored, wrong)
				}
			}
			// APOP cannot use a hash.
			if VerifyPassword(stored, Credentials{Secret: tt.pass, Method: MethodAPOP, Challenge: "<1@h>"}) {
				t.Errorf("APOP accepted against %q", stored)
			}
		}
	}
	abuse := []struct {
		name, stored, secret string
	}{
		{"prefix without $1$", "{MD5-CRYPT}abcdefgh$G//4keteveJp0qb8z2DxG/", "password"},
		{"truncated hash", "$1$abcdefgh$G//4keteveJp0qb8z2DxG", "password"},
		{"no hash", "$1$abcdefgh$", "password"},
		{"locked", "!$1$abcdefgh$G//4keteveJp0qb8z2DxG/", "password"},
		{"huge secret", "$1$abcdefgh$G//4keteveJp0qb8z2DxG/", strings.Repeat("p", MaxPasswordLength+1)},
		{"NUL in hash", "$1$abcd\x00fgh$G//4keteveJp0qb8z2DxG/", "password"},
	}
	for _, tt := range abuse {
		if VerifyPassword(tt.stored, Credentials{Secret: tt.secret, Method: MethodUser}) {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

// TestMD5CryptOpenSSL compares with openssl for passwords of every length
// up to 70 bytes (the loops of the algorithm change at 16 and at powers of
// two).
func TestMD5CryptOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed (Debian's openssl package)")
	}
	salts := []string{"a", "Zz./09", "8charsal"}
	var pass strings.Builder
	for n := 1; n <= 70; n++ {
		pass.WriteByte("abcdefghijklmnopqrstuvwxyz0123456789-_!"[n%39])
		salt := salts[n%len(salts)]
		out, err := exec.Command("openssl", "passwd", "-1", "-salt", salt, pass.String()).Output()
		if err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSpace(string(out))
		if got, _ := md5Crypt(pass.String(), want); got != want {
			t.Errorf("%d bytes: got %s, openssl %s", n, got, want)
		}
	}
}

func FuzzMD5Crypt(f *testing.F) {
	for _, tt := range md5CryptTests {
		f.Add(tt.pass, tt.hash)
	}
	f.Add("x", "$1$")
	f.Add("x", "$1$$")
	f.Fuzz(func(t *testing.T, pass, setting string) {
		if len(pass) > MaxPasswordLength {
			return
		}
		got, ok := md5Crypt(pass, setting)
		if !ok {
			return
		}
		// Its own output is a setting that gives the same hash.
		again, ok := md5Crypt(pass, got)
		if !ok || again != got {
			t.Fatalf("md5Crypt(%q, %q) = %q, then %q", pass, setting, got, again)
		}
	})
}
