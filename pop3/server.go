package pop3

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/tcpenv"

	"github.com/qmailkit/qmailkit/internal/connlimit"
)

// ErrServerClosed is returned by [Server.Serve] after [Server.Shutdown] or
// [Server.Close].
var ErrServerClosed = errors.New("pop3: server closed")

// Why a session ended, other than by QUIT (for which ServeConn returns nil).
var (
	// ErrClientGone: the connection ended (or timed out) before QUIT.
	ErrClientGone = errors.New("pop3: connection ended before QUIT")
	// ErrLoginEnded: the session ended in the authorization state after a
	// login (a failed one in compat mode, or one handed off).
	ErrLoginEnded = errors.New("pop3: session ended at login")
)

// Handoff takes over a connection once the client has given its
// credentials, as qmail-popup hands the connection to checkpassword, which
// runs qmail-pop3d on it. The server writes nothing more on the connection
// after calling it, except the -ERR line for its error: [ErrAuthFailed]
// gives "-ERR authorization failed", [ErrChildCrashed] "-ERR aack, child
// crashed", a [*ReplyError] its own text; nil writes nothing. The session
// then ends.
type Handoff interface {
	Handoff(ctx context.Context, c net.Conn, cred Credentials) error
}

// ErrChildCrashed is the condition of a handed-off login whose program was
// killed by a signal.
var ErrChildCrashed = errors.New("pop3: child crashed")

// ReplyError is an error with the text of the -ERR reply it gives.
type ReplyError struct {
	Text string // after "-ERR "
	Err  error
}

// Error returns the reply text with the error it wraps.
func (e *ReplyError) Error() string {
	if e.Err != nil {
		return "pop3: " + e.Text + ": " + e.Err.Error()
	}
	return "pop3: " + e.Text
}

// Unwrap returns the underlying error.
func (e *ReplyError) Unwrap() error { return e.Err }

