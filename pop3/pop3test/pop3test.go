// Package pop3test runs the pop3 package's server on 127.0.0.1 for tests
// of code that fetches mail, as smtpserver/smtptest does for code that
// sends it: start it with users and their messages (held in memory), let
// the code under test log in and retrieve, script failures (a refused
// login, -ERR at RETR, a dropped connection), and read back every command
// each connection sent with the server's reply.
//
//	srv := pop3test.NewServer(t, pop3test.User("bob", "secret", "Subject: hi\r\n\r\nhello\r\n"))
//	srv.Script(pop3test.OnAttempt(1).At("RETR").Err("[SYS/TEMP] try again later"))
//	// ... code under test fetches from srv.Addr as bob ...
//	if left := srv.Mailbox("bob"); len(left) != 0 { ... } // deleted at QUIT
//
// The server is a real [pop3.Server] in modern mode (or qmail's with
// [Compat]): CAPA, USER/PASS, AUTH PLAIN, APOP when configured, UIDL, TOP,
// one session at a time per mailbox ([IN-USE]). Passwords are accepted in
// the clear, as the client is on loopback. A message is stored with LF
// line ends, as in a Maildir, and sent with CRLF: give it with either.
//
// # Scripts and records
//
// An attempt is one connection, numbered from 1 in the order the server
// accepted them. [Server.Script] takes rules for a command (by its verb,
// and optionally its argument; "CONNECT" is the greeting), for chosen
// attempts and a number of times: an -ERR reply of its own, a dropped
// connection, or a delay. The server reads and answers one command line
// at a time, so that a scripted reply always comes in its place.
// [Server.Attempts] lists every connection with each command line and the
// first line of its reply. Commands after STLS (when a test configures
// TLS) are encrypted and neither scripted nor recorded.
package pop3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/scripttest"
	"github.com/qmailkit/qmailkit/pop3"
)

// Message is a message of a maildrop.
type Message struct {
	// UID is its UIDL, stable for the server's life.
	UID string
	// Raw is the message as a client retrieves it with RETR, dot-stuffing
	// removed: CRLF line ends.
	Raw []byte
}

// box is a user's maildrop.
type box struct {
	password string
	msgs     []stored
	locked   bool
}

type stored struct {
	uid  string
	data []byte // LF line ends
}

// Option configures a server.
type Option func(*Server)

// User adds a user with a password and messages (in order, oldest
// first), each given with CRLF or LF line ends.
func User(name, password string, messages ...string) Option {
	return func(s *Server) {
		s.AddUser(name, password)
		for _, m := range messages {
			s.Deliver(name, m)
		}
	}
}

// Compat makes the server behave exactly as qmail-popup and qmail-pop3d.
func Compat() Option { return func(s *Server) { s.Engine.Compat = true } }

// Configure lets the test change the engine before it starts. Its Auth and
// OpenMailbox are the test server's own.
func Configure(f func(*pop3.Server)) Option { return func(s *Server) { f(s.Engine) } }

// Server is a test POP3 server.
type Server struct {
	// Addr is "127.0.0.1:port", set by Start.
	Addr string
	// Engine is the pop3.Server being run; change it only through
	// Configure, or between NewUnstarted and Start.
	Engine *pop3.Server

	lc     scripttest.Lifecycle
	script scripttest.Script[Rule]

	mu    sync.Mutex
	users map[string]*box
	uid   int
	rec   scripttest.Record[Attempt, *conn] // the attempts, the open connections
}

// NewServer starts a server on 127.0.0.1 for the test; it is shut down
// when the test ends. A failure to start fails the test.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := NewUnstarted(opts...)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewUnstarted returns a server that does not listen yet, for code without
// a testing.TB (an Example) or that must change Engine first: call Start,
// and Close when done.
func NewUnstarted(opts ...Option) *Server {
	s := &Server{
		lc:    scripttest.Lifecycle{Name: "pop3test"},
		users: map[string]*box{},
		Engine: &pop3.Server{
			Hostname:      "localhost",
			AuthFailDelay: -1,
			MaxConnsPerIP: -1,
			Timeout:       time.Minute,
		},
	}
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
	s.Engine.Auth = pop3.AuthenticatorFunc(s.authenticate)
	s.Engine.OpenMailbox = s.open
	l, err := s.lc.Listen(s.accepted)
	if err != nil {
		return err
	}
	s.Addr = l.Addr().String()
	s.lc.Serve(l, s.Engine.Serve)
	return nil
}

// Close shuts the server down (done when the test ends, for NewServer).
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

