package pop3

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testPasswd = `# virtual users
joe:{PLAIN}good:1000:1000:Joe:/home/joe:/bin/sh
mrose:$6$saltstring$aQzKv7HhksN4CNT5HySRdxOEHxZvlWWP2je/lOgbrHx5iLYj3NJfVnC287n/dwkODYWL1.LZUdO9vX84fkCna/:1001:1001::/home/mrose:/bin/false
joe:{PLAIN}second:1:1::/x:/bin/sh
locked:!:1002:1002::/home/locked:/bin/sh
`

func TestPasswdFile(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "passwd")
	os.WriteFile(text, []byte(testPasswd), 0o600)
	db := filepath.Join(dir, "passwd.cdb")
	if err := CompilePasswd(db, strings.NewReader(testPasswd)); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{text, db} {
		p := &PasswdFile{Path: path}
		u, err := p.Authenticate(t.Context(), Credentials{User: "joe", Secret: "good"})
		if err != nil || u.Home != "/home/joe" || u.UID != 1000 || u.Maildir != "/home/joe/Maildir" {
			t.Fatalf("%s: joe: %+v, %v", path, u, err)
		}
		if _, err := p.Authenticate(t.Context(), Credentials{User: "mrose", Secret: "Hello"}); err != nil {
			t.Fatalf("%s: mrose: %v", path, err)
		}
		for _, c := range []Credentials{{User: "joe", Secret: "second"}, {User: "mrose", Secret: "x"}, {User: "locked", Secret: "!"}, {User: "nobody", Secret: "x"}} {
			if _, err := p.Authenticate(t.Context(), c); !isAuthFailed(err) {
				t.Errorf("%s: %+v: %v", path, c, err)
			}
		}
	}
	// Changes are picked up; a malformed line fails temporarily.
	p := &PasswdFile{Path: text}
	p.Lookup("joe")
	time.Sleep(10 * time.Millisecond)
	os.WriteFile(text, []byte("joe:{PLAIN}new:1:1::/h:/bin/sh\nbad line\n"), 0o600)
	if _, err := p.Lookup("joe"); err == nil || isAuthFailed(err) {
		t.Fatalf("malformed file: %v", err)
	}
	os.WriteFile(text, []byte("joe:{PLAIN}new:1:1::/h:/bin/sh\n"), 0o600)
	if _, err := p.Authenticate(t.Context(), Credentials{User: "joe", Secret: "new"}); err != nil {
		t.Fatalf("after the change: %v", err)
	}
	if _, err := (&PasswdFile{Path: filepath.Join(dir, "missing")}).Lookup("joe"); err == nil || isAuthFailed(err) {
		t.Fatalf("missing file: %v", err)
	}
}

// Issue 17, finding 11: the cost of SHA-crypt grows with the square of
// the password's length; a password over MaxPasswordLength is refused
// before any hashing.
func TestPasswordLengthCap(t *testing.T) {
	max := strings.Repeat("p", MaxPasswordLength)
	long := max + "p"
	if !VerifyPassword("{PLAIN}"+max, Credentials{Secret: max}) {
		t.Error("a password of MaxPasswordLength bytes is refused")
	}
	if VerifyPassword("{PLAIN}"+long, Credentials{Secret: long}) {
		t.Error("a password over MaxPasswordLength bytes is accepted")
	}
	h, err := HashPassword(max)
	if err != nil || !VerifyPassword(h, Credentials{Secret: max}) {
		t.Fatalf("HashPassword(%d bytes) = %q, %v: does not verify", len(max), h, err)
	}
	if _, err := HashPassword(long); err == nil {
		t.Error("HashPassword accepts a password that could never log in")
	}

	path := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(path, []byte("joe:"+h+":1:1::/h:/bin/sh\n"), 0o600)
	calls := 0
	p := &PasswdFile{Path: path, verify: func(stored string, c Credentials) bool {
		calls++
		return VerifyPassword(stored, c)
	}}
	for _, user := range []string{"joe", "nobody"} {
		calls = 0
		if _, err := p.Authenticate(t.Context(), Credentials{User: user, Secret: long + strings.Repeat("x", 8<<10)}); !isAuthFailed(err) {
			t.Errorf("%s: an 9 KB password: %v", user, err)
		}
		if calls != 0 {
			t.Errorf("%s: an over-long password was hashed", user)
		}
	}
}

// An unknown user's password is hashed all the same (against a dummy
// hash like the real ones), so that the time does not tell which users
// exist.
func TestUnknownUserHashes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(path, []byte(testPasswd), 0o600)
	var got []string
	p := &PasswdFile{Path: path, verify: func(stored string, c Credentials) bool {
		got = append(got, stored)
		return VerifyPassword(stored, c)
	}}
	if _, err := p.Authenticate(t.Context(), Credentials{User: "nobody", Secret: "Hello"}); !isAuthFailed(err) {
		t.Fatalf("unknown user: %v", err)
	}
	if len(got) != 1 || got[0] != dummyHash {
		t.Fatalf("unknown user: checked against %q, want the dummy hash", got)
	}
	got = nil
	if _, err := p.Authenticate(t.Context(), Credentials{User: "mrose", Secret: "Hello"}); err != nil || len(got) != 1 || !strings.HasPrefix(got[0], "$6$saltstring$") {
		t.Fatalf("known user: %v, checked %q", err, got)
	}
	// The dummy is a well-formed SHA-512-crypt hash with the default
	// rounds, as costly as a real entry made by HashPassword.
	if len(dummyHash) != 106 || !strings.HasPrefix(dummyHash, "$6$") || strings.Contains(dummyHash, "rounds=") {
		t.Errorf("dummy hash %q: not a default SHA-512-crypt hash", dummyHash)
	}
	if VerifyPassword(dummyHash, Credentials{Secret: ""}) || VerifyPassword(dummyHash, Credentials{Secret: "x"}) {
		t.Error("the dummy hash matches a guess")
	}
}