// Server is a POP3 server with the semantics of qmail-popup and qmail-pop3d
// (Compat), or with modern RFC behaviour (the default). Its zero value
// serves with modern defaults and refuses every login until Auth is set.
// Fields must not change once the server has started.
type Server struct {
	// Hostname appears in the greeting and its APOP timestamp
	// "<pid.time@Hostname>" (qmail-popup's first argument). Empty means
	// os.Hostname().
	Hostname string

	// Compat gives qmail-popup's and qmail-pop3d's exact behaviour: their
	// reply texts ("+OK " with its trailing space), STAT counting deleted
	// messages, sizes as stored, the extra empty line before the
	// terminating dot, LAST, one login attempt per connection, no line
	// length limit, no mailbox lock; CAPA, STLS and AUTH only when
	// TLSConfig is set. See the package doc, # Compatibility.
	Compat bool

	// Auth checks logins (checkpassword's role). Nil refuses every login.
	Auth Authenticator
	// Handoff, when set, replaces Auth and the transaction state: after
	// USER/PASS or APOP the connection is handed to it, as qmail-popup
	// runs checkpassword and ends when it ends. See [Checkpassword].
	Handoff Handoff
	// OpenMailbox opens an authenticated user's maildrop. Nil opens
	// the Maildir at User.Maildir (or Home/Maildir) with [OpenMaildir]: in
	// modern mode with a lock, wire sizes, Seen from SeenOnRetr, and a
	// Maildir that does not exist yet read as an empty mailbox
	// ([MaildirOptions.MissingEmpty]); in compat mode as qmail-pop3d,
	// which refuses a missing one; in both, confined to the Maildir and
	// checked to belong to User.UID (see [MaildirOptions.User]). An error
	// wrapping [ErrInUse] answers "-ERR [IN-USE] ...", a permanent one
	// (such as [ErrUnsafeMaildir]) "-ERR [SYS/PERM] ...".
	OpenMailbox func(ctx context.Context, u *User) (Mailbox, error)
	// SeenOnRetr makes the default OpenMailbox flag messages retrieved
	// whole with RETR as seen (S) at QUIT, in modern mode. qmail, and
	// compat mode, flag nothing.
	SeenOnRetr bool

	// TLSConfig offers STLS (RFC 2595) when set. For implicit TLS (port
	// 995, RFC 8314) serve a tls.NewListener instead: a *tls.Conn is
	// treated as secure from the start.
	TLSConfig *tls.Config
	// AllowPlaintext allows USER/PASS and AUTH PLAIN over unencrypted
	// connections from anywhere. Without it they are allowed only under TLS
	// or from a loopback address (127.0.0.0/8, ::1), so that no password
	// crosses the network in clear. The qmail-popup drop-in sets it, since
	// qmail has no TLS.
	AllowPlaintext bool
	// APOP offers APOP in modern mode (its greeting then carries the
	// timestamp). Compat mode always accepts it, as qmail-popup does.
	APOP bool

	// Timeout is the longest wait for a whole command line (from the
	// moment the server waits for it to its end: a client sending a byte
	// now and then gains nothing), for the TLS handshake, and for each
	// write. Zero means 1200 s, qmail's; RFC 1939 asks for at least 10
	// minutes.
	Timeout time.Duration
	// SessionTimeout bounds a whole connection. Zero means 1 hour in
	// modern mode and none in compat mode (qmail has none); negative
	// means none.
	SessionTimeout time.Duration

	// MaxConns is the most connections Serve serves at once on one
	// listener, and MaxConnsPerIP the most from one client (an IPv4
	// address or an IPv6 /64, from the connection's TCPREMOTEIP). A
	// connection over a limit gets "-ERR [SYS/TEMP] too many
	// connections" and is closed at once (a TLS one is closed without a
	// reply). Zero means 1000 and 20 in modern mode, and no limit in
	// compat mode (qmail leaves it to tcpserver -c); negative means no
	// limit. ServeConn and ServeMailbox are not counted.
	MaxConns      int
	MaxConnsPerIP int

	// AuthLimiter, when set, is asked before each check of credentials
	// (USER/PASS, APOP, AUTH PLAIN; not a Handoff) and told its outcome,
	// so that password guessing is slowed across sessions and
	// connections. Nil: no limit beyond AuthFailDelay and the three
	// attempts of a modern session.
	AuthLimiter AuthLimiter
	// MaxLineLength is the longest command line, CRLF included; a longer
	// one gets "-ERR line too long" and is discarded. Zero means 255 (RFC
	// 2449 section 4) in modern mode and 1 MiB in compat mode (qmail
	// has no limit). AUTH continuation lines may be up to 8 KiB.
	MaxLineLength int
	// AuthFailDelay delays the reply to a failed login in modern mode,
	// doubling after each failure; the third failure closes the session.
	// Zero means 1 s; negative means no delay.
	AuthFailDelay time.Duration

	// Logger receives a line for each login attempt and each session
	// (see the package doc, # Logs). Nil discards them.
	Logger *slog.Logger
	// Rejected, when set, is told of each failed login and TLS handshake
	// and each connection refused (for metrics). It is called from the
	// session's goroutine and must return quickly.
	Rejected func(Rejection)
	// Now is the clock for greeting timestamps and for the session start
	// time that decides which messages are listed. Nil means time.Now.
	Now func() time.Time

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	closing   atomic.Bool
	seq       atomic.Uint64
	locks     map[string]bool // Maildirs in use by this server (flock covers other processes)
	doneCh    chan struct{}   // closed by Shutdown and Close
}

func (srv *Server) now() time.Time {
	if srv.Now != nil {
		return srv.Now()
	}
	return time.Now()
}

