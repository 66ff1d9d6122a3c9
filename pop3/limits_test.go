package pop3

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// Issue 17, finding 5: a client sending a byte now and then held a
// session forever, since the timeout was per read. Timeout now bounds the
// whole command line.
func TestTrickleTimeout(t *testing.T) {
	for _, compat := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			srv := &Server{Compat: compat, Timeout: 10 * time.Second, Auth: testAuth(t.TempDir())}
			s, cl := net.Pipe()
			defer cl.Close()
			done := make(chan error, 1)
			go func() { done <- srv.ServeConn(context.Background(), s, map[string]string{"TCPREMOTEIP": "127.0.0.1"}) }()
			r := bufio.NewReader(cl)
			if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
				t.Fatalf("greeting %q, %v", l, err)
			}
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cl.Close()
			wg.Go(func() {
				for _, b := range []byte("NOOPNOOPNOOPNOOP") {
					if _, err := cl.Write([]byte{b}); err != nil {
						return
					}
					time.Sleep(3 * time.Second) // well within Timeout per byte
				}
			})
			time.Sleep(9 * time.Second)
			synctest.Wait()
			select {
			case err := <-done:
				t.Fatalf("compat=%v: ended before Timeout: %v", compat, err)
			default:
			}
			time.Sleep(2 * time.Second)
			synctest.Wait()
			select {
			case err := <-done:
				if !errors.Is(err, ErrClientGone) {
					t.Errorf("compat=%v: ServeConn = %v", compat, err)
				}
			default:
				t.Fatalf("compat=%v: a trickling client still holds the session after Timeout", compat)
			}
		})
	}
}

// A modern session ends after an hour by default however busy; a compat
// one has no limit, as qmail.
func TestSessionTimeoutDefault(t *testing.T) {
	for compat, limit := range map[bool]time.Duration{false: time.Hour, true: 0} {
		synctest.Test(t, func(t *testing.T) {
			srv := &Server{Compat: compat, Auth: testAuth(t.TempDir())}
			s, cl := net.Pipe()
			defer cl.Close()
			done := make(chan error, 1)
			go func() { done <- srv.ServeConn(context.Background(), s, map[string]string{"TCPREMOTEIP": "127.0.0.1"}) }()
			r := bufio.NewReader(cl)
			r.ReadString('\n')
			start := time.Now()
			for time.Since(start) < 2*time.Hour {
				if _, err := cl.Write([]byte("NOOP\r\n")); err != nil {
					break
				}
				if _, err := r.ReadString('\n'); err != nil {
					break
				}
				time.Sleep(10 * time.Minute)
			}
			took := time.Since(start)
			switch {
			case limit == 0 && took < 2*time.Hour:
				t.Errorf("compat: the session ended after %v", took)
			case limit > 0 && (took < limit || took > limit+10*time.Minute):
				t.Errorf("modern: the session ended after %v, want %v", took, limit)
			}
			cl.Close()
			<-done
		})
	}
}

