package pop3

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit"
)

// The audit of issue 17, finding 1: a POP3 user replaces directories of
// their Maildir by symbolic links to reach files the server can read and
// they cannot. These tests run the attack through a session, in both
// modes, and check that nothing outside the Maildir is listed, read or
// deleted.

// userAuth accepts joe/good as u.
func userAuth(u User) Authenticator {
	return AuthenticatorFunc(func(ctx context.Context, c Credentials) (*User, error) {
		if c.User != "joe" || !CheckSecret(c, "good") {
			return nil, ErrAuthFailed
		}
		v := u
		return &v, nil
	})
}

// writeOld writes a file with an mtime and atime well in the past.
func writeOld(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	old := vectorNow.Add(-72 * time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// attempt logs in and tries, whatever the login's answer, to list, read and
// delete every message, then quits. It returns everything the server said.
func attempt(t *testing.T, srv *Server) string {
	t.Helper()
	c := startSession(t, srv, nil)
	c.c.SetDeadline(time.Now().Add(10 * time.Second))
	var out strings.Builder
	say := func(cmd string, multi bool) bool {
		c.send(cmd + "\r\n")
		l := c.line()
		out.WriteString(l + "\n")
		if multi && strings.HasPrefix(l, "+OK") {
			for _, m := range c.multi() {
				out.WriteString(m + "\n")
			}
		}
		return strings.HasPrefix(l, "+OK")
	}
	out.WriteString(c.line() + "\n")
	say("USER joe", false)
	if !say("PASS good", false) {
		if srv.Compat {
			return out.String() // compat: one attempt, then the session ends
		}
	}
	say("LIST", true)
	for i := 1; i <= 4; i++ {
		say("RETR "+string(rune('0'+i)), true)
		say("DELE "+string(rune('0'+i)), false)
	}
	c.send("QUIT\r\n")
	for {
		l, err := c.r.ReadString('\n')
		out.WriteString(l)
		if err != nil {
			break
		}
	}
	c.result()
	return out.String()
}

// secrets makes two directories outside the Maildir, each holding a file
// the user must never see, and returns them.
func secrets(t *testing.T) (string, string) {
	t.Helper()
	base := t.TempDir()
	users, control := filepath.Join(base, "users"), filepath.Join(base, "control")
	for _, d := range []string{users, control} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeOld(t, filepath.Join(users, "poppasswd"), "root:{PLAIN}SECRET-PASSWORD:0:0::/:/bin/sh\n")
	writeOld(t, filepath.Join(control, "servercert.pem"), "-----BEGIN PRIVATE KEY-----\nSECRET-KEY\n")
	return users, control
}

func checkSecrets(t *testing.T, said string, users, control string) {
	t.Helper()
	if strings.Contains(said, "SECRET") || strings.Contains(said, "poppasswd") || strings.Contains(said, "servercert") {
		t.Errorf("the session revealed a file outside the Maildir:\n%s", said)
	}
	for _, p := range []string{filepath.Join(users, "poppasswd"), filepath.Join(control, "servercert.pem")} {
		if !exists(p) {
			t.Errorf("%s was deleted through the session:\n%s", p, said)
		}
	}
}

// Maildir/cur → users/ and Maildir/new → control/: the audit's attack.
func TestConfineSymlinkedSubdirs(t *testing.T) {
	for _, compat := range []bool{false, true} {
		for _, link := range []string{"cur", "new", "both"} {
			t.Run(map[bool]string{false: "modern", true: "compat"}[compat]+"/"+link, func(t *testing.T) {
				users, control := secrets(t)
				home := t.TempDir()
				md := filepath.Join(home, "Maildir")
				for _, d := range []string{"", "tmp", "new", "cur"} {
					os.Mkdir(filepath.Join(md, d), 0o700)
				}
				writeOld(t, filepath.Join(md, "cur", "1000.1.host:2,"), "Subject: mine\n\nhello\n")
				if link == "cur" || link == "both" {
					os.Rename(filepath.Join(md, "cur"), filepath.Join(md, "cur.old"))
					if err := os.Symlink(users, filepath.Join(md, "cur")); err != nil {
						t.Fatal(err)
					}
				}
				if link == "new" || link == "both" {
					os.Remove(filepath.Join(md, "new"))
					if err := os.Symlink(control, filepath.Join(md, "new")); err != nil {
						t.Fatal(err)
					}
				}
				srv := &Server{Compat: compat, AuthFailDelay: -1, Now: func() time.Time { return vectorNow },
					Auth: userAuth(User{Name: "joe", Home: home, UID: -1, GID: -1})}
				said := attempt(t, srv)
				checkSecrets(t, said, users, control)
				if !compat && !strings.Contains(said, "-ERR [SYS/PERM]") {
					t.Errorf("login not refused with [SYS/PERM]:\n%s", said)
				}
			})
		}
	}
}

// A directory swapped for a symbolic link during the session: the QUIT
// update still works on the directories opened at login.
func TestConfineSwapDuringSession(t *testing.T) {
	for _, compat := range []bool{false, true} {
		users, _ := secrets(t)
		home := t.TempDir()
		md := filepath.Join(home, "Maildir")
		for _, d := range []string{"", "tmp", "new", "cur"} {
			os.Mkdir(filepath.Join(md, d), 0o700)
		}
		// Messages named like the secret file, so that an update by path
		// would unlink or rename it.
		writeOld(t, filepath.Join(md, "cur", "poppasswd"), "Subject: mine\n\nhello\n")
		writeOld(t, filepath.Join(md, "new", "poppasswd"), "Subject: mine too\n\nhello\n")
		srv := &Server{Compat: compat, AuthFailDelay: -1, Now: func() time.Time { return vectorNow },
			Auth: userAuth(User{Name: "joe", Home: home, UID: -1, GID: -1})}
		c := startSession(t, srv, nil)
		c.login()
		for _, sub := range []string{"cur", "new"} {
			if err := os.Rename(filepath.Join(md, sub), filepath.Join(md, sub+".real")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(users, filepath.Join(md, sub)); err != nil {
				t.Fatal(err)
			}
		}
		c.cmd("DELE 2", "+OK*") // cur/poppasswd (new/ comes first on a tie)
		c.cmd("QUIT", "+OK*")
		c.result()
		if exists(filepath.Join(md, "cur.real", "poppasswd")) {
			t.Errorf("compat=%v: the deleted message is still there", compat)
		}
		if !exists(filepath.Join(users, "poppasswd")) {
			t.Errorf("compat=%v: the secret file was deleted", compat)
		}
		if exists(filepath.Join(users, "poppasswd:2,")) {
			t.Errorf("compat=%v: a file was moved into the secret directory", compat)
		}
		if !exists(filepath.Join(md, "cur.real", "poppasswd:2,")) {
			t.Errorf("compat=%v: the message in new/ was not moved in the real Maildir", compat)
		}
	}
}

// Maildir/tmp → a directory with an old file: tmp/ cleaning at login must
// not delete it.
func TestConfineSymlinkedTmp(t *testing.T) {
	users, control := secrets(t)
	home := t.TempDir()
	md := filepath.Join(home, "Maildir")
	for _, d := range []string{"", "new", "cur"} {
		os.Mkdir(filepath.Join(md, d), 0o700)
	}
	if err := os.Symlink(users, filepath.Join(md, "tmp")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	srv := &Server{Compat: true, Now: func() time.Time { return now },
		Auth: userAuth(User{Name: "joe", Home: home, UID: -1, GID: -1})}
	said := attempt(t, srv)
	checkSecrets(t, said, users, control)
}

// A Maildir that is itself a symbolic link, and one below the home reached
// through a symbolic link, are refused: what they point to is not the
// user's.
func TestConfineSymlinkedMaildir(t *testing.T) {
	for _, compat := range []bool{false, true} {
		users, control := secrets(t)
		// The target looks like a Maildir whose cur/ is users/.
		target := t.TempDir()
		os.Mkdir(filepath.Join(target, "tmp"), 0o700)
		os.Mkdir(filepath.Join(target, "new"), 0o700)
		os.Symlink(users, filepath.Join(target, "cur"))

		// Home/Maildir → target.
		home := t.TempDir()
		if err := os.Symlink(target, filepath.Join(home, "Maildir")); err != nil {
			t.Fatal(err)
		}
		srv := &Server{Compat: compat, AuthFailDelay: -1, Now: func() time.Time { return vectorNow },
			Auth: userAuth(User{Name: "joe", Home: home, UID: -1, GID: -1})}
		checkSecrets(t, attempt(t, srv), users, control)

		// Home/mail → a directory holding a Maildir whose cur/ is
		// users/: the user controls a link on the way.
		home2 := t.TempDir()
		real := t.TempDir()
		os.MkdirAll(filepath.Join(real, "Maildir", "tmp"), 0o700)
		os.MkdirAll(filepath.Join(real, "Maildir", "new"), 0o700)
		os.Symlink(users, filepath.Join(real, "Maildir", "cur"))
		if err := os.Symlink(real, filepath.Join(home2, "mail")); err != nil {
			t.Fatal(err)
		}
		srv.Auth = userAuth(User{Name: "joe", Home: home2, UID: -1, GID: -1, Maildir: filepath.Join(home2, "mail", "Maildir")})
		checkSecrets(t, attempt(t, srv), users, control)
	}
}

// A message replaced by a FIFO after the listing: RETR fails at once
// instead of blocking the session; a FIFO pop3sizes or in new/ does not
// block the login either.
func TestConfineFIFO(t *testing.T) {
	for _, compat := range []bool{false, true} {
		home := t.TempDir()
		md := filepath.Join(home, "Maildir")
		for _, d := range []string{"", "tmp", "new", "cur"} {
			os.Mkdir(filepath.Join(md, d), 0o700)
		}
		writeOld(t, filepath.Join(md, "cur", "1000.1.host:2,"), "Subject: one\n\nhello\n")
		writeOld(t, filepath.Join(md, "cur", "1001.1.host:2,"), "Subject: two\n\nhello\n")
		if err := syscall.Mkfifo(filepath.Join(md, "new", "999.fifo.host"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(md, "pop3sizes"), 0o600); err != nil {
			t.Fatal(err)
		}
		srv := &Server{Compat: compat, AuthFailDelay: -1, Now: func() time.Time { return vectorNow },
			Auth: userAuth(User{Name: "joe", Home: home, UID: -1, GID: -1})}
		c := startSession(t, srv, nil)
		c.c.SetDeadline(time.Now().Add(5 * time.Second))
		c.login()
		c.send("STAT\r\n")
		if l := c.line(); !strings.HasPrefix(l, "+OK 2 ") {
			t.Errorf("compat=%v: STAT %q: the FIFO was listed", compat, l)
		}
		p := filepath.Join(md, "cur", "1000.1.host:2,")
		os.Remove(p)
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
		c.cmd("RETR 1", "-ERR*")
		c.send("RETR 2\r\n")
		c.expect("+OK*")
		c.multi()
		c.cmd("QUIT", "+OK*")
		c.result()
	}
}

// The walk used without openat2 refuses a symbolic link at every level,
// as openat2 does.
func TestOpenBelow(t *testing.T) {
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, "a", "b", "Maildir"), 0o700)
	os.Symlink(filepath.Join(home, "a"), filepath.Join(home, "la"))
	os.Symlink(filepath.Join(home, "a", "b", "Maildir"), filepath.Join(home, "a", "b", "lm"))
	os.Symlink("/", filepath.Join(home, "a", "root"))
	hfd, err := syscall.Open(home, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(hfd)
	for _, openat2 := range []bool{true, false} {
		for rel, want := range map[string]error{
			"a/b/Maildir":   nil,
			"la/b/Maildir":  syscall.ELOOP,
			"a/b/lm":        syscall.ELOOP,
			"a/root/tmp":    syscall.ELOOP,
			"a/b/Maildir/x": syscall.ENOENT,
		} {
			fd, err := openBelow(hfd, rel, openat2)
			if fd >= 0 {
				syscall.Close(fd)
			}
			if err != want {
				t.Errorf("openat2=%v %s: err %v, want %v", openat2, rel, err, want)
			}
		}
	}
}

func TestOpenMaildirLinks(t *testing.T) {
	dir := emptyMaildir(t)
	put(t, dir, "new/A", 100, 100)
	link := filepath.Join(t.TempDir(), "Maildir")
	os.Symlink(dir, link)
	if _, err := OpenMaildir(link, MaildirOptions{Now: at(1000)}); !errors.Is(err, ErrUnsafeMaildir) || !qmailkit.IsPermanent(err) {
		t.Errorf("a Maildir that is a symbolic link: %v", err)
	}
	mb, err := OpenMaildir(link, MaildirOptions{FollowLink: true, Now: at(1000)})
	if err != nil {
		t.Fatalf("FollowLink: %v", err)
	}
	if got := uids(t, mb); len(got) != 1 {
		t.Errorf("FollowLink: %q", got)
	}
	mb.Close()
	os.Rename(filepath.Join(dir, "cur"), filepath.Join(dir, "cur2"))
	os.Symlink(filepath.Join(dir, "cur2"), filepath.Join(dir, "cur"))
	if _, err := OpenMaildir(link, MaildirOptions{FollowLink: true, Now: at(1000)}); !errors.Is(err, ErrUnsafeMaildir) {
		t.Errorf("FollowLink with cur/ a symbolic link: %v", err)
	}
	os.Remove(filepath.Join(dir, "cur"))
	if _, err := OpenMaildir(dir, MaildirOptions{Now: at(1000)}); err == nil || errors.Is(err, ErrUnsafeMaildir) {
		t.Errorf("no cur/: %v", err)
	}
}

// With the user's uid known, the Maildir must be theirs, and only their
// files are messages: a hard link to a file of another uid is not listed.
func TestOpenMaildirOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give files to another uid")
	}
	home := t.TempDir()
	dir := filepath.Join(home, "Maildir")
	for _, s := range []string{"", "tmp", "new", "cur"} {
		os.Mkdir(filepath.Join(dir, s), 0o700)
	}
	put(t, dir, "new/mine", 100, 100)
	put(t, dir, "new/theirs", 101, 101)
	os.Chown(filepath.Join(dir, "new", "theirs"), 65534, 65534)
	u := &User{Name: "joe", Home: home, UID: 0, GID: 0}
	mb, err := OpenMaildir(dir, MaildirOptions{User: u, Now: at(1000)})
	if err != nil {
		t.Fatal(err)
	}
	if got := uids(t, mb); len(got) != 1 || got[0] != "mine" {
		t.Errorf("listing %q, want only mine", got)
	}
	mb.Close()
	u.UID = -1
	mb, err = OpenMaildir(dir, MaildirOptions{User: u, Now: at(1000)})
	if err != nil {
		t.Fatal(err)
	}
	if got := uids(t, mb); len(got) != 2 {
		t.Errorf("uid unknown: listing %q, want both", got)
	}
	mb.Close()
	u.UID = 65534
	if _, err := OpenMaildir(dir, MaildirOptions{User: u, Now: at(1000)}); !errors.Is(err, ErrUnsafeMaildir) {
		t.Errorf("a Maildir of another uid: %v", err)
	}

	// Through a session: [SYS/PERM] in modern mode, qmail's text in
	// compat mode.
	for compat, want := range map[bool]string{false: "-ERR [SYS/PERM]*", true: "-ERR this user has no $HOME/Maildir"} {
		srv := &Server{Compat: compat, AuthFailDelay: -1, Auth: userAuth(User{Name: "joe", Home: home, UID: 65534, GID: 65534})}
		c := startSession(t, srv, nil)
		c.expect("+OK*")
		c.cmd("USER joe", "+OK*")
		c.cmd("PASS good", want)
	}
}

// TestCreatedFilesMode: pop3.lock and pop3sizes, which a session creates,
// are the owner's to read and write (0600): created with no permission
// at all, the next session of a non-root server could not open its lock.
func TestCreatedFilesMode(t *testing.T) {
	dir := vectorMaildir(t)
	for range 2 {
		mb, err := OpenMaildir(dir, MaildirOptions{Lock: true, WireSizes: true, Now: at(vectorNow.Unix())})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mb.Messages(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := mb.Commit(t.Context(), Update{Deleted: make([]bool, 3), Retrieved: make([]bool, 3)}); err != nil {
			t.Fatal(err)
		}
		mb.Close()
	}
	for _, name := range []string{"pop3.lock", "pop3sizes"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
}

// TestConfineSwappedAfterScan: names replaced after the scan (the user
// owns the Maildir) by a directory, a FIFO with a writer, or a symbolic
// link to a secret get -ERR at RETR and TOP, without blocking or leaking,
// and the session goes on.
func TestConfineSwappedAfterScan(t *testing.T) {
	for _, compat := range []bool{false, true} {
		home := t.TempDir()
		md := filepath.Join(home, "Maildir")
		for _, d := range []string{"", "tmp", "new", "cur"} {
			os.Mkdir(filepath.Join(md, d), 0o700)
		}
		names := []string{"1000.1.host:2,", "1001.1.host:2,", "1002.1.host:2,", "1003.1.host:2,"}
		for _, n := range names {
			writeOld(t, filepath.Join(md, "cur", n), "Subject: x\n\nhello\n")
		}
		secret := filepath.Join(home, "secret")
		os.WriteFile(secret, []byte("SECRET\n"), 0o600)
		srv := &Server{Compat: compat, AuthFailDelay: -1, Now: func() time.Time { return vectorNow },
			Auth: userAuth(User{Name: "joe", Home: home, UID: -1, GID: -1})}
		c := startSession(t, srv, nil)
		c.c.SetDeadline(time.Now().Add(5 * time.Second))
		c.login()
		c.send("STAT\r\n")
		c.expect("+OK 4 *")
		path := func(i int) string { return filepath.Join(md, "cur", names[i]) }
		for i := range 3 {
			os.Remove(path(i))
		}
		os.Mkdir(path(0), 0o700)
		if err := syscall.Mkfifo(path(1), 0o600); err != nil {
			t.Fatal(err)
		}
		w, err := os.OpenFile(path(1), os.O_RDWR, 0) // a writer that never writes
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		os.Symlink(secret, path(2))
		for _, cmd := range []string{"RETR 1", "RETR 2", "RETR 3", "TOP 1 0", "TOP 2 0", "TOP 3 0"} {
			c.cmd(cmd, "-ERR*")
		}
		c.send("RETR 4\r\n")
		c.expect("+OK*")
		if body := c.multi(); strings.Contains(strings.Join(body, "\n"), "SECRET") {
			t.Fatalf("compat=%v: the secret was served", compat)
		}
		c.cmd("QUIT", "+OK*")
		c.result()
	}
}
