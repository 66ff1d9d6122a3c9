// Package smtptest runs the full smtpserver engine on 127.0.0.1 for tests,
// as net/http/httptest does for HTTP: start it in one line, send mail to it
// with any client, and inspect what it accepted.
//
//	srv := smtptest.NewServer(t)
//	// ... code under test sends mail to srv.Addr ...
//	msgs := srv.WaitMessages(1, 5*time.Second)
//	if msgs[0].To[0] != "bob@example.com" { ... }
//
// The server offers what a real one does: PIPELINING, 8BITMIME, SIZE,
// ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING; STARTTLS with the [TLS] option,
// with a certificate generated for the test and trusted by
// [Server.ClientTLSConfig] (not by default, because clients such as
// net/smtp.SendMail use STARTTLS whenever it is offered and would reject
// the unknown certificate); AUTH PLAIN and LOGIN with the [Users] option
// (also without TLS, as the client is on loopback); and LMTP with the
// [LMTP] option. It accepts mail for every
// domain. It can refuse chosen recipients or messages and delay replies,
// to test a client's error handling, and it stops when the test ends.
package smtptest

import (
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
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/smtpserver"
)

// Message is a message the server accepted.
type Message struct {
	// From and To are the envelope (To after RELAYCLIENT, in RCPT order).
	From string
	To   []string
	// Data is the message as the server queued it: its Received line, then
	// the data with CRLF turned into LF and dot-stuffing removed.
	Data []byte
	// Helo, User and TLS describe the session: the HELO/EHLO argument, the
	// AUTH user, and whether STARTTLS was used.
	Helo string
	User string
	TLS  bool
	// ID is the id given in the 250 reply.
	ID string
}

// Header parses the message's header.
func (m Message) Header() (mail.Header, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		return nil, err
	}
	return msg.Header, nil
}

// Body returns the message's body, after the blank line.
func (m Message) Body() []byte {
	if i := bytes.Index(m.Data, []byte("\n\n")); i >= 0 {
		return m.Data[i+2:]
	}
	return nil
}

// Option configures a server.
type Option func(*Server)

// LMTP makes the server speak LMTP (RFC 2033) instead of SMTP.
func LMTP() Option { return func(s *Server) { s.Engine.LMTP = true } }

// TLS offers STARTTLS with the server's generated certificate.
func TLS() Option { return func(s *Server) { s.Engine.TLSConfig = s.tlsConfig } }

// Compat makes the server behave exactly as qmail-smtpd.
func Compat() Option { return func(s *Server) { s.Engine.Compat = true } }

// Users offers AUTH PLAIN and LOGIN with these user names and passwords.
func Users(users map[string]string) Option {
	return func(s *Server) {
		s.Engine.Auth = func(ctx context.Context, user, pass string) error {
			if p, ok := users[user]; ok && p == pass {
				return nil
			}
			return smtpserver.ErrBadCredentials
		}
	}
}

// Configure lets the test change the engine before it starts (limits,
// policy hooks, rcpthosts, ...).
func Configure(f func(*smtpserver.Server)) Option { return func(s *Server) { f(s.Engine) } }

// Stage names a reply that can be delayed.
type Stage int

const (
	// StageMail delays the reply to MAIL.
	StageMail Stage = iota
	// StageRcpt delays the reply to RCPT.
	StageRcpt
	// StageData delays the reply after the data.
	StageData
)

// Server is a running test server.
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr string
	// Engine is the smtpserver.Server being run; change it only through
	// Configure.
	Engine *smtpserver.Server
	// Certificate is the server's self-signed certificate.
	Certificate *x509.Certificate

	t         testing.TB
	tlsConfig *tls.Config
	l         net.Listener
	done      chan error
	mu        sync.Mutex
	msgs      []Message
	changed   chan struct{}
	failRcpt  map[string]error
	failMsg   func(Message) error
	delays    map[Stage]time.Duration
}