// raiseNofile lifts the soft descriptor limit to at least n when it can.
func raiseNofile(t *testing.T, n uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if rl.Cur >= n {
		return
	}
	rl.Cur = min(max(n, rl.Cur), rl.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < n {
		t.Skipf("cannot raise RLIMIT_NOFILE to %d", n)
	}
}

// serve runs srv.Serve on a loopback listener until the test ends.
func serve(t *testing.T, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case err := <-done:
			if err != ErrServerClosed {
				t.Errorf("Serve = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return ln.Addr().String()
}

// greet dials addr from local (nil: any) and returns the first line.
func greet(t *testing.T, addr string, local net.Addr) (net.Conn, string) {
	t.Helper()
	d := net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	l, _ := bufio.NewReader(c).ReadString('\n')
	return c, l
}

// The audit: idle connections from one address took every descriptor and
// locked everybody out. 2,000 from 127.0.0.1 get 20 sessions (the default
// per client) and a refusal each for the rest; 127.0.0.2 still gets its
// greeting at once.
func TestConnLimitPerClient(t *testing.T) {
	raiseNofile(t, 4500)
	srv := &Server{Hostname: "pop.test", Auth: testAuth(t.TempDir())}
	addr := serve(t, srv)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	greeted, refused := 0, 0
	for range 2000 {
		c, l := greet(t, addr, nil)
		switch l {
		case "+OK POP3 server ready\r\n":
			greeted++
			conns = append(conns, c)
		case "-ERR [SYS/TEMP] too many connections\r\n":
			refused++
			c.Close()
		default:
			c.Close()
			t.Fatalf("connection %d: %q", greeted+refused+1, l)
		}
	}
	if greeted != 20 || refused != 1980 {
		t.Errorf("from 127.0.0.1: %d sessions and %d refused, want 20 and 1980", greeted, refused)
	}
	start := time.Now()
	c, l := greet(t, addr, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)})
	defer c.Close()
	if l != "+OK POP3 server ready\r\n" || time.Since(start) > 2*time.Second {
		t.Errorf("127.0.0.2 got %q after %v", l, time.Since(start))
	}
	// A slot freed is a slot available.
	conns[0].Close()
	conns = conns[1:]
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, l := greet(t, addr, nil)
		c.Close()
		if l == "+OK POP3 server ready\r\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed session's slot was not given back: %q", l)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConnLimitTotalAndCompat(t *testing.T) {
	tests := []struct {
		name     string
		srv      *Server
		n, greet int
	}{
		{"total", &Server{MaxConns: 5, MaxConnsPerIP: -1}, 8, 5},
		{"per client", &Server{MaxConnsPerIP: 3}, 8, 3},
		{"unlimited", &Server{MaxConns: -1, MaxConnsPerIP: -1}, 30, 30},
		{"compat", &Server{Compat: true}, 30, 30},
		{"compat set", &Server{Compat: true, MaxConnsPerIP: 2}, 5, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serve(t, tt.srv)
			greeted := 0
			for range tt.n {
				c, l := greet(t, addr, nil)
				defer c.Close()
				if strings.HasPrefix(l, "+OK") {
					greeted++
				} else if l != "-ERR [SYS/TEMP] too many connections\r\n" {
					t.Fatalf("got %q", l)
				}
			}
			if greeted != tt.greet {
				t.Errorf("%d sessions, want %d", greeted, tt.greet)
			}
		})
	}
}

// flakyListener fails its first Accepts with errs, then hands out conns,
// then blocks until closed.
type flakyListener struct {
	mu     sync.Mutex
	errs   []error
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *flakyListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *flakyListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 110} }

func acceptError(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

// Issue 17, finding 9: one transient accept error (ENFILE, ENOBUFS,
// ENOMEM) stopped the whole server. Serve now logs it, waits and goes on.
func TestAcceptErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		var logMu sync.Mutex
		srv := &Server{Auth: testAuth(t.TempDir()), Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))}
		errnos := []syscall.Errno{syscall.ENFILE, syscall.ENFILE, syscall.ENFILE, syscall.EMFILE, syscall.ENOBUFS,
			syscall.ENOMEM, syscall.ECONNABORTED, syscall.EPROTO, syscall.EPERM}
		l := &flakyListener{conns: make(chan net.Conn, 1), closed: make(chan struct{})}
		for _, e := range errnos {
			l.errs = append(l.errs, acceptError(e))
		}
		l.errs = append(l.errs, fmt.Errorf("some other failure"))
		done := make(chan error, 1)
		go func() { done <- srv.Serve(l) }()
		s, cl := net.Pipe()
		l.conns <- s
		r := bufio.NewReader(cl)
		if g, err := r.ReadString('\n'); err != nil || g != "+OK POP3 server ready\r\n" {
			t.Fatalf("greeting %q, %v", g, err)
		}
		cl.Close()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Serve returned %v", err)
		default:
		}
		logMu.Lock()
		n := strings.Count(logs.String(), "pop3: accept")
		ok := strings.Contains(logs.String(), "too many open files in system")
		logMu.Unlock()
		if n != len(errnos)+1 || !ok {
			t.Errorf("%d accept errors logged, want %d:\n%s", n, len(errnos)+1, logs.String())
		}
		srv.Shutdown(context.Background())
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve = %v after Shutdown", err)
		}
	})
}

// A listener closed by someone else ends Serve with its error.
func TestAcceptClosed(t *testing.T) {
	l := &flakyListener{conns: make(chan net.Conn), closed: make(chan struct{})}
	srv := &Server{}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// fakeLimiter refuses the users in block and records every call.
type fakeLimiter struct {
	mu    sync.Mutex
	block map[string]bool
	calls []string
}

func (f *fakeLimiter) Wait(ctx context.Context, addr netip.Addr, user string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "wait "+addr.String()+" "+user)
	if f.block[user] {
		return errors.New("limited")
	}
	return nil
}

