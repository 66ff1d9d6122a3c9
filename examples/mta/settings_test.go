package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/dnstest"
	"github.com/qmailkit/qmailkit/internal/mailtest"
	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/smtpserver"
)

// smarthost is an SMTP server for the mta's remote deliveries: it records
// what it receives, who authenticated, how many connections it got and
// how many transactions it had at once.
type smarthost struct {
	addr  string
	port  int
	conns atomic.Int32

	mu       sync.Mutex
	msgs     []string
	users    []string
	inData   int
	maxData  int
	delay    time.Duration
	refuse   bool // 550 to every RCPT
	received chan struct{}
	certPEM  []byte // its certificate, when it has TLS
}

func newSmarthost(t *testing.T, auth bool, delay time.Duration) *smarthost {
	t.Helper()
	h := &smarthost{delay: delay, received: make(chan struct{}, 100)}
	srv := &smtpserver.Server{Hostname: "smarthost.test", Enqueuer: h, OpenRelay: true}
	if auth {
		certPEM, keyPEM := testCertPEM(t)
		h.certPEM = certPEM
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		srv.Auth = smtpserver.Authenticator(func(ctx context.Context, user, password string) error {
			if user == "joe" && password == "s3cret word" {
				return nil
			}
			return smtpserver.ErrBadCredentials
		})
		// Mail only from who authenticated.
		srv.CheckSender = func(ctx context.Context, ss *smtpserver.Session, from string) error {
			if ss.User == "" {
				return smtpserver.Reply{Code: 530, Enhanced: "5.7.0", Text: "authentication required"}
			}
			return nil
		}
	}
	srv.CheckRecipient = func(ctx context.Context, ss *smtpserver.Session, to string) error {
		if h.refuse {
			return smtpserver.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user here"}
		}
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = l.Addr().String()
	h.port = l.Addr().(*net.TCPAddr).Port
	go srv.Serve(countingListener{l, &h.conns})
	t.Cleanup(func() { srv.Close() })
	return h
}

func (h *smarthost) Enqueue(ctx context.Context, from string, to []string, msg io.Reader) (string, error) {
	h.mu.Lock()
	h.inData++
	h.maxData = max(h.maxData, h.inData)
	h.mu.Unlock()
	b, err := io.ReadAll(msg)
	time.Sleep(h.delay)
	h.mu.Lock()
	h.inData--
	if err == nil {
		h.msgs = append(h.msgs, string(b))
		h.users = append(h.users, smtpserver.SessionFrom(ctx).User)
	}
	h.mu.Unlock()
	if err != nil {
		return "", err
	}
	h.received <- struct{}{}
	return "1", nil
}

// wait waits for n messages.
func (h *smarthost) wait(t *testing.T, n int, p *proc) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-h.received:
		case <-time.After(30 * time.Second):
			t.Fatalf("the smarthost got %d messages in 30 s, want %d\n%s", i, n, p.stderr)
		}
	}
}

