package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// now is the time of every run: well after the messages' mtimes.
var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

type file struct {
	name, content string
	mtime         time.Time
}

// newMaildir makes a Maildir with files (names relative to it).
func newMaildir(t *testing.T, files ...file) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "Maildir")
	for _, sub := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(dir, sub), 0o700)
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte(f.content), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, f.mtime, f.mtime)
	}
	return dir
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func runWith(vars map[string]string, at time.Time) (int, string) {
	var stderr bytes.Buffer
	code := run(env(vars), func() time.Time { return at }, &stderr)
	return code, stderr.String()
}

func vars(dir string) map[string]string {
	home := filepath.Dir(dir)
	return map[string]string{"MAILDIR": dir, "MAIL": filepath.Join(home, "mbox"), "MAILTMP": filepath.Join(home, "mbox.tmp")}
}

var q5 = time.Date(2000, 1, 2, 3, 4, 5, 0, time.UTC)

func TestConvert(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []file
		old   *string
		want  string
	}{
		// The From_ line from Return-Path, ">From", and an unfinished last
		// line dropped.
		{"Q5", []file{{"new/1", "Return-Path: <a b@c>\nFrom me\nx", q5}}, nil,
			"From a-b@c Sun Jan 02 03:04:05 2000\nReturn-Path: <a b@c>\n>From me\n\n"},
		{"old mbox kept, oldest first across new and cur", []file{
			{"cur/2:2,S", "Return-Path: <>\nb\n", q5.Add(2 * time.Second)},
			{"new/1", "Subject: s\n\na\n", q5.Add(time.Second)},
			{"new/3", "c\n", q5.Add(3 * time.Second)},
		}, ptr("From old Sat Jan 01 00:00:00 2000\nold\n\n"),
			"From old Sat Jan 01 00:00:00 2000\nold\n\n" +
				"From XXX Sun Jan 02 03:04:06 2000\nSubject: s\n\na\n\n" +
				"From MAILER-DAEMON Sun Jan 02 03:04:07 2000\nReturn-Path: <>\nb\n\n" +
				"From XXX Sun Jan 02 03:04:08 2000\nc\n\n"},
		{"dot files skipped", []file{{"new/.x", "x\n", q5}, {"new/1", "y\n", q5}}, nil, "From XXX Sun Jan 02 03:04:05 2000\ny\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newMaildir(t, tc.files...)
			v := vars(dir)
			if tc.old != nil {
				os.WriteFile(v["MAIL"], []byte(*tc.old), 0o600)
			}
			code, stderr := runWith(v, now)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d stderr %q", code, stderr)
			}
			got, _ := os.ReadFile(v["MAIL"])
			if string(got) != tc.want {
				t.Errorf("mbox %q\nwant %q", got, tc.want)
			}
			if fi, err := os.Stat(v["MAIL"]); err != nil || fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("mbox mode %v %v", fi.Mode(), err)
			}
			for _, f := range tc.files {
				_, err := os.Stat(filepath.Join(dir, f.name))
				if taken := !strings.Contains(f.name, "/."); taken != os.IsNotExist(err) {
					t.Errorf("%s: %v", f.name, err)
				}
			}
			if _, err := os.Stat(v["MAILTMP"]); !os.IsNotExist(err) {
				t.Errorf("MAILTMP left: %v", err)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// Only files modified before the current second are taken; with none, MAIL
// is not created.
func TestNothingNew(t *testing.T) {
	dir := newMaildir(t, file{"new/1", "x\n", now}, file{"new/2", "y\n", now.Add(999 * time.Millisecond)})
	v := vars(dir)
	if code, stderr := runWith(v, now.Add(999*time.Millisecond)); code != 0 || stderr != "" {
		t.Fatalf("exit %d %q", code, stderr)
	}
	if _, err := os.Stat(v["MAIL"]); !os.IsNotExist(err) {
		t.Errorf("MAIL created: %v", err)
	}
	if code, _ := runWith(v, now.Add(time.Second)); code != 0 {
		t.Fatal(code)
	}
	if got, _ := os.ReadFile(v["MAIL"]); strings.Count(string(got), "From XXX") != 2 {
		t.Errorf("mbox %q", got)
	}
}

// Files in tmp/ not accessed for 36 hours are removed.
func TestCleansTmp(t *testing.T) {
	dir := newMaildir(t, file{"tmp/old", "", now.Add(-36*time.Hour - time.Second)}, file{"tmp/new", "", now.Add(-36 * time.Hour)})
	runWith(vars(dir), now)
	if _, err := os.Stat(filepath.Join(dir, "tmp", "old")); !os.IsNotExist(err) {
		t.Errorf("tmp/old kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tmp", "new")); err != nil {
		t.Errorf("tmp/new: %v", err)
	}
}

func TestErrors(t *testing.T) {
	msg := file{"new/1", "x\n", q5}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) map[string]string
		want  string
	}{
		{"MAIL", func(t *testing.T) map[string]string { return map[string]string{"MAILTMP": "x", "MAILDIR": "y"} },
			"maildir2mbox: fatal: MAIL not set\n"},
		{"MAILTMP", func(t *testing.T) map[string]string { return map[string]string{"MAIL": "", "MAILDIR": "y"} },
			"maildir2mbox: fatal: MAILTMP not set\n"},
		{"MAILDIR", func(t *testing.T) map[string]string { return map[string]string{"MAIL": "", "MAILTMP": ""} },
			"maildir2mbox: fatal: MAILDIR not set\n"},
		{"chdir", func(t *testing.T) map[string]string {
			return map[string]string{"MAIL": "", "MAILTMP": "", "MAILDIR": "/nonexistent/md"}
		},
			"maildir2mbox: fatal: unable to chdir to /nonexistent/md: file does not exist\n"},
		{"no new", func(t *testing.T) map[string]string {
			d := newMaildir(t)
			os.Remove(filepath.Join(d, "new"))
			return vars(d)
		}, "maildir2mbox: fatal: unable to scan $MAILDIR/new: file does not exist\n"},
		{"cur a file", func(t *testing.T) map[string]string {
			d := newMaildir(t)
			os.Remove(filepath.Join(d, "cur"))
			os.WriteFile(filepath.Join(d, "cur"), nil, 0o600)
			return vars(d)
		}, "maildir2mbox: fatal: unable to scan $MAILDIR/cur: not a directory\n"},
		{"new a symlink", func(t *testing.T) map[string]string {
			d := newMaildir(t)
			os.Remove(filepath.Join(d, "new"))
			os.Symlink(filepath.Join(d, "cur"), filepath.Join(d, "new"))
			return vars(d)
		}, "maildir2mbox: fatal: unable to scan $MAILDIR/new: a symbolic link, not followed\n"},
		{"MAIL a directory", func(t *testing.T) map[string]string {
			v := vars(newMaildir(t, msg))
			os.Mkdir(v["MAIL"], 0o700)
			return v
		}, "maildir2mbox: fatal: unable to lock MAIL: is a directory\n"},
		{"MAILTMP in no directory", func(t *testing.T) map[string]string {
			v := vars(newMaildir(t, msg))
			v["MAILTMP"] = "/nonexistent/tmp"
			return v
		}, "maildir2mbox: fatal: unable to create MAILTMP: file does not exist\n"},
		{"MAILTMP full", func(t *testing.T) map[string]string {
			v := vars(newMaildir(t, msg))
			v["MAILTMP"] = "/dev/full"
			return v
		}, "maildir2mbox: fatal: unable to write to MAILTMP: out of disk space\n"},
		{"MAILTMP full while a message is written", func(t *testing.T) map[string]string {
			v := vars(newMaildir(t, file{"new/1", strings.Repeat("x\n", 100000), q5}))
			v["MAILTMP"] = "/dev/full"
			return v
		}, "maildir2mbox: fatal: unable to write to MAILTMP: out of disk space\n"},
		{"move", func(t *testing.T) map[string]string {
			v := vars(newMaildir(t, msg))
			v["MAILTMP"] = filepath.Join("/dev/shm", filepath.Base(t.TempDir())+"-mbox.tmp")
			t.Cleanup(func() { os.Remove(v["MAILTMP"]) })
			return v
		}, "maildir2mbox: fatal: unable to move MAILTMP to MAIL: cross-device link\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.setup(t)
			var before []byte
			if v["MAIL"] != "" {
				before, _ = os.ReadFile(v["MAIL"])
			}
			code, stderr := runWith(v, now)
			want := strings.NewReplacer("MAILTMP", v["MAILTMP"], "MAIL:", v["MAIL"]+":", "MAIL ", v["MAIL"]+" ").Replace(tc.want)
			if tc.name == "MAIL" || tc.name == "MAILTMP" || tc.name == "MAILDIR" {
				want = tc.want
			}
			if code != 111 || stderr != want {
				t.Errorf("exit %d stderr %q, want %q", code, stderr, want)
			}
			if v["MAIL"] != "" {
				if after, _ := os.ReadFile(v["MAIL"]); !bytes.Equal(before, after) {
					t.Error("MAIL changed")
				}
			}
		})
	}
}

