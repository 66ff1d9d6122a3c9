package smtpserver

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"maps"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func serve(t *testing.T, srv *Server, l net.Listener) chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done; done <- nil })
	return done
}

func dialT(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c, bufio.NewReader(c)
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	l, err := r.ReadString('\n')
	if err != nil {
		return "EOF"
	}
	return strings.TrimRight(l, "\r\n")
}

// envListener gives each connection an environment, as the tcprules
// listener does.
type envListener struct{ net.Listener }
type envConn struct{ net.Conn }

func (l envListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return envConn{c}, nil
}
func (envConn) Env() map[string]string {
	return map[string]string{"TCPREMOTEIP": "198.51.100.7", "TCPREMOTEHOST": "tcprules.example", "TCPLOCALHOST": "mx.example.org", "RELAYCLIENT": ""}
}

func TestServeEnvAndShutdown(t *testing.T) {
	k := &sink{}
	srv := compatServer(k)
	srv.OpenRelay = false
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := serve(t, srv, envListener{l})
	c, r := dialT(t, l.Addr().String())
	if got := readLine(t, r); got != "220 mx.example.org ESMTP" {
		t.Fatalf("greeting %q", got)
	}
	c.Write([]byte("MAIL FROM:<a@b>\r\nRCPT TO:<x@anywhere.example>\r\nDATA\r\n"))
	for _, want := range []string{"250 ok", "250 ok", "354 go ahead"} {
		if got := readLine(t, r); got != want {
			t.Fatalf("got %q want %q", got, want)
		}
	}
	// Shutdown waits for the message in progress.
	sd := make(chan error, 1)
	go func() { sd <- srv.Shutdown(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	c.Write([]byte("hi\r\n.\r\n"))
	if got := readLine(t, r); !strings.HasPrefix(got, "250 ok ") {
		t.Fatalf("final reply %q", got)
	}
	if got := readLine(t, r); got != "421 server shutting down" {
		t.Fatalf("after shutdown %q", got)
	}
	if err := <-sd; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	done <- nil
	m := k.messages()
	if len(m) != 1 || !strings.HasPrefix(m[0].data, "Received: from tcprules.example (198.51.100.7)\n") {
		t.Fatalf("messages %+v", m)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Error("listener still open after Shutdown")
	}
}

func TestServeDefaultEnvAndPerIPLimit(t *testing.T) {
	k := &sink{}
	srv := compatServer(k)
	srv.MaxConnsPerIP = 1
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, srv, l)
	c1, r1 := dialT(t, l.Addr().String())
	if got := readLine(t, r1); got != "220 mx.example.org ESMTP" {
		t.Fatalf("greeting %q", got)
	}
	_, r2 := dialT(t, l.Addr().String())
	if got := readLine(t, r2); got != "421 too many connections from your address" {
		t.Fatalf("second connection: %q", got)
	}
	c1.Write([]byte("MAIL FROM:<a@b>\r\nRCPT TO:<x@y>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n"))
	for range 5 {
		readLine(t, r1)
	}
	m := k.messages()
	if len(m) != 1 || !strings.HasPrefix(m[0].data, "Received: from unknown (127.0.0.1)\n  by 127.0.0.1 with SMTP") {
		t.Fatalf("messages %q", m)
	}
	// The slot is free again.
	waitFor(func() bool { return srv.conns.Open() == 0 })
	_, r3 := dialT(t, l.Addr().String())
	if got := readLine(t, r3); got != "220 mx.example.org ESMTP" {
		t.Fatalf("third connection: %q", got)
	}
}

// TestPerIPLimitSparesRelayClients: connections the rules let relay
// (RELAYCLIENT, a trusted network) count against MaxConns only.
func TestPerIPLimitSparesRelayClients(t *testing.T) {
	srv := compatServer(&sink{})
	srv.MaxConnsPerIP = 1
	srv.MaxConns = 3
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, srv, envListener{l})
	for i := range 3 {
		_, r := dialT(t, l.Addr().String())
		if got := readLine(t, r); got != "220 mx.example.org ESMTP" {
			t.Fatalf("relay client connection %d: %q", i+1, got)
		}
	}
	_, r := dialT(t, l.Addr().String())
	if got := readLine(t, r); !strings.HasPrefix(got, "421 ") {
		t.Fatalf("connection beyond MaxConns: %q", got)
	}
}

