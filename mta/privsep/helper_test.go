package privsep

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/assign"
	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/mta"
	"github.com/qmailkit/qmailkit/pop3"
)

var _ mta.LocalDeliverer = (*Helper)(nil)

// logBuffer is a log destination safe for the relay and the test.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// shared makes a directory that every user can search (t.TempDir's
// parent is private), removed at the end of the test.
func shared(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "privsep-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if p, ok := OthersCanRun(dir); !ok {
		t.Skipf("%s is not reachable by others here (%s is not o+x)", dir, p)
	}
	return dir
}

// program copies the test binary where every user can run it: the
// helper's qmail-local children run it under the recipients' uids.
func program(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "privsep.test")
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// testHome makes a home whose users/ is root's, with users/cdb and
// users/poppasswd for each user (name, uid; uid 0 too), and each user's
// home directory, theirs, with a Maildir.
func testHome(t *testing.T, dir string, users map[string]int) (home string, homes map[string]string) {
	t.Helper()
	home = filepath.Join(dir, "home")
	if err := os.MkdirAll(filepath.Join(home, "users"), 0o755); err != nil {
		t.Fatal(err)
	}
	homes = map[string]string{}
	var assignFile, passwd strings.Builder
	for name, uid := range users {
		h := filepath.Join(dir, name)
		if err := os.Mkdir(h, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := maildir.Create(filepath.Join(h, "Maildir")); err != nil {
			t.Fatal(err)
		}
		err := filepath.Walk(h, func(path string, fi os.FileInfo, err error) error {
			if err == nil {
				err = os.Lchown(path, uid, uid)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(h, 0o700)
		homes[name] = h
		fmt.Fprintf(&assignFile, "=%s:%s:%d:%d:%s:::\n", name, name, uid, uid, h)
		fmt.Fprintf(&passwd, "%s:{PLAIN}pw:%d:%d::%s:/bin/false\n", name, uid, uid, h)
	}
	assignFile.WriteString(".\n")
	assignPath := filepath.Join(home, "users", "assign")
	if err := os.WriteFile(assignPath, []byte(assignFile.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := assign.CompileFile(assignPath, filepath.Join(home, "users", "cdb")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "users", "poppasswd"), []byte(passwd.String()), 0o640); err != nil {
		t.Fatal(err)
	}
	return home, homes
}

// TestStart: a root process starts the helper, which delivers under each
// recipient's uid and never as root, opens the maildrop of a user of
// another uid in an agent under that uid, refuses a users/cdb the account
// could write with a report naming it, relays its log lines to the
// Logger, and exits at Stop.
func TestStart(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: the helper")
	}
	const uid = 1691
	dir := shared(t)
	prog := program(t, dir)
	home, homes := testHome(t, dir, map[string]int{"alice": uid, "rootie": 0})
	var logs logBuffer
	h, err := Start(Options{Home: home, Program: prog, DeliveryTimeout: time.Minute,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			h.Stop(context.Background())
		}
	})
	ctx := t.Context()

	res, err := h.Deliver(ctx, "bob@example.org", "alice@localhost", strings.NewReader("Subject: hi\n\nhello alice\n"))
	if err != nil {
		t.Fatalf("deliver to alice: %v (%q)", err, res.Report)
	}
	msgs, err := maildir.Dir(filepath.Join(homes["alice"], "Maildir")).List()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("alice's Maildir: %v, %v", msgs, err)
	}
	fi, err := os.Stat(filepath.Join(homes["alice"], "Maildir", msgs[0].Path()))
	if err != nil {
		t.Fatal(err)
	}
	if owner := fi.Sys().(*syscall.Stat_t).Uid; owner != uid {
		t.Errorf("alice's message is uid %d's, want %d", owner, uid)
	}

	res, err = h.Deliver(ctx, "bob@example.org", "rootie@localhost", strings.NewReader("Subject: hi\n\nhello root\n"))
	if err == nil || !strings.Contains(res.Report, "Not allowed to perform deliveries as root.") {
		t.Errorf("deliver to uid 0: %v, %q; want a deferral", err, res.Report)
	}
	if n, _ := maildir.Dir(filepath.Join(homes["rootie"], "Maildir")).List(); len(n) != 0 {
		t.Errorf("delivered as root: %v", n)
	}

	// POP3: the test process is root, so every maildrop is opened by an
	// agent, under the uid users/poppasswd gives.
	srv := &pop3.Server{}
	mb, err := h.OpenMailbox(srv)(ctx, &pop3.User{Name: "alice", UID: uid, GID: uid, Home: homes["alice"]})
	if err != nil {
		t.Fatal(err)
	}
	list, err := mb.Messages(ctx)
	if err != nil || len(list) != 1 {
		t.Errorf("alice's maildrop through the agent: %v, %v", list, err)
	}
	mb.Close()
	if _, err := h.OpenMailbox(srv)(ctx, &pop3.User{Name: "rootie", UID: 0, GID: 0, Home: homes["rootie"]}); err == nil {
		t.Errorf("a maildrop of uid 0 was opened")
	}

	// users/cdb writable by the account: deferred, the file named.
	cdb := filepath.Join(home, "users", "cdb")
	if err := os.Chown(cdb, uid, uid); err != nil {
		t.Fatal(err)
	}
	res, err = h.Deliver(ctx, "bob@example.org", "alice@localhost", strings.NewReader("Subject: again\n\nhello\n"))
	var perm interface{ Permanent() bool }
	if err == nil || (errors.As(err, &perm) && perm.Permanent()) || !strings.Contains(res.Report, "Refusing "+cdb+": owned by uid 1691, not root") {
		t.Errorf("deliver with users/cdb the account's: %v, %q; want a deferral naming it", err, res.Report)
	}

	stopped = true
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := h.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Done():
	default:
		t.Errorf("Done not closed after Stop")
	}
	// The helper's lines, relayed: its refusal as an error record.
	for _, want := range []string{`level=ERROR msg="mta lspawn: deferring a delivery: refusing ` + cdb, "recipient=alice@localhost"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	if _, err := h.Deliver(ctx, "bob@example.org", "alice@localhost", strings.NewReader("x\n")); err == nil {
		t.Errorf("delivered after Stop")
	}
}

// TestStartRefusals: Start needs root and a home; a program that cannot
// be run is an error, and no helper is left.
func TestStartRefusals(t *testing.T) {
	if os.Geteuid() != 0 {
		if _, err := Start(Options{Home: t.TempDir()}); err == nil {
			t.Errorf("Start without root succeeded")
		}
		return
	}
	if _, err := Start(Options{}); err == nil {
		t.Errorf("Start without a home succeeded")
	}
	if _, err := Start(Options{Home: t.TempDir(), Program: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Errorf("Start of a missing program succeeded")
	}
}

// TestChildMainNoRole: a process without a role is not a child, and
// ChildMain refuses to run it.
func TestChildMainNoRole(t *testing.T) {
	if IsChild() {
		t.Fatal("the test is a child")
	}
	if code := ChildMain(); code != 2 {
		t.Errorf("ChildMain = %d, want 2", code)
	}
}

// TestRelay: the helper's JSON lines become records of the Logger with
// their time, level, message and attributes in order; anything else,
// NUL bytes, a line longer than the buffer, a truncated record, is still
// logged, as an error, and nothing is lost after it.
func TestRelay(t *testing.T) {
	long := strings.Repeat("x", maxLogLine+100)
	for _, tt := range []struct {
		name  string
		input string
		want  []string // log lines, in order
	}{
		{"record",
			`{"time":"2026-12-07T23:00:00.5Z","level":"WARN","msg":"mta lspawn: killed","pid":42,"ratio":0.5,"ok":true}` + "\n",
			[]string{`time=2026-12-07T23:00:00.500Z level=WARN msg="mta lspawn: killed" pid=42 ratio=0.5 ok=true`}},
		{"error level with offset",
			`{"time":"2026-12-07T23:00:00Z","level":"ERROR+2","msg":"m"}` + "\n",
			[]string{`time=2026-12-07T23:00:00.000Z level=ERROR+2 msg=m`}},
		{"not JSON",
			"panic: boom\n\ngoroutine 1 [running]:\n",
			[]string{`level=ERROR msg="panic: boom"`, `level=ERROR msg="goroutine 1 [running]:"`}},
		{"NUL bytes",
			"a\x00b\n" + `{"time":"2026-12-07T23:00:00Z","level":"INFO","msg":"after"}` + "\n",
			[]string{`level=ERROR msg="a\x00b"`, `level=INFO msg=after`}},
		{"two values on a line",
			`{"msg":"a"}{"msg":"b"}` + "\n",
			[]string{`level=ERROR msg="{\"msg\":\"a\"}{\"msg\":\"b\"}"`}},
		{"truncated record, no newline",
			`{"time":"2026-12-07T23:00:00Z","level":"INFO","msg":"cut`,
			[]string{`level=ERROR msg="{\"time\"`}},
		{"too long",
			long + "\n" + `{"time":"2026-12-07T23:00:00Z","level":"INFO","msg":"after"}` + "\n",
			[]string{`level=ERROR msg=` + strings.Repeat("x", 100), `level=ERROR msg=xxxx`, `level=INFO msg=after`}},
		{"bad level",
			`{"time":"2026-12-07T23:00:00Z","level":"LOUD","msg":"m","k":"v"}` + "\n",
			[]string{`level=INFO msg=m k=v`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			var out logBuffer
			logger := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.String(slog.TimeKey, a.Value.Time().UTC().Format("2006-01-02T15:04:05.000Z"))
				}
				return a
			}}))
			done := make(chan struct{})
			go relay(r, logger, done)
			go func() {
				io.WriteString(w, tt.input)
				w.Close()
			}()
			<-done
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if len(lines) < len(tt.want) {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(tt.want), out.String())
			}
			i := 0
			for _, l := range lines {
				if i < len(tt.want) && strings.Contains(l, tt.want[i]) {
					i++
				}
			}
			if i != len(tt.want) {
				t.Errorf("log:\n%.300s\nlacks, in order, %q", out.String(), tt.want[i:])
			}
			if tt.name == "too long" && !strings.Contains(strings.ReplaceAll(out.String(), "\n", ""), long[:maxLogLine-1]) {
				t.Errorf("the long line was cut")
			}
		})
	}
}