// AddUser adds a user with an empty maildrop, or changes the password of
// one.
func (s *Server) AddUser(name, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.users[name]; b != nil {
		b.password = password
		return
	}
	s.users[name] = &box{password: password}
}

// Deliver adds a message to a user's maildrop (the user is created, with
// an empty password that refuses every login, if needed) and returns its
// UID. A session already logged in sees it only in its next session.
func (s *Server) Deliver(user, msg string) string {
	data := bytes.ReplaceAll([]byte(msg), []byte("\r\n"), []byte("\n"))
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.users[user]
	if b == nil {
		b = &box{}
		s.users[user] = b
	}
	s.uid++
	uid := "pop3test." + strconv.Itoa(s.uid)
	b.msgs = append(b.msgs, stored{uid: uid, data: data})
	return uid
}

// Mailbox returns the messages of a user's maildrop: those not yet
// deleted by a session's QUIT.
func (s *Server) Mailbox(user string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.users[user]
	if b == nil {
		return nil
	}
	out := make([]Message, len(b.msgs))
	for i, m := range b.msgs {
		out[i] = Message{UID: m.uid, Raw: bytes.ReplaceAll(m.data, []byte("\n"), []byte("\r\n"))}
	}
	return out
}

func (s *Server) authenticate(ctx context.Context, c pop3.Credentials) (*pop3.User, error) {
	s.mu.Lock()
	b := s.users[c.User]
	pw := ""
	if b != nil {
		pw = b.password
	}
	s.mu.Unlock()
	if b == nil || pw == "" || !pop3.CheckSecret(c, pw) {
		return nil, pop3.ErrAuthFailed
	}
	s.mu.Lock()
	if cn := s.rec.Conn(net.JoinHostPort(c.Env["TCPREMOTEIP"], c.Env["TCPREMOTEPORT"])); cn != nil {
		cn.a.User = c.User
	}
	s.mu.Unlock()
	return &pop3.User{Name: c.User, UID: -1, GID: -1}, nil
}

// lockWait is how long a login waits for the user's previous session to
// end (a client that dropped its connection and logs in again at once
// would otherwise race the server noticing the drop).
const lockWait = 2 * time.Second

// open is the engine's OpenMailbox: the user's maildrop, one session at a
// time; a login while another session holds it waits up to lockWait, then
// gets -ERR [IN-USE].
func (s *Server) open(ctx context.Context, u *pop3.User) (pop3.Mailbox, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.users[u.Name]
	if b == nil {
		return nil, errors.New("pop3test: no such user")
	}
	for deadline := time.Now().Add(lockWait); b.locked && time.Now().Before(deadline) && ctx.Err() == nil; {
		s.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		s.mu.Lock()
	}
	if b.locked {
		return nil, fmt.Errorf("pop3test: %s: %w", u.Name, pop3.ErrInUse)
	}
	b.locked = true
	return &mailbox{s: s, b: b, msgs: append([]stored(nil), b.msgs...)}, nil
}

// mailbox is a session's view of a box: the messages there at login.
type mailbox struct {
	s    *Server
	b    *box
	msgs []stored
	once sync.Once
}

func (m *mailbox) Messages(ctx context.Context) ([]pop3.Message, error) {
	out := make([]pop3.Message, len(m.msgs))
	for i, st := range m.msgs {
		n := int64(len(st.data))
		out[i] = pop3.Message{UID: st.uid, Size: n, WireSize: n + int64(bytes.Count(st.data, []byte("\n")))}
	}
	return out, nil
}

func (m *mailbox) Open(ctx context.Context, i int) (io.ReadCloser, error) {
	if i < 0 || i >= len(m.msgs) {
		return nil, errors.New("pop3test: no such message")
	}
	return io.NopCloser(bytes.NewReader(m.msgs[i].data)), nil
}

func (m *mailbox) Commit(ctx context.Context, u pop3.Update) error {
	del := map[string]bool{}
	for i, d := range u.Deleted {
		if d && i < len(m.msgs) {
			del[m.msgs[i].uid] = true
		}
	}
	m.s.mu.Lock()
	defer m.s.mu.Unlock()
	kept := m.b.msgs[:0:0]
	for _, st := range m.b.msgs {
		if !del[st.uid] {
			kept = append(kept, st)
		}
	}
	m.b.msgs = kept
	return nil
}

func (m *mailbox) Close() error {
	m.once.Do(func() {
		m.s.mu.Lock()
		m.b.locked = false
		m.s.mu.Unlock()
	})
	return nil
}
