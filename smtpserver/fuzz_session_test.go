package smtpserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordConn is a scriptConn that keeps what the server writes.
type recordConn struct {
	scriptConn
	out bytes.Buffer
}

func (c *recordConn) Write(p []byte) (int, error) { return c.out.Write(p) }

// checkReplies checks that out is a sequence of well-formed reply lines:
// three digits, a space or a dash, text without control bytes, CRLF.
func checkReplies(t *testing.T, out []byte) {
	t.Helper()
	for len(out) > 0 {
		i := bytes.Index(out, []byte("\r\n"))
		if i < 0 {
			t.Fatalf("reply without CRLF: %q", out)
		}
		l := out[:i]
		out = out[i+2:]
		if len(l) < 4 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' || l[2] < '0' || l[2] > '9' || l[3] != ' ' && l[3] != '-' {
			t.Fatalf("malformed reply line %q", l)
		}
		for _, c := range l {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("control byte in reply line %q", l)
			}
		}
	}
}

// checkQueued checks the envelopes of what k received: no CR, LF or NUL
// anywhere, in modern mode no control byte and no recipient twice.
func checkQueued(t *testing.T, k *sink, compat bool) {
	t.Helper()
	for _, m := range k.messages() {
		seen := map[string]bool{}
		for _, a := range append([]string{m.from}, m.to...) {
			if strings.ContainsAny(a, "\r\n\x00") || !compat && hasControl(a) {
				t.Fatalf("queued address %q", a)
			}
		}
		for _, a := range m.to {
			if !compat && seen[rcptKey(a)] {
				t.Fatalf("recipient %q queued twice: %q", a, m.to)
			}
			seen[rcptKey(a)] = true
		}
	}
}

// noLeak fails when goroutines started since before have not ended.
func noLeak(t *testing.T, before int) {
	t.Helper()
	for i := 0; runtime.NumGoroutine() > before && i < 200; i++ {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("goroutines: %d before, %d after", before, n)
	}
}

// lmtpEnqueuer gives each recipient its own result from its address, as
// a local delivery does.
func lmtpEnqueuer(k *sink) Enqueuer {
	return EnqueuerFunc(func(ctx context.Context, from string, to []string, r io.Reader) (string, error) {
		id, err := k.Enqueue(ctx, from, to, r)
		if err != nil {
			return "", err
		}
		errs := make(RecipientErrors, len(to))
		var any bool
		for i, a := range to {
			switch {
			case strings.HasPrefix(a, "full"):
				errs[i], any = Reply{452, "4.2.2", "mailbox full\r\n250 injected"}, true
			case strings.HasPrefix(a, "gone"):
				errs[i], any = permErr{}, true
			case strings.HasPrefix(a, "temp"):
				errs[i], any = errTest("disk"), true
			}
		}
		if any {
			return id, errs
		}
		return id, nil
	})
}

// FuzzSessionLMTP runs arbitrary input through an LMTP session, in both
// modes, with per-recipient results: no panic, no goroutine left behind,
// well-formed replies, and no recipient queued twice in modern mode.
func FuzzSessionLMTP(f *testing.F) {
	for _, s := range []string{
		"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<full@d>\r\nRCPT TO:<C@D>\r\nRCPT TO:<c@D>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
		"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<gone@d>\r\nRCPT TO:<temp@d>\r\nBDAT 3\r\nabcBDAT 0 LAST\r\nQUIT\r\n",
		"MAIL FROM:<a@b>\r\nLHLO x\r\nRCPT TO:<c@d>\r\nDATA\r\nx\n.\n",
		"LHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<\"c\rd\"@e>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r.\r\n.\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		before := runtime.NumGoroutine()
		for _, compat := range []bool{true, false} {
			k := &sink{}
			srv := &Server{Hostname: "mx.example", Compat: compat, LMTP: true, OpenRelay: true, Enqueuer: lmtpEnqueuer(k),
				MaxMessageBytes: 1000, MaxRecipients: 50, IsLocalIP: func(ip netipAddr) bool { return false }}
			c := &recordConn{scriptConn: scriptConn{r: bytes.NewReader(in)}}
			err := srv.ServeConn(context.Background(), c, map[string]string{"TCPREMOTEIP": "192.0.2.1"})
			if err != nil && !errors.Is(err, ErrClientGone) && !errors.Is(err, ErrProtocol) {
				t.Fatalf("ServeConn: %v", err)
			}
			checkReplies(t, c.out.Bytes())
			checkQueued(t, k, compat)
		}
		noLeak(t, before)
	})
}

