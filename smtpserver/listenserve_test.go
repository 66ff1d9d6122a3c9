package smtpserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// dialRetry connects to addr, waiting up to 5 s for a server to listen.
func dialRetry(t *testing.T, addr string, cfg *tls.Config) net.Conn {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var c net.Conn
		var err error
		if cfg != nil {
			c, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, cfg)
		} else {
			c, err = net.DialTimeout("tcp", addr, time.Second)
		}
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ListenAndServe and ListenAndServeTLS: a message goes through, implicit
// TLS offers AUTH and not STARTTLS, Close makes them return
// ErrServerClosed; bad addresses and certificates fail at once.
func TestListenAndServe(t *testing.T) {
	dir := t.TempDir()
	cf, kf := testCert(t, dir, "mx.example.org")
	cert, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	clientTLS := &tls.Config{InsecureSkipVerify: true}
	for _, tc := range []struct {
		name      string
		tls       bool
		tlsConfig *tls.Config // Server.TLSConfig
		cert, key string
		addr      string // "" for a free loopback port
		err       string // the error expected at once, "" when it serves
		ehlo      []string
		noEhlo    []string
		with      string // the Received line's protocol word
	}{
		{name: "plain", with: "with SMTP;", noEhlo: []string{"AUTH"}},
		{name: "plain with TLSConfig", tlsConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ehlo: []string{"STARTTLS"}, noEhlo: []string{"AUTH"}, with: "with SMTP;"},
		{name: "tls files", tls: true, cert: cf, key: kf, ehlo: []string{"AUTH PLAIN LOGIN"}, noEhlo: []string{"STARTTLS"}, with: "with ESMTPS ("},
		{name: "tls files over TLSConfig", tls: true, tlsConfig: &tls.Config{MinVersion: tls.VersionTLS13}, cert: cf, key: kf, ehlo: []string{"AUTH PLAIN LOGIN"}, noEhlo: []string{"STARTTLS"}, with: "with ESMTPS ("},
		{name: "tls from TLSConfig", tls: true, tlsConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ehlo: []string{"AUTH PLAIN LOGIN"}, noEhlo: []string{"STARTTLS"}, with: "with ESMTPS ("},
		{name: "tls without a certificate", tls: true, err: "no certificate"},
		{name: "tls missing files", tls: true, cert: filepath.Join(dir, "none.pem"), key: kf, err: "none.pem"},
		{name: "tls key only", tls: true, key: kf, err: "smtpserver"},
		{name: "bad address", addr: "127.0.0.1:99999", err: "invalid port"},
		{name: "tls bad address", tls: true, cert: cf, key: kf, addr: "127.0.0.1:99999", err: "invalid port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &sink{}
			srv := &Server{
				Hostname: "mx.example.org", Enqueuer: k, OpenRelay: true, TLSConfig: tc.tlsConfig, AuthFailDelay: -1,
				Auth: Authenticator(func(ctx context.Context, user, pass string) error { return ErrBadCredentials }),
			}
			addr := tc.addr
			if addr == "" {
				addr = freeAddr(t)
			}
			done := make(chan error, 1)
			go func() {
				if tc.tls {
					done <- srv.ListenAndServeTLS(addr, tc.cert, tc.key)
				} else {
					done <- srv.ListenAndServe(addr)
				}
			}()
			if tc.err != "" {
				select {
				case err := <-done:
					if err == nil || !strings.Contains(err.Error(), tc.err) {
						t.Fatalf("got %v, want an error with %q", err, tc.err)
					}
				case <-time.After(5 * time.Second):
					srv.Close()
					t.Fatal("served")
				}
				return
			}
			var cfg *tls.Config
			if tc.tls {
				cfg = clientTLS
			}
			c := dialRetry(t, addr, cfg)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(c)
			if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "220 mx.example.org") {
				t.Fatalf("greeting %q", l)
			}
			c.Write([]byte("EHLO client.example\r\n"))
			var ehlo []string
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				ehlo = append(ehlo, strings.TrimSpace(l[4:]))
				if l[3] == ' ' {
					break
				}
			}
			has := func(w string) bool {
				for _, e := range ehlo {
					if e == w || strings.HasPrefix(e, w+" ") {
						return true
					}
				}
				return false
			}
			for _, w := range tc.ehlo {
				if !has(w) {
					t.Errorf("EHLO %q lacks %q", ehlo, w)
				}
			}
			for _, w := range tc.noEhlo {
				if has(w) {
					t.Errorf("EHLO %q offers %q", ehlo, w)
				}
			}
			for _, cmd := range []string{"MAIL FROM:<a@example.org>", "RCPT TO:<b@example.net>", "DATA"} {
				c.Write([]byte(cmd + "\r\n"))
				r.ReadString('\n')
			}
			c.Write([]byte("Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n"))
			if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "250") {
				t.Errorf("end of data: %q", l)
			}
			if msgs := k.messages(); len(msgs) != 1 || !strings.Contains(msgs[0].data, "by mx.example.org "+tc.with) {
				t.Errorf("messages %q, want one with %q", msgs, tc.with)
			}
			srv.Close()
			select {
			case err := <-done:
				if !errors.Is(err, ErrServerClosed) {
					t.Errorf("returned %v, want ErrServerClosed", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("did not return after Close")
			}
			// The listener is closed: nothing answers any more.
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				t.Error("still listening after Close")
			}
			// A closed server does not serve again.
			if err := srv.ListenAndServe(addr); !errors.Is(err, ErrServerClosed) {
				t.Errorf("ListenAndServe after Close: %v", err)
			}
		})
	}
}
