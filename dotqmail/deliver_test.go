package dotqmail

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/qq"
	"github.com/qmailkit/qmailkit/maildir"
)

// fakeQueue is a Forwarder that records what it is given.
type fakeQueue struct {
	mu    sync.Mutex
	sent  []forwarded
	err   error
	count int
}

type forwarded struct {
	sender string
	rcpts  []string
	msg    string
}

func (q *fakeQueue) Forward(ctx context.Context, sender string, rcpts []string, r io.Reader) (string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return "", q.err
	}
	q.count++
	q.sent = append(q.sent, forwarded{sender, append([]string(nil), rcpts...), string(b)})
	return "4242", nil
}

// env is a home directory for one recipient and a Deliverer for it.
type env struct {
	t    *testing.T
	home string
	q    *fakeQueue
	d    *Deliverer
	tg   Target
}

func newEnv(t *testing.T) *env {
	t.Helper()
	home := filepath.Join(t.TempDir(), "joe")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	q := &fakeQueue{}
	return &env{
		t: t, home: home, q: q,
		d: &Deliverer{
			Forwarder: q,
			Env:       []string{"PATH=/usr/bin:/bin"},
			Now:       func() time.Time { return time.Unix(0, 0) },
		},
		tg: Target{User: "joe", Home: home, Local: "joe", Domain: "ex.com", Sender: "a@b.c",
			DefaultDelivery: "./Mailbox"},
	}
}

func (e *env) qmail(name, data string, mode os.FileMode) {
	e.t.Helper()
	writeFile(e.t, filepath.Join(e.home, name), data, mode)
}

func (e *env) deliver(msg string) (Result, error) {
	e.t.Helper()
	return e.d.Deliver(e.t.Context(), e.tg, strings.NewReader(msg))
}

func (e *env) read(name string) string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.home, name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		e.t.Fatal(err)
	}
	return string(b)
}

func (e *env) maildirFiles(dir, sub string) []string {
	e.t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.home, dir, sub))
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, en := range ents {
		b, _ := os.ReadFile(filepath.Join(e.home, dir, sub, en.Name()))
		out = append(out, string(b))
	}
	return out
}

func (e *env) makeMaildir(dir string) {
	e.t.Helper()
	if _, err := maildir.Create(filepath.Join(e.home, dir)); err != nil {
		e.t.Fatal(err)
	}
}

func wantErr(t *testing.T, err error, code int, text string) {
	t.Helper()
	if ExitCode(err) != code {
		t.Fatalf("error %v: exit code %d, want %d", err, ExitCode(err), code)
	}
	if text == "" {
		return
	}
	var e *Error
	if !errors.As(err, &e) || e.Text != text {
		t.Fatalf("error %v, want text %q", err, text)
	}
}

