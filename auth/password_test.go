package auth

import (
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"os/exec"
	"strings"
	"testing"
)

func newSHA256() hash.Hash { return sha256.New() }
func newSHA512() hash.Hash { return sha512.New() }

// Vectors from Drepper's specification and from openssl passwd.
func TestShaCrypt(t *testing.T) {
	tests := []struct{ pass, want string }{
		{"Hello world!", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"},
		{"Hello world!", "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"},
		{"Hello world!", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
		{"Hello world!", "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."},
		{"we have a short salt string but not a short password", "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"},
		{"a very much longer text to encrypt.  This one even stretches over morethan one line.", "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"},
		{"Hello", "$6$saltstring$aQzKv7HhksN4CNT5HySRdxOEHxZvlWWP2je/lOgbrHx5iLYj3NJfVnC287n/dwkODYWL1.LZUdO9vX84fkCna/"},
		{"Hello", "$5$saltstring$jfZe1.O5rA9aUKHLYLEqMjNCNYEqmZMJ.KAMmcgZPz5"},
		{"Hello", "$6$rounds=10000$saltstringsaltst$DnM2Jm3V1mf0hWR8z5llqCiY0T8yQkajZ3XqSMPqCQM7nOlQ2vNLw67R4dig.xMBoe7fqfsstTJp8WAno99rl0"},
	}
	for _, tt := range tests {
		c := Credentials{Secret: tt.pass, Method: MethodUser}
		if !VerifyPassword(tt.want, c) {
			var got string
			if strings.HasPrefix(tt.want, "$5$") {
				got, _ = shaCrypt(newSHA256, tt.pass, tt.want)
			} else {
				got, _ = shaCrypt(newSHA512, tt.pass, tt.want)
			}
			t.Errorf("%q: got %s, want %s", tt.pass, got, tt.want)
		}
		c.Secret += "x"
		if VerifyPassword(tt.want, c) {
			t.Errorf("%q: a wrong password matches", tt.pass)
		}
	}
}

// Against the system's openssl, when present, for random salts.
func TestShaCryptOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	for _, alg := range []string{"-5", "-6"} {
		for _, pass := range []string{"x", "pass word", strings.Repeat("long password ", 10)} {
			out, err := exec.Command("openssl", "passwd", alg, pass).Output()
			if err != nil {
				t.Fatal(err)
			}
			hash := strings.TrimSpace(string(out))
			if !VerifyPassword(hash, Credentials{Secret: pass}) {
				t.Errorf("openssl %s %q = %s: no match", alg, pass, hash)
			}
		}
	}
}

func TestVerifyPassword(t *testing.T) {
	user := Credentials{Secret: "tanstaaf", Method: MethodUser}
	apop := Credentials{Secret: "c4c9334bac560ecc979e58001b3e22fb", Challenge: "<1896.697170952@dbc.mtview.ca.us>", Method: MethodAPOP}
	tests := []struct {
		stored     string
		user, apop bool
	}{
		{"{PLAIN}tanstaaf", true, true},
		{"{PLAIN}", false, false},
		{"", false, false},
		{"!", false, false},
		{"*", false, false},
		{"tanstaaf", false, false}, // no scheme: not clear text
		{"{CRYPT}$5$saltstring$" + mustCrypt(t, "tanstaaf"), true, false},
		{"{MD5}whatever", false, false},
	}
	for _, tt := range tests {
		if got := VerifyPassword(tt.stored, user); got != tt.user {
			t.Errorf("USER %q: %v", tt.stored, got)
		}
		if got := VerifyPassword(tt.stored, apop); got != tt.apop {
			t.Errorf("APOP %q: %v", tt.stored, got)
		}
	}
}

func mustCrypt(t *testing.T, pass string) string {
	s, _ := shaCrypt(newSHA256, pass, "$5$saltstring")
	return strings.TrimPrefix(s, "$5$saltstring$")
}

func TestHashPassword(t *testing.T) {
	seen := map[string]bool{}
	for _, pass := range []string{"x", "pass word", "ünïcødé", strings.Repeat("long password ", 10)} {
		h, err := HashPassword(pass)
		if err != nil {
			t.Fatal(err)
		}
		rest, ok := strings.CutPrefix(h, "{SHA512-CRYPT}$6$")
		if !ok {
			t.Fatalf("%q: hash %q has not the form {SHA512-CRYPT}$6$salt$hash", pass, h)
		}
		salt, hash, _ := strings.Cut(rest, "$")
		if len(salt) != 16 || strings.Trim(salt, cryptAlphabet) != "" || len(hash) != 86 {
			t.Errorf("%q: salt %q, hash %q", pass, salt, hash)
		}
		if seen[salt] {
			t.Errorf("salt %q twice", salt)
		}
		seen[salt] = true
		for _, stored := range []string{h, strings.TrimPrefix(h, "{SHA512-CRYPT}"), "{CRYPT}" + strings.TrimPrefix(h, "{SHA512-CRYPT}")} {
			if !VerifyPassword(stored, Credentials{Secret: pass, Method: MethodUser}) {
				t.Errorf("%q: %q does not verify", pass, stored)
			}
			if VerifyPassword(stored, Credentials{Secret: pass + "x", Method: MethodUser}) {
				t.Errorf("%q: %q verifies a wrong password", pass, stored)
			}
		}
	}
	if _, err := HashPassword(""); err == nil {
		t.Error("HashPassword of an empty password")
	}
}

// Dovecot's prefixes on glibc's vectors; a prefix naming the other
// algorithm matches nothing.
func TestVerifyPasswordSchemes(t *testing.T) {
	const v6 = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
	const v5 = "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
	c := Credentials{Secret: "Hello world!", Method: MethodUser}
	for stored, want := range map[string]bool{
		"{SHA512-CRYPT}" + v6: true,
		"{SHA256-CRYPT}" + v5: true,
		"{CRYPT}" + v6:        true,
		"{SHA256-CRYPT}" + v6: false,
		"{SHA512-CRYPT}" + v5: false,
		"{SHA512-CRYPT}":      false,
	} {
		if got := VerifyPassword(stored, c); got != want {
			t.Errorf("%q: %v, want %v", stored, got, want)
		}
	}
}

// Rounds beyond MaxRounds are refused without computing them.
func TestRoundsCap(t *testing.T) {
	for setting, ok := range map[string]bool{
		"$6$rounds=1000$salt":      true,
		"$6$rounds=10000$salt":     true,
		"$6$rounds=1000001$salt":   false,
		"$6$rounds=999999999$salt": false,
		"$6$rounds=4294967296$s":   false,
		"$5$rounds=10$salt":        true, // raised to 1000, as glibc does
	} {
		if _, got := shaCrypt(newSHA512, "x", setting); got != ok {
			t.Errorf("%s: %v, want %v", setting, got, ok)
		}
	}
	if VerifyPassword("$6$rounds=999999999$salt$whatever", Credentials{Secret: "x"}) {
		t.Error("a hash of 999,999,999 rounds verifies")
	}
}

// FuzzVerifyPassword checks arbitrary stored passwords: no panic, bounded
// work (secrets over MaxPasswordLength and rounds over MaxRounds are
// refused before hashing), and a hash SHA-crypt makes from a stored
// setting verifies its own password.
func FuzzVerifyPassword(f *testing.F) {
	for _, s := range []string{
		"{PLAIN}tanstaaf",
		"$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
		"$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1",
		"{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
		"{CRYPT}$6$rounds=999999999$x$y",
		"$6$rounds=$",
		"$5$",
		"$6$$",
		"!",
	} {
		f.Add(s, "Hello world!")
	}
	f.Fuzz(func(t *testing.T, stored, secret string) {
		if len(secret) > 2*MaxPasswordLength {
			secret = secret[:2*MaxPasswordLength]
		}
		c := Credentials{Secret: secret, Method: MethodUser}
		ok := VerifyPassword(stored, c)
		if ok && len(secret) > MaxPasswordLength {
			t.Fatalf("%q: a %d-byte secret verifies", stored, len(secret))
		}
		setting := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(stored, "{CRYPT}"), "{SHA512-CRYPT}"), "{SHA256-CRYPT}")
		if len(secret) > MaxPasswordLength || !strings.HasPrefix(setting, "$5$") && !strings.HasPrefix(setting, "$6$") {
			return
		}
		h := newSHA512
		if setting[1] == '5' {
			h = newSHA256
		}
		made, ok := shaCrypt(h, secret, setting)
		if !ok {
			return
		}
		if !VerifyPassword(made, c) {
			t.Fatalf("setting %q, secret %q: the hash %q does not verify", setting, secret, made)
		}
	})
}
