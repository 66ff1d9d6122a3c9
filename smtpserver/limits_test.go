package smtpserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// faultyListener fails its first n Accepts with err, then accepts from the
// real listener.
type faultyListener struct {
	net.Listener
	err   error
	n     int
	fails atomic.Int32
}

func (l *faultyListener) Accept() (net.Conn, error) {
	if int(l.fails.Add(1)) <= l.n {
		return nil, l.err
	}
	return l.Listener.Accept()
}

func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

// Finding 9: one transient accept error (ENFILE, ENOBUFS, ENOMEM, ...)
// stopped the whole mta. Serve now backs off and keeps serving, whatever
// the error, until the listener is closed.
func TestServeSurvivesAcceptErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"ENFILE", acceptErr(syscall.ENFILE)},
		{"EMFILE", acceptErr(syscall.EMFILE)},
		{"ENOBUFS", acceptErr(syscall.ENOBUFS)},
		{"ENOMEM", acceptErr(syscall.ENOMEM)},
		{"ECONNABORTED", acceptErr(syscall.ECONNABORTED)},
		{"EPROTO", acceptErr(syscall.EPROTO)},
		{"EPERM", acceptErr(syscall.EPERM)},
		{"other", errors.New("something odd")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l := &faultyListener{Listener: ln, err: tt.err, n: 4}
			srv := compatServer(&sink{})
			done := serve(t, srv, l)
			for i := range 2 {
				c, r := dialT(t, ln.Addr().String())
				if got := readLine(t, r); got != "220 mx.example.org ESMTP" {
					select {
					case err := <-done:
						done <- err // for serve's cleanup
						t.Fatalf("connection %d: %q; Serve returned %v", i, got, err)
					default:
						t.Fatalf("connection %d: %q", i, got)
					}
				}
				c.Close()
			}
			if n := l.fails.Load(); n < 5 {
				t.Fatalf("%d Accept calls, want the 4 failures and more", n)
			}
		})
	}
}

// Serve ends when the listener is closed under it (with net.ErrClosed), and
// promptly on Close while it is backing off.
func TestServeEndsOnClosedListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := compatServer(&sink{})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	c, r := dialT(t, ln.Addr().String())
	readLine(t, r)
	ln.Close()
	c.Close() // Serve waits for its sessions
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its listener was closed")
	}

	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	srv2 := compatServer(&sink{})
	l := &faultyListener{Listener: ln2, err: acceptErr(syscall.ENFILE), n: 1 << 30}
	go func() { done <- srv2.Serve(l) }()
	time.Sleep(100 * time.Millisecond) // into the backoff
	t0 := time.Now()
	srv2.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve = %v", err)
		}
		if d := time.Since(t0); d > 500*time.Millisecond {
			t.Fatalf("Serve took %v to return after Close", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
}

// slotListener is tcpserver -c (and the tcprules listener's Limit): at
// most cap(sem) connections open at once; at the limit it stops accepting
// until one is closed.
type slotListener struct {
	net.Listener
	sem  chan struct{}
	done chan struct{}
	once sync.Once
}

func (l *slotListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &slotConn{Conn: c, sem: l.sem}, nil
}

func (l *slotListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type slotConn struct {
	net.Conn
	sem  chan struct{}
	once sync.Once
}

func (c *slotConn) Close() error {
	c.once.Do(func() { <-c.sem })
	return c.Conn.Close()
}

// raiseNOFILE makes room for n more descriptors if it can, and returns
// how many connections the test may open.
func raiseNOFILE(t *testing.T, n int) int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Logf("getrlimit: %v", err)
		return n
	}
	need := uint64(2*n + 256) // both ends of each connection, and the rest
	if rl.Cur < need {
		rl.Cur = min(max(need, rl.Cur), rl.Max)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	if rl.Cur < need {
		m := int(rl.Cur-256) / 2
		t.Logf("RLIMIT_NOFILE is %d: %d connections instead of %d", rl.Cur, m, n)
		return m
	}
	return n
}

// Finding 5: 2,000 idle connections from one address, to a port with 40
// slots (as the mta's SMTP port had) and to one without, while a client at
// another address still gets its greeting promptly. Before the fix the 40
// slots were all taken by the first address, or every descriptor in the
// process was.
func TestConnLimitPerClient(t *testing.T) {
	n := raiseNOFILE(t, 2000)
	for _, slots := range []int{40, 0} {
		t.Run(fmt.Sprintf("slots=%d", slots), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var l net.Listener = ln
			if slots > 0 {
				l = &slotListener{Listener: ln, sem: make(chan struct{}, slots), done: make(chan struct{})}
			}
			srv := &Server{Hostname: "mx.example.org"} // modern defaults
			serve(t, srv, l)
			addr := ln.Addr().String()
			conns := make([]net.Conn, 0, n)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for i := 0; i < n; i++ {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
				conns = append(conns, c)
			}
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
			t0 := time.Now()
			other, err := d.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			other.SetReadDeadline(time.Now().Add(3 * time.Second))
			if got, err := bufio.NewReader(other).ReadString('\n'); got != "220 mx.example.org ESMTP\r\n" {
				t.Fatalf("127.0.0.2 got %q, %v after %v", got, err, time.Since(t0))
			}
			// Of the idle connections, 20 have a session; the others were
			// told why and closed.
			var greeted, refused, other2 atomic.Int32
			var wg sync.WaitGroup
			for _, c := range conns {
				wg.Go(func() {
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					r := bufio.NewReader(c)
					l, _ := r.ReadString('\n')
					switch l {
					case "220 mx.example.org ESMTP\r\n":
						greeted.Add(1)
					case "421 4.7.0 too many connections from your address\r\n":
						if _, err := r.ReadByte(); err != io.EOF {
							t.Errorf("after 421: %v, want EOF", err)
						}
						refused.Add(1)
					default:
						other2.Add(1)
					}
				})
			}
			wg.Wait()
			if greeted.Load() != 20 || refused.Load() != int32(n-20) {
				t.Fatalf("%d greeted, %d refused, %d other", greeted.Load(), refused.Load(), other2.Load())
			}
		})
	}
}