// TestMboxBytes checks the exact bytes appended to an mbox: the From_,
// Return-Path and Delivered-To lines, ">" before From lines, and a
// final blank line.
func TestMboxBytes(t *testing.T) {
	e := newEnv(t)
	res, err := e.deliver("Subject: hi\n\nFrom me\n>From you\nend")
	if err != nil {
		t.Fatal(err)
	}
	want := "From a@b.c Thu Jan 01 00:00:00 1970\nReturn-Path: <a@b.c>\nDelivered-To: joe@ex.com\n" +
		"Subject: hi\n\n>From me\n>>From you\nend\n\n"
	if got := e.read("Mailbox"); got != want {
		t.Errorf("mbox = %q\nwant   %q", got, want)
	}
	if res.Report != "did 1+0+0\n" || res.File != "" {
		t.Errorf("result %+v", res)
	}
	fi, _ := os.Stat(filepath.Join(e.home, "Mailbox"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mbox mode %v, want 0600", fi.Mode())
	}
	// A second delivery appends.
	e.deliver("x\n")
	if got := e.read("Mailbox"); !strings.HasSuffix(got, want+"From a@b.c Thu Jan 01 00:00:00 1970\nReturn-Path: <a@b.c>\nDelivered-To: joe@ex.com\nx\n\n") {
		t.Errorf("second delivery: %q", got)
	}
}

// TestMaildirBytes checks the exact bytes of a maildir delivery: the
// Return-Path and Delivered-To lines, then the message.
func TestMaildirBytes(t *testing.T) {
	e := newEnv(t)
	e.makeMaildir("Maildir")
	e.tg.DefaultDelivery = "./Maildir/"
	res, err := e.deliver("x\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.maildirFiles("Maildir", "new"); len(got) != 1 || got[0] != "Return-Path: <a@b.c>\nDelivered-To: joe@ex.com\nx\n" {
		t.Errorf("new/ = %q", got)
	}
	if got := e.maildirFiles("Maildir", "tmp"); len(got) != 0 {
		t.Errorf("tmp/ = %q", got)
	}
	if res.Report != "did 1+0+0\n" {
		t.Errorf("report %q", res.Report)
	}
}

// TestDefaultDelivery checks that a missing or empty .qmail uses the
// default delivery, and that an extension without a file bounces.
func TestDefaultDelivery(t *testing.T) {
	e := newEnv(t)
	if _, err := e.deliver("m\n"); err != nil || e.read("Mailbox") == "" {
		t.Fatalf("no .qmail: %v, mbox %q", err, e.read("Mailbox"))
	}
	e = newEnv(t)
	e.qmail(".qmail", "", 0o644)
	if _, err := e.deliver("m\n"); err != nil || e.read("Mailbox") == "" {
		t.Fatalf("empty .qmail: %v, mbox %q", err, e.read("Mailbox"))
	}
	// An empty file cancels forward-only mode.
	e = newEnv(t)
	e.qmail(".qmail", "", 0o755)
	if _, err := e.deliver("m\n"); err != nil {
		t.Fatalf("empty .qmail with x bit: %v", err)
	}
	// The default delivery may hold several lines.
	e = newEnv(t)
	e.makeMaildir("Maildir")
	e.tg.DefaultDelivery = "./Maildir/\n./Mailbox\n"
	if res, err := e.deliver("m\n"); err != nil || res.Report != "did 2+0+0\n" {
		t.Fatalf("two-line default: %+v, %v", res, err)
	}
	// An empty default delivery is a blank first line, as in qmail-local.
	e = newEnv(t)
	e.tg.DefaultDelivery = ""
	_, err := e.deliver("m\n")
	wantErr(t, err, 111, "Uh-oh: first line of .qmail file is blank. (#4.2.1)")
	// An extension without a file bounces.
	e = newEnv(t)
	e.tg.Local, e.tg.Dash, e.tg.Ext = "joe-foo", "-", "foo"
	res, err := e.deliver("m\n")
	wantErr(t, err, 100, "Sorry, no mailbox here by that name. (#5.1.1)")
	// A writable .qmail-default is refused before anything else.
	e.qmail(".qmail-default", "./Mailbox\n", 0o666)
	_, err = e.deliver("m\n")
	wantErr(t, err, 111, "Uh-oh: .qmail file is writable. (#4.7.0)")
	if res.Report != "Sorry, no mailbox here by that name. (#5.1.1)\n" || e.read("Mailbox") != "" {
		t.Errorf("report %q", res.Report)
	}
}

// TestExecution runs real shell programs with each exit code: 0 goes on,
// 99 stops after the forwards so far, 100 bounces, 64, 65, 70, 76, 77,
// 78 and 112 are permanent and any other code temporary (see
// qmail-command(8)).
func TestExecution(t *testing.T) {
	tests := []struct {
		name     string
		qmail    string
		code     int    // exit code
		report   string // the whole report
		mbox     bool   // Mailbox written
		forwards []string
	}{
		{"vector 19", "&a@b\nc@d\n|echo prog ran\n", 0, "prog ran\ndid 0+2+1\nqp 4242\n", false, []string{"a@b", "c@d"}},
		{"vector 20: 99 stops", "&a@b\n|exit 99\n./Mailbox\n", 0, "did 0+1+1\nqp 4242\n", false, []string{"a@b"}},
		{"vector 21: 100", "./Mailbox\n|echo no such user; exit 100\n&a@b\n", 100, "no such user\n", true, nil},
		{"exit 1", "./Mailbox\n|exit 1\n&a@b\n", 111, "", true, nil},
		{"exit 64", "./Mailbox\n|exit 64\n", 100, "", true, nil},
		{"exit 65", "|exit 65\n", 100, "", false, nil},
		{"exit 70", "|exit 70\n", 100, "", false, nil},
		{"exit 76", "|exit 76\n", 100, "", false, nil},
		{"exit 77", "|exit 77\n", 100, "", false, nil},
		{"exit 78", "|exit 78\n", 100, "", false, nil},
		{"exit 112", "|exit 112\n", 100, "", false, nil},
		{"exit 75", "|exit 75\n", 111, "", false, nil},
		{"exit 111", "|echo later >&2; exit 111\n", 111, "later\n", false, nil},
		{"exit 2", "|exit 2\n", 111, "", false, nil},
		{"exit 0 continues", "|true\n./Mailbox\n", 0, "did 1+0+1\n", true, nil},
		{"killed", "|kill -9 $$\n./Mailbox\n", 111, "Aack, child crashed. (#4.3.0)\n", false, nil},
		{"comment only", "# nothing\n", 0, "did 0+0+0\n", false, nil},
		{"99 after a forward and before a program", "a@b\n|exit 99\n|exit 100\n", 0, "did 0+1+1\nqp 4242\n", false, []string{"a@b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.tg.Local, e.tg.Dash, e.tg.Ext = "joe-x", "-", "x"
			e.qmail(".qmail-x", tt.qmail, 0o644)
			res, err := e.deliver("Subject: s\n\nbody\n")
			if ExitCode(err) != tt.code {
				t.Fatalf("exit %d (%v), want %d", ExitCode(err), err, tt.code)
			}
			if tt.report != "" && res.Report != tt.report {
				t.Errorf("report %q, want %q", res.Report, tt.report)
			}
			if got := e.read("Mailbox") != ""; got != tt.mbox {
				t.Errorf("mbox written %v, want %v", got, tt.mbox)
			}
			var got []string
			for _, f := range e.q.sent {
				got = append(got, f.rcpts...)
				if f.sender != "a@b.c" || f.msg != "Delivered-To: joe-x@ex.com\nSubject: s\n\nbody\n" {
					t.Errorf("forwarded %+v", f)
				}
			}
			if len(e.q.sent) > 1 || strings.Join(got, ",") != strings.Join(tt.forwards, ",") {
				t.Errorf("forwards %v (%d messages), want %v in one", got, len(e.q.sent), tt.forwards)
			}
			var ee *ExitError
			if tt.code != 0 && strings.Contains(tt.qmail, "exit ") && strings.Contains(tt.name, "exit") {
				if !errors.As(err, &ee) || ee.Permanent() != (tt.code == 100) {
					t.Errorf("ExitError %v", err)
				}
			}
		})
	}
}

// TestRetryRepeats shows the consequence of a failing program: after a temporary
// failure the retry executes the whole file again.
func TestRetryRepeats(t *testing.T) {
	e := newEnv(t)
	e.qmail(".qmail", "./Mailbox\n|exit 1\n", 0o644)
	for i := 0; i < 2; i++ {
		if _, err := e.deliver("m\n"); ExitCode(err) != 111 {
			t.Fatalf("try %d: %v", i, err)
		}
	}
	if n := strings.Count(e.read("Mailbox"), "From a@b.c "); n != 2 {
		t.Errorf("%d copies, want 2", n)
	}
}

// TestProgramEnvironment checks the environment qmail-local gives programs
// (see qmail-command(8)) through a real program, with the
// message on a rewound stdin for each line.
func TestProgramEnvironment(t *testing.T) {
	e := newEnv(t)
	e.tg = Target{User: "joe", Home: e.home, Local: "joe-a-b-c-d", Dash: "-", Ext: "a-b-c-d",
		Domain: "mail.example.co.uk", Sender: "s@x.org"}
	e.d.Env = append(e.d.Env, "DEFAULT=inherited", "KEEP=1")
	e.qmail(".qmail-a-b-default", "|env -0 > env.out; cat > one.out\n|cat > two.out; pwd > pwd.out\n", 0o644)
	if _, err := e.deliver("the message\n"); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, kv := range strings.Split(e.read("env.out"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	for k, v := range map[string]string{
		"EXT": "a-b-c-d", "EXT2": "b-c-d", "EXT3": "c-d", "EXT4": "d", "DEFAULT": "c-d",
		"HOST2": "mail.example.co", "HOST3": "mail.example", "HOST4": "mail", "HOST": "mail.example.co.uk",
		"RECIPIENT": "joe-a-b-c-d@mail.example.co.uk", "USER": "joe", "HOME": e.home, "LOCAL": "joe-a-b-c-d",
		"DTLINE": "Delivered-To: joe-a-b-c-d@mail.example.co.uk\n", "RPLINE": "Return-Path: <s@x.org>\n",
		"UFLINE": "From s@x.org Thu Jan 01 00:00:00 1970\n", "SENDER": "s@x.org", "NEWSENDER": "s@x.org",
		"PATH": "/usr/bin:/bin",
	} {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	if v, ok := m["KEEP"]; ok {
		t.Errorf("KEEP = %q reached the program: not on the allow-list", v)
	}
	if e.read("one.out") != "the message\n" || e.read("two.out") != "the message\n" {
		t.Errorf("stdin: %q, %q", e.read("one.out"), e.read("two.out"))
	}
	if got := strings.TrimSpace(e.read("pwd.out")); got != e.home {
		t.Errorf("working directory %q", got)
	}
}

// TestProgramEnvironmentAllowList is issue 17's finding 10: the
// environment of the process delivering (root's, the mail server's) does
// not reach users' programs; only qmail-local's variables and the
// allow-list of AllowedEnv do.
func TestProgramEnvironmentAllowList(t *testing.T) {
	t.Setenv("SECRET_TOKEN", "hunter2")
	t.Setenv("TZ", "Europe/Paris")
	t.Setenv("PATH", "/usr/bin:/bin")
	e := newEnv(t)
	e.d.Env = nil // the process's environment
	e.tg.Local, e.tg.Dash, e.tg.Ext = "joe-x", "-", "x"
	e.qmail(".qmail-x", "|env > env.out\n", 0o644)
	if _, err := e.deliver("m\n"); err != nil {
		t.Fatal(err)
	}
	out := e.read("env.out")
	if strings.Contains(out, "hunter2") || strings.Contains(out, "SECRET_TOKEN") {
		t.Errorf("the secret reached the program:\n%s", out)
	}
	for _, want := range []string{"TZ=Europe/Paris\n", "PATH=/usr/bin:/bin\n", "USER=joe\n", "HOME=" + e.home + "\n",
		"RECIPIENT=joe-x@ex.com\n", "EXT=x\n", "SENDER=a@b.c\n", "NEWSENDER=a@b.c\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("program environment lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "DEFAULT=") {
		t.Errorf("DEFAULT set for an exact .qmail-x:\n%s", out)
	}
}

// TestForwardOnly checks that a .qmail with the owner's x bit set, or
// after a +list line, refuses program and file lines and still forwards.
func TestForwardOnly(t *testing.T) {
	e := newEnv(t)
	e.qmail(".qmail", "./Mailbox\n", 0o755)
	_, err := e.deliver("m\n")
	wantErr(t, err, 111, "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)")

	e = newEnv(t)
	e.qmail(".qmail", "./Maildir/\n", 0o744)
	_, err = e.deliver("m\n")
	wantErr(t, err, 111, "Uh-oh: .qmail has file delivery but has x bit set. (#4.7.0)")

	e = newEnv(t)
	e.qmail(".qmail", "a@b\n&c@d\n# x\n", 0o755)
	if res, err := e.deliver("m\n"); err != nil || len(e.q.sent) != 1 || res.Report != "did 0+2+0\nqp 4242\n" {
		t.Fatalf("forwards with x bit: %+v, %v, %v", res, err, e.q.sent)
	}

	e = newEnv(t)
	e.qmail(".qmail", "+list\n|echo ran > ran\n", 0o644)
	_, err = e.deliver("m\n")
	wantErr(t, err, 111, "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)")
	if e.read("ran") != "" {
		t.Error("program ran in forward-only mode")
	}
	// Lines before +list run.
	e = newEnv(t)
	e.qmail(".qmail", "./Mailbox\n+list\na@b\n", 0o644)
	if _, err := e.deliver("m\n"); err != nil || e.read("Mailbox") == "" {
		t.Fatalf("+list after a file line: %v", err)
	}
	var de *Error
	e.qmail(".qmail", "a@b\n+list\n./Mailbox\n", 0o644)
	_, err = e.deliver("m\n")
	if !errors.As(err, &de) || de.File != ".qmail" || de.Line != 3 {
		t.Errorf("error location %+v", err)
	}
}

// TestSafety checks qmail-local's refusals: a world-writable or sticky
// home directory, a world-writable .qmail file (group-writable passes).
func TestSafety(t *testing.T) {
	tests := []struct {
		name      string
		homeMode  os.FileMode
		qmailMode os.FileMode
		code      int
		text      string
	}{
		{"home world-writable", 0o777, 0o644, 111, "Uh-oh: home directory is writable. (#4.7.0)"},
		{"home group-writable", 0o775, 0o644, 0, ""},
		{"home sticky", 0o755 | os.ModeSticky, 0o644, 111, "Home directory is sticky: user is editing his .qmail file. (#4.2.1)"},
		{".qmail world-writable", 0o755, 0o646, 111, "Uh-oh: .qmail file is writable. (#4.7.0)"},
		{".qmail group-writable", 0o755, 0o664, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.qmail(".qmail", "./Mailbox\n", tt.qmailMode)
			if err := os.Chmod(e.home, tt.homeMode); err != nil {
				t.Fatal(err)
			}
			_, err := e.deliver("m\n")
			wantErr(t, err, tt.code, tt.text)
			if (e.read("Mailbox") != "") != (tt.code == 0) {
				t.Errorf("mbox written: %q", e.read("Mailbox"))
			}
		})
	}
	// Sticky home with -n: a warning only.
	e := newEnv(t)
	e.qmail(".qmail", "./Mailbox\n", 0o644)
	os.Chmod(e.home, 0o755|os.ModeSticky)
	res, err := e.d.Plan(t.Context(), e.tg)
	if err != nil || res.Report != "Warning: home directory is sticky.\nmbox ./Mailbox\ndid 1+0+0\n" {
		t.Errorf("Plan: %q, %v", res.Report, err)
	}
	// A writable .qmail is refused by Plan too.
	os.Chmod(filepath.Join(e.home, ".qmail"), 0o666)
	if _, err := e.d.Plan(t.Context(), e.tg); ExitCode(err) != 111 {
		t.Errorf("Plan with writable .qmail: %v", err)
	}
	// A missing or relative home.
	e = newEnv(t)
	e.tg.Home = filepath.Join(e.home, "nonexistent")
	_, err = e.deliver("m\n")
	wantErr(t, err, 111, "Unable to switch to "+e.tg.Home+": file does not exist. (#4.3.0)")
	e.tg.Home = filepath.Join(e.home, "file")
	writeFile(t, e.tg.Home, "", 0o644)
	_, err = e.deliver("m\n")
	wantErr(t, err, 111, "Unable to switch to "+e.tg.Home+": not a directory. (#4.3.0)")
	e.tg.Home = "relative"
	if _, err := e.deliver("m\n"); ExitCode(err) != 111 {
		t.Errorf("relative home: %v", err)
	}
}

// TestLoop checks the loop detection: a Delivered-To header line equal to
// this delivery's DTLINE bounces the message; another case of it, or the
// line in the body, does not.
func TestLoop(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		loop bool
	}{
		{"same line", "Received: x\nDelivered-To: joe@ex.com\nSubject: s\n\nbody\n", true},
		{"first line", "Delivered-To: joe@ex.com\n\n", true},
		{"lower-case name", "delivered-to: joe@ex.com\n\nbody\n", false},
		{"upper-case address", "Delivered-To: JOE@ex.com\n\nbody\n", false},
		{"extra space", "Delivered-To:  joe@ex.com\n\n", false},
		{"CRLF", "Delivered-To: joe@ex.com\r\n\r\n", false},
		{"only in the body", "Subject: s\n\nDelivered-To: joe@ex.com\n", false},
		{"after a CRLF blank line", "Subject: s\r\n\r\nDelivered-To: joe@ex.com\n", true},
		{"last line without newline", "Subject: s\nDelivered-To: joe@ex.com", false},
		{"after a long line", "X: " + strings.Repeat("y", 10000) + "\nDelivered-To: joe@ex.com\n\n", true},
		{"continuation line", "X: a\n Delivered-To: joe@ex.com\n\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			res, err := e.deliver(tt.msg)
			if tt.loop {
				wantErr(t, err, 100, "This message is looping: it already has my Delivered-To line. (#5.4.6)")
				if e.read("Mailbox") != "" {
					t.Error("looping message delivered")
				}
				return
			}
			if err != nil {
				t.Fatalf("%v (%q)", err, res.Report)
			}
		})
	}
}

// TestForwardingLoop stops a loop between two addresses by Delivered-To:
// joe forwards to bob, bob forwards to joe; the queue here delivers
// forwarded messages at once.
func TestForwardingLoop(t *testing.T) {
	root := t.TempDir()
	homes := map[string]string{}
	for _, u := range []string{"joe", "bob"} {
		homes[u] = filepath.Join(root, u)
		os.Mkdir(homes[u], 0o755)
	}
	writeFile(t, filepath.Join(homes["joe"], ".qmail"), "./Mailbox\nbob@ex.com\n", 0o644)
	writeFile(t, filepath.Join(homes["bob"], ".qmail"), "joe@ex.com\n", 0o644)
	var (
		d       Deliverer
		results []error
		hops    int
	)
	d.Forwarder = ForwarderFunc(func(ctx context.Context, sender string, rcpts []string, r io.Reader) (string, error) {
		if hops++; hops > 10 {
			t.Fatal("the loop did not stop")
		}
		var buf bytes.Buffer
		io.Copy(&buf, r)
		for _, rc := range rcpts {
			u, _, _ := strings.Cut(rc, "@")
			_, err := d.Deliver(ctx, Target{User: u, Home: homes[u], Local: u, Domain: "ex.com", Sender: sender},
				bytes.NewReader(buf.Bytes()))
			results = append(results, err)
		}
		return "1", nil
	})
	_, err := d.Deliver(t.Context(), Target{User: "joe", Home: homes["joe"], Local: "joe", Domain: "ex.com", Sender: "x@y"},
		strings.NewReader("Subject: loop\n\nhi\n"))
	if err != nil {
		t.Fatal(err)
	}
	// joe → bob → joe, which finds its own Delivered-To line: looping.
	mbox, _ := os.ReadFile(filepath.Join(homes["joe"], "Mailbox"))
	if n := strings.Count(string(mbox), "Subject: loop"); n != 1 {
		t.Errorf("joe got %d copies, want 1", n)
	}
	var looping bool
	for _, err := range results {
		var e *Error
		if errors.As(err, &e) && strings.HasPrefix(e.Text, "This message is looping") {
			looping = true
		}
	}
	if !looping || hops != 2 {
		t.Errorf("hops %d, results %v", hops, results)
	}
}

// TestFailureHalfWay: a delivery that fails in the middle of writing
// leaves no partial Maildir file and reports a temporary failure; later
// lines do not run.
func TestFailureHalfWay(t *testing.T) {
	e := newEnv(t)
	e.makeMaildir("Maildir")
	e.qmail(".qmail", "./Maildir/\n|echo ran > ran\n", 0o644)
	r := io.MultiReader(strings.NewReader(strings.Repeat("x", 100000)), &failReader{})
	res, err := e.d.Deliver(t.Context(), e.tg, r)
	// The reader is copied before anything runs: nothing is delivered.
	wantErr(t, err, 111, "")
	if len(e.maildirFiles("Maildir", "new")) != 0 || len(e.maildirFiles("Maildir", "tmp")) != 0 || e.read("ran") != "" {
		t.Errorf("partial delivery: report %q", res.Report)
	}

	// A message source that fails while the Maildir line reads it.
	e = newEnv(t)
	e.makeMaildir("Maildir")
	e.qmail(".qmail", "./Mailbox\n./Maildir/\n|echo ran > ran\n", 0o644)
	src := &flakyReaderAt{data: []byte("Subject: s\n\n" + strings.Repeat("y", 200000)), failAfter: 2}
	res, err = e.d.Deliver(t.Context(), e.tg, io.NewSectionReader(src, 0, src.Size()))
	wantErr(t, err, 111, "Unable to read message. (#4.3.0)")
	if len(e.maildirFiles("Maildir", "new")) != 0 || len(e.maildirFiles("Maildir", "tmp")) != 0 {
		t.Error("partial Maildir file left")
	}
	if e.read("Mailbox") == "" || e.read("ran") != "" {
		t.Errorf("mbox %d bytes, program ran %q", len(e.read("Mailbox")), e.read("ran"))
	}
	var ee *Error
	if !errors.As(err, &ee) || ee.Line != 2 {
		t.Errorf("error location: %+v", err)
	}

	// An mbox write that fails half-way is cut back to its old length.
	e = newEnv(t)
	e.qmail(".qmail", "./Mailbox\n", 0o644)
	e.deliver("first\n")
	before := e.read("Mailbox")
	src = &flakyReaderAt{data: []byte("Subject: s\n\n" + strings.Repeat("z", 200000)), failAfter: 1}
	_, err = e.d.Deliver(t.Context(), e.tg, io.NewSectionReader(src, 0, src.Size()))
	wantErr(t, err, 111, "")
	if !strings.HasPrefix(err.Error(), "dotqmail: .qmail:1: Unable to read message: ") {
		t.Errorf("error %q", err)
	}
	if got := e.read("Mailbox"); got != before {
		t.Errorf("mbox not restored: %d bytes, want %d", len(got), len(before))
	}

	// A missing Maildir.
	e = newEnv(t)
	e.qmail(".qmail", "./nosuch/\n", 0o644)
	_, err = e.deliver("m\n")
	wantErr(t, err, 111, "Unable to chdir to maildir. (#4.2.1)")
	// An mbox that cannot be opened.
	e.qmail(".qmail", "./nodir/Mailbox\n", 0o644)
	_, err = e.deliver("m\n")
	wantErr(t, err, 111, "Unable to open ./nodir/Mailbox: file does not exist. (#4.2.1)")
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// flakyReaderAt serves data to failAfter readers, then fails in the middle.
type flakyReaderAt struct {
	data      []byte
	failAfter int
	mu        sync.Mutex
	starts    int
}

func (f *flakyReaderAt) Size() int64 { return int64(len(f.data)) }

func (f *flakyReaderAt) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	if off == 0 {
		f.starts++
	}
	fail := f.starts > f.failAfter && off > 50000
	f.mu.Unlock()
	if fail {
		return 0, errors.New("disk on fire")
	}
	if off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestForwardFailure: the injector's refusal ends the delivery with its
// class and qmail's text.
func TestForwardFailure(t *testing.T) {
	for _, tt := range []struct {
		err  error
		code int
		text string
	}{
		{&ForwardError{Text: "qq write error or disk full (#4.3.0)"}, 111, "Unable to forward message: qq write error or disk full (#4.3.0)."},
		{&ForwardError{Text: "envelope address too long for qq (#5.1.3)", Perm: true}, 100, "Unable to forward message: envelope address too long for qq (#5.1.3)."},
		{errors.New("boom"), 111, "Unable to forward message: boom."},
		// qmail-queue's pipes could not be made, as QueueProgram reports
		// it: qmail-local's "Unable to fork", with djb's text.
		{&ForwardError{Text: "unable to exec qq (#4.3.0)", Err: &qq.OpenError{Err: os.NewSyscallError("pipe2", syscall.EMFILE)}},
			111, "Unable to fork: process cannot open more files. (#4.3.0)"},
	} {
		e := newEnv(t)
		e.q.err = tt.err
		e.qmail(".qmail", "a@b\n", 0o644)
		res, err := e.deliver("m\n")
		wantErr(t, err, tt.code, tt.text)
		if res.Report != tt.text+"\n" {
			t.Errorf("report %q", res.Report)
		}
	}
	e := newEnv(t)
	e.d.Forwarder = nil
	e.qmail(".qmail", "a@b\n", 0o644)
	if _, err := e.deliver("m\n"); ExitCode(err) != 111 {
		t.Errorf("no forwarder: %v", err)
	}
}

// TestForwardSender checks NEWSENDER on the forwarded message.
func TestForwardSender(t *testing.T) {
	e := newEnv(t)
	e.tg.Local, e.tg.Dash, e.tg.Ext = "joe-list", "-", "list"
	e.qmail(".qmail-list", "a@x\nb@y\n", 0o644)
	e.qmail(".qmail-list-owner", "joe\n", 0o644)
	e.qmail(".qmail-list-owner-default", "joe\n", 0o644)
	if _, err := e.deliver("m\n"); err != nil {
		t.Fatal(err)
	}
	if f := e.q.sent[0]; f.sender != "joe-list-owner-@ex.com-@[]" || strings.Join(f.rcpts, " ") != "a@x b@y" {
		t.Errorf("forwarded %+v", f)
	}
}

// TestPlan is qmail-local -n: the deliveries it would make, one per line.
func TestPlan(t *testing.T) {
	e := newEnv(t)
	e.qmail(".qmail", "./Maildir/\n|prog arg\n&a@b\n# c\n./Mailbox\n", 0o644)
	res, err := e.d.Plan(t.Context(), e.tg)
	if err != nil {
		t.Fatal(err)
	}
	if want := "maildir ./Maildir/\nprogram prog arg\nforward a@b\nmbox ./Mailbox\ndid 2+1+1\n"; res.Report != want {
		t.Errorf("Plan = %q, want %q", res.Report, want)
	}
	if e.read("Mailbox") != "" || len(e.q.sent) != 0 {
		t.Error("Plan delivered")
	}
	// x bit refusals apply to -n.
	e.qmail(".qmail", "a@b\n|prog\n", 0o755)
	res, err = e.d.Plan(t.Context(), e.tg)
	wantErr(t, err, 111, "Uh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)")
	if res.Report != "forward a@b\nUh-oh: .qmail has prog delivery but has x bit set. (#4.7.0)\n" {
		t.Errorf("report %q", res.Report)
	}
}

// TestMessageSources delivers from each kind of reader, with a program
// line (which needs a file) and a Maildir line.
func TestMessageSources(t *testing.T) {
	const msg = "Subject: s\n\nbody\n"
	file := filepath.Join(t.TempDir(), "msg")
	os.WriteFile(file, []byte(msg), 0o600)
	sources := map[string]func() io.Reader{
		"strings.Reader": func() io.Reader { return strings.NewReader(msg) },
		"plain reader":   func() io.Reader { return io.MultiReader(strings.NewReader(msg)) },
		"section reader": func() io.Reader { return io.NewSectionReader(strings.NewReader("xx"+msg), 2, int64(len(msg))) },
		"read seeker":    func() io.Reader { return struct{ io.ReadSeeker }{strings.NewReader(msg)} },
		"file at offset": func() io.Reader {
			f, _ := os.Open(file)
			t.Cleanup(func() { f.Close() })
			f.Seek(5, io.SeekStart)
			return f
		},
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.makeMaildir("Maildir")
			e.qmail(".qmail", "|cat > p1\n./Maildir/\n|cat > p2\n", 0o644)
			if _, err := e.d.Deliver(t.Context(), e.tg, src()); err != nil {
				t.Fatal(err)
			}
			if e.read("p1") != msg || e.read("p2") != msg {
				t.Errorf("programs read %q, %q", e.read("p1"), e.read("p2"))
			}
			if got := e.maildirFiles("Maildir", "new"); len(got) != 1 || !strings.HasSuffix(got[0], "\n"+msg) {
				t.Errorf("maildir %q", got)
			}
		})
	}
}

