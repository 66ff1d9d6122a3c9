package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/progtest"
)

// fakeQueue keeps what it is given.
type fakeQueue struct {
	mu   sync.Mutex
	msgs []string
	envs []string
}

func (q *fakeQueue) Forward(ctx context.Context, from string, to []string, r io.Reader) (string, error) {
	b, _ := io.ReadAll(r)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, string(b))
	q.envs = append(q.envs, "F"+from+" T"+strings.Join(to, " T"))
	return "1", nil
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"1", "2", "m"}, {"1", "2", "m", "d", "0", "+", "x"}, {"-nope", "1", "2", "m", "d"}} {
		var stderr bytes.Buffer
		code := run(t.Context(), args, nil, strings.NewReader(""), &stderr, &fakeQueue{})
		if code != 111 || !strings.HasPrefix(stderr.String(), "\nautorespond: usage: time num message dir [ flag arsender ]\n") {
			t.Errorf("%q: %d %q", args, code, stderr.String())
		}
	}
}

// TestMessages: the spec's vector 16 and autorespond's other messages and
// exit codes, in both modes.
func TestMessages(t *testing.T) {
	msgFile := writeFile(t, "message", "Gone fishing.\n")
	tests := []struct {
		name   string
		sender string
		header string
		dir    string // "" a fresh directory
		msg    string // "" msgFile
		code   int
		stderr string
	}{
		{"empty sender", "", "Subject: x\n", "", "", 0, "AUTORESPOND:  Stopping on mail from [].\n"},
		{"mailer-daemon", "MAILER-DAEMON@h.example", "Subject: x\n", "", "", 0, "AUTORESPOND:  Stopping on mail from [MAILER-DAEMON@h.example].\n"},
		{"bulk", "x@y.example", "Precedence: Bulk\n", "", "", 0, "AUTORESPOND: Junk mail received.\n"},
		{"loop", "x@y.example", "Delivered-To: autoresponder\n", "", "", 100, "AUTORESPOND: This message is looping...it has my Delivered-To header.\n"},
		{"list", "x@y.example", "Mailing-List: x\n", "", "", 0, "AUTORESPOND: This looks like it's from a mailing list, I will ignore it.\n"},
		{"no message file", "x@y.example", "", "", "/nonexistent/message", 111, "AUTORESPOND: Failed to open message file.\n"},
		{"no message file, no sender", "", "", "", "/nonexistent/message", 111, "AUTORESPOND: Failed to open message file.\n"},
		{"message is a fifo", "x@y.example", "", "", "FIFO", 111, "AUTORESPOND: Failed to open message file.\n"},
		{"message is a directory", "x@y.example", "", "", "/", 111, "AUTORESPOND: Failed to open message file.\n"},
		{"no directory", "x@y.example", "", "/nonexistent/dir", "", 111, "AUTORESPOND: Failed to change into directory.\n"},
		{"no directory, no sender", "", "", "/nonexistent/dir", "", 0, "AUTORESPOND:  Stopping on mail from [].\n"},
		{"replied", "x@y.example", "Subject: hi\n", "", "", 0, ""},
	}
	for _, tt := range tests {
		for _, compat := range []bool{true, false} {
			t.Run(tt.name, func(t *testing.T) {
				dir, msg := tt.dir, tt.msg
				if dir == "" {
					dir = t.TempDir()
				}
				switch msg {
				case "":
					msg = msgFile
				case "FIFO":
					msg = filepath.Join(t.TempDir(), "fifo")
					if err := syscall.Mkfifo(msg, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				args := []string{"10000", "5", msg, dir, "0", "+"}
				if compat {
					args = append([]string{"-compat"}, args...)
				}
				env := []string{"SENDER=" + tt.sender, "EXT=joe", "HOST=example.com"}
				var stderr bytes.Buffer
				q := &fakeQueue{}
				code := run(t.Context(), args, env, strings.NewReader(tt.header+"\nbody\n"), &stderr, q)
				if code != tt.code || stderr.String() != tt.stderr {
					t.Errorf("compat %v: exit %d %q, want %d %q", compat, code, stderr.String(), tt.code, tt.stderr)
				}
				if want := tt.name == "replied"; (len(q.msgs) == 1) != want {
					t.Errorf("compat %v: %d replies", compat, len(q.msgs))
				}
			})
		}
	}
}

// TestModern: the default reply from qmailadmin's message file: its
// Subject and From, an empty envelope sender, RFC 3834's fields; the
// modern rules' messages.
func TestModern(t *testing.T) {
	msg := writeFile(t, "message", "From: joe@example.com\nSubject: Away\n\nBack Monday.")
	q := &fakeQueue{}
	var stderr bytes.Buffer
	env := []string{"SENDER=bob@example.org", "EXT=joe", "HOST=example.com", "RECIPIENT=example.com-joe@example.com"}
	code := run(t.Context(), []string{"86400", "3", msg, t.TempDir()}, env,
		strings.NewReader("Subject: lunch\nMessage-ID: <1@example.org>\n\nhi\n"), &stderr, q)
	if code != 0 || stderr.Len() != 0 || len(q.msgs) != 1 {
		t.Fatalf("exit %d %q, %d replies", code, stderr.String(), len(q.msgs))
	}
	if q.envs[0] != "F Tbob@example.org" {
		t.Errorf("envelope %q", q.envs[0])
	}
	for _, want := range []string{"From: <joe@example.com>\n", "To: <bob@example.org>\n", "Subject: Away\n",
		"In-Reply-To: <1@example.org>\n", "Auto-Submitted: auto-replied\n", "\n\nBack Monday.\n"} {
		if !strings.Contains(q.msgs[0], want) {
			t.Errorf("reply lacks %q:\n%s", want, q.msgs[0])
		}
	}
	if strings.Contains(q.msgs[0], "hi\n") || strings.Contains(q.msgs[0], "Delivered-To") {
		t.Errorf("reply:\n%s", q.msgs[0])
	}

	for _, tt := range []struct {
		args   []string
		sender string
		header string
		stderr string
	}{
		{nil, "bob@example.org", "Auto-Submitted: auto-replied\n", "AUTORESPOND: This is automatic mail (Auto-Submitted), I will ignore it.\n"},
		{nil, "bob@example.org", "List-Id: <l.example.org>\n", "AUTORESPOND: This looks like it's from a mailing list, I will ignore it.\n"},
		{nil, "joe@example.com", "", "AUTORESPOND: Not answering mail from myself [joe@example.com].\n"},
		{nil, "owner-l@example.org", "", "AUTORESPOND:  Stopping on mail from [owner-l@example.org].\n"},
		{[]string{"-addressed"}, "bob@example.org", "To: l@example.org\n", "AUTORESPOND: I am not in To, Cc or Bcc, I will ignore it.\n"},
		{[]string{"-addressed"}, "bob@example.org", "To: Joe <joe@example.com>\n", ""},
	} {
		q := &fakeQueue{}
		stderr.Reset()
		env := []string{"SENDER=" + tt.sender, "EXT=joe", "HOST=example.com"}
		code := run(t.Context(), append(tt.args, "86400", "3", msg, t.TempDir()), env, strings.NewReader(tt.header+"\nhi\n"), &stderr, q)
		if code != 0 || stderr.String() != tt.stderr || (len(q.msgs) == 1) != (tt.stderr == "") {
			t.Errorf("%s %q: exit %d %q, %d replies", tt.sender, tt.header, code, stderr.String(), len(q.msgs))
		}
	}
}

// TestHugeMessage: only the first megabyte of MESSAGE is sent.
func TestHugeMessage(t *testing.T) {
	msg := writeFile(t, "message", strings.Repeat("x", 3<<20))
	q := &fakeQueue{}
	var stderr bytes.Buffer
	code := run(t.Context(), []string{"-compat", "1", "1", msg, t.TempDir(), "0"}, []string{"SENDER=a@b.example"}, strings.NewReader("\n"), &stderr, q)
	if code != 0 || len(q.msgs) != 1 || len(q.msgs[0]) > 1<<20+500 || len(q.msgs[0]) < 1<<20 {
		t.Fatalf("exit %d %q, %d replies", code, stderr.String(), len(q.msgs))
	}
}

func TestParseMessage(t *testing.T) {
	for _, tt := range []struct{ in, subject, from, body string }{
		{"From: joe@example.com\nSubject: Away\n\nBack Monday.", "Away", "joe@example.com", "Back Monday."},
		{"From: Joe <joe@example.com>\nSubject: Away\nMIME-Version: 1.0\n\ntext\n\nmore\n", "Away", "joe@example.com", "text\n\nmore\n"},
		{"Subject: a\n b\r\n\r\ntext", "a b", "", "text"},
		{"Gone fishing.\n", "", "", "Gone fishing.\n"},
		{"Dear all: I am away.\n\nJoe\n", "", "", "Dear all: I am away.\n\nJoe\n"},
		{"Note:\n\nthat", "", "", "that"},
	} {
		s, f, b := parseMessage([]byte(tt.in))
		if s != tt.subject || f != tt.from || b != tt.body {
			t.Errorf("%q: %q %q %q", tt.in, s, f, b)
		}
	}
}

// fakeQmailQueue writes a qmail-queue that keeps the message and the
// envelope in dir (msg.PID and env.PID) and returns its path.
func fakeQmailQueue(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "qmail-queue")
	script := "#!/bin/sh\ncat > " + dir + "/msg.$$\ncat <&1 > " + dir + "/env.$$\nexit 0\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func queued(t *testing.T, dir string) (msgs, envs []string) {
	t.Helper()
	ms, _ := filepath.Glob(filepath.Join(dir, "msg.*"))
	for _, m := range ms {
		b, _ := os.ReadFile(m)
		e, _ := os.ReadFile(filepath.Join(dir, "env."+strings.TrimPrefix(filepath.Base(m), "msg.")))
		msgs, envs = append(msgs, string(b)), append(envs, string(e))
	}
	return msgs, envs
}

// TestProgram is the spec's vectors 15 and 17 through the program and a
// qmail-queue: six messages, five replies, autorespond's exact reply
// and envelope, and six log entries A<pid>.<time>.
func TestProgram(t *testing.T) {
	bin := progtest.Build(t, "autorespond")
	qdir, log := t.TempDir(), t.TempDir()
	qq := fakeQmailQueue(t, qdir)
	msg := writeFile(t, "msg", "Gone fishing.\n")
	for i := range 6 {
		cmd := exec.Command(bin, "-compat", "10000", "5", msg, log, "0", "+")
		cmd.Env = []string{"SENDER=x@y.example", "QMAILQUEUE=" + qq, "QMAILHOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
		cmd.Stdin = strings.NewReader("Subject: Hi\n\nbody\n")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		code := progtest.Run(t, cmd)
		want := ""
		if i == 5 {
			want = "AUTORESPOND: too many received from [x@y.example]\n"
		}
		if code != 0 || stderr.String() != want {
			t.Errorf("message %d: exit %d %q", i+1, code, stderr.String())
		}
	}
	msgs, envs := queued(t, qdir)
	if len(msgs) != 5 {
		t.Fatalf("%d replies queued, want 5", len(msgs))
	}
	head := regexp.MustCompile(`^Date: [1-9][0-9]? [A-Z][a-z][a-z] 2[0-9]{3} [0-9]{2}:[0-9]{2}:[0-9]{2} -0000\nMessage-ID: <[0-9]+\.[0-9]+\.blah>\n`)
	for i, m := range msgs {
		if !head.MatchString(m) || head.ReplaceAllString(m, "") != "Delivered-To: Autoresponder\nTo: x@y.example\nFrom: \nSubject: Re: Hi\n\nGone fishing.\n\n\n\n" {
			t.Errorf("reply %d: %q", i, m)
		}
		if envs[i] != "F\x00Tx@y.example\x00\x00" {
			t.Errorf("envelope %d: %q", i, envs[i])
		}
	}
	ents, _ := os.ReadDir(log)
	entry := regexp.MustCompile(`^A[0-9]+\.[0-9]+$`)
	if len(ents) != 6 {
		t.Fatalf("%d log entries, want 6", len(ents))
	}
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(log, e.Name()))
		if !entry.MatchString(e.Name()) || string(b) != "x@y.example" {
			t.Errorf("entry %s: %q", e.Name(), b)
		}
	}
}

