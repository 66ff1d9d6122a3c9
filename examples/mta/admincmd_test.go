package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/auth"
)

// admin runs "mta -home HOME ARGS" with stdin and returns its exit status
// and outputs.
func admin(t *testing.T, home, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(build(t), append([]string{"-home", home}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + filepath.Dir(home)}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// TestAdminCommands runs every subcommand of domain, user and alias and
// each bad input against a running mta, which sees the changes without a
// restart or a signal: a mailbox added is accepted at RCPT and receives
// mail, its new password logs in to POP3, a mailbox deleted is refused.
func TestAdminCommands(t *testing.T) {
	home := filepath.Join(scratch(t), "home")
	p := startMTA(t, home)
	steps := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string // a substring of standard output
		stderr string // a substring of standard error
	}{
		{"domain add", "", []string{"domain", "add", "example.com"}, 0, "", ""},
		{"domain add again", "", []string{"domain", "add", "example.com"}, 1, "", "example.com: already exists"},
		{"domain add invalid", "", []string{"domain", "add", "bad_domain!"}, 1, "", "invalid"},
		{"domain add no dot", "", []string{"domain", "add", "localhost2"}, 1, "", "invalid"},
		{"domain add no operand", "", []string{"domain", "add"}, 2, "", "usage"},
		{"domain add catch-all", "", []string{"domain", "add", "example.net", "-catchall", "delete"}, 0, "", ""},
		{"domain list", "", []string{"domain", "list", "-json"}, 0, `"domain":"example.com"`, ""},
		{"domain unknown verb", "", []string{"domain", "frob"}, 2, "", "unknown subcommand frob"},
		{"user add", "Secret-pass-1\n", []string{"user", "add", "joe@example.com", "-name", "Joe User"}, 0, "", ""},
		{"user add again", "Secret-pass-1\n", []string{"user", "add", "joe@example.com"}, 1, "", "already exists"},
		{"user add no domain", "Secret-pass-1\n", []string{"user", "add", "joe@nowhere.test"}, 1, "", "not found"},
		{"user add bad address", "Secret-pass-1\n", []string{"user", "add", "jo e@example.com"}, 1, "", "invalid"},
		{"user add path", "Secret-pass-1\n", []string{"user", "add", "../etc@example.com"}, 1, "", "invalid"},
		{"user add no password", "", []string{"user", "add", "sue@example.com"}, 1, "", "no password on standard input"},
		{"user add empty password", "\n", []string{"user", "add", "sue@example.com"}, 1, "", "empty password"},
		{"user add short password", "short\n", []string{"user", "add", "sue@example.com"}, 1, "", "too short"},
		{"user add huge password", strings.Repeat("x", 5000) + "\n", []string{"user", "add", "sue@example.com"}, 1, "", "longer than"},
		{"user add password in argv", "", []string{"user", "add", "sue@example.com", "Secret-pass-1"}, 2, "", "wrong number of operands"},
		{"user add bad quota", "Secret-pass-1\n", []string{"user", "add", "sue@example.com", "-quota", "lots"}, 1, "", "invalid"},
		{"user quota", "", []string{"user", "quota", "joe@example.com", "50M"}, 0, "", ""},
		{"user quota bad", "", []string{"user", "quota", "joe@example.com", "lots"}, 1, "", "invalid"},
		{"user quota unknown", "", []string{"user", "quota", "nobody@example.com", "50M"}, 1, "", "not found"},
		{"user list one", "", []string{"user", "list", "joe@example.com", "-json"}, 0, `"quota":"52428800S"`, ""},
		{"user list domain", "", []string{"user", "list", "example.com"}, 0, "joe@example.com\tquota 52428800S", ""},
		{"user list unknown domain", "", []string{"user", "list", "nowhere.test"}, 1, "", "not found"},
		{"user passwd", "New-secret-2\r\n", []string{"user", "passwd", "joe@example.com"}, 0, "", ""},
		{"user passwd unknown", "New-secret-2\n", []string{"user", "passwd", "nobody@example.com"}, 1, "", "not found"},
		{"json on add", "Secret-pass-1\n", []string{"user", "add", "-json", "sue@example.com"}, 2, "", "-json is for list"},
		{"alias add", "", []string{"alias", "add", "info@example.com", "joe@example.com", "boss@elsewhere.test"}, 0, "", ""},
		{"alias add over a mailbox", "", []string{"alias", "add", "joe@example.com", "x@elsewhere.test"}, 1, "", "already exists"},
		{"alias add bad target", "", []string{"alias", "add", "sales@example.com", "|/bin/sh"}, 1, "", "invalid"},
		{"alias add no target", "", []string{"alias", "add", "sales@example.com"}, 2, "", "wrong number of operands"},
		{"alias list", "", []string{"alias", "list", "example.com"}, 0, "info@example.com\tjoe@example.com,boss@elsewhere.test", ""},
		{"alias del target", "", []string{"alias", "del", "info@example.com", "boss@elsewhere.test"}, 0, "", ""},
		{"alias list json", "", []string{"alias", "list", "info@example.com", "-json"}, 0, `{"address":"info@example.com","targets":["joe@example.com"]}`, ""},
		{"alias del", "", []string{"alias", "del", "info@example.com"}, 0, "", ""},
		{"alias list gone", "", []string{"alias", "list", "info@example.com"}, 1, "", "not found"},
		{"user del unknown", "", []string{"user", "del", "nobody@example.com"}, 1, "", "not found"},
	}
	for _, s := range steps {
		code, out, errOut := admin(t, home, s.stdin, s.args...)
		if code != s.code || !strings.Contains(out, s.stdout) || !strings.Contains(errOut, s.stderr) {
			t.Errorf("%s: mta %s: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				s.name, strings.Join(s.args, " "), code, out, errOut, s.code, s.stdout, s.stderr)
		}
		if s.code == 0 && s.args[1] != "list" && (out != "" || errOut != "") {
			t.Errorf("%s: a success prints nothing; got stdout %q, stderr %q", s.name, out, errOut)
		}
		if strings.Contains(out+errOut, "Secret-pass-1") || strings.Contains(out+errOut, "New-secret-2") {
			t.Errorf("%s: a password is printed", s.name)
		}
	}
	var mb struct {
		Address, Name, Quota string
		Flags, Forward       []string
	}
	_, out, _ := admin(t, home, "", "user", "list", "joe@example.com", "-json")
	if err := json.Unmarshal([]byte(out), &mb); err != nil || mb.Address != "joe@example.com" || mb.Name != "Joe User" || mb.Flags == nil || mb.Forward == nil {
		t.Errorf("user list -json = %q (%v): want the fields, lists never null", out, err)
	}

	// The running mta, never restarted nor signalled, sees all of it.
	if err := sendPlain(p.smtp, "joe@example.com"); err != nil {
		t.Fatalf("mail to the mailbox added while the mta ran: %v\n%s", err, p.stderr)
	}
	maildir := filepath.Join(home, "vmail", "domains", "example.com", "joe", "Maildir", "new")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if es, _ := os.ReadDir(maildir); len(es) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing delivered in %s\n%s", maildir, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := pop3Login(t, p.pop3, "joe@example.com", "Secret-pass-1"); err == nil {
		t.Error("the old password still logs in after user passwd")
	}
	s, err := pop3Login(t, p.pop3, "joe@example.com", "New-secret-2")
	if err != nil {
		t.Fatalf("the new password: %v", err)
	}
	if r, err := s.cmd("STAT"); err != nil || !strings.HasPrefix(r, "+OK 1 ") {
		t.Errorf("STAT = %q, %v; want one message", r, err)
	}
	s.cmd("QUIT")

	if code, _, errOut := admin(t, home, "", "user", "del", "joe@example.com"); code != 0 {
		t.Fatalf("user del: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Dir(maildir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the deleted mailbox's Maildir: %v; want it removed", err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		err := sendPlain(p.smtp, "joe@example.com")
		if err != nil && strings.Contains(err.Error(), "550") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a deleted mailbox still accepted 10 s later: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, _, errOut := admin(t, home, "", "domain", "del", "example.com"); code != 0 {
		t.Fatalf("domain del: exit %d: %s", code, errOut)
	}
	if _, out, _ := admin(t, home, "", "domain", "list"); strings.Contains(out, "example.com") {
		t.Errorf("domain list after del: %q", out)
	}
	p.stop(t)
}

// TestAdminCommandsNoMTA: the commands work on a home whose mta does not
// run, and on a home that has no virtual mailboxes yet.
func TestAdminCommandsNoMTA(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	if err := os.MkdirAll(filepath.Join(home, "control"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := admin(t, home, "", "domain", "add", "example.org"); code != 0 {
		t.Fatalf("domain add: exit %d: %s", code, errOut)
	}
	if code, _, errOut := admin(t, home, "Another-pass-3\n", "user", "add", "ann@example.org", "-quota", "1000C"); code != 0 {
		t.Fatalf("user add: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(home, "vmail", "domains", "example.org", "ann", "Maildir", "new")); err != nil {
		t.Errorf("the new mailbox's Maildir: %v", err)
	}
	if code, out, _ := admin(t, home, "", "user", "list", "example.org"); code != 0 || !strings.Contains(out, "ann@example.org\tquota 1000C") {
		t.Errorf("user list: exit %d, %q", code, out)
	}
	// A store that cannot be opened is a temporary failure.
	if err := os.WriteFile(filepath.Join(home, "control", "vmaildb"), []byte("postgres://127.0.0.1:1/none?connect_timeout=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := admin(t, home, "", "domain", "list"); code != 111 {
		t.Errorf("store unreachable: exit %d (%s); want 111", code, errOut)
	}
}

// As root the commands run as the mta's account (the owner of queue/):
// what they make is the account's, and a vmail/ or vmail/domains/ that a
// link replaced is refused before root drops, nothing made through it.
func TestAdminCommandsAsRoot(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: the commands drop to the owner of queue/")
	}
	for _, tc := range []struct {
		name string
		link string // "" none; else the path (under home) made a link to elsewhere
		code int
	}{
		{"owned by the account", "", 0},
		{"vmail a link", "vmail", 111},
		{"domains a link", "vmail/domains", 111},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := filepath.Join(scratch(t), "home")
			elsewhere := t.TempDir()
			for _, d := range []string{"control", "queue"} {
				if err := os.MkdirAll(filepath.Join(home, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chown(filepath.Join(home, "queue"), 65534, 65534); err != nil {
				t.Fatal(err)
			}
			if tc.link != "" {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(home, tc.link)), 0o750); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(elsewhere, filepath.Join(home, tc.link)); err != nil {
					t.Fatal(err)
				}
			}
			code, _, errOut := admin(t, home, "", "domain", "add", "example.org")
			if code != tc.code {
				t.Fatalf("domain add: exit %d (%s); want %d", code, errOut, tc.code)
			}
			if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
				t.Fatalf("made through the link: %v", ents)
			}
			if tc.code != 0 {
				return
			}
			for _, p := range []string{"vmail", "vmail/domains", "vmail/vmail.db", "vmail/domains/example.org"} {
				fi, err := os.Lstat(filepath.Join(home, p))
				if err != nil {
					t.Fatal(err)
				}
				if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 {
					t.Errorf("%s: uid %d; want the account's, 65534", p, st.Uid)
				}
			}
		})
	}
}

// sendPlain sends a short message to rcpt over SMTP without STARTTLS.
func sendPlain(addr, rcpt string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail("sender@elsewhere.test"); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte("Subject: hi\r\n\r\nhello\r\n")); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// TestAdminImport: mta import brings in a vpopmail domain (its vpasswd
// with the hash, quota and Maildir kept, its catch-all and an alias) and
// the users of a users/poppasswd file, and lists what it skipped.
func TestAdminImport(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	if err := os.MkdirAll(filepath.Join(home, "control"), 0o755); err != nil {
		t.Fatal(err)
	}
	vpop := t.TempDir()
	dom := filepath.Join(vpop, "domains", "example.com")
	if err := os.MkdirAll(filepath.Join(dom, "joe", "Maildir", "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dom, "joe", "Maildir", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	hash, err := auth.HashPassword("joe-password-1")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"vpasswd":        "joe:" + hash + ":1:0:Joe:" + filepath.Join(dom, "joe") + ":52428800S\nbad line\n",
		".qmail-default": "| /home/vpopmail/bin/vdelivermail '' bounce-no-mailbox\n",
		".qmail-info":    "&joe@example.com\n",
		".qmail-prog":    "|/usr/bin/true\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dom, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := admin(t, home, "", "import", "vpopmail", vpop)
	if code != 0 || !strings.Contains(out, "1 mailboxes") || !strings.Contains(out, "skipped: "+filepath.Join(dom, "vpasswd")+":2") || !strings.Contains(out, ".qmail-prog") {
		t.Fatalf("import vpopmail: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, _ := admin(t, home, "", "user", "list", "joe@example.com", "-json"); code != 0 || !strings.Contains(out, `"quota":"52428800S"`) || !strings.Contains(out, `"dir":"`+filepath.Join(dom, "joe")+`"`) {
		t.Errorf("the imported mailbox: exit %d, %s", code, out)
	}
	if code, out, _ := admin(t, home, "", "alias", "list", "info@example.com"); code != 0 || !strings.Contains(out, "joe@example.com") {
		t.Errorf("the imported alias: exit %d, %s", code, out)
	}

	pp := filepath.Join(t.TempDir(), "poppasswd")
	if err := os.WriteFile(pp, []byte("ann:"+hash+":1000:1000:Ann:/home/ann:/bin/false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := admin(t, home, "", "import", "poppasswd", "example.org", pp); code != 0 || !strings.Contains(out, "1 mailboxes") {
		t.Fatalf("import poppasswd: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, _ := admin(t, home, "", "user", "list", "example.org"); code != 0 || !strings.Contains(out, "ann@example.org") {
		t.Errorf("the imported user: exit %d, %s", code, out)
	}
	if code, _, _ := admin(t, home, "", "import", "nothing"); code != 2 {
		t.Errorf("import nothing: exit %d, want 2", code)
	}
}