type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// testCertPEM is a new self-signed certificate for smarthost.test and its
// key, in PEM.
func testCertPEM(t *testing.T) ([]byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "smarthost.test"},
		DNSNames:     []string{"smarthost.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// startMTAHome makes a home (an mta started and stopped once) and returns
// its path, for a test to write control files into before it starts the
// mta again.
func startMTAHome(t *testing.T) string {
	t.Helper()
	home, _ := startMTAHomeMaildir(t)
	return home
}

// startMTAHomeMaildir is startMTAHome that also returns the demo
// mailbox's Maildir.
func startMTAHomeMaildir(t *testing.T) (string, string) {
	t.Helper()
	home := filepath.Join(scratch(t), "home")
	p := startMTA(t, home)
	p.stop(t)
	return home, p.maildir
}

func writeControl(t *testing.T, home, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(home, "control", name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSmarthostAuthAndReuse: control/smtproutes with credentials makes
// the mta authenticate to its smarthost, and control/remotereuse sends two
// messages to it over one connection.
func TestSmarthostAuthAndReuse(t *testing.T) {
	h := newSmarthost(t, true, 0)
	home := startMTAHome(t)
	writeControl(t, home, "smtproutes", fmt.Sprintf(":127.0.0.1:%d joe s3cret word\n", h.port))
	writeControl(t, home, "remotereuse", "30\n")
	p := startMTA(t, home)
	for i := range 2 {
		if err := mailtest.Send(p.smtp, "demo@localhost", []string{"friend@remote.test"}, fmt.Sprintf("Subject: %d\r\n\r\nmessage %d\r\n", i, i)); err != nil {
			t.Fatal(err)
		}
		h.wait(t, 1, p)
	}
	h.mu.Lock()
	users, conns := append([]string(nil), h.users...), h.conns.Load()
	h.mu.Unlock()
	if len(users) != 2 || users[0] != "joe" || users[1] != "joe" {
		t.Errorf("AUTH users at the smarthost: %q", users)
	}
	if conns != 1 {
		t.Errorf("%d connections for two messages to one host, want 1\n%s", conns, p.stderr)
	}
	p.stop(t)
}

// TestConcurrencyDomain: control/concurrencydomain 1 gives one domain one
// delivery at a time; without it, the same messages overlap.
func TestConcurrencyDomain(t *testing.T) {
	for _, limit := range []int{0, 1} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			h := newSmarthost(t, false, 400*time.Millisecond)
			home := startMTAHome(t)
			writeControl(t, home, "smtproutes", fmt.Sprintf(":127.0.0.1:%d\n", h.port))
			if limit > 0 {
				writeControl(t, home, "concurrencydomain", fmt.Sprintf("%d\n", limit))
			}
			p := startMTA(t, home)
			const n = 4
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					if err := mailtest.Send(p.smtp, "demo@localhost", []string{fmt.Sprintf("r%d@remote.test", i)}, "Subject: x\r\n\r\nx\r\n"); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			h.wait(t, n, p)
			h.mu.Lock()
			most := h.maxData
			h.mu.Unlock()
			if limit > 0 && most > limit || limit == 0 && most < 2 {
				t.Errorf("at most %d deliveries to one domain at once with concurrencydomain %d", most, limit)
			}
			p.stop(t)
		})
	}
}

