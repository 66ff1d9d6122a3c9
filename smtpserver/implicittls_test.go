package smtpserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// serveTLS serves srv on a loopback listener wrapped in tls.NewListener
// (implicit TLS, as on port 465) and returns the listener's address and
// Serve's result.
func serveTLS(t *testing.T, srv *Server) (string, chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(tls.NewListener(l, srv.TLSConfig)) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case err := <-done:
			done <- err
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return l.Addr().String(), done
}

// dialTLS connects to an implicit-TLS server.
func dialTLS(t *testing.T, addr string) *conn {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	tc, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "mx.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return &conn{t: t, c: tc, r: bufio.NewReader(tc)}
}

// On an implicit-TLS connection the session is under TLS from its first
// command: STARTTLS is not offered, AUTH is, as after STARTTLS on a plain
// connection; a plain connection to the same server is unchanged.
func TestImplicitTLSExtensions(t *testing.T) {
	for _, tc := range []struct {
		name             string
		compat, implicit bool
		want, wantNot    []string
	}{
		{"modern plain", false, false, []string{"STARTTLS"}, []string{"AUTH PLAIN LOGIN"}},
		{"modern implicit", false, true, []string{"AUTH PLAIN LOGIN", "CHUNKING"}, []string{"STARTTLS"}},
		{"compat plain", true, false, []string{"STARTTLS"}, []string{"AUTH PLAIN LOGIN"}},
		{"compat implicit", true, true, []string{"AUTH PLAIN LOGIN"}, []string{"STARTTLS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tlsServer(t, &sink{})
			srv.Compat = tc.compat
			var c *conn
			if tc.implicit {
				addr, _ := serveTLS(t, srv)
				c = dialTLS(t, addr)
			} else {
				c = start(t, srv, qmailEnv())
			}
			c.expect("220 mx.example.org ESMTP")
			c.send("EHLO client.example\r\n")
			var ext []string
			for _, l := range c.reply() {
				ext = append(ext, l[4:])
			}
			for _, w := range tc.want {
				if !slices.Contains(ext, w) {
					t.Errorf("EHLO reply %q lacks %q", ext, w)
				}
			}
			for _, w := range tc.wantNot {
				if slices.Contains(ext, w) {
					t.Errorf("EHLO reply %q has %q", ext, w)
				}
			}
			if tc.implicit {
				c.send("STARTTLS\r\n")
				if tc.compat {
					c.expect("503 already in TLS")
				} else {
					c.expect("503 5.5.1 already in TLS")
				}
			}
			c.send("QUIT\r\n")
			c.expect("221 *")
		})
	}
}

// AUTH works on an implicit-TLS connection, the hooks see the TLS state,
// and the Received line says ESMTPSA with the TLS version and cipher.
func TestImplicitTLSAuth(t *testing.T) {
	for _, compat := range []bool{false, true} {
		t.Run(map[bool]string{false: "modern", true: "compat"}[compat], func(t *testing.T) {
			k := &sink{}
			srv := tlsServer(t, k)
			srv.Compat = compat
			sawTLS := make(chan bool, 1)
			srv.CheckSender = func(ctx context.Context, s *Session, from string) error {
				sawTLS <- s.TLS != nil && s.TLS.HandshakeComplete && SessionFrom(ctx) == s
				return nil
			}
			addr, _ := serveTLS(t, srv)
			c := dialTLS(t, addr)
			c.expect("220 *")
			c.send("EHLO client.example\r\n")
			c.reply()
			c.send("AUTH PLAIN AGpvZQB3cm9uZw==\r\n") // \0joe\0wrong
			c.expect("535 *")
			c.send("AUTH PLAIN AGpvZQBzM2NyZXQ=\r\n")
			c.expect("235 *")
			c.send("MAIL FROM:<joe@example.org>\r\n")
			c.expect("250 *")
			if !<-sawTLS {
				t.Error("CheckSender: Session.TLS is not the completed handshake's state")
			}
			c.send("RCPT TO:<x@relay.example>\r\n") // an authenticated client relays
			c.expect("250 *")
			c.send("DATA\r\n")
			c.expect("354 *")
			c.send("hi\r\n.\r\n")
			c.expect("250 *")
			c.send("QUIT\r\n")
			c.expect("221 *")
			msgs := k.messages()
			if len(msgs) != 1 {
				t.Fatalf("messages %+v", msgs)
			}
			rec := msgs[0].data[:strings.Index(msgs[0].data, ";")]
			if !strings.Contains(rec, "(127.0.0.1)") || !strings.Contains(rec, "with ESMTPSA (TLS1.3 TLS_") {
				t.Errorf("Received line %q", rec)
			}
		})
	}
}