// FuzzSessionHooks runs arbitrary input through sessions with the sender
// and recipient hooks, RELAYCLIENT and an AuthLimiter set: no panic, no
// goroutine left behind, well-formed replies whatever the hooks' replies
// say, hooks never given a control byte (modern) or a CR (compat), and
// only what the hooks accepted queued.
func FuzzSessionHooks(f *testing.F) {
	for _, s := range []string{
		"EHLO x\r\nMAIL FROM:<ok@b>\r\nRCPT TO:<ok@d>\r\nRCPT TO:<no@d>\r\nRCPT TO:<later@d>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO x\r\nMAIL FROM:<reply@b>\r\nMAIL FROM:<no@b>\r\nMAIL FROM:<later@b>\r\nRSET\r\n",
		"EHLO x\r\nAUTH PLAIN AGpvZQBzM2NyZXQ=\r\nMAIL FROM:<a@b>\r\nRCPT TO:<ok@elsewhere>\r\nDATA\r\nx\r\n.\r\n",
		"EHLO x\r\nAUTH PLAIN AGJsb2NrZWQAeA==\r\nAUTH LOGIN am9l\r\neA==\r\n",
		"EHLO x\r\nMAIL FROM:<\"a\rb\"@c>\r\nMAIL FROM:<ok@b>\r\nRCPT TO:<\"c\x01d\"@e>\r\nRCPT TO:<reply@d>\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, relay bool) {
		before := runtime.NumGoroutine()
		for _, compat := range []bool{true, false} {
			var mu sync.Mutex
			okSenders, okRcpts := map[string]bool{"": true}, map[string]bool{}
			check := func(addr string) error {
				if strings.ContainsAny(addr, "\r\n\x00") || !compat && hasControl(addr) {
					t.Fatalf("hook given %q", addr)
				}
				switch {
				case strings.HasPrefix(addr, "no"):
					return permErr{}
				case strings.HasPrefix(addr, "later"):
					return errTest("database down")
				case strings.HasPrefix(addr, "reply"):
					return Reply{Code: 421 + len(addr)%200, Text: "policy\r\nsays " + addr}
				}
				return nil
			}
			k := &sink{}
			srv := &Server{Hostname: "mx.example", Compat: compat, Enqueuer: k, MaxMessageBytes: 1000,
				RcptHosts: HostList([]string{"d"}, nil), AuthOnLoopback: true, AuthFailDelay: -1, AuthLimiter: &fakeLimiter{},
				IsLocalIP: func(ip netipAddr) bool { return false },
				Auth: Authenticator(func(ctx context.Context, u, p string) error {
					if u == "joe" && p == "s3cret" {
						return nil
					}
					return ErrBadCredentials
				}),
				CheckSender: func(ctx context.Context, s *Session, from string) error {
					err := check(from)
					if err == nil {
						mu.Lock()
						okSenders[from] = true
						mu.Unlock()
					}
					return err
				},
				CheckRecipient: func(ctx context.Context, s *Session, to string) error {
					err := check(to)
					if err == nil {
						mu.Lock()
						okRcpts[to] = true
						mu.Unlock()
					}
					return err
				},
			}
			env := map[string]string{"TCPREMOTEIP": "127.0.0.1"}
			if relay {
				env["RELAYCLIENT"] = "@relay.example"
			}
			c := &recordConn{scriptConn: scriptConn{r: bytes.NewReader(in)}}
			err := srv.ServeConn(context.Background(), c, env)
			if err != nil && !errors.Is(err, ErrClientGone) && !errors.Is(err, ErrProtocol) {
				t.Fatalf("ServeConn: %v", err)
			}
			checkReplies(t, c.out.Bytes())
			checkQueued(t, k, compat)
			for _, m := range k.messages() {
				if !okSenders[m.from] {
					t.Fatalf("sender %q queued without CheckSender's approval", m.from)
				}
				for _, a := range m.to {
					if !okRcpts[a] {
						t.Fatalf("recipient %q queued without CheckRecipient's approval", a)
					}
				}
			}
		}
		noLeak(t, before)
	})
}

