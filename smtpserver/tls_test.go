package smtpserver

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit"
)

// testCert writes a self-signed certificate for "mx.example.org" and
// 127.0.0.1 to dir and returns the file names.
func testCert(t *testing.T, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     []string{cn},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func tlsServer(t *testing.T, k *sink) *Server {
	cf, kf := testCert(t, t.TempDir(), "mx.example.org")
	cr := &CertReloader{CertFile: cf, KeyFile: kf}
	srv := compatServer(k)
	srv.Compat = false
	srv.OpenRelay = false
	srv.RcptHosts = HostList([]string{"example.org"}, nil)
	srv.TLSConfig = &tls.Config{GetCertificate: cr.GetCertificate}
	srv.AuthFailDelay = -1
	srv.Auth = Authenticator(func(ctx context.Context, user, pass string) error {
		if user == "joe" && pass == "s3cret" {
			return nil
		}
		if user == "down" {
			return errTest("database unavailable")
		}
		return ErrBadCredentials
	})
	return srv
}

// starttls upgrades the client side.
func (c *conn) starttls() {
	c.t.Helper()
	c.send("EHLO c\r\n")
	c.reply()
	c.send("STARTTLS\r\n")
	c.expect("220 2.0.0 ready to start TLS")
	tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true, ServerName: "mx.example.org"})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("handshake: %v", err)
	}
	c.c = tc
	c.r = bufio.NewReader(tc)
}

func TestStartTLSAndAuth(t *testing.T) {
	k := &sink{}
	c := start(t, tlsServer(t, k), qmailEnv())
	c.expect("220 mx.example.org ESMTP")
	c.send("EHLO client.example\r\n")
	ext := strings.Join(c.reply(), "|")
	if !strings.Contains(ext, "STARTTLS") || strings.Contains(ext, "AUTH") {
		t.Fatalf("EHLO before TLS: %s", ext)
	}
	// AUTH before STARTTLS gets 538 (RFC 4954 section 6).
	c.send("AUTH PLAIN AGpvZQBzM2NyZXQ=\r\n")
	c.expect("538 5.7.11 encryption required for requested authentication mechanism")
	c.send("STARTTLS x\r\n")
	c.expect("501 5.5.4 syntax error")
	c.send("MAIL FROM:<a@b>\r\n")
	c.expect("250 2.1.0 ok")
	// A command pipelined after STARTTLS is never executed (RFC 3207
	// section 4.2).
	c.send("STARTTLS\r\nRCPT TO:<evil@x.example>\r\n")
	c.expect("220 2.0.0 ready to start TLS")
	tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	c.c, c.r = tc, bufio.NewReader(tc)
	c.send("RCPT TO:<c@example.org>\r\n")
	c.expect("503 MAIL first (#5.5.1)") // transaction and EHLO forgotten
	c.send("EHLO client.example\r\n")
	ext = strings.Join(c.reply(), "|")
	if strings.Contains(ext, "STARTTLS") || !strings.Contains(ext, "AUTH PLAIN LOGIN") {
		t.Fatalf("EHLO after TLS: %s", ext)
	}
	c.send("STARTTLS\r\n")
	c.expect("503 5.5.1 already in TLS")
	c.send("MAIL FROM:<a@b>\r\nRCPT TO:<x@relay.example>\r\n")
	c.expect("250 2.1.0 ok")
	c.expect("553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)")
	c.send("AUTH PLAIN AGpvZQBzM2NyZXQ=\r\n")
	c.expect("503 5.5.1 AUTH not allowed during a mail transaction")
	c.send("RSET\r\n")
	c.expect("250 2.0.0 flushed")
	c.send("AUTH CRAM-MD5\r\n")
	c.expect("504 5.5.4 unrecognized authentication type")
	c.send("AUTH PLAIN\r\n")
	c.expect("334 ")
	c.send("*\r\n")
	c.expect("501 5.0.0 authentication cancelled")
	c.send("AUTH PLAIN !!!\r\n")
	c.expect("501 5.5.2 cannot decode response")
	c.send("AUTH PLAIN AGpvZQB3cm9uZw==\r\n") // \0joe\0wrong
	c.expect("535 5.7.8 authentication credentials invalid")
	c.send("AUTH PLAIN AGRvd24AeA==\r\n") // \0down\0x
	c.expect("454 4.7.0 temporary authentication failure")
	c.send("AUTH PLAIN bWFyeQBqb2UAczNjcmV0\r\n") // mary\0joe\0s3cret: authzid differs
	c.expect("535 5.7.8 authentication credentials invalid")
	c.send("AUTH LOGIN\r\n")
	c.expect("334 VXNlcm5hbWU6")
	c.send("am9l\r\n")
	c.expect("334 UGFzc3dvcmQ6")
	c.send("czNjcmV0\r\n")
	c.expect("235 2.7.0 authentication successful")
	c.send("AUTH PLAIN AGpvZQBzM2NyZXQ=\r\n")
	c.expect("503 5.5.1 already authenticated")
	c.send("MAIL FROM:<joe@example.org> AUTH=<>\r\nRCPT TO:<x@relay.example>\r\nDATA\r\n")
	c.expect("250 2.1.0 ok")
	c.expect("250 2.1.5 ok")
	c.expect("354 go ahead")
	c.send("hi\r\n.\r\n")
	c.expect("250 2.0.0 ok *")
	msgs := k.messages()
	if len(msgs) != 1 || msgs[0].to[0] != "x@relay.example" {
		t.Fatalf("messages %+v", msgs)
	}
	rec := msgs[0].data[:strings.Index(msgs[0].data, ";")]
	if !strings.Contains(rec, "with ESMTPSA (TLS1.3 TLS_") || strings.Contains(rec, "joe") {
		t.Errorf("Received line %q", rec)
	}
}

