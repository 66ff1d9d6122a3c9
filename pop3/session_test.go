package pop3

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// testCert makes a self-signed certificate for 127.0.0.1 and localhost.
func testCert(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestSTLS(t *testing.T) {
	dir := vectorMaildir(t)
	cert, pool := testCert(t)
	srv := &Server{Auth: testAuth(dir), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, AuthFailDelay: -1}
	c := startSession(t, srv, map[string]string{"TCPREMOTEIP": "192.0.2.1"})
	c.expect("+OK*")
	c.send("CAPA\r\n")
	c.expect("+OK*")
	capa := c.multi()
	if !slices.Contains(capa, "STLS") || slices.Contains(capa, "USER") || slices.Contains(capa, "SASL PLAIN") {
		t.Fatalf("CAPA before STLS: %q", capa)
	}
	c.cmd("USER joe", errPlaintext)
	// A command pipelined after STLS must be dropped, never run.
	c.send("STLS\r\nQUIT\r\n")
	c.expect("+OK Begin TLS negotiation")
	tc := tls.Client(c.c, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.c, c.r = tc, bufio.NewReader(tc)
	c.send("CAPA\r\n")
	c.expect("+OK*")
	capa = c.multi()
	if slices.Contains(capa, "STLS") || !slices.Contains(capa, "USER") || !slices.Contains(capa, "SASL PLAIN") {
		t.Fatalf("CAPA after STLS: %q", capa)
	}
	c.cmd("STLS", "-ERR already under TLS")
	c.cmd("AUTH PLAIN AGpvZQBzM2NyZXQ=", "+OK 3 messages")
	c.cmd("STLS", "-ERR unknown command")
	c.cmd("QUIT", "+OK bye")
	if err := c.result(); err != nil {
		t.Fatal(err)
	}
}

func TestImplicitTLS(t *testing.T) {
	dir := vectorMaildir(t)
	cert, pool := testCert(t)
	srv := &Server{Auth: testAuth(dir)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})) }()
	tc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, c: tc, r: bufio.NewReader(tc)}
	c.expect("+OK*")
	c.send("CAPA\r\n")
	c.expect("+OK*")
	if capa := c.multi(); slices.Contains(capa, "STLS") || !slices.Contains(capa, "USER") {
		t.Fatalf("CAPA: %q", capa)
	}
	c.cmd("USER joe", "+OK*")
	c.cmd("PASS good", "+OK 3 messages")
	c.cmd("QUIT", "+OK bye")
	tc.Close()
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
}

// The modern server locks a maildrop: a second session cannot log in
// while the first is in the transaction state.
func TestLockTwoSessions(t *testing.T) {
	dir := vectorMaildir(t)
	srv := &Server{Auth: testAuth(dir), AuthFailDelay: -1}
	env := map[string]string{"TCPREMOTEIP": "127.0.0.1"}
	a := startSession(t, srv, env)
	a.login()
	b := startSession(t, srv, env)
	b.expect("+OK*")
	b.cmd("USER joe", "+OK*")
	b.cmd("PASS good", "-ERR [IN-USE] mailbox already locked")
	// Another process (here: another open file description) is kept out
	// by the flock too.
	if _, err := OpenMaildir(dir, MaildirOptions{Lock: true}); !errors.Is(err, ErrInUse) {
		t.Fatalf("OpenMaildir while locked: %v", err)
	}
	a.cmd("DELE 1", "+OK*")
	a.cmd("QUIT", "+OK bye")
	a.result()
	// The lock went with the first session; the second may now log in
	// (RFC 1939: it stays in the authorization state).
	b.cmd("USER joe", "+OK*")
	b.cmd("PASS good", "+OK 2 messages")
	b.cmd("QUIT", "+OK bye")
	if err := b.result(); err != nil {
		t.Fatal(err)
	}
	mb, err := OpenMaildir(dir, MaildirOptions{Lock: true})
	if err != nil {
		t.Fatalf("lock not released: %v", err)
	}
	mb.Close()
}