// fuzzCert is a self-signed certificate made in memory, once per target.
func fuzzCert(f *testing.F) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mx.example"},
		DNSNames:     []string{"mx.example"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		f.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// FuzzSessionTLS runs arbitrary input through a session after STARTTLS (a
// real handshake over net.Pipe), with AUTH offered and an AuthLimiter:
// no panic, no hang (every step has a deadline), no goroutine left behind,
// well-formed replies, and nothing from before the handshake executed.
func FuzzSessionTLS(f *testing.F) {
	for _, s := range []string{
		"EHLO x\r\nAUTH PLAIN AGpvZQBzM2NyZXQ=\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@elsewhere>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO x\r\nSTARTTLS\r\nAUTH LOGIN\r\nam9l\r\neA==\r\nAUTH LOGIN\r\n*\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 3\r\nabcBDAT 2 LAST\r\nxyQUIT\r\n",
		"MAIL FROM:<\"a\rb\"@c>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n",
		"EHLO x\r\nAUTH PLAIN AGJsb2NrZWQAeA==\r\nAUTH PLAIN AGpvZQB4\r\nAUTH PLAIN AGpvZQB4\r\nAUTH PLAIN AGpvZQB4\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	cert := fuzzCert(f)
	clientCfg := &tls.Config{InsecureSkipVerify: true, ServerName: "mx.example"}
	f.Fuzz(func(t *testing.T, in []byte, compat bool) {
		before := runtime.NumGoroutine()
		k := &sink{}
		srv := &Server{Hostname: "mx.example", Compat: compat, Enqueuer: k, MaxMessageBytes: 1000,
			RcptHosts: HostList([]string{"d"}, nil), AuthFailDelay: -1, AuthLimiter: &fakeLimiter{},
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
			IsLocalIP: func(ip netipAddr) bool { return false },
			Auth: Authenticator(func(ctx context.Context, u, p string) error {
				if u == "joe" && p == "s3cret" {
					return nil
				}
				return ErrBadCredentials
			}),
		}
		client, server := net.Pipe()
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(ctx, server, map[string]string{"TCPREMOTEIP": "192.0.2.1"}) }()
		client.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(client)
		// In the clear: a command that must never run after the handshake
		// is pipelined after STARTTLS.
		go io.WriteString(client, "EHLO c\r\nSTARTTLS\r\nMAIL FROM:<smuggled@x>\r\n")
		var ready bool
		for !ready {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("before TLS: %q %v", l, err)
			}
			ready = strings.HasPrefix(l, "220 ") && strings.Contains(l, "TLS")
		}
		tc := tls.Client(client, clientCfg)
		if err := tc.Handshake(); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			if _, err := tc.Write(in); err == nil {
				tc.CloseWrite()
			}
		}()
		var out bytes.Buffer
		io.Copy(&out, tc)
		client.Close()
		<-wrote
		if err := <-done; errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ServeConn = %v: the session hung", err)
		}
		checkReplies(t, out.Bytes())
		checkQueued(t, k, compat)
		for _, m := range k.messages() {
			if m.from == "smuggled@x" {
				t.Fatal("a command sent before the handshake ran after it")
			}
		}
		noLeak(t, before)
	})
}