// MAIL is locked while it is rewritten: a run waits for another holder of
// the lock (a mail reader, qmail-local).
func TestWaitsForLock(t *testing.T) {
	dir := newMaildir(t, file{"new/1", "x\n", q5})
	v := vars(dir)
	os.WriteFile(v["MAIL"], nil, 0o600)
	held, _ := os.OpenFile(v["MAIL"], os.O_WRONLY, 0)
	defer held.Close()
	syscall.Flock(int(held.Fd()), syscall.LOCK_EX)
	done := make(chan int, 1)
	go func() { code, _ := runWith(v, now); done <- code }()
	select {
	case <-done:
		t.Fatal("did not wait for the lock")
	case <-time.After(200 * time.Millisecond):
	}
	syscall.Flock(int(held.Fd()), syscall.LOCK_UN)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatal(code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting")
	}
}

// Abuse: symbolic links and FIFOs in new/ and cur/ are neither followed
// nor waited on; a huge message with a huge line goes through.
func TestAbuse(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("Subject: root's mail\n"), 0o600)
	big := strings.Repeat("y", 8<<20) + "\n" + strings.Repeat("From z\n", 100000)
	dir := newMaildir(t, file{"new/big", big, q5})
	os.Symlink(secret, filepath.Join(dir, "new", "link"))
	os.Symlink(secret, filepath.Join(dir, "cur", "link:2,"))
	for _, f := range []string{"new/fifo", "cur/fifo:2,"} {
		if err := syscall.Mkfifo(filepath.Join(dir, f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := q5.Add(-time.Hour)
	for _, f := range []string{"new/link", "cur/link:2,", "new/fifo", "cur/fifo:2,"} {
		syscall.Lchown(filepath.Join(dir, f), 0, 0)
		os.Chtimes(filepath.Join(dir, f), old, old)
	}
	v := vars(dir)
	done := make(chan struct{})
	var code int
	var stderr string
	go func() { code, stderr = runWith(v, now); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("hung")
	}
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d %q", code, stderr)
	}
	got, _ := os.ReadFile(v["MAIL"])
	if strings.Contains(string(got), "root's mail") {
		t.Error("a symbolic link was followed out of the Maildir")
	}
	if want := len("From XXX Sun Jan 02 03:04:05 2000\n") + len(big) + 100000 + 1; len(got) != want {
		t.Errorf("mbox %d bytes, want %d", len(got), want)
	}
	for _, f := range []string{"new/link", "cur/link:2,", "new/fifo", "cur/fifo:2,"} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if b, _ := os.ReadFile(secret); string(b) != "Subject: root's mail\n" {
		t.Error("secret changed")
	}
}
