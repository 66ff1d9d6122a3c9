package pop3

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func emptyMaildir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "Maildir")
	for _, s := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, s), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func put(t *testing.T, dir, path string, mtime, atime int64) {
	t.Helper()
	p := filepath.Join(dir, path)
	if err := os.WriteFile(p, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, time.Unix(atime, 0), time.Unix(mtime, 0)); err != nil {
		t.Fatal(err)
	}
}

func at(sec int64) func() time.Time { return func() time.Time { return time.Unix(sec, 0) } }

func uids(t *testing.T, mb Mailbox) []string {
	t.Helper()
	msgs, err := mb.Messages(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, m.UID)
	}
	return out
}

// The UIDL is the name cut at the first ':'.
func TestMaildirVector8UIDL(t *testing.T) {
	for _, p := range []string{"cur/1700000000.4321.mx1:2,S", "new/1700000000.4321.mx1"} {
		dir := emptyMaildir(t)
		put(t, dir, p, 100, 100)
		mb, err := OpenMaildir(dir, MaildirOptions{Now: at(1000)})
		if err != nil {
			t.Fatal(err)
		}
		if got := uids(t, mb); !slices.Equal(got, []string{"1700000000.4321.mx1"}) {
			t.Errorf("%s: UIDL %q", p, got)
		}
		mb.Close()
	}
}

// The QUIT update (deleted messages unlinked, the rest of new/ moved to
// cur/ with ":2,"), and nothing without it.
func TestMaildirVector9Quit(t *testing.T) {
	for _, quit := range []bool{true, false} {
		dir := emptyMaildir(t)
		put(t, dir, "new/A", 100, 100)
		put(t, dir, "cur/B:2,S", 101, 101)
		put(t, dir, "new/C", 102, 102)
		mb, err := OpenMaildir(dir, MaildirOptions{Now: at(1000)})
		if err != nil {
			t.Fatal(err)
		}
		if got := uids(t, mb); !slices.Equal(got, []string{"A", "B", "C"}) {
			t.Fatalf("listing %q", got)
		}
		if quit {
			if err := mb.Commit(t.Context(), Update{Deleted: []bool{false, false, true}, Retrieved: make([]bool, 3)}); err != nil {
				t.Fatal(err)
			}
		}
		mb.Close()
		want := map[string]bool{"cur/A:2,": quit, "cur/B:2,S": true, "new/C": !quit, "new/A": !quit}
		for p, ok := range want {
			if exists(filepath.Join(dir, p)) != ok {
				t.Errorf("quit=%v: %s exists=%v", quit, p, !ok)
			}
		}
	}
}

// The listing: mtimes strictly before the session's start, oldest first; names
// starting with '.' ignored. Directories and symbolic links are not
// messages either.
func TestMaildirVector10Scan(t *testing.T) {
	dir := emptyMaildir(t)
	put(t, dir, "new/m999", 999, 999)
	put(t, dir, "cur/m998:2,", 998, 998)
	put(t, dir, "new/m1000", 1000, 1000)
	put(t, dir, "new/.hidden", 10, 10)
	os.Mkdir(filepath.Join(dir, "cur", "adir"), 0o700)
	os.Symlink("/etc/passwd", filepath.Join(dir, "cur", "link"))
	mb, err := OpenMaildir(dir, MaildirOptions{Now: at(1000)})
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	if got := uids(t, mb); !slices.Equal(got, []string{"m998", "m999"}) {
		t.Fatalf("listing %q", got)
	}
}

// tmp/ cleaning at session start: entries not accessed for 36 hours go.
func TestMaildirVector11Clean(t *testing.T) {
	dir := emptyMaildir(t)
	put(t, dir, "tmp/old", 70399, 70399)
	put(t, dir, "tmp/edge", 70400, 70400)
	put(t, dir, "tmp/.keep", 1, 1)
	mb, err := OpenMaildir(dir, MaildirOptions{Now: at(200000)})
	if err != nil {
		t.Fatal(err)
	}
	mb.Close()
	for p, want := range map[string]bool{"tmp/old": false, "tmp/edge": true, "tmp/.keep": true} {
		if exists(filepath.Join(dir, p)) != want {
			t.Errorf("%s exists=%v, want %v", p, !want, want)
		}
	}
}

// A message that vanished after the listing: RETR says so, the session
// goes on; in compat mode its unlink at QUIT is reported.
func TestMessageGone(t *testing.T) {
	dir := vectorMaildir(t)
	srv := &Server{Compat: true, Auth: testAuth(dir), Now: func() time.Time { return vectorNow }}
	c := startSession(t, srv, nil)
	c.login()
	os.Remove(filepath.Join(dir, vectorMessages[1].path))
	c.cmd("RETR 2", "-ERR unable to open that message")
	c.cmd("DELE 2", "+OK ")
	c.send("QUIT\r\n")
	c.expect("-ERR unable to unlink all deleted messages")
	c.expect("+OK ")
}