// MaxConns bounds all sessions together; the Compat mode keeps qmail's
// unlimited default (tcpserver -c limits in front of qmail-smtpd).
func TestConnLimitTotal(t *testing.T) {
	tests := []struct {
		name            string
		compat          bool
		maxConns, perIP int
		n               int
		want            []string // the greeting of each connection
	}{
		{"total", false, 3, -1, 4, []string{"220 *", "220 *", "220 *", "421 4.7.0 too many connections, try again later"}},
		{"total compat", true, 2, 0, 3, []string{"220 *", "220 *", "421 too many connections, try again later"}},
		{"per client compat", true, 0, 2, 3, []string{"220 *", "220 *", "421 too many connections from your address"}},
		{"compat unlimited", true, 0, 0, 30, nil},
		{"modern per client", false, 0, 0, 21, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := compatServer(&sink{})
			srv.Compat, srv.MaxConns, srv.MaxConnsPerIP = tt.compat, tt.maxConns, tt.perIP
			serve(t, srv, ln)
			want := tt.want
			if want == nil {
				for range tt.n {
					want = append(want, "220 mx.example.org ESMTP")
				}
				if !tt.compat {
					want[20] = "421 4.7.0 too many connections from your address"
				}
			}
			for i, w := range want {
				_, r := dialT(t, ln.Addr().String())
				got := readLine(t, r)
				if got != w && !(strings.HasSuffix(w, "*") && strings.HasPrefix(got, strings.TrimSuffix(w, "*"))) {
					t.Fatalf("connection %d: %q, want %q", i, got, w)
				}
			}
		})
	}
}

// A refused connection is closed at once even when the client never reads.
func TestConnLimitRefusalDoesNotWait(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := compatServer(&sink{})
	srv.Compat, srv.MaxConns = false, 1
	done := serve(t, srv, ln)
	_, r := dialT(t, ln.Addr().String())
	readLine(t, r)
	for range 50 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	// Close waits for every goroutine Serve started: the refusals have
	// all ended.
	t0 := time.Now()
	srv.Close()
	<-done
	done <- nil
	if d := time.Since(t0); d > refuseTimeout {
		t.Fatalf("Serve took %v to end", d)
	}
}

// pipeClient is a client in a synctest bubble: it reads the server's lines
// in a goroutine of its own.
type pipeClient struct {
	t     *testing.T
	c     net.Conn
	lines chan string
	done  chan error
}