func (f *fakeLimiter) Done(addr netip.Addr, user string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("done %s %s %v", addr, user, ok))
}

func (f *fakeLimiter) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// Issue 17, finding 6: the AuthLimiter sees every check of credentials,
// with the client's address, and its refusal skips the check.
func TestAuthLimiter(t *testing.T) {
	dir := vectorMaildir(t)
	checked := 0
	var mu sync.Mutex
	auth := AuthenticatorFunc(func(ctx context.Context, c Credentials) (*User, error) {
		mu.Lock()
		checked++
		mu.Unlock()
		return testAuth(dir).Authenticate(ctx, c)
	})
	lim := &fakeLimiter{block: map[string]bool{"blocked": true}}
	env := map[string]string{"TCPREMOTEIP": "192.0.2.7"}
	tests := []struct {
		name   string
		compat bool
		cmds   [][2]string // command, reply
		calls  []string
		checks int
	}{
		{"good", false, [][2]string{{"USER joe", "+OK*"}, {"PASS good", "+OK*"}},
			[]string{"wait 192.0.2.7 joe", "done 192.0.2.7 joe true"}, 1},
		{"bad", false, [][2]string{{"USER joe", "+OK*"}, {"PASS bad", "-ERR [AUTH]*"}},
			[]string{"wait 192.0.2.7 joe", "done 192.0.2.7 joe false"}, 1},
		{"temporary", false, [][2]string{{"USER temp", "+OK*"}, {"PASS x", "-ERR [SYS/TEMP] authentication temporarily unavailable"}},
			[]string{"wait 192.0.2.7 temp"}, 1},
		{"refused", false, [][2]string{{"USER blocked", "+OK*"}, {"PASS x", "-ERR [SYS/TEMP] too many failed logins, try again later"}},
			[]string{"wait 192.0.2.7 blocked"}, 0},
		{"plain", false, [][2]string{{"AUTH PLAIN AGJsb2NrZWQAeA==", "-ERR [SYS/TEMP] too many failed logins, try again later"},
			{"AUTH PLAIN AGpvZQBzM2NyZXQ=", "+OK*"}},
			[]string{"wait 192.0.2.7 blocked", "wait 192.0.2.7 joe", "done 192.0.2.7 joe true"}, 1},
		{"compat refused", true, [][2]string{{"USER blocked", "+OK "}, {"PASS x", "-ERR authorization failed"}},
			[]string{"wait 192.0.2.7 blocked"}, 0},
		{"apop", true, [][2]string{{"APOP joe 0123", "-ERR authorization failed"}},
			[]string{"wait 192.0.2.7 joe", "done 192.0.2.7 joe false"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checked = 0
			srv := &Server{Compat: tt.compat, Auth: auth, AuthLimiter: lim, AuthFailDelay: -1, AllowPlaintext: true, Now: func() time.Time { return vectorNow }}
			c := startSession(t, srv, env)
			c.expect("+OK*")
			for _, cmd := range tt.cmds {
				c.cmd(cmd[0], cmd[1])
			}
			c.c.Close()
			c.result()
			if got := lim.take(); !slices.Equal(got, tt.calls) {
				t.Errorf("limiter calls %q, want %q", got, tt.calls)
			}
			mu.Lock()
			defer mu.Unlock()
			if checked != tt.checks {
				t.Errorf("%d credentials checks, want %d", checked, tt.checks)
			}
		})
	}
}

// blockingLimiter holds every attempt until its context ends.
type blockingLimiter struct{ waiting chan struct{} }

func (b blockingLimiter) Wait(ctx context.Context, addr netip.Addr, user string) error {
	b.waiting <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func (blockingLimiter) Done(netip.Addr, string, bool) {}

// Close ends a session whose login waits for the AuthLimiter.
func TestCloseDuringLimiterWait(t *testing.T) {
	lim := blockingLimiter{waiting: make(chan struct{}, 1)}
	srv := &Server{Auth: testAuth(t.TempDir()), AuthLimiter: lim}
	c := startSession(t, srv, nil)
	c.expect("+OK*")
	c.cmd("USER joe", "+OK*")
	c.send("PASS good\r\n")
	<-lim.waiting
	srv.Close()
	if err := c.result(); err == nil {
		t.Error("ServeConn = nil")
	}
}