func (srv *Server) logger() *slog.Logger {
	if srv.Logger != nil {
		return srv.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (srv *Server) hostname() string {
	if srv.Hostname != "" {
		return srv.Hostname
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

func (srv *Server) timeout() time.Duration {
	if srv.Timeout > 0 {
		return srv.Timeout
	}
	return 1200 * time.Second
}

func (srv *Server) sessionTimeout() time.Duration {
	switch {
	case srv.SessionTimeout > 0:
		return srv.SessionTimeout
	case srv.SessionTimeout < 0, srv.Compat:
		return 0
	}
	return time.Hour
}

// limit is the value of a MaxConns field: n when set, def in modern mode
// when zero, and no limit (0 for connlimit) otherwise.
func (srv *Server) limit(n, def int) int {
	switch {
	case n > 0:
		return n
	case n == 0 && !srv.Compat:
		return def
	}
	return 0
}

func (srv *Server) maxLine() int {
	switch {
	case srv.MaxLineLength > 0:
		return srv.MaxLineLength
	case srv.Compat:
		return 1 << 20
	}
	return 255
}

func (srv *Server) failDelay() time.Duration {
	switch {
	case srv.AuthFailDelay > 0:
		return srv.AuthFailDelay
	case srv.AuthFailDelay < 0:
		return 0
	}
	return time.Second
}

// timestamp makes the greeting's APOP timestamp. qmail-popup's is
// "<pid.time@host>"; in modern mode a sequence number keeps the sessions of
// one second apart, since a timestamp must never repeat (RFC 1939
// section 7).
func (srv *Server) timestamp() string {
	pid := strconv.Itoa(os.Getpid())
	t := strconv.FormatInt(srv.now().Unix(), 10)
	if srv.Compat {
		return "<" + pid + "." + t + "@" + srv.hostname() + ">"
	}
	n := strconv.FormatUint(srv.seq.Add(1), 10)
	return "<" + pid + "." + n + "." + t + "@" + srv.hostname() + ">"
}

// openMailbox opens the user's Maildir as OpenMailbox's default does.
func (srv *Server) openMailbox(ctx context.Context, u *User) (Mailbox, error) {
	if srv.OpenMailbox != nil {
		return srv.OpenMailbox(ctx, u)
	}
	path := u.Maildir
	if path == "" {
		if u.Home == "" {
			return nil, errors.New("pop3: user has no home directory")
		}
		path = filepath.Join(u.Home, "Maildir")
	}
	if srv.Compat {
		return OpenMaildir(path, MaildirOptions{User: u, Now: srv.Now})
	}
	key, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if !srv.lock(key) {
		return nil, ErrInUse
	}
	mb, err := OpenMaildir(path, MaildirOptions{User: u, Lock: true, WireSizes: true, Seen: srv.SeenOnRetr, MissingOK: true, MissingEmpty: true, Now: srv.Now})
	if err != nil {
		srv.unlock(key)
		return nil, err
	}
	return &unlockOnClose{Maildir: mb, release: func() { srv.unlock(key) }}, nil
}

type unlockOnClose struct {
	*Maildir
	release func()
	once    sync.Once
}

func (u *unlockOnClose) Close() error {
	err := u.Maildir.Close()
	u.once.Do(u.release)
	return err
}

// lock is the in-process half of the mailbox lock: flock(2) keeps other
// processes out, but over NFS it becomes a per-process lock.
func (srv *Server) lock(key string) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.locks[key] {
		return false
	}
	if srv.locks == nil {
		srv.locks = map[string]bool{}
	}
	srv.locks[key] = true
	return true
}

func (srv *Server) unlock(key string) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	delete(srv.locks, key)
}

// Serve accepts connections on l and serves each in its own goroutine
// until Shutdown or Close; it then waits for the sessions it started and
// returns ErrServerClosed. A connection with an Env() map[string]string
// method (as the tcprules listener's have) is served with that
// environment; others get TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP,
// TCPLOCALPORT and PROTO from their addresses. Connections over MaxConns
// or MaxConnsPerIP are refused.
//
// An error from Accept other than the listener being closed (a full
// descriptor table, no buffers or memory, a connection aborted before it
// was accepted, ...) is logged and Accept tried again after a pause, 5 ms
// doubling to 1 s while the errors last: Serve returns only when l is
// closed or the server shut down.
func (srv *Server) Serve(l net.Listener) error {
	if !srv.track(l, true) {
		return ErrServerClosed
	}
	defer srv.track(l, false)
	lim := &connlimit.Limiter{Max: srv.limit(srv.MaxConns, 1000), PerClient: srv.limit(srv.MaxConnsPerIP, 20)}
	var wg sync.WaitGroup
	defer wg.Wait()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if srv.closing.Load() {
				return ErrServerClosed
			}
			if !acceptRetry(err) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			srv.logger().Warn("pop3: accept", "err", err, "retry", delay)
			if !srv.pause(delay) {
				return ErrServerClosed
			}
			continue
		}
		delay = 0
		env := tcpenv.FromConn(c)
		release, err := lim.Acquire(remoteAddr(env, c))
		if err != nil {
			srv.rejectConn(env, remoteAddr(env, c), err)
			wg.Go(func() { refuse(c, "-ERR [SYS/TEMP] too many connections\r\n") })
			continue
		}
		wg.Go(func() {
			defer release()
			srv.ServeConn(context.Background(), c, env)
		})
	}
}