// TestReportLimit: program output is collected up to its limit, the
// final text always comes last.
func TestReportLimit(t *testing.T) {
	e := newEnv(t)
	e.qmail(".qmail", "|head -c 100000 /dev/zero | tr '\\0' x\n", 0o644)
	res, err := e.deliver("m\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Report) != reportLimit+len("did 0+0+1\n") || !strings.HasSuffix(res.Report, "xdid 0+0+1\n") {
		t.Errorf("report of %d bytes ending %q", len(res.Report), res.Report[len(res.Report)-20:])
	}
	var so, se bytes.Buffer
	e.d.Stdout, e.d.Stderr = &so, &se
	e.qmail(".qmail", "|echo out; echo err >&2\n", 0o644)
	res, err = e.deliver("m\n")
	if err != nil || res.Report != "did 0+0+1\n" || so.String() != "out\n" || se.String() != "err\n" {
		t.Errorf("report %q, stdout %q, stderr %q, %v", res.Report, so.String(), se.String(), err)
	}
}

func TestContextCancel(t *testing.T) {
	e := newEnv(t)
	e.qmail(".qmail", "|sleep 30\n", 0o644)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.d.Deliver(ctx, e.tg, strings.NewReader("m\n"))
	if ExitCode(err) != 111 || time.Since(start) > 10*time.Second {
		t.Errorf("cancelled delivery: %v after %v", err, time.Since(start))
	}
}
