package moduletest

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
	"fmt"
	"math/big"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/mta"
	"github.com/qmailkit/qmailkit/pop3"
	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/smtpclient"
)

// TestWholeSystemFromGo builds two complete mail systems in one process
// from Configs written in Go, without a file of configuration: SMTP in to
// a Maildir and POP3 out on one; submission with AUTH on the other and
// remote delivery from it to the first; and a reload that adds a mailbox.
func TestWholeSystemFromGo(t *testing.T) {
	dir := t.TempDir()
	tlsConfig := selfSigned(t)

	// b.test: receives mail by SMTP and serves it by POP3.
	bobPassword, err := pop3.HashPassword("bob-secret")
	if err != nil {
		t.Fatal(err)
	}
	bHome := filepath.Join(dir, "b", "bob")
	b := start(t, mta.Config{
		Hostname: "mx.b.test",
		QueueDir: filepath.Join(dir, "b", "queue"),
		Routing:  queue.Routing{Locals: []string{"b.test"}},
		Users:    mta.Mailboxes{"bob": {Password: bobPassword, Home: bHome}},
		TLS:      tlsConfig,
		Listeners: mta.Listeners{
			SMTP: listen(t),
			POP3: listen(t),
		},
	})

	// SMTP in, Maildir, POP3 out.
	sendSMTP(t, b.cfg.Listeners.SMTP.Addr().String(), "", "someone@elsewhere.test", "bob@b.test", "Subject: one\r\n\r\nfirst message\r\n")
	waitMaildir(t, filepath.Join(bHome, "Maildir"), 1)
	// POP3 (as qmail-pop3d) lists only messages older than the session's
	// second.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 50*time.Millisecond)))
	if got := pop3Retrieve(t, b.cfg.Listeners.POP3.Addr().String(), "bob", "bob-secret"); !strings.Contains(got, "first message") {
		t.Fatalf("POP3 RETR 1:\n%s", got)
	}
	if _, err := tryRcpt(b.cfg.Listeners.SMTP.Addr().String(), "nobody@b.test"); err == nil {
		t.Fatal("RCPT to a mailbox that does not exist was accepted")
	}
	if _, err := tryRcpt(b.cfg.Listeners.SMTP.Addr().String(), "someone@relay.test"); err == nil {
		t.Fatal("a stranger may relay through b.test")
	}

	// a.test: submission with AUTH, and remote delivery to b.test's port.
	routes := &smtpclient.Routes{}
	_, port, _ := net.SplitHostPort(b.cfg.Listeners.SMTP.Addr().String())
	var p int
	fmt.Sscan(port, &p)
	routes.Set("b.test", smtpclient.Route{Relay: "127.0.0.1", Port: p})
	aBoxes := mta.Mailboxes{"alice": {Password: "{PLAIN}alice-secret", Home: filepath.Join(dir, "a", "alice")}}
	aCfg := mta.Config{
		Hostname: "mx.a.test",
		QueueDir: filepath.Join(dir, "a", "queue"),
		Routing:  queue.Routing{Locals: []string{"a.test"}},
		Users:    aBoxes,
		TLS:      tlsConfig,
		Remote:   &smtpclient.Client{Routes: routes},
		Listeners: mta.Listeners{
			SMTP:       listen(t),
			Submission: listen(t),
		},
	}
	a := start(t, aCfg)
	sendSMTP(t, a.cfg.Listeners.Submission.Addr().String(), "alice:alice-secret", "alice@a.test", "bob@b.test", "Subject: two\r\n\r\nsecond message, submitted\r\n")
	msgs := waitMaildir(t, filepath.Join(bHome, "Maildir"), 2)
	if !strings.Contains(strings.Join(msgs, "\n"), "second message, submitted") {
		t.Fatalf("b.test's Maildir:\n%s", strings.Join(msgs, "\n----\n"))
	}
	// Without AUTH, submission refuses.
	if err := trySend(a.cfg.Listeners.Submission.Addr().String(), "", "alice@a.test", "bob@b.test"); err == nil {
		t.Fatal("submission without AUTH accepted a message")
	}

	// A reload adds a mailbox.
	smtpA := a.cfg.Listeners.SMTP.Addr().String()
	if _, err := tryRcpt(smtpA, "carol@a.test"); err == nil {
		t.Fatal("carol@a.test accepted before she exists")
	}
	carolHome := filepath.Join(dir, "a", "carol")
	aCfg.Users = mta.Mailboxes{"alice": aBoxes["alice"], "carol": {Password: "{PLAIN}carol-secret", Home: carolHome}}
	if err := a.sys.Reload(aCfg); err != nil {
		t.Fatal(err)
	}
	sendSMTP(t, smtpA, "", "bob@b.test", "carol@a.test", "Subject: three\r\n\r\nfor carol\r\n")
	waitMaildir(t, filepath.Join(carolHome, "Maildir"), 1)

	for _, s := range []*system{a, b} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := s.sys.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		cancel()
		if err := <-s.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

type system struct {
	sys  *mta.System
	cfg  mta.Config
	done chan error
}

func start(t *testing.T, cfg mta.Config) *system {
	t.Helper()
	sys, err := mta.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &system{sys: sys, cfg: cfg, done: make(chan error, 1)}
	go func() { s.done <- sys.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sys.Shutdown(ctx)
		sys.Close()
	})
	return s
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// sendSMTP sends one message; auth is "user:password" for AUTH PLAIN
// after STARTTLS, or empty.
func sendSMTP(t *testing.T, addr, auth, from, to, msg string) {
	t.Helper()
	if err := send(addr, auth, from, to, msg); err != nil {
		t.Fatalf("sending to %s through %s: %v", to, addr, err)
	}
}

func trySend(addr, auth, from, to string) error {
	return send(addr, auth, from, to, "Subject: x\r\n\r\nx\r\n")
}

func send(addr, auth, from, to, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if auth != "" {
		if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
			return err
		}
		user, pass, _ := strings.Cut(auth, ":")
		if err := c.Auth(smtp.PlainAuth("", user, pass, "127.0.0.1")); err != nil {
			return err
		}
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// tryRcpt returns the reply to RCPT TO:<to> after a MAIL, an error for a
// refusal.
func tryRcpt(addr, to string) (string, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.Mail("someone@elsewhere.test"); err != nil {
		return "", err
	}
	if err := c.Rcpt(to); err != nil {
		return "", err
	}
	return "250", nil
}

// pop3Retrieve logs in after STLS and returns message 1.
func pop3Retrieve(t *testing.T, addr, user, pass string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	tp := textproto.NewConn(conn)
	cmd := func(c *textproto.Conn, line string) string {
		if line != "" {
			if err := c.PrintfLine("%s", line); err != nil {
				t.Fatal(err)
			}
		}
		reply, err := c.ReadLine()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(reply, "+OK") {
			t.Fatalf("POP3 %q: %s", line, reply)
		}
		return reply
	}
	cmd(tp, "")
	cmd(tp, "STLS")
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	tp = textproto.NewConn(tc)
	cmd(tp, "USER "+user)
	cmd(tp, "PASS "+pass)
	cmd(tp, "RETR 1")
	lines, err := tp.ReadDotLines()
	if err != nil {
		t.Fatal(err)
	}
	cmd(tp, "QUIT")
	return strings.Join(lines, "\n")
}

func waitMaildir(t *testing.T, md string, n int) []string {
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
				b := new(strings.Builder)
				bufio.NewReader(f).WriteTo(b)
				f.Close()
				out = append(out, b.String())
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages in %s after 30 s, want %d", len(names), md, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// selfSigned is a server TLS configuration with a new self-signed
// certificate for localhost and 127.0.0.1.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}