// FuzzParseRecord: whatever a line holds, parseRecord neither panics nor
// accepts what is not one JSON object, and a record it makes of slog's
// own output is the same record.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"time":"2026-12-07T23:00:00Z","level":"INFO","msg":"m","a":1}`))
	f.Add([]byte(`{"msg":{"nested":[1,2]}}`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte("\x00{"))
	f.Fuzz(func(t *testing.T, line []byte) {
		rec, ok := parseRecord(line)
		if !ok {
			return
		}
		var buf bytes.Buffer
		if err := slog.NewJSONHandler(&buf, nil).Handle(context.Background(), rec); err != nil {
			return
		}
		again, ok := parseRecord(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
		if !ok || again.Message != rec.Message || again.Level != rec.Level || again.NumAttrs() != rec.NumAttrs() {
			t.Errorf("%q: re-encoded %q is not the same record", line, buf.Bytes())
		}
	})
}

// TestQmailLocalOnlyFromHelper: the program run as qmail-local by anything
// but the helper (a program passing for a qmail-local child, which the
// helper's reaper would spare) refuses to run.
func TestQmailLocalOnlyFromHelper(t *testing.T) {
	cmd := exec.Command(os.Args[0], "--", "u", "/nonexistent", "u", "", "", "localhost", "s@x", "./Maildir/")
	cmd.Args[0] = "qmail-local"
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 111 || !strings.Contains(string(out), "started by the delivery helper only") {
		t.Errorf("qmail-local from the test: %v %q, want exit 111", err, out)
	}
}
