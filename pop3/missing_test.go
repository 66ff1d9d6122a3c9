package pop3

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A Maildir that does not exist yet is, in modern mode, a mailbox with no
// mail (nothing is created); anything else that is not a Maildir stays an
// error, and compat mode keeps qmail-pop3d's failure to chdir.
func TestMissingMaildir(t *testing.T) {
	for _, tc := range []struct {
		name   string
		compat bool
		setup  func(t *testing.T, home string) string // returns the Maildir path
		want   string                                 // the reply to PASS
	}{
		{"absent", false, func(t *testing.T, home string) string {
			return filepath.Join(home, "Maildir")
		}, "+OK*"},
		{"absent with its parents", false, func(t *testing.T, home string) string {
			return filepath.Join(home, "no", "such", "Maildir")
		}, "+OK*"},
		{"absent, compat", true, func(t *testing.T, home string) string {
			return filepath.Join(home, "Maildir")
		}, "-ERR this user has no $HOME/Maildir"},
		{"a file", false, func(t *testing.T, home string) string {
			p := filepath.Join(home, "Maildir")
			if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, "-ERR [SYS/*"},
		{"an empty directory", false, func(t *testing.T, home string) string {
			p := filepath.Join(home, "Maildir")
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			return p
		}, "-ERR [SYS/*"},
		{"a symlink to a Maildir", false, func(t *testing.T, home string) string {
			p := filepath.Join(home, "Maildir")
			if err := os.Symlink(vectorMaildir(t), p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "-ERR [SYS/*"},
		{"a dangling symlink", false, func(t *testing.T, home string) string {
			p := filepath.Join(home, "Maildir")
			if err := os.Symlink(filepath.Join(home, "elsewhere"), p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "-ERR [SYS/*"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			path := tc.setup(t, home)
			srv := &Server{Compat: tc.compat, AuthFailDelay: -1, Auth: userAuth(User{Name: "joe", Home: home, Maildir: path, UID: -1, GID: -1})}
			c := startSession(t, srv, nil)
			c.expect("+OK*")
			c.cmd("USER joe", "+OK*")
			c.cmd("PASS good", tc.want)
			if tc.want != "+OK*" {
				return
			}
			c.cmd("STAT", "+OK 0 0")
			c.cmd("LIST", "+OK 0 messages (0 octets)")
			if l := c.multi(); len(l) != 0 {
				t.Errorf("LIST: %q", l)
			}
			c.cmd("UIDL", "+OK*")
			if l := c.multi(); len(l) != 0 {
				t.Errorf("UIDL: %q", l)
			}
			c.cmd("RETR 1", "-ERR*")
			c.cmd("QUIT", "+OK*")
			if err := c.result(); err != nil {
				t.Errorf("session: %v", err)
			}
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the session made %s: %v", path, err)
			}
		})
	}
}

// OpenMaildir with MissingEmpty: the same, without a server.
func TestOpenMaildirMissingEmpty(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		path  string
		opt   MaildirOptions
		empty bool
	}{
		{"absent", filepath.Join(dir, "Maildir"), MaildirOptions{MissingEmpty: true, Lock: true, WireSizes: true}, true},
		{"absent, follow", filepath.Join(dir, "Maildir"), MaildirOptions{MissingEmpty: true, FollowLink: true}, true},
		{"absent below home", filepath.Join(dir, "home/Maildir"), MaildirOptions{MissingEmpty: true, User: &User{Home: filepath.Join(dir, "home"), UID: -1}}, true},
		{"absent, not asked", filepath.Join(dir, "Maildir"), MaildirOptions{}, false},
		{"a file", filepath.Join(dir, "file"), MaildirOptions{MissingEmpty: true}, false},
		{"dangling link, follow", filepath.Join(dir, "link"), MaildirOptions{MissingEmpty: true, FollowLink: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o600)
			os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "link"))
			mb, err := OpenMaildir(tc.path, tc.opt)
			if !tc.empty {
				if err == nil {
					mb.Close()
					t.Fatal("opened")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer mb.Close()
			msgs, err := mb.Messages(t.Context())
			if err != nil || len(msgs) != 0 {
				t.Errorf("Messages: %v, %v", msgs, err)
			}
			if _, err := mb.Open(t.Context(), 0); err == nil {
				t.Error("Open(0) of an empty mailbox succeeded")
			}
			if err := mb.Commit(t.Context(), Update{}); err != nil {
				t.Errorf("Commit: %v", err)
			}
			if err := mb.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if _, err := os.Lstat(tc.path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("made %s", tc.path)
			}
		})
	}
}
