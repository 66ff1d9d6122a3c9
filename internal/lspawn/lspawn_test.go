package lspawn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/dotqmail"
)

var _ Deliverer = (*dotqmail.Local)(nil)
var _ Deliverer = (*Client)(nil)

// socketpair returns the two ends of a SOCK_SEQPACKET socketpair.
func socketpair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// fakeLocal answers by recipient: ok@, perm@, temp@, slow@ (waits for
// its ctx or release), and reads the whole message for each.
type fakeLocal struct {
	release   chan struct{}
	mu        sync.Mutex
	got       map[string]string // recipient: sender + " " + message
	cancelled map[string]bool
}

func (f *fakeLocal) Deliver(ctx context.Context, sender, recipient string, msg io.Reader) (dotqmail.Result, error) {
	b, err := io.ReadAll(msg)
	if err != nil {
		return dotqmail.Result{}, err
	}
	if _, ok := msg.(*os.File); ok {
		return dotqmail.Result{Report: "got the queue's file\n"}, &dotqmail.Error{Text: "got the queue's file"}
	}
	f.mu.Lock()
	f.got[recipient] = sender + " " + string(b)
	f.mu.Unlock()
	switch {
	case strings.HasPrefix(recipient, "ok@"):
		return dotqmail.Result{Report: "did 1+0+0\n"}, nil
	case strings.HasPrefix(recipient, "perm@"):
		return dotqmail.Result{Report: "Sorry, no mailbox here by that name. (#5.1.1)\n"},
			&dotqmail.Error{Text: "Sorry, no mailbox here by that name. (#5.1.1)", Perm: true}
	case strings.HasPrefix(recipient, "slow@"):
		select {
		case <-ctx.Done():
			f.mu.Lock()
			f.cancelled[recipient] = true
			f.mu.Unlock()
			return dotqmail.Result{Report: "cancelled\n"}, ctx.Err()
		case <-f.release:
			return dotqmail.Result{Report: "did 0+1+0\n"}, nil
		}
	}
	return dotqmail.Result{Report: "Unable to chdir to maildir. (#4.2.1)\n"}, &dotqmail.Error{Text: "Unable to chdir to maildir. (#4.2.1)"}
}

// waitUntil polls cond, under f.mu, until it holds; after 10 seconds the
// test fails with what.
func (f *fakeLocal) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		ok := cond()
		f.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
		time.Sleep(time.Millisecond)
	}
}

// started reports whether a delivery to rcpt has begun; call it under f.mu.
func (f *fakeLocal) started(rcpt string) bool {
	_, ok := f.got[rcpt]
	return ok
}

func newFake() *fakeLocal {
	return &fakeLocal{release: make(chan struct{}), got: map[string]string{}, cancelled: map[string]bool{}}
}

// serve runs a Server on one end of a socketpair and returns a Client on
// the other, and a function that waits for ServeConn's result.
func serve(t *testing.T, local Deliverer) (*Client, func() error) {
	t.Helper()
	a, b := socketpair(t)
	srv := &Server{Local: local}
	done := make(chan error, 1)
	go func() { done <- srv.ServeConn(context.Background(), b) }()
	c := NewClient(a)
	c.TempDir = t.TempDir()
	t.Cleanup(func() { c.Close() })
	return c, func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("ServeConn did not return")
			return nil
		}
	}
}

func messageFile(t *testing.T, body string) *io.SectionReader {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mess")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return io.NewSectionReader(f, 0, int64(len(body)))
}