// A client that does not complete the handshake is cut by the server's
// timeout (or at once, when what it sends is not TLS), and one stalled in
// the handshake does not hold up a Shutdown.
func TestImplicitTLSHandshakeAbuse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		send  string
		want  error
		limit time.Duration
	}{
		{"silent", "", ErrTimeout, 5 * time.Second},
		{"half a hello", "\x16\x03\x01\x02\x00\x01", ErrTimeout, 5 * time.Second},
		{"plain SMTP", "EHLO client.example\r\n", ErrProtocol, 5 * time.Second},
		{"NUL bytes", strings.Repeat("\x00", 4096), ErrProtocol, 5 * time.Second},
		{"gone", "close", ErrClientGone, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tlsServer(t, &sink{})
			srv.Timeout = 300 * time.Millisecond
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			done := make(chan error, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					done <- err
					return
				}
				done <- srv.ServeConn(t.Context(), tls.Server(c, srv.TLSConfig), nil)
			}()
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			switch tc.send {
			case "":
			case "close":
				c.Close()
			default:
				c.Write([]byte(tc.send))
			}
			begin := time.Now()
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Errorf("ServeConn = %v, want %v", err, tc.want)
				}
			case <-time.After(tc.limit):
				t.Fatal("the session was not cut")
			}
			if tc.want == ErrTimeout && time.Since(begin) < 250*time.Millisecond {
				t.Errorf("cut after %v, before the timeout", time.Since(begin))
			}
			// Nothing was written in the clear: no greeting before the
			// handshake.
			c.SetReadDeadline(time.Now().Add(time.Second))
			b := make([]byte, 512)
			n, _ := c.Read(b)
			if strings.Contains(string(b[:n]), "220") {
				t.Errorf("the server wrote %q in the clear", b[:n])
			}
		})
	}
	t.Run("shutdown", func(t *testing.T) {
		srv := tlsServer(t, &sink{}) // Timeout: 1200 s
		addr, done := serveTLS(t, srv)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		time.Sleep(100 * time.Millisecond) // the session is in the handshake
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		err = <-done
		done <- err
		if err != ErrServerClosed {
			t.Fatalf("Serve = %v", err)
		}
	})
}

// mapEnvConn is a connection with an environment, as the tcprules
// listener's.
type mapEnvConn struct {
	net.Conn
	env map[string]string
}

func (c mapEnvConn) Env() map[string]string { return c.env }

// The environment of a connection under tls.NewListener is that of the
// connection it wraps: the tcprules listener's variables (and the client
// address a PROXY header gave) reach the session.
func TestConnEnvUnderTLS(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	env := map[string]string{"TCPREMOTEIP": "192.0.2.7", "RELAYCLIENT": ""}
	for _, tc := range []struct {
		name string
		c    net.Conn
		want string
	}{
		{"env", mapEnvConn{a, env}, "192.0.2.7"},
		{"tls over env", tls.Server(mapEnvConn{a, env}, &tls.Config{}), "192.0.2.7"},
		{"tls over tls over env", tls.Server(tls.Server(mapEnvConn{a, env}, &tls.Config{}), &tls.Config{}), "192.0.2.7"},
		{"tls over plain", tls.Server(a, &tls.Config{}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ConnEnv(tc.c)
			if got["TCPREMOTEIP"] != tc.want {
				t.Errorf("ConnEnv = %v, want TCPREMOTEIP %q", got, tc.want)
			}
			if _, relay := got["RELAYCLIENT"]; relay != (tc.want != "") {
				t.Errorf("ConnEnv = %v: RELAYCLIENT lost or invented", got)
			}
		})
	}
}