func startPipe(t *testing.T, srv *Server, env map[string]string) *pipeClient {
	client, server := net.Pipe()
	pc := &pipeClient{t: t, c: client, lines: make(chan string, 100), done: make(chan error, 1)}
	go func() { pc.done <- srv.ServeConn(context.Background(), server, env) }()
	go func() {
		r := bufio.NewReader(client)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				close(pc.lines)
				return
			}
			pc.lines <- strings.TrimSuffix(l, "\r\n")
		}
	}()
	return pc
}

func (pc *pipeClient) send(s string) {
	pc.t.Helper()
	if _, err := io.WriteString(pc.c, s); err != nil {
		pc.t.Fatalf("send %q: %v", s, err)
	}
}

// expect waits for the next line (fake time passes as the bubble blocks).
func (pc *pipeClient) expect(want string) {
	pc.t.Helper()
	l, ok := <-pc.lines
	if !ok {
		pc.t.Fatalf("want %q, got EOF", want)
	}
	if l != want && !(strings.HasSuffix(want, "*") && strings.HasPrefix(l, strings.TrimSuffix(want, "*"))) {
		pc.t.Fatalf("want %q, got %q", want, l)
	}
}

// trickle writes body a byte at a time, every gap, until the server stops
// reading; it returns how long it wrote.
func (pc *pipeClient) trickle(body string, gap time.Duration) time.Duration {
	t0 := time.Now()
	for i := 0; i < len(body); i++ {
		pc.c.SetWriteDeadline(time.Now().Add(time.Hour))
		if _, err := pc.c.Write([]byte{body[i]}); err != nil {
			break
		}
		time.Sleep(gap)
	}
	return time.Since(t0)
}

// Finding 5: a DATA phase trickling a byte every 2 s lasted an hour. With
// the modern default (1024 bytes/s after 30 s) it is cut after 30 s, with
// 451 4.4.2, and nothing is queued; a client sending at a fair rate, or one
// whose Enqueuer is slow, is not cut; Compat mode has no minimum.
func TestMinDataRate(t *testing.T) {
	body := strings.Repeat(strings.Repeat("x", 78)+"\r\n", 40) + ".\r\n" // 3203 bytes
	tests := []struct {
		name    string
		compat  bool
		rate    int
		bdat    bool
		gap     time.Duration // between bytes; 0: all at once
		slowEnq time.Duration // the Enqueuer stops this long after its first read
		cut     bool
	}{
		{name: "trickle", gap: 2 * time.Second, cut: true},
		{name: "trickle bdat", bdat: true, gap: 2 * time.Second, cut: true},
		{name: "trickle rate", rate: 100, gap: 20 * time.Millisecond, cut: true},
		{name: "fair rate", rate: 10, gap: 20 * time.Millisecond},
		{name: "at once"},
		{name: "at once bdat", bdat: true},
		{name: "slow enqueuer", slowEnq: 10 * time.Minute},
		{name: "compat trickle", compat: true, gap: 100 * time.Millisecond},
		{name: "no minimum", rate: -1, gap: 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				k := &sink{}
				srv := compatServer(k)
				srv.Compat, srv.MinDataRate = tt.compat, tt.rate
				if tt.slowEnq > 0 {
					srv.Enqueuer = EnqueuerFunc(func(ctx context.Context, from string, to []string, r io.Reader) (string, error) {
						var b [1]byte
						r.Read(b[:])
						time.Sleep(tt.slowEnq)
						return k.Enqueue(ctx, from, to, io.MultiReader(bytes.NewReader(b[:]), r))
					})
				}
				pc := startPipe(t, srv, qmailEnv())
				defer pc.c.Close()
				pc.expect("220 *")
				pc.send("EHLO c\r\n")
				for l := range pc.lines {
					if strings.HasPrefix(l, "250 ") {
						break
					}
				}
				pc.send("MAIL FROM:<a@b>\r\n")
				pc.expect("250 *")
				pc.send("RCPT TO:<c@d>\r\n")
				pc.expect("250 *")
				data := body
				if tt.bdat {
					pc.send("BDAT 2\r\nhi")
					pc.expect("250 *")
					data = ""
					for i := 0; i < 100; i++ {
						data += "BDAT 1\r\nx"
					}
					data += "BDAT 0 LAST\r\n"
				} else {
					pc.send("DATA\r\n")
					pc.expect("354 go ahead")
				}
				var took time.Duration
				if tt.gap > 0 {
					took = pc.trickle(data, tt.gap)
				} else {
					go pc.send(data)
				}
				for l := range pc.lines {
					if tt.bdat && strings.HasSuffix(l, "octets received") {
						continue
					}
					want := "250 *"
					if tt.cut {
						want = "451 4.4.2 data transfer too slow, closing connection"
					}
					if l != want && !(want == "250 *" && strings.HasPrefix(l, "250 ")) {
						t.Fatalf("reply %q after %v, want %q", l, took, want)
					}
					break
				}
				if tt.cut {
					if err := <-pc.done; err != ErrTooSlow {
						t.Fatalf("ServeConn = %v", err)
					}
					if n := len(k.messages()); n != 0 {
						t.Fatalf("%d messages queued", n)
					}
					if tt.rate == 0 && (took < 30*time.Second || took > 32*time.Second) {
						t.Fatalf("cut after %v, want 30 s", took)
					}
					return
				}
				if n := len(k.messages()); n != 1 {
					t.Fatalf("%d messages queued", n)
				}
				pc.send("QUIT\r\n")
				pc.expect("221 *")
			})
		})
	}
}