// TestDeliver: concurrent deliveries of every outcome, with the message as
// the queue gives it (a SectionReader over a file) and as a plain reader,
// come back with their own results.
func TestDeliver(t *testing.T) {
	fake := newFake()
	c, wait := serve(t, fake)
	tests := []struct {
		rcpt   string
		msg    func() io.Reader
		report string
		class  int // dotqmail.ExitCode
	}{
		{"ok@a", func() io.Reader { return messageFile(t, "m ok\n") }, "did 1+0+0\n", 0},
		{"perm@a", func() io.Reader { return messageFile(t, "m perm\n") }, "Sorry, no mailbox here by that name. (#5.1.1)\n", 100},
		{"temp@a", func() io.Reader { return strings.NewReader("m temp\n") }, "Unable to chdir to maildir. (#4.2.1)\n", 111},
		{"ok@b", func() io.Reader { return strings.NewReader("m ok b\n") }, "did 1+0+0\n", 0},
	}
	var wg sync.WaitGroup
	for round := range 20 {
		for _, tt := range tests {
			wg.Go(func() {
				res, err := c.Deliver(t.Context(), fmt.Sprintf("s%d@x", round), tt.rcpt, tt.msg())
				if res.Report != tt.report || dotqmail.ExitCode(err) != tt.class {
					t.Errorf("%s: %q %v, want %q and exit %d", tt.rcpt, res.Report, err, tt.report, tt.class)
				}
				if tt.class == 100 && err.Error() != "dotqmail: Sorry, no mailbox here by that name. (#5.1.1)" {
					t.Errorf("%s: error text %q", tt.rcpt, err)
				}
			})
		}
	}
	wg.Wait()
	fake.mu.Lock()
	defer fake.mu.Unlock()
	for rcpt, want := range map[string]string{"ok@a": " m ok\n", "perm@a": " m perm\n", "temp@a": " m temp\n", "ok@b": " m ok b\n"} {
		if got := fake.got[rcpt]; !strings.HasSuffix(got, want) || !strings.HasPrefix(got, "s") {
			t.Errorf("%s: server got %q", rcpt, got)
		}
	}
	c.Close()
	if err := wait(); err != nil {
		t.Errorf("ServeConn after the client's Close: %v", err)
	}
	// A closed client fails at once, temporarily.
	res, err := c.Deliver(t.Context(), "a@b", "ok@a", strings.NewReader("x"))
	if dotqmail.ExitCode(err) != 111 || res.Report != spawnFailure {
		t.Errorf("after Close: %q %v", res.Report, err)
	}
}

// TestCancel: a delivery whose ctx ends returns at once, temporarily, and
// the server's delivery is cancelled; the connection goes on.
func TestCancel(t *testing.T) {
	fake := newFake()
	c, _ := serve(t, fake)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Deliver(ctx, "a@b", "slow@a", strings.NewReader("x"))
		errc <- err
	}()
	fake.waitUntil(t, "delivery not started", func() bool { return fake.started("slow@a") })
	cancel()
	select {
	case err := <-errc:
		if dotqmail.ExitCode(err) != 111 || !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled delivery: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Deliver hangs after its ctx ended")
	}
	fake.waitUntil(t, "the server's delivery was not cancelled", func() bool { return fake.cancelled["slow@a"] })
	if res, err := c.Deliver(t.Context(), "a@b", "ok@a", strings.NewReader("x")); err != nil || res.Report != "did 1+0+0\n" {
		t.Errorf("after a cancel: %q %v", res.Report, err)
	}
}

// TestServerGone: deliveries in progress when the server's end closes,
// and later ones, fail temporarily; none hangs.
func TestServerGone(t *testing.T) {
	a, b := socketpair(t)
	c := NewClient(a)
	defer c.Close()
	got := make(chan struct{})
	go func() { // a server that reads one request and dies
		buf, oob := make([]byte, maxRecord), make([]byte, oobSpace)
		_, oobn, flags, _, _ := b.ReadMsgUnix(buf, oob)
		fds, _ := rights(oob[:oobn], flags, 1)
		closeAll(fds)
		close(got)
		b.Close()
	}()
	res, err := c.Deliver(t.Context(), "a@b", "ok@a", strings.NewReader("x"))
	<-got
	if dotqmail.ExitCode(err) != 111 || res.Report != spawnFailure || !errors.Is(err, ErrClosed) {
		t.Errorf("in progress: %q %v", res.Report, err)
	}
	<-c.Done()
	if _, err := c.Deliver(t.Context(), "a@b", "ok@a", strings.NewReader("x")); dotqmail.ExitCode(err) != 111 {
		t.Errorf("after: %v", err)
	}
}