// TestBounceFormatDSN: with control/bounceformat "dsn", a bounce is an RFC
// 3464 report.
func TestBounceFormatDSN(t *testing.T) {
	h := newSmarthost(t, false, 0)
	h.refuse = true
	home, md := startMTAHomeMaildir(t)
	writeControl(t, home, "smtproutes", fmt.Sprintf(":127.0.0.1:%d\n", h.port))
	writeControl(t, home, "bounceformat", "dsn\n")
	p := startMTA(t, home)
	if err := mailtest.Send(p.smtp, p.user+"@localhost", []string{"nobody@remote.test"}, "Subject: will bounce\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	msgs := waitMessages(t, md, 1, p)
	b := msgs[0]
	for _, want := range []string{"multipart/report", "report-type=delivery-status", "Action: failed", "Final-Recipient: rfc822; nobody@remote.test", "Status: 5.1.1", "Diagnostic-Code: smtp; 550 5.1.1 no such user here", "Remote-MTA: dns; 127.0.0.1"} {
		if !strings.Contains(b, want) {
			t.Errorf("the bounce has no %q:\n%s", want, b)
		}
	}
	p.stop(t)
}

// TestDNSBLFromHome: control/dnsbllist and -dns refuse a listed client,
// whose address is in the list's zone on the test's DNS server.
func TestDNSBLFromHome(t *testing.T) {
	ns := dnstest.New(t,
		"2.0.0.127.bl.test. 60 IN A 127.0.0.2",
		`2.0.0.127.bl.test. 60 IN TXT "listed: see https://bl.test/127.0.0.2"`)
	home := startMTAHome(t)
	writeControl(t, home, "dnsbllist", "bl.test\n-b\n")
	p := startMTA(t, home, "-dns", ns.Addr)
	talk := func(from string) string {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
		c, err := d.Dial("tcp", p.smtp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		tc := textproto.NewConn(c)
		if _, _, err := tc.ReadResponse(220); err != nil {
			t.Fatal(err)
		}
		tc.PrintfLine("HELO client.test")
		tc.ReadResponse(250)
		tc.PrintfLine("MAIL FROM:<a@b.test>")
		tc.ReadResponse(250)
		// As rblsmtpd, the refusal comes at RCPT.
		tc.PrintfLine("RCPT TO:<demo@localhost>")
		code, msg, _ := tc.ReadResponse(0)
		return fmt.Sprint(code, " ", msg)
	}
	if got := talk("127.0.0.2"); !strings.HasPrefix(got, "553 ") || !strings.Contains(got, "listed: see https://bl.test/127.0.0.2") {
		t.Errorf("a listed client at RCPT: %q", got)
	}
	if got := talk("127.0.0.1"); !strings.HasPrefix(got, "250") {
		t.Errorf("a client not listed at RCPT: %q", got)
	}
	if q := strings.Join(ns.Queries(), "\n"); !strings.Contains(q, "2.0.0.127.bl.test.") {
		t.Errorf("the DNS server was not asked: %q", q)
	}
	p.stop(t)
}

// TestAPOPFlag: with -apop the POP3 greeting carries a timestamp and a
// user whose password is stored {PLAIN} logs in with APOP; without, APOP
// is refused.
func TestAPOPFlag(t *testing.T) {
	home := startMTAHome(t)
	pw := filepath.Join(home, "users", "poppasswd")
	b, err := os.ReadFile(pw)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(strings.TrimSpace(string(b)), ":")
	f[0], f[1] = "apopuser", "{PLAIN}apop secret"
	if err := os.WriteFile(pw, append(b, []byte(strings.Join(f, ":")+"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		os.Chown(pw, 65534, 65534)
	}
	for _, on := range []bool{false, true} {
		var args []string
		if on {
			args = []string{"-apop"}
		}
		p := startMTA(t, home, args...)
		c, err := textproto.Dial("tcp", p.pop3)
		if err != nil {
			t.Fatal(err)
		}
		greeting, err := c.ReadLine()
		if err != nil {
			t.Fatal(err)
		}
		i, j := strings.IndexByte(greeting, '<'), strings.IndexByte(greeting, '>')
		if (i >= 0 && j > i) != on {
			t.Fatalf("-apop %v: greeting %q", on, greeting)
		}
		if on {
			sum := md5.Sum([]byte(greeting[i:j+1] + "apop secret"))
			c.PrintfLine("APOP apopuser %s", hex.EncodeToString(sum[:]))
		} else {
			c.PrintfLine("APOP apopuser 0123456789abcdef0123456789abcdef")
		}
		reply, _ := c.ReadLine()
		if strings.HasPrefix(reply, "+OK") != on {
			t.Errorf("-apop %v: APOP got %q", on, reply)
		}
		c.Close()
		p.stop(t)
	}
}

// TestSIGALRMFlushes: a deferred remote delivery is made at once after
// SIGALRM, long before its retry time.
func TestSIGALRMFlushes(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens: the first attempt fails
	home := startMTAHome(t)
	writeControl(t, home, "smtproutes", fmt.Sprintf(":127.0.0.1:%d\n", port))
	p := startMTA(t, home)
	if err := mailtest.Send(p.smtp, "demo@localhost", []string{"friend@remote.test"}, "Subject: later\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "deferral:")
	// Now the host is up.
	h := &smarthost{received: make(chan struct{}, 10)}
	srv := &smtpserver.Server{Hostname: "up.test", Enqueuer: h, OpenRelay: true}
	l, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	go srv.Serve(l)
	defer srv.Close()
	p.signal(t, syscall.SIGALRM)
	h.wait(t, 1, p)
	p.stop(t)
}

func waitLog(t *testing.T, p *proc, s string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", s, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitMessages waits for n messages in a Maildir and returns them.
func waitMessages(t *testing.T, md string, n int, p *proc) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		names, err := maildir.Dir(md).List()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if len(names) >= n {
			var out []string
			for _, name := range names {
				f, err := maildir.Dir(md).OpenMessage(name)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(f)
				f.Close()
				out = append(out, string(b))
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages in %s after 30 s, want %d\n%s", len(names), md, n, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTLSHosts: control/tlshosts/HOST.pem (qmail's TLS patch) makes the mta
// verify its smarthost's certificate against the authorities in the file:
// with the right one the message goes, with another it is deferred.
func TestTLSHosts(t *testing.T) {
	for _, good := range []bool{true, false} {
		t.Run(fmt.Sprint("good=", good), func(t *testing.T) {
			h := newSmarthost(t, true, 0)
			ns := dnstest.New(t, "smarthost.test. 60 IN A 127.0.0.1")
			home := startMTAHome(t)
			writeControl(t, home, "smtproutes", fmt.Sprintf(":smarthost.test:%d joe s3cret word\n", h.port))
			ca := h.certPEM
			if !good {
				ca, _ = testCertPEM(t) // another certificate for the same name
			}
			os.MkdirAll(filepath.Join(home, "control", "tlshosts"), 0o755)
			writeControl(t, home, "tlshosts/smarthost.test.pem", string(ca))
			p := startMTA(t, home, "-dns", ns.Addr)
			if err := mailtest.Send(p.smtp, "demo@localhost", []string{"friend@remote.test"}, "Subject: tls\r\n\r\nx\r\n"); err != nil {
				t.Fatal(err)
			}
			if good {
				h.wait(t, 1, p)
				waitLog(t, p, "verified=true")
			} else {
				waitLog(t, p, "deferral:")
				h.mu.Lock()
				n := len(h.msgs)
				h.mu.Unlock()
				if n != 0 || !strings.Contains(p.stderr.String(), "TLS handshake") {
					t.Errorf("with another authority: %d messages at the smarthost\n%s", n, p.stderr)
				}
			}
			p.stop(t)
		})
	}
}

// TestDSNRequest: a client's DSN request (RFC 3461: RET, ENVID, NOTIFY,
// ORCPT) to the mta's SMTP port gives, when the remote host refuses, an
// RFC 3464 report with the envelope id and the original recipient.
func TestDSNRequest(t *testing.T) {
	h := newSmarthost(t, false, 0)
	h.refuse = true
	home, md := startMTAHomeMaildir(t)
	writeControl(t, home, "smtproutes", fmt.Sprintf(":127.0.0.1:%d\n", h.port))
	p := startMTA(t, home)
	c, err := textproto.Dial("tcp", p.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	step := func(cmd string, want int) string {
		t.Helper()
		if cmd != "" {
			c.PrintfLine("%s", cmd)
		}
		_, msg, err := c.ReadResponse(want)
		if err != nil {
			t.Fatalf("%q: %v", cmd, err)
		}
		return msg
	}
	step("", 220)
	if ehlo := step("EHLO client.test", 250); !strings.Contains(ehlo, "DSN") {
		t.Fatalf("EHLO does not offer DSN:\n%s", ehlo)
	}
	step("MAIL FROM:<"+p.user+"@localhost> RET=HDRS ENVID=QQ314159", 250)
	step("RCPT TO:<nobody@remote.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;Nobody@Remote.test", 250)
	step("DATA", 354)
	c.PrintfLine("Subject: dsn\r\n\r\nsecret body\r\n.")
	step("", 250)
	step("QUIT", 221)
	msgs := waitMessages(t, md, 1, p)
	for _, want := range []string{"report-type=delivery-status", "Original-Envelope-Id: QQ314159", "Original-Recipient: rfc822;Nobody@Remote.test", "Action: failed", "Status: 5.1.1", "text/rfc822-headers"} {
		if !strings.Contains(msgs[0], want) {
			t.Errorf("the report has no %q:\n%s", want, msgs[0])
		}
	}
	if strings.Contains(msgs[0], "secret body") {
		t.Errorf("RET=HDRS, but the report returns the body:\n%s", msgs[0])
	}
	p.stop(t)
}