// TestUnderQmailLocal: qmailadmin's vacation .qmail, run by qmail-local:
// the message is delivered to the Maildir and answered, through
// $QMAILQUEUE; a second message from the same sender is delivered and
// not answered (NUM 1), and a bulk one is delivered and not answered.
func TestUnderQmailLocal(t *testing.T) {
	bin := progtest.Build(t, "autorespond")
	qdir := t.TempDir()
	qq := fakeQmailQueue(t, qdir)
	home := filepath.Join(t.TempDir(), "joe")
	for _, d := range []string{"Maildir/new", "Maildir/cur", "Maildir/tmp", "vacation"} {
		os.MkdirAll(filepath.Join(home, d), 0o755)
	}
	os.WriteFile(filepath.Join(home, "vacation", "message"), []byte("From: joe@example.com\nSubject: Away\n\nBack Monday."), 0o644)
	dotq := "./Maildir/\n| " + bin + " 86400 1 " + home + "/vacation/message " + home + "/vacation\n"
	os.WriteFile(filepath.Join(home, ".qmail"), []byte(dotq), 0o644)

	deliver := func(header string) (int, string) {
		t.Helper()
		p := writeFile(t, "in", header+"\nhello\n")
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var so, se bytes.Buffer
		code := dotqmail.QmailLocal(t.Context(),
			[]string{"joe", home, "joe", "", "", "example.com", "bob@example.org", "./Maildir/"},
			[]string{"PATH=/usr/bin:/bin", "QMAILQUEUE=" + qq, "QMAILHOME=" + qdir}, f, &so, &se)
		return code, so.String() + se.String()
	}
	for i, tt := range []struct {
		header  string
		replies int
	}{
		{"Subject: lunch\nMessage-ID: <1@example.org>\n", 1},
		{"Subject: again\n", 1},
		{"Subject: news\nPrecedence: bulk\n", 1},
	} {
		code, out := deliver(tt.header)
		if code != 0 {
			t.Fatalf("delivery %d: exit %d %q", i, code, out)
		}
		if msgs, _ := queued(t, qdir); len(msgs) != tt.replies {
			t.Errorf("delivery %d: %d replies: %q", i, len(msgs), out)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(home, "Maildir", "new")); len(ents) != 3 {
		t.Errorf("%d messages in the Maildir, want 3", len(ents))
	}
	msgs, envs := queued(t, qdir)
	if len(msgs) == 1 && (envs[0] != "F\x00Tbob@example.org\x00\x00" || !strings.Contains(msgs[0], "Subject: Away\n") ||
		!strings.Contains(msgs[0], "Auto-Submitted: auto-replied\n") || !strings.Contains(msgs[0], "In-Reply-To: <1@example.org>\n")) {
		t.Errorf("reply %q %q", envs[0], msgs[0])
	}
}