// qmail-pop3d has no lock: two sessions both delete message 1, and the
// second QUIT reports the failed unlink before its +OK, as qmail-pop3d's
// does.
func TestCompatTwoSessions(t *testing.T) {
	dir := vectorMaildir(t)
	srv := &Server{Compat: true, Auth: testAuth(dir), Now: func() time.Time { return vectorNow }}
	a := startSession(t, srv, nil)
	a.login()
	b := startSession(t, srv, nil)
	b.login()
	a.cmd("DELE 1", "+OK ")
	b.cmd("DELE 1", "+OK ")
	a.cmd("QUIT", "+OK ")
	b.send("QUIT\r\n")
	b.expect("-ERR unable to unlink all deleted messages")
	b.expect("+OK ")
	if exists(filepath.Join(dir, "cur/999.2.host:2,S")) {
		t.Fatal("message 1 not deleted")
	}
}

func uidls(c *client) []string {
	c.send("UIDL\r\n")
	c.expect("+OK*")
	return c.multi()
}

// UIDLs stay the same across sessions, the move new/→cur/, and flag
// changes: the UIDL is the file name cut at the first ':'.
func TestUIDLStable(t *testing.T) {
	for _, compat := range []bool{true, false} {
		dir := vectorMaildir(t)
		srv := &Server{Compat: compat, SeenOnRetr: true, Auth: testAuth(dir), Now: func() time.Time { return vectorNow }}
		a := startSession(t, srv, nil)
		a.login()
		first := uidls(a)
		a.send("RETR 2\r\n")
		a.expect("+OK*")
		a.multi()
		a.cmd("QUIT", "+OK*")
		a.result()
		if !exists(filepath.Join(dir, "cur/1001.3.host:2,")) {
			t.Fatal("new/ message not moved to cur/")
		}
		seen := "cur/1000.1.host:2,S"
		if compat {
			seen = "cur/1000.1.host:2," // qmail adds no flag
		}
		if !exists(filepath.Join(dir, seen)) {
			t.Fatalf("compat %v: %s missing", compat, seen)
		}
		b := startSession(t, srv, nil)
		b.login()
		if second := uidls(b); !slices.Equal(first, second) {
			t.Fatalf("compat %v: UIDLs changed: %q then %q", compat, first, second)
		}
		b.cmd("QUIT", "+OK*")
	}
}

// A session that ends before QUIT deletes and moves nothing.
func TestDroppedSessionDeletesNothing(t *testing.T) {
	for _, compat := range []bool{true, false} {
		dir := vectorMaildir(t)
		srv := &Server{Compat: compat, Auth: testAuth(dir), Now: func() time.Time { return vectorNow }}
		c := startSession(t, srv, nil)
		c.login()
		for _, n := range []string{"1", "2", "3"} {
			c.cmd("DELE "+n, "+OK*")
		}
		c.send("QUIT") // no line end: never executed
		c.c.Close()
		if err := c.result(); !errors.Is(err, ErrClientGone) {
			t.Fatalf("ServeConn = %v", err)
		}
		for _, m := range vectorMessages {
			if !exists(filepath.Join(dir, m.path)) {
				t.Fatalf("compat %v: %s changed", compat, m.path)
			}
		}
	}
}