func TestCloseAndServeAfterClose(t *testing.T) {
	srv := compatServer(&sink{})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	_, r := dialT(t, l.Addr().String())
	readLine(t, r)
	srv.Close()
	if got := readLine(t, r); got != "EOF" {
		t.Fatalf("after Close: %q", got)
	}
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	l2, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := srv.Serve(l2); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Close = %v", err)
	}
	l2.Close()
}

func TestServeConnContextCancel(t *testing.T) {
	srv := compatServer(&sink{})
	a, b := net.Pipe()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeConn(ctx, a, nil) }()
	r := bufio.NewReader(b)
	if got := readLine(t, r); got != "220 mx.example.org ESMTP" {
		t.Fatalf("greeting %q", got)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("ServeConn = nil after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeConn did not return after cancel")
	}
}

// Policy hooks: sender and recipient checks at MAIL and RCPT time.
func TestPolicyHooks(t *testing.T) {
	k := &sink{}
	srv := compatServer(k)
	srv.Compat = false
	srv.CheckSender = func(ctx context.Context, s *Session, from string) error {
		if SessionFrom(ctx) != s || s.RemoteIP.String() != "192.0.2.9" {
			t.Errorf("session %+v", s)
		}
		switch from {
		case "forged@example.org":
			return Reply{550, "5.7.1", "sender not allowed from your address"}
		case "flaky@example.org":
			return errTest("database down")
		}
		return nil
	}
	srv.CheckRecipient = func(ctx context.Context, s *Session, to string) error {
		switch to {
		case "nobody@example.org":
			return permErr{}
		case "later@example.org":
			return errTest("ldap timeout")
		}
		return nil
	}
	c := start(t, srv, qmailEnv())
	c.expect("220 *")
	c.send("EHLO c\r\n")
	c.reply()
	c.send("MAIL FROM:<forged@example.org>\r\n")
	c.expect("550 5.7.1 sender not allowed from your address")
	c.send("MAIL FROM:<flaky@example.org>\r\n")
	c.expect("451 4.3.0 temporary failure checking sender")
	c.send("RCPT TO:<x@example.org>\r\n")
	c.expect("503 5.5.1 MAIL first (#5.5.1)")
	c.send("MAIL FROM:<ok@example.org>\r\n")
	c.expect("250 2.1.0 ok")
	c.send("RCPT TO:<nobody@example.org>\r\n")
	c.expect("550 5.1.1 sorry, no mailbox here by that name (#5.1.1)")
	c.send("RCPT TO:<later@example.org>\r\n")
	c.expect("451 4.3.0 temporary failure checking recipient")
	c.send("RCPT TO:<joe@example.org>\r\nDATA\r\n")
	c.expect("250 2.1.5 ok")
	c.expect("354 go ahead")
	c.send("hi\r\n.\r\n")
	c.expect("250 2.0.0 ok *")
	if m := k.messages(); len(m) != 1 || len(m[0].to) != 1 || m[0].to[0] != "joe@example.org" {
		t.Fatalf("messages %+v", m)
	}
}

// The zero Server serves: modern replies, no relaying, and 451 for every
// message since it has no Enqueuer.
func TestZeroServer(t *testing.T) {
	var srv Server
	c := start(t, &srv, map[string]string{"TCPREMOTEIP": "192.0.2.1"})
	c.expect("220 *")
	c.send("EHLO c\r\n")
	if ext := strings.Join(c.reply(), "|"); !strings.Contains(ext, "ENHANCEDSTATUSCODES") || strings.Contains(ext, "STARTTLS") || strings.Contains(ext, "AUTH") {
		t.Fatalf("EHLO %s", ext)
	}
	c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d.example>\r\nRCPT TO:<postmaster>\r\nDATA\r\n")
	c.expect("250 2.1.0 ok")
	c.expect("553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)")
	c.expect("250 2.1.5 ok")
	c.expect("451 4.3.0 qqt failure (#4.3.0)")
	c.send("QUIT\r\n")
	c.expect("221 2.0.0 *")
}