// TestMalformedReply: a reply that breaks the protocol ends the
// connection; deliveries fail temporarily with ErrFormat.
func TestMalformedReply(t *testing.T) {
	for _, bad := range []string{"R1:1,1:Q,0:,0:,", "R", "Zjunk", "R1:1,1:K,0:,", "R5:1,1:K,0:,0:,"} {
		t.Run(bad, func(t *testing.T) {
			a, b := socketpair(t)
			c := NewClient(a)
			defer c.Close()
			go func() {
				buf, oob := make([]byte, maxRecord), make([]byte, oobSpace)
				_, oobn, flags, _, _ := b.ReadMsgUnix(buf, oob)
				fds, _ := rights(oob[:oobn], flags, 1)
				closeAll(fds)
				b.WriteMsgUnix([]byte(bad), nil, nil)
			}()
			_, err := c.Deliver(t.Context(), "a@b", "ok@a", strings.NewReader("x"))
			if dotqmail.ExitCode(err) != 111 || !errors.Is(err, ErrFormat) {
				t.Errorf("%v", err)
			}
		})
	}
}

// TestMalformedRequest: a request that breaks the protocol ends ServeConn
// with ErrFormat, never a panic; its descriptors are closed.
func TestMalformedRequest(t *testing.T) {
	msg := messageFile(t, "x")
	r, _, _ := msg.Outer()
	fd := int(r.(*os.File).Fd())
	for _, tt := range []struct {
		name string
		rec  string
		nfd  int
	}{
		{"no descriptor", "D1:1,3:a@b,3:c@d,1:1,", 0},
		{"two descriptors", "D1:1,3:a@b,3:c@d,1:1,", 2},
		{"descriptor on cancel", "C1:1,", 1},
		{"bad size", "D1:1,3:a@b,3:c@d,2:-1,", 1},
		{"bad id", "D2:01,3:a@b,3:c@d,1:1,", 1},
		{"three fields", "D1:1,3:a@b,3:c@d,", 1},
		{"unknown kind", "Q", 0},
		{"bad netstring", "D1:1,3:a@b,3:c@d,1:1", 1},
		{"cancel without id", "C", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, b := socketpair(t)
			done := make(chan error, 1)
			go func() { done <- (&Server{Local: newFake()}).ServeConn(t.Context(), b) }()
			var oob []byte
			if tt.nfd > 0 {
				fds := make([]int, tt.nfd)
				for i := range fds {
					fds[i] = fd
				}
				oob = syscall.UnixRights(fds...)
			}
			if _, _, err := a.WriteMsgUnix([]byte(tt.rec), oob, nil); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, ErrFormat) {
					t.Errorf("ServeConn: %v, want ErrFormat", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("ServeConn goes on")
			}
		})
	}
	// A record longer than the buffer.
	a, b := socketpair(t)
	done := make(chan error, 1)
	go func() { done <- (&Server{Local: newFake()}).ServeConn(t.Context(), b) }()
	big := appendRecord(nil, 'D', "1", strings.Repeat("a", maxRecord), "b", "1")
	if _, _, err := a.WriteMsgUnix(big, syscall.UnixRights(fd), nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrFormat) {
		t.Errorf("long record: %v", err)
	}
}

// TestServeConnCtx: ServeConn returns when its ctx ends, cancelling the
// deliveries in progress.
func TestServeConnCtx(t *testing.T) {
	fake := newFake()
	a, b := socketpair(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- (&Server{Local: fake}).ServeConn(ctx, b) }()
	c := NewClient(a)
	defer c.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Deliver(t.Context(), "a@b", "slow@a", strings.NewReader("x"))
		errc <- err
	}()
	fake.waitUntil(t, "delivery not started", func() bool { return fake.started("slow@a") })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("ServeConn: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeConn goes on after its ctx ended")
	}
	if err := <-errc; dotqmail.ExitCode(err) != 111 {
		t.Errorf("delivery: %v", err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if !fake.cancelled["slow@a"] {
		t.Error("delivery not cancelled")
	}
}