// A session gives its place back at QUIT, before its 221: a client that
// connects again as soon as it has the 221 is never refused (smtp-source's
// one message per connection at the per-client limit).
func TestConnLimitFreedAtQuit(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := compatServer(&sink{})
	srv.Compat, srv.MaxConnsPerIP = false, 1
	serve(t, srv, ln)
	for i := range 300 {
		c, r := dialT(t, ln.Addr().String())
		if got := readLine(t, r); !strings.HasPrefix(got, "220 ") {
			t.Fatalf("connection %d: %q", i, got)
		}
		c.Write([]byte("QUIT\r\n"))
		if got := readLine(t, r); !strings.HasPrefix(got, "221 ") {
			t.Fatalf("connection %d: QUIT: %q", i, got)
		}
		c.Close()
	}
}

// The data rate is measured on what arrives under TLS after STARTTLS too:
// a client sending at a fair rate for longer than the grace period is not
// cut, one trickling is.
func TestMinDataRateTLS(t *testing.T) {
	cf, kf := testCert(t, t.TempDir(), "mx.example.org")
	cert, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		gap time.Duration
		cut bool
	}{{20 * time.Millisecond, false}, {2 * time.Second, true}} {
		t.Run(tt.gap.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				k := &sink{}
				srv := compatServer(k)
				srv.Compat, srv.MinDataRate = false, 10
				srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
				client, server := net.Pipe()
				defer client.Close()
				done := make(chan error, 1)
				go func() { done <- srv.ServeConn(context.Background(), server, qmailEnv()) }()
				r := bufio.NewReader(client)
				go io.WriteString(client, "EHLO c\r\nSTARTTLS\r\n")
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						t.Fatal(err)
					}
					if strings.HasPrefix(l, "220 2.0.0") {
						break
					}
				}
				tc := tls.Client(client, &tls.Config{InsecureSkipVerify: true})
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				pc := &pipeClient{t: t, c: tc, lines: make(chan string, 100), done: done}
				go func() {
					r := bufio.NewReader(tc)
					for {
						l, err := r.ReadString('\n')
						if err != nil {
							close(pc.lines)
							return
						}
						pc.lines <- strings.TrimSuffix(l, "\r\n")
					}
				}()
				pc.send("EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
				for l := range pc.lines {
					if strings.HasPrefix(l, "354") {
						break
					}
				}
				took := pc.trickle(strings.Repeat(strings.Repeat("x", 78)+"\r\n", 40)+".\r\n", tt.gap)
				l := <-pc.lines
				if tt.cut != strings.HasPrefix(l, "451 4.4.2") || !tt.cut && !strings.HasPrefix(l, "250 ") {
					t.Fatalf("after %v: %q", took, l)
				}
				if !tt.cut && took < time.Minute {
					t.Fatalf("the client took %v, not past the grace period", took)
				}
			})
		})
	}
}