// NewServer starts a server on 127.0.0.1 for the test; it is shut down
// when the test ends.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{
		t:        t,
		changed:  make(chan struct{}),
		failRcpt: map[string]error{},
		delays:   map[Stage]time.Duration{},
		Engine: &smtpserver.Server{
			Hostname:       "localhost",
			OpenRelay:      true,
			AuthOnLoopback: true,
			AuthFailDelay:  -1,
			MaxErrors:      -1,
			// Every client of a test server is 127.0.0.1: the code under
			// test may open more than smtpserver's 20 sessions per client.
			MaxConnsPerIP: -1,
			Timeout:       time.Minute,
		},
	}
	cert, x, err := selfSigned()
	if err != nil {
		t.Fatalf("smtptest: certificate: %v", err)
	}
	s.Certificate = x
	s.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	for _, o := range opts {
		o(s)
	}
	s.Engine.Enqueuer = smtpserver.EnqueuerFunc(s.enqueue)
	userSender := s.Engine.CheckSender
	s.Engine.CheckSender = func(ctx context.Context, ss *smtpserver.Session, from string) error {
		s.sleep(ctx, StageMail)
		if userSender != nil {
			return userSender(ctx, ss, from)
		}
		return nil
	}
	userRcpt := s.Engine.CheckRecipient
	s.Engine.CheckRecipient = func(ctx context.Context, ss *smtpserver.Session, to string) error {
		s.sleep(ctx, StageRcpt)
		s.mu.Lock()
		err := s.failRcpt[strings.ToLower(to)]
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if userRcpt != nil {
			return userRcpt(ctx, ss, to)
		}
		return nil
	}
	s.l, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	s.Addr = s.l.Addr().String()
	s.done = make(chan error, 1)
	go func() { s.done <- s.Engine.Serve(s.l) }()
	t.Cleanup(s.Close)
	return s
}

// Close shuts the server down (also done when the test ends).
func (s *Server) Close() {
	if s.done == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Engine.Shutdown(ctx); err != nil {
		s.Engine.Close()
	}
	<-s.done
	s.done = nil
}

// ClientTLSConfig returns a client configuration that trusts the server's
// certificate (for "localhost" and 127.0.0.1).
func (s *Server) ClientTLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate)
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// FailRecipient makes RCPT for addr (case-insensitive) fail with r; a zero
// Reply removes the failure.
func (s *Server) FailRecipient(addr string, r smtpserver.Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Code == 0 {
		delete(s.failRcpt, strings.ToLower(addr))
		return
	}
	s.failRcpt[strings.ToLower(addr)] = r
}

// FailMessages decides, for each message received, whether to refuse it
// after the data: a non-nil error is the reply (a smtpserver.Reply gives it
// exactly; in LMTP mode a smtpserver.RecipientErrors refuses recipients one
// by one). Nil f accepts everything again.
func (s *Server) FailMessages(f func(Message) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failMsg = f
}

// Delay delays the replies of a stage by d (0 removes the delay).
func (s *Server) Delay(stage Stage, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delays[stage] = d
}

func (s *Server) sleep(ctx context.Context, st Stage) {
	s.mu.Lock()
	d := s.delays[st]
	s.mu.Unlock()
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (s *Server) enqueue(ctx context.Context, from string, to []string, r io.Reader) (string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	m := Message{From: from, To: append([]string(nil), to...), Data: data}
	if ss := smtpserver.SessionFrom(ctx); ss != nil {
		m.Helo, m.User, m.TLS = ss.Helo, ss.User, ss.TLS != nil
	}
	s.sleep(ctx, StageData)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failMsg != nil {
		if err := s.failMsg(m); err != nil {
			var each smtpserver.RecipientErrors
			if !errors.As(err, &each) {
				return "", err
			}
			// LMTP: keep the message for the recipients that succeeded.
			var ok []string
			for i, e := range each {
				if e == nil && i < len(m.To) {
					ok = append(ok, m.To[i])
				}
			}
			if len(ok) > 0 {
				m.To = ok
				s.add(m)
			}
			return "", err
		}
	}
	return s.add(m), nil
}

// add records m and returns its id; s.mu is held.
func (s *Server) add(m Message) string {
	m.ID = "smtptest." + itoa(len(s.msgs)+1)
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
	return m.ID
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// Messages returns the messages accepted so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// WaitMessages waits until at least n messages were accepted and returns
// them all; after timeout it fails the test.
func (s *Server) WaitMessages(n int, timeout time.Duration) []Message {
	s.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			out := append([]Message(nil), s.msgs...)
			s.mu.Unlock()
			return out
		}
		ch, got := s.changed, len(s.msgs)
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			s.t.Fatalf("smtptest: %d messages after %v, want %d", got, timeout, n)
			return nil
		}
	}
}

// Reset forgets the messages received so far.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = nil
}

func selfSigned() (tls.Certificate, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: x}, x, nil
}