// SessionSettings: a session takes the settings of the moment it starts
// and keeps them; a connection's DATABYTES still overrides databytes.
func TestSessionSettings(t *testing.T) {
	const short = 200 * time.Millisecond
	refused := "552 sorry, that message size exceeds my databytes limit (#5.3.4)"
	for _, tt := range []struct {
		name          string
		env           map[string]string // added to qmailEnv
		before, after Settings
		// The final reply to a 20-byte message, before and after the change.
		wantBefore, wantAfter string
	}{
		{"hostname", nil,
			Settings{Hostname: "old.example"}, Settings{Hostname: "new.example"},
			"250 ok *", "250 ok *"},
		{"greeting", nil,
			Settings{Hostname: "mx.example", Greeting: "old NO UCE"}, Settings{Hostname: "mx.example", Greeting: "new NO UCE"},
			"250 ok *", "250 ok *"},
		{"localiphost", nil,
			Settings{Hostname: "mx.example", LocalIPHost: "old.example"}, Settings{Hostname: "mx.example", LocalIPHost: "new.example"},
			"250 ok *", "250 ok *"},
		{"databytes", nil,
			Settings{Hostname: "mx.example"}, Settings{Hostname: "mx.example", MaxMessageBytes: 10},
			"250 ok *", refused},
		{"databytes lifted", nil,
			Settings{Hostname: "mx.example", MaxMessageBytes: 10}, Settings{Hostname: "mx.example"},
			refused, "250 ok *"},
		{"DATABYTES overrides", map[string]string{"DATABYTES": "1000"},
			Settings{Hostname: "mx.example"}, Settings{Hostname: "mx.example", MaxMessageBytes: 10},
			"250 ok *", "250 ok *"},
		{"DATABYTES overrides unlimited", map[string]string{"DATABYTES": "5"},
			Settings{Hostname: "mx.example", MaxMessageBytes: 1000}, Settings{Hostname: "mx.example"},
			refused, refused},
		{"timeout", nil,
			Settings{Hostname: "mx.example", Timeout: 10 * time.Second}, Settings{Hostname: "mx.example", Timeout: short},
			"250 ok *", "250 ok *"},
		{"timeout lengthened", nil,
			Settings{Hostname: "mx.example", Timeout: short}, Settings{Hostname: "mx.example", Timeout: 10 * time.Second},
			"250 ok *", "250 ok *"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := &sink{}
			srv := compatServer(k)
			var cur atomic.Pointer[Settings]
			cur.Store(&tt.before)
			srv.SessionSettings = func(s *Session) Settings {
				if s.RemoteIP.String() != "192.0.2.9" {
					t.Errorf("SessionSettings: session %+v", s)
				}
				return *cur.Load()
			}
			env := qmailEnv()
			maps.Copy(env, tt.env)
			greeting := func(set Settings) string { return cmp.Or(set.Greeting, set.Hostname) }

			old := start(t, srv, env)
			old.expect("220 " + greeting(tt.before) + " ESMTP")
			cur.Store(&tt.after)
			// The new session runs to its end (or its timeout) while the old
			// one waits: the old one is idle longer than a short new timeout.
			for _, s := range []struct {
				c    *conn
				set  Settings
				want string
			}{
				{start(t, srv, env), tt.after, tt.wantAfter},
				{old, tt.before, tt.wantBefore},
			} {
				c, set := s.c, s.set
				if c == old && set.Timeout == short {
					// It waited longer than its timeout for the new session.
					c.expect("451 timeout (#4.4.2)")
					c.expectEOF()
					continue
				}
				if c != old {
					c.expect("220 " + greeting(set) + " ESMTP")
				}
				n := len(k.messages())
				c.send("HELO client.example\r\n")
				c.expect("250 " + greeting(set))
				c.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<x@[127.0.0.1]>\r\nDATA\r\n")
				c.expect("250 ok")
				c.expect("250 ok")
				c.expect("354 go ahead")
				c.send("0123456789012345678\r\n.\r\n")
				c.expect(s.want)
				if m := k.messages(); s.want != refused {
					// The domain literal naming the host becomes localiphost.
					if len(m) != n+1 || m[n].to[0] != "x@"+cmp.Or(set.LocalIPHost, set.Hostname) {
						t.Fatalf("messages %+v", m)
					}
				}
				if set.Timeout == short {
					c.expect("451 timeout (#4.4.2)")
					c.expectEOF()
					continue
				}
				if tt.before.Timeout == short || tt.after.Timeout == short {
					time.Sleep(2 * short)
				}
				c.send("NOOP\r\nQUIT\r\n")
				c.expect("250 ok")
				c.expect("221 " + greeting(set))
				if err := c.wait(); err != nil {
					t.Fatalf("ServeConn = %v", err)
				}
			}
		})
	}
}
