package mta

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/pop3"
)

func TestEnsureAdmin(t *testing.T) {
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, "users"), 0o755); err != nil {
		t.Fatal(err)
	}
	pw, err := EnsureAdmin(home, 4242)
	if err != nil || len(pw) < 12 {
		t.Fatalf("EnsureAdmin = %q, %v", pw, err)
	}
	again, err := EnsureAdmin(home, 4242)
	if err != nil || again != "" {
		t.Fatalf("second EnsureAdmin = %q, %v; want nothing made", again, err)
	}
	f := &pop3.PasswdFile{Path: AdminPasswdPath(home)}
	if _, err := f.Authenticate(context.Background(), auth.Credentials{User: "admin", Secret: pw, Method: auth.MethodPlain}); err != nil {
		t.Fatalf("the printed password does not log in: %v", err)
	}
	if _, err := f.Authenticate(context.Background(), auth.Credentials{User: "admin", Secret: pw + "x", Method: auth.MethodPlain}); err == nil {
		t.Fatal("a wrong password logs in")
	}
	fi, err := os.Stat(AdminPasswdPath(home))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	want := os.FileMode(0o600)
	if os.Getuid() == 0 {
		want = 0o640
		if st.Uid != 0 || st.Gid != 4242 {
			t.Errorf("owner %d:%d, want 0:4242", st.Uid, st.Gid)
		}
	}
	if fi.Mode().Perm() != want {
		t.Errorf("mode %v, want %v", fi.Mode().Perm(), want)
	}
	data, _ := os.ReadFile(AdminPasswdPath(home))
	if string(data) == "" || strings.Contains(string(data), pw) {
		t.Fatal("the password is stored in clear")
	}
}
