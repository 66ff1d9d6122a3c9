package mta

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/mailtest"
	"github.com/qmailkit/qmailkit/queue"
)

// stubbornProgram is a .qmail program line that writes its pid, ignores
// SIGTERM and never ends, in a background child too.
const stubbornProgram = "|echo $$ > pid; trap '' TERM; (trap '' TERM; while :; do sleep 1; done) & while :; do sleep 1; done\n"

// runFor runs a System of home with a grace period of grace, serving SMTP
// on a loopback port; stop cancels Run and returns its error and how long
// it took to return.
func runFor(t *testing.T, home string, grace time.Duration) (smtpAddr string, stop func() (time.Duration, error)) {
	t.Helper()
	sys, err := Open(home, Options{ShutdownTimeout: grace})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sys.SMTP(false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sys.Serve(ctx, Servers{SMTP: srv}, Listeners{SMTP: l}) }()
	stopped := false
	stop = func() (time.Duration, error) {
		if stopped {
			return 0, nil
		}
		stopped = true
		start := time.Now()
		cancel()
		var err error
		select {
		case err = <-done:
		case <-time.After(grace + 30*time.Second):
			t.Fatalf("Run did not return %v after a stop with grace %v", grace+30*time.Second, grace)
		}
		took := time.Since(start)
		if cerr := sys.Close(); cerr != nil && err == nil {
			err = cerr
		}
		return took, err
	}
	t.Cleanup(func() { stop() })
	return l.Addr().String(), stop
}

// TestStopCutsInProcessDelivery: a delivery made in-process (the
// process's own user) whose program never ends and ignores SIGTERM does
// not keep Run from returning at the end of the grace period: the
// program's process group is killed, the message stays in the queue,
// deferred, and is delivered once at the next start.
func TestStopCutsInProcessDelivery(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	demo, _, err := Init(home, InitOptions{Domain: "example.test", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	uhome := filepath.Dir(demo.Maildir)
	dot := filepath.Join(uhome, ".qmail")
	if err := os.WriteFile(dot, []byte(stubbornProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	const grace = time.Second
	addr, stop := runFor(t, home, grace)
	if err := mailtest.Send(addr, "bob@example.org", []string{demo.Address()}, "Subject: stuck\r\n\r\nhello\r\n"); err != nil {
		t.Fatal(err)
	}
	var pid int
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(uhome, "pid"))
		if pid, _ = strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the program did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	took, err := stop()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took > grace+5*time.Second {
		t.Errorf("Run took %v to return, grace %v", took, grace)
	}
	if len(mailtest.GroupMembers(pid)) > 0 {
		t.Errorf("the program's process group %d is still running", pid)
	}

	q, err := queue.Open(filepath.Join(home, "queue"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var queued []queue.Message
	for m, err := range q.Messages() {
		if err != nil {
			t.Fatal(err)
		}
		queued = append(queued, m)
	}
	q.Close()
	if len(queued) != 1 || len(queued[0].Recipients) != 1 || queued[0].Recipients[0].Done {
		t.Fatalf("queue after the stop: %+v, want the message with its recipient to do", queued)
	}

	// The next start delivers it once. Its next attempt time is its
	// local channel file's mtime: make it due.
	if err := os.WriteFile(dot, []byte("./Maildir/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(home, "queue", "local", "*", queued[0].ID.String()))
	if len(files) != 1 {
		t.Fatalf("local channel files %q", files)
	}
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(files[0], past, past); err != nil {
		t.Fatal(err)
	}
	_, stop = runFor(t, home, grace)
	waitMaildir(t, demo.Maildir, 1)
	time.Sleep(500 * time.Millisecond)
	if _, err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if msgs := waitMaildir(t, demo.Maildir, 1); len(msgs) != 1 {
		t.Errorf("%d messages delivered, want 1", len(msgs))
	}
}
