// Package smtptest runs the full smtpserver engine on 127.0.0.1 for tests,
// as net/http/httptest does for HTTP: start it in one line, send mail to it
// with any client, script how it answers, and inspect what it accepted and
// what each connection was told.
//
//	srv := smtptest.NewServer(t)
//	srv.Script(smtptest.OnAttempt(1).At(smtptest.StageData).Reply(451, "4.3.0", "try later"))
//	// ... code under test sends mail to srv.Addr, and retries ...
//	msgs := srv.WaitMessages(1, 5*time.Second)
//	if msgs[0].To[0] != "bob@example.com" { ... }
//	for _, a := range srv.Attempts() { t.Log(a) }
//
// The server offers what a real one does: PIPELINING, 8BITMIME, SIZE,
// ENHANCEDSTATUSCODES, SMTPUTF8, CHUNKING; STARTTLS with the [TLS] option,
// with a certificate generated for the test and trusted by
// [Server.ClientTLSConfig] (not by default, because clients such as
// net/smtp.SendMail use STARTTLS whenever it is offered and would reject
// the unknown certificate); AUTH PLAIN and LOGIN with the [Users] option
// (also without TLS, as the client is on loopback); and LMTP with the
// [LMTP] option. It accepts mail for every domain, and stops when the test
// ends ([NewServer]) or when [Server.Close] is called ([NewUnstarted] and
// [Server.Start], for code without a testing.TB, such as an Example).
//
// # Scripts
//
// [Server.Script] changes the server's answers at a [Stage] of the session
// (the greeting, MAIL, RCPT, the DATA command, after the message), for
// chosen addresses, attempts and a number of times: a reply of its own
// (4xx or 5xx), a dropped connection, or a delay. An attempt is one
// connection: a client that retries after a temporary failure makes a new
// attempt, and [OnAttempt] scripts them one by one ("451 then 250");
// [Rule.Times] does the same within one connection.
//
// # Records
//
// Every connection is recorded as an [Attempt], refused or not: the
// client's address, the greeting, HELO, each MAIL and RCPT with its reply,
// the reply that ended DATA, and the message when it was sent whole.
// [Server.Messages] lists the accepted messages; each [Message] holds the
// bytes the client sent after DATA exactly ([Message.Raw]: CRLF line ends,
// dot-stuffing removed, no header added) as well as the form a queue
// stores ([Message.Data]).
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
	"fmt"
	"math/big"
	"net"
	"net/mail"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/internal/scripttest"
	"github.com/qmailkit/qmailkit/smtpserver"
)

// Message is a message the server received whole.
type Message struct {
	// From and To are the envelope (To after RELAYCLIENT, in RCPT order).
	From string
	To   []string
	// Raw is the message exactly as the client sent it after DATA: CRLF
	// line ends kept, dot-stuffing removed, the final "." line left out,
	// nothing added (with BDAT, the chunks' bytes joined).
	Raw []byte
	// Data is the message as the server queued it, what an Enqueuer
	// reads: the server's Received line, then the data with CRLF turned
	// into LF.
	Data []byte
	// Helo, User and TLS describe the session: the HELO/EHLO argument, the
	// AUTH user, and whether STARTTLS was used.
	Helo string
	User string
	TLS  bool
	// Attempt is the number of the attempt (connection) that sent it.
	Attempt int
	// ID is the id given in the 250 reply ("" for a refused message).
	ID string
}

// Parse parses Raw as an RFC 5322 message: its header, and its body as
// the client sent it (CRLF line ends).
func (m Message) Parse() (*mail.Message, error) {
	return mail.ReadMessage(bytes.NewReader(m.Raw))
}

// Header parses the header of Data: the server's Received line first,
// then the client's header.
func (m Message) Header() (mail.Header, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		return nil, err
	}
	return msg.Header, nil
}

// Body returns the body of Data, after the blank line, with LF line ends.
// Raw has it as sent.
func (m Message) Body() []byte {
	if i := bytes.Index(m.Data, []byte("\n\n")); i >= 0 {
		return m.Data[i+2:]
	}
	return nil
}

// rawMessage turns what the Enqueuer read back into what the client sent:
// without the server's Received line, LF turned back into CRLF. This is
// exact because the server refuses a bare LF in the data (the only LF it
// stores is the one of a CRLF), and stores a bare CR as it is.
//
// The Received line is the header field at the start of data (its lines
// up to one not followed by a space or tab), and no longer than first,
// the bytes of the Enqueuer's first read (0: unknown): smtpserver gives
// its Received line in reads of its own, so that a message whose first
// line starts with a space is not taken for the field's continuation.
func rawMessage(data []byte, first int) []byte {
	if bytes.HasPrefix(data, []byte("Received:")) {
		i := 0
		for {
			j := bytes.IndexByte(data[i:], '\n')
			if j < 0 {
				i = len(data)
				break
			}
			i += j + 1
			if i >= len(data) || data[i] != ' ' && data[i] != '\t' {
				break
			}
		}
		if first > 0 && first < i {
			i = first
		}
		data = data[i:]
	}
	return bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
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
		s.Engine.Auth = auth.Func(func(ctx context.Context, c auth.Credentials) (*auth.User, error) {
			if p, ok := users[c.User]; ok && auth.CheckSecret(c, p) {
				return &auth.User{Name: c.User, UID: -1, GID: -1}, nil
			}
			return nil, auth.ErrFailed
		})
	}
}