// Messages modified in the current second (or later) wait for the next
// session: qmail-pop3d lists only files modified strictly before its start.
func TestMtimeStrictlyBefore(t *testing.T) {
	dir := vectorMaildir(t)
	p := filepath.Join(dir, "new/1795300720.9.host")
	os.WriteFile(p, []byte("x\n"), 0o600)
	at := vectorNow.Add(500 * time.Millisecond)
	os.Chtimes(p, at, at)
	mb, err := OpenMaildir(dir, MaildirOptions{Now: func() time.Time { return vectorNow.Add(900 * time.Millisecond) }})
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := mb.Messages(t.Context())
	mb.Close()
	if len(msgs) != 3 {
		t.Fatalf("listed %d messages, want 3 (not the one of the current second)", len(msgs))
	}
	mb, _ = OpenMaildir(dir, MaildirOptions{Now: func() time.Time { return vectorNow.Add(time.Second) }})
	msgs, _ = mb.Messages(t.Context())
	mb.Close()
	if len(msgs) != 4 || msgs[3].UID != "1795300720.9.host" {
		t.Fatalf("next second: %+v", msgs)
	}
}

// tmp/ files unaccessed for more than 36 hours are removed at session
// start, as qmail-pop3d does; a younger one stays.
func TestCleanTmp(t *testing.T) {
	dir := vectorMaildir(t)
	old, young := filepath.Join(dir, "tmp/old"), filepath.Join(dir, "tmp/young")
	for p, age := range map[string]time.Duration{old: 36*time.Hour + time.Second, young: 36 * time.Hour} {
		os.WriteFile(p, nil, 0o600)
		os.Chtimes(p, vectorNow.Add(-age), vectorNow.Add(-age))
	}
	mb, err := OpenMaildir(dir, MaildirOptions{Now: func() time.Time { return vectorNow }})
	if err != nil {
		t.Fatal(err)
	}
	mb.Close()
	if exists(old) || !exists(young) {
		t.Fatalf("old exists %v, young exists %v", exists(old), exists(young))
	}
}

func TestWireSizeCache(t *testing.T) {
	dir := vectorMaildir(t)
	// A Dovecot ",W=" field is believed without reading the file.
	w := filepath.Join(dir, "cur/1.2.host,S=3,W=999:2,")
	os.WriteFile(w, []byte("ab\n"), 0o600)
	os.Chtimes(w, vectorNow.Add(-time.Hour), vectorNow.Add(-time.Hour))
	open := func() []Message {
		mb, err := OpenMaildir(dir, MaildirOptions{Lock: true, WireSizes: true, Now: func() time.Time { return vectorNow }})
		if err != nil {
			t.Fatal(err)
		}
		defer mb.Close()
		msgs, err := mb.Messages(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return msgs
	}
	msgs := open()
	var got []int64
	for _, m := range msgs {
		got = append(got, m.WireSize)
	}
	if !slices.Equal(got, []int64{999, 29, 40, 37}) {
		t.Fatalf("wire sizes %v", got)
	}
	cache, err := os.ReadFile(filepath.Join(dir, "pop3sizes"))
	if err != nil || !strings.Contains(string(cache), "1000.1.host 35 40\n") || strings.Contains(string(cache), "W=999") {
		t.Fatalf("pop3sizes: %q, %v", cache, err)
	}
	// The cache is used: a poisoned entry shows through.
	os.WriteFile(filepath.Join(dir, "pop3sizes"), []byte("1000.1.host 35 41\n"), 0o600)
	if msgs := open(); msgs[2].WireSize != 41 {
		t.Fatalf("cache not used: %+v", msgs[2])
	}
	// An entry for another file size is not.
	os.WriteFile(filepath.Join(dir, "pop3sizes"), []byte("1000.1.host 36 41\n"), 0o600)
	if msgs := open(); msgs[2].WireSize != 40 {
		t.Fatalf("stale cache entry used: %+v", msgs[2])
	}
}

func TestSafeUID(t *testing.T) {
	long := strings.Repeat("a", 71)
	for _, tt := range []struct{ in, out string }{
		{"1000.1.host", "1000.1.host"},
		{strings.Repeat("a", 70), strings.Repeat("a", 70)},
		{long, hashUID(long)},
		{"a b", hashUID("a b")},
		{"é", hashUID("é")},
		{"", hashUID("")},
	} {
		got := SafeUID(tt.in)
		if got != tt.out || len(got) > 70 {
			t.Errorf("SafeUID(%q) = %q", tt.in, got)
		}
	}
	if SafeUID("a b") != SafeUID("a b") || SafeUID("a b") == SafeUID("a c") {
		t.Fatal("not stable or not distinct")
	}
}

// Shutdown ends a session waiting for a command, without its update.
func TestShutdown(t *testing.T) {
	dir := vectorMaildir(t)
	srv := &Server{Auth: testAuth(dir)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &client{t: t, c: conn, r: bufio.NewReader(conn)}
	c.login()
	c.cmd("DELE 1", "+OK*")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	if !exists(filepath.Join(dir, vectorMessages[0].path)) {
		t.Fatal("deleted without QUIT")
	}
	if err := srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown = %v", err)
	}
}

func TestClose(t *testing.T) {
	dir := vectorMaildir(t)
	srv := &Server{Auth: testAuth(dir)}
	c := startSession(t, srv, nil)
	c.login()
	srv.Close()
	if err := c.result(); err == nil {
		t.Fatal("session survived Close")
	}
}

// The idle timeout (qmail's 1200 s) ends a session without its update.
func TestIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := vectorMaildir(t)
		srv := &Server{Compat: true, Auth: testAuth(dir), Now: func() time.Time { return vectorNow }}
		s, cl := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(context.Background(), s, map[string]string{"TCPREMOTEIP": "127.0.0.1"}) }()
		c := &client{t: t, c: cl, r: bufio.NewReader(cl)}
		c.login()
		c.cmd("DELE 1", "+OK ")
		time.Sleep(1199 * time.Second)
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("ended early: %v", err)
		default:
		}
		c.cmd("NOOP", "+OK ") // the timeout is per command line
		time.Sleep(1201 * time.Second)
		synctest.Wait()
		if err := <-done; !errors.Is(err, ErrClientGone) {
			t.Fatalf("ServeConn = %v", err)
		}
		cl.Close()
		if !exists(filepath.Join(dir, vectorMessages[0].path)) {
			t.Fatal("deleted after a timeout")
		}
	})
}