func TestAuthPlainChallengeAndLimit(t *testing.T) {
	srv := tlsServer(t, &sink{})
	c := start(t, srv, qmailEnv())
	c.expect("220 *")
	c.starttls()
	c.send("EHLO c\r\n")
	c.reply()
	c.send("AUTH PLAIN\r\n")
	c.expect("334 ")
	c.send("AGpvZQBzM2NyZXQ=\r\n")
	c.expect("235 2.7.0 authentication successful")

	c = start(t, srv, qmailEnv())
	c.expect("220 *")
	c.starttls()
	c.send("EHLO c\r\n")
	c.reply()
	for i := 0; i < 2; i++ {
		c.send("AUTH PLAIN AGpvZQB3cm9uZw==\r\n")
		c.expect("535 *")
	}
	c.send("AUTH LOGIN am9l\r\n")
	c.expect("334 UGFzc3dvcmQ6")
	c.send("d3Jvbmc=\r\n")
	c.expect("535 5.7.8 authentication credentials invalid")
	c.expect("421 4.7.0 too many authentication failures")
	c.expectEOF()
}

func TestAuthOnLoopback(t *testing.T) {
	srv := tlsServer(t, &sink{})
	srv.TLSConfig = nil
	srv.AuthOnLoopback = true
	env := qmailEnv()
	env["TCPREMOTEIP"] = "127.0.0.1"
	c := start(t, srv, env)
	c.expect("220 *")
	c.send("EHLO c\r\n")
	if ext := strings.Join(c.reply(), "|"); !strings.Contains(ext, "AUTH PLAIN LOGIN") {
		t.Fatalf("EHLO: %s", ext)
	}
	c.send("AUTH PLAIN AGpvZQBzM2NyZXQ=\r\n")
	c.expect("235 *")

	c = start(t, srv, qmailEnv()) // 192.0.2.9 is not loopback
	c.expect("220 *")
	c.send("EHLO c\r\n")
	c.reply()
	c.send("AUTH PLAIN AGpvZQBzM2NyZXQ=\r\n")
	c.expect("538 *")
}

func TestCheckpassword(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	prog := filepath.Join(dir, "checkpw")
	// A checkpassword: fd 3 holds user\0password\0timestamp\0.
	script := `#!/bin/sh
input=$(head -c 512 <&3 | tr '\0' '\n')
user=$(printf '%s\n' "$input" | sed -n 1p)
pass=$(printf '%s\n' "$input" | sed -n 2p)
stamp=$(printf '%s\n' "$input" | sed -n 3p)
case "$stamp" in "<"*"@"*">") ;; *) exit 2;; esac
[ "$user" = down ] && exit 111
[ "$user" = joe ] && [ "$pass" = s3cret ] && exec "$@"
exit 1
`
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	auth := Checkpassword(prog, "true")
	ctx := t.Context()
	if err := auth(ctx, "joe", "s3cret"); err != nil {
		t.Errorf("good password: %v", err)
	}
	if err := auth(ctx, "joe", "bad"); err != ErrBadCredentials {
		t.Errorf("bad password: %v", err)
	}
	if err := auth(ctx, "down", "x"); err == nil || qmailkit.IsPermanent(err) {
		t.Errorf("exit 111: %v, want temporary", err)
	}
	if err := Checkpassword(filepath.Join(dir, "missing"), "true")(ctx, "joe", "s3cret"); err == nil || qmailkit.IsPermanent(err) {
		t.Errorf("missing program: %v, want temporary", err)
	}
	if err := Checkpassword(prog, "false")(ctx, "joe", "s3cret"); err != ErrBadCredentials {
		t.Errorf("prog exit 1: %v", err)
	}
}

func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	cf, kf := testCert(t, dir, "one.example")
	cr := &CertReloader{CertFile: cf, KeyFile: kf}
	c1, err := cr.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	testCert(t, dir, "two.example")
	cr.mu.Lock()
	cr.checked = time.Time{} // skip the once-a-second throttle
	cr.mu.Unlock()
	c2, err := cr.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	x1, _ := x509.ParseCertificate(c1.Certificate[0])
	x2, _ := x509.ParseCertificate(c2.Certificate[0])
	if x1.Subject.CommonName != "one.example" || x2.Subject.CommonName != "two.example" {
		t.Fatalf("reload: %s then %s", x1.Subject.CommonName, x2.Subject.CommonName)
	}
	os.WriteFile(cf, []byte("garbage"), 0o600)
	cr.mu.Lock()
	cr.checked = time.Time{}
	cr.mu.Unlock()
	if c3, err := cr.GetCertificate(nil); err != nil || c3 != c2 {
		t.Fatalf("broken file: %v, kept=%v", err, c3 == c2)
	}
	if _, err := (&CertReloader{CertFile: cf, KeyFile: kf}).GetCertificate(nil); err == nil {
		t.Fatal("no error for a broken first load")
	}
}

// Shutdown reaches a session idle under TLS, and Close one that is not.
func TestShutdownUnderTLS(t *testing.T) {
	srv := tlsServer(t, &sink{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c := &conn{t: t, c: raw, r: bufio.NewReader(raw)}
	c.expect("220 *")
	c.starttls()
	c.send("EHLO c\r\n")
	c.reply()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	c.expect("421 4.3.2 server shutting down")
	if err := <-done; err != ErrServerClosed {
		t.Fatalf("Serve = %v", err)
	}
}