// Configure lets the test change the engine before it starts (limits,
// policy hooks, rcpthosts, ...). CheckSender and CheckRecipient set here
// are called after the script, for the commands it leaves to the server;
// the Enqueuer is the test server's own.
func Configure(f func(*smtpserver.Server)) Option { return func(s *Server) { f(s.Engine) } }

// Server is a test server.
type Server struct {
	// Addr is "127.0.0.1:port", set by Start.
	Addr string
	// Engine is the smtpserver.Server being run; change it only through
	// Configure, or between NewUnstarted and Start.
	Engine *smtpserver.Server
	// Certificate is the server's self-signed certificate.
	Certificate *x509.Certificate

	t         testing.TB // nil without NewServer
	tlsConfig *tls.Config
	certErr   error
	lc        scripttest.Lifecycle
	script    scripttest.Script[Rule]

	mu      sync.Mutex
	msgs    []Message
	changed chan struct{}
	rec     scripttest.Record[Attempt, *conn] // the attempts, the open connections
}

// NewServer starts a server on 127.0.0.1 for the test; it is shut down
// when the test ends. A failure to start fails the test.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := NewUnstarted(opts...)
	s.t = t
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewUnstarted returns a server that does not listen yet, for code that has
// no testing.TB (an Example, a program) or must change Engine first: call
// Start, and Close when done.
func NewUnstarted(opts ...Option) *Server {
	s := &Server{
		lc:      scripttest.Lifecycle{Name: "smtptest"},
		changed: make(chan struct{}),
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
		s.certErr = fmt.Errorf("smtptest: certificate: %w", err)
	}
	s.Certificate = x
	s.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Start listens on 127.0.0.1 and serves until Close.
func (s *Server) Start() error {
	if err := s.lc.Begin(); err != nil {
		return err
	}
	if s.certErr != nil {
		return s.certErr
	}
	s.installHooks()
	l, err := s.lc.Listen(s.accepted)
	if err != nil {
		return err
	}
	s.Addr = l.Addr().String()
	s.lc.Serve(l, s.Engine.Serve)
	return nil
}

// Close shuts the server down, waiting up to 5 s for sessions to finish
// the message they are receiving (done when the test ends, for NewServer).
func (s *Server) Close() { s.lc.Close(s.Engine.Shutdown, s.Engine.Close, s.openConns) }

// openConns returns the connections still open.
func (s *Server) openConns() []net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Conn
	for _, c := range s.rec.Open() {
		out = append(out, c)
	}
	return out
}

// Host returns the server's IP address, "127.0.0.1".
func (s *Server) Host() string { return scripttest.Host(s.Addr) }

// Port returns the server's port.
func (s *Server) Port() int { return scripttest.Port(s.Addr) }

// ClientTLSConfig returns a client configuration that trusts the server's
// certificate (for "localhost" and 127.0.0.1).
func (s *Server) ClientTLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate)
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// now is the engine's clock.
func (s *Server) now() time.Time {
	if s.Engine.Now != nil {
		return s.Engine.Now()
	}
	return time.Now()
}

// add records m as accepted and returns its id; s.mu is held.
func (s *Server) add(m Message) string {
	m.ID = "smtptest." + strconv.Itoa(len(s.msgs)+1)
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
	return m.ID
}

// Messages returns the messages accepted so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait waits until at least n messages were accepted and returns them
// all, or returns those accepted so far with ctx's error.
func (s *Server) Wait(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		out := append([]Message(nil), s.msgs...)
		ch := s.changed
		s.mu.Unlock()
		if len(out) >= n {
			return out, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return out, fmt.Errorf("smtptest: %d messages, want %d: %w", len(out), n, ctx.Err())
		}
	}
}

// WaitMessages waits until at least n messages were accepted and returns
// them all. After timeout it fails the test (NewServer), or returns those
// accepted so far (NewUnstarted: len tells).
func (s *Server) WaitMessages(n int, timeout time.Duration) []Message {
	if s.t != nil {
		s.t.Helper()
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	msgs, err := s.Wait(ctx, n)
	if err != nil && s.t != nil {
		s.t.Fatalf("smtptest: %d messages after %v, want %d", len(msgs), timeout, n)
	}
	return msgs
}

// Reset forgets the messages and attempts so far; the next connection is
// attempt 1 again. The script stays (see ClearScript).
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = nil
	s.rec.Reset()
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
