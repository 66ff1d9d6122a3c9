package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/qmailkit/qmailkit/assign"
	"github.com/qmailkit/qmailkit/internal/account"
	"github.com/qmailkit/qmailkit/internal/progtest"
)

// owners fakes the home directories' owners: a uid or an errno per path.
func owners(m map[string]any) func(string) (int, error) {
	return func(dir string) (int, error) {
		switch v := m[dir].(type) {
		case int:
			return v, nil
		case syscall.Errno:
			return 0, &fs.PathError{Op: "stat", Path: dir, Err: v}
		}
		return 0, &fs.PathError{Op: "stat", Path: dir, Err: syscall.ENOENT}
	}
}

func TestGetpw(t *testing.T) {
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	os.WriteFile(passwd, []byte("root:x:0:0::/root:/bin/sh\n"+
		"joe:x:1000:100:Joe:/home/joe:/bin/sh\n"+
		"joe-l:x:1001:100::/home/jl:/bin/sh\n"+
		"nfs:x:1002:100::/nfs/home:/bin/sh\n"+
		"alias:x:7790:2108::/var/qmail/alias:/bin/true\n"), 0o644)
	noAlias := filepath.Join(dir, "passwd.noalias")
	os.WriteFile(noAlias, []byte("joe:x:1000:100:Joe:/home/joe:/bin/sh\n"), 0o644)
	rootAlias := filepath.Join(dir, "passwd.rootalias")
	os.WriteFile(rootAlias, []byte("alias:x:0:0::/var/qmail/alias:/bin/true\n"), 0o644)
	homes := map[string]any{"/home/joe": 1000, "/home/jl": 1001, "/nfs/home": syscall.ESTALE, "/var/qmail/alias": 7790}
	for _, tc := range []struct {
		name   string
		passwd string
		args   []string
		code   int
		out    string
	}{
		// The extension keeps its case.
		{"Joe-List", passwd, []string{"Joe-List"}, 0, "joe\x001000\x00100\x00/home/joe\x00-\x00List\x00"},
		{"exact", passwd, []string{"joe"}, 0, "joe\x001000\x00100\x00/home/joe\x00\x00\x00"},
		{"longest first", passwd, []string{"joe-l-x"}, 0, "joe-l\x001001\x00100\x00/home/jl\x00-\x00x\x00"},
		{"further arguments ignored", passwd, []string{"joe-a", "other"}, 0, "joe\x001000\x00100\x00/home/joe\x00-\x00a\x00"},
		{"root never matches", passwd, []string{"root-x"}, 0, "alias\x007790\x002108\x00/var/qmail/alias\x00-\x00root-x\x00"},
		{"unknown", passwd, []string{"Nobody"}, 0, "alias\x007790\x002108\x00/var/qmail/alias\x00-\x00Nobody\x00"},
		{"empty local part", passwd, []string{""}, 0, "alias\x007790\x002108\x00/var/qmail/alias\x00-\x00\x00"},
		{"alias with uid 0 printed", rootAlias, []string{"x"}, 0, "alias\x000\x000\x00/var/qmail/alias\x00-\x00x\x00"},
		// Abuse: a huge local part, bytes that are not UTF-8, path
		// characters; none reaches anything but the alias.
		{"huge", passwd, []string{strings.Repeat("x-", 200000)}, 0, "alias\x007790\x002108\x00/var/qmail/alias\x00-\x00" + strings.Repeat("x-", 200000) + "\x00"},
		{"huge extension", passwd, []string{"joe-" + strings.Repeat("x", 400000)}, 0, "joe\x001000\x00100\x00/home/joe\x00-\x00" + strings.Repeat("x", 400000) + "\x00"},
		{"8-bit", passwd, []string{"J\xffOE-x"}, 0, "alias\x007790\x002108\x00/var/qmail/alias\x00-\x00J\xffOE-x\x00"},
		{"path", passwd, []string{"../joe-x"}, 0, "alias\x007790\x002108\x00/var/qmail/alias\x00-\x00../joe-x\x00"},
		{"no argument", passwd, nil, 100, ""},
		{"no alias", noAlias, []string{"nobody"}, 116, ""},
		{"home stat fails temporarily", passwd, []string{"nfs"}, 115, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			users := &assign.Users{Passwd: assign.PasswdFile{Path: tc.passwd}, HomeOwner: owners(homes)}
			code := run(t.Context(), tc.args, users, &out)
			if code != tc.code || out.String() != tc.out {
				t.Errorf("exit %d output %.200q, want %d %.200q", code, out.String(), tc.code, tc.out)
			}
		})
	}
}

// failingPasswd is a password database that is down.
type failingPasswd struct{}

func (failingPasswd) Lookup(string) (*assign.PasswdEntry, error) { return nil, errors.New("nss down") }

func TestPasswdTrouble(t *testing.T) {
	var out bytes.Buffer
	if code := run(t.Context(), []string{"joe"}, &assign.Users{Passwd: failingPasswd{}}, &out); code != 118 || out.Len() != 0 {
		t.Errorf("exit %d output %q", code, out.String())
	}
}

// The built program with the system's password database (a private one,
// in a mount namespace of its own), homes owned or not.
func TestBinary(t *testing.T) {
	if why := account.CanIsolate(); why != "" {
		t.Skip(why)
	}
	bin := progtest.Build(t, "qmail-getpw")
	dir := t.TempDir()
	joe, other := filepath.Join(dir, "joe"), filepath.Join(dir, "other")
	os.Mkdir(joe, 0o755)
	os.Mkdir(other, 0o755)
	os.Chown(joe, 4242, 100)
	passwd, group := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	os.WriteFile(group, []byte("root:x:0:\n"), 0o644)
	for _, tc := range []struct {
		passwd string
		args   []string
		code   int
		out    string
	}{
		{fmt.Sprintf("joe:x:4242:100::%s:/bin/sh\nalias:x:7790:2108::%s:/bin/true\n", joe, other), []string{"Joe-X"}, 0,
			"joe\x004242\x00100\x00" + joe + "\x00-\x00X\x00"},
		{fmt.Sprintf("joe:x:4242:100::%s:/bin/sh\nalias:x:7790:2108::%s:/bin/true\n", other, other), []string{"joe"}, 0,
			"alias\x007790\x002108\x00" + other + "\x00-\x00joe\x00"},
		{fmt.Sprintf("joe:x:4242:100::%s:/bin/sh\n", joe), []string{"bob"}, 116, ""},
		{"", nil, 100, ""},
	} {
		os.WriteFile(passwd, []byte("root:x:0:0::/root:/bin/sh\n"+tc.passwd), 0o644)
		cmd := account.Command(passwd, group, bin, tc.args...)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		if code := progtest.Run(t, cmd); code != tc.code || stdout.String() != tc.out {
			t.Errorf("%q: exit %d output %q, want %d %q", tc.args, code, stdout.String(), tc.code, tc.out)
		}
	}
}
