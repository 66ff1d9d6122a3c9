package pop3

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzPasswdFile reads arbitrary password files: readPasswd must not
// panic, every entry it returns must parse again from its own line, and
// the cdb made by CompilePasswd must give the same entries.
func FuzzPasswdFile(f *testing.F) {
	f.Add([]byte(testPasswd))
	f.Add([]byte("joe:{PLAIN}good:1000:1000:Joe:/home/joe:/bin/sh:extra:fields\n"))
	f.Add([]byte("a:b:-1:0:::\n"))
	f.Add([]byte("a:b:+1:0x1:::\r\n#x\n\n:::::::\n"))
	f.Add([]byte("joe:$6$rounds=5000$salt$hash:1:1::/h:/bin/false"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := readPasswd(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		if len(entries) > 64 {
			return // the cdb round trip below is for small files
		}
		for name, e := range entries {
			if name != e.Name || name == "" || strings.ContainsAny(name, ":\n") {
				t.Fatalf("entry %q: %+v", name, e)
			}
		}
		db := filepath.Join(t.TempDir(), "passwd.cdb")
		if err := CompilePasswd(db, bytes.NewReader(data)); err != nil {
			t.Fatalf("CompilePasswd: %v", err)
		}
		p := &PasswdFile{Path: db}
		defer func() {
			if p.db != nil {
				p.db.Close()
			}
		}()
		for name, e := range entries {
			got, err := p.Lookup(name)
			if err != nil || got != e {
				t.Fatalf("cdb %q: %+v, %v; text %+v", name, got, err, e)
			}
		}
	})
}

// FuzzParsePasswdLine: a line that parses gives the fields it holds.
func FuzzParsePasswdLine(f *testing.F) {
	f.Add("joe:{PLAIN}good:1000:1000:Joe:/home/joe:/bin/sh")
	f.Add("x::0:0:::")
	f.Add("x:y:99999999999999999999:0:::")
	f.Fuzz(func(t *testing.T, line string) {
		e, err := ParsePasswdLine(line)
		if err != nil {
			return
		}
		if !strings.HasPrefix(line, e.Name+":"+e.Password+":") || e.UID < 0 || e.GID < 0 || strings.Contains(e.Shell, ":") {
			t.Fatalf("%q: %+v", line, e)
		}
	})
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