// acceptRetry reports whether Accept may succeed again after err: every
// error but those of a listener that is closed or is no listener.
func acceptRetry(err error) bool {
	switch {
	case errors.Is(err, net.ErrClosed), errors.Is(err, syscall.EBADF), errors.Is(err, syscall.ENOTSOCK),
		errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.EOPNOTSUPP):
		return false
	}
	return true
}

// pause waits d, or less when the server shuts down; it reports whether
// the server is still running.
func (srv *Server) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-srv.done():
	}
	return !srv.closing.Load()
}

// refuse writes line to a connection over a limit and closes it, waiting
// at most a second: a TLS connection is closed without a reply, since
// writing would wait for its handshake.
func refuse(c net.Conn, line string) {
	if _, ok := c.(*tls.Conn); !ok {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(c, line)
	}
	c.Close()
}

// remoteAddr is the client's address: the environment's TCPREMOTEIP (a
// PROXY header's, from a tcprules listener), else the connection's.
func remoteAddr(env map[string]string, c net.Conn) netip.Addr {
	if a, err := netip.ParseAddr(env["TCPREMOTEIP"]); err == nil {
		return a.Unmap()
	}
	if c.RemoteAddr() != nil {
		if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
			return ap.Addr().Unmap()
		}
	}
	return netip.Addr{}
}

// ConnEnv is the environment Serve gives a connection: tcpenv.FromConn
// (which also looks under a *tls.Conn, as on the implicit-TLS port).
//
// Deprecated: use tcpenv.FromConn, the one shared by the servers.
func ConnEnv(c net.Conn) map[string]string { return tcpenv.FromConn(c) }

func (srv *Server) track(l net.Listener, add bool) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !add {
		delete(srv.listeners, l)
		return true
	}
	if srv.closing.Load() {
		return false
	}
	if srv.listeners == nil {
		srv.listeners = map[net.Listener]struct{}{}
	}
	srv.listeners[l] = struct{}{}
	return true
}

func (srv *Server) trackSession(s *session, add bool) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !add {
		delete(srv.sessions, s)
		return true
	}
	if srv.closing.Load() {
		return false
	}
	if srv.sessions == nil {
		srv.sessions = map[*session]struct{}{}
	}
	srv.sessions[s] = struct{}{}
	return true
}

// done returns a channel closed when the server shuts down.
func (srv *Server) done() chan struct{} {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.doneCh == nil {
		srv.doneCh = make(chan struct{})
	}
	return srv.doneCh
}

func (srv *Server) closeListeners() {
	srv.closing.Store(true)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.doneCh == nil {
		srv.doneCh = make(chan struct{})
	}
	select {
	case <-srv.doneCh:
	default:
		close(srv.doneCh)
	}
	for l := range srv.listeners {
		l.Close()
	}
}

// Shutdown stops the server gracefully: it closes the listeners, ends each
// session when it is waiting for a command (a session in the transaction
// state ends without its QUIT update, so nothing is deleted), and waits
// for every session to end or for ctx to be done, whichever comes first.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.closeListeners()
	wait := 5 * time.Millisecond
	for {
		srv.mu.Lock()
		n := len(srv.sessions)
		for s := range srv.sessions {
			if s.idle.Load() {
				s.raw.SetReadDeadline(time.Now())
			}
		}
		srv.mu.Unlock()
		if n == 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// Close closes the listeners and every connection at once. Sessions end
// without their QUIT update.
func (srv *Server) Close() error {
	srv.closeListeners()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for s := range srv.sessions {
		s.cancel()
		s.raw.Close()
	}
	return nil
}

// isLoopback reports whether the client is on this host, from the
// environment's TCPREMOTEIP or else the connection's address.
func isLoopback(env map[string]string, c net.Conn) bool {
	ip := env["TCPREMOTEIP"]
	if ip == "" && c.RemoteAddr() != nil {
		if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
			return ap.Addr().Unmap().IsLoopback()
		}
		return false
	}
	a, err := netip.ParseAddr(ip)
	return err == nil && a.Unmap().IsLoopback()
}

// deadlineConn sets a fresh deadline before each write, which is qmail's
// timeoutwrite. Reads are bounded by the deadline the session sets once
// for each command line ([session.readLine]), not per read: a client that
// trickles a byte at a time must still finish its line within Timeout.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.Conn.Write(p)
}