// Failed logins in modern mode wait 1 s, then 2 s, and the third closes
// the session.
func TestAuthFailDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &Server{Auth: testAuth(t.TempDir())}
		s, cl := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(context.Background(), s, map[string]string{"TCPREMOTEIP": "::1"}) }()
		c := &client{t: t, c: cl, r: bufio.NewReader(cl)}
		c.expect("+OK*")
		for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
			c.cmd("USER joe", "+OK*")
			start := time.Now()
			c.cmd("PASS bad", "-ERR [AUTH] authentication failed")
			if d := time.Since(start); d != want {
				t.Fatalf("attempt %d: delay %v, want %v", i+1, d, want)
			}
		}
		c.expectEOF()
		if err := <-done; !errors.Is(err, ErrLoginEnded) {
			t.Fatalf("ServeConn = %v", err)
		}
	})
}

// Cancelling ServeConn's context closes the connection.
func TestServeConnContext(t *testing.T) {
	srv := &Server{}
	s, cl := net.Pipe()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var err error
	wg.Go(func() { err = srv.ServeConn(ctx, s, nil) })
	c := &client{t: t, c: cl, r: bufio.NewReader(cl)}
	c.expect("+OK*")
	cancel()
	wg.Wait()
	if err == nil {
		t.Fatal("no error after cancel")
	}
}

// With no Authenticator every login is refused.
func TestZeroServer(t *testing.T) {
	var srv Server
	c := startSession(t, &srv, map[string]string{"TCPREMOTEIP": "127.0.0.1"})
	srv.AuthFailDelay = -1
	c.expect("+OK POP3 server ready")
	c.cmd("USER joe", "+OK*")
	c.cmd("PASS x", "-ERR [AUTH] authentication failed")
	c.cmd("QUIT", "+OK bye")
}
