package smtpserver

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/tcpenv"

	"github.com/qmailkit/qmailkit/internal/connlimit"
)

// ErrServerClosed is returned by [Server.Serve] after [Server.Shutdown] or
// [Server.Close].
var ErrServerClosed = errors.New("smtpserver: server closed")

// Why a session ended: [Server.ServeConn] returns nil after QUIT, and one
// of these (or a network error) otherwise.
var (
	// ErrClientGone: the client closed the connection without QUIT
	// (qmail-smtpd exits 1).
	ErrClientGone = errors.New("smtpserver: client closed the connection")
	// ErrTimeout: a read or write took longer than Server.Timeout.
	ErrTimeout = errors.New("smtpserver: timeout")
	// ErrProtocol: the session was closed for a protocol violation (bare LF,
	// early talking, pipelining abuse, too many errors).
	ErrProtocol = errors.New("smtpserver: protocol violation")
	// ErrTooSlow: the client sent a message more slowly than
	// Server.MinDataRate allows.
	ErrTooSlow = errors.New("smtpserver: client sent data too slowly")
)

// Enqueuer takes an accepted message. It is the seam to the queue
// (qmail-queue's role); the queue satisfies it without importing this
// package, which is why it uses standard types only.
//
// Enqueue must read msg to io.EOF and make the message durable before it
// returns a nil error; only then does the client get 250. msg streams the
// message as it arrives (the server's Received line, then the data with
// CRLF turned into LF and dot-stuffing removed); it is never held whole in
// memory. If a Read returns an error other than io.EOF (the message broke a
// rule, or the client went away), Enqueue must not queue the message and
// must return an error. The returned id appears in the 250 reply.
//
// An error, or one it wraps, may be a [Reply] to choose the reply, or a
// [RecipientErrors] for per-recipient results in LMTP mode; otherwise a
// permanent error (see the package doc) gives 554 and any other 451.
// [SessionFrom] gives the session's details from ctx.
type Enqueuer interface {
	Enqueue(ctx context.Context, from string, to []string, msg io.Reader) (id string, err error)
}

// EnqueuerFunc adapts a function to [Enqueuer].
type EnqueuerFunc func(ctx context.Context, from string, to []string, msg io.Reader) (string, error)

// Enqueue calls f.
func (f EnqueuerFunc) Enqueue(ctx context.Context, from string, to []string, msg io.Reader) (string, error) {
	return f(ctx, from, to, msg)
}

// Server is an SMTP (or LMTP) server with qmail-smtpd's semantics. Its zero
// value serves with modern defaults, refusing relaying and refusing every
// message with 451 until an Enqueuer is set. Fields must not change once
// the server has started; [Server.SessionSettingsContext] gives new sessions new
// values.
type Server struct {
	// Hostname is qmail's control/me: the default of Greeting and
	// LocalIPHost, and in modern mode the host the Received line names
	// after "by" (unless the connection's TCPLOCALHOST, tcpserver -l,
	// names one). Empty means os.Hostname() for Greeting and LocalIPHost,
	// and the connection's local address (TCPLOCALIP) in the Received
	// line, which is what qmail-smtpd writes, and what Compat mode
	// writes whatever Hostname says.
	Hostname string
	// Greeting is control/smtpgreeting, the text after "220 ", "250 " and
	// "221 ". Empty means Hostname.
	Greeting string
	// LocalIPHost is control/localiphost: it replaces a domain literal
	// "[a.b.c.d]" naming one of the host's own addresses. Empty means
	// Hostname.
	LocalIPHost string

	// Compat gives qmail-smtpd's exact behaviour (qmail-smtpd(8)): its reply
	// texts without enhanced codes, only PIPELINING and 8BITMIME offered
	// unless TLSConfig or Auth are set, no parameter checks, bare CR kept,
	// no recipient or error limits, no connection limits or minimum data
	// rate, databytes 0 unlimited, duplicate recipients queued. See the
	// package doc, # Compatibility.
	Compat bool
	// LMTP makes the server speak LMTP (RFC 2033): LHLO instead of
	// HELO/EHLO, and one reply per recipient after the data.
	LMTP bool

	// Enqueuer receives each accepted message. Nil refuses every message
	// with 451 (a temporary failure: nothing is lost).
	Enqueuer Enqueuer

	// RcptHostsContext reports whether mail for a domain (lower-cased, the
	// text after the recipient's last "@") is accepted from a client that
	// may not relay (control/rcpthosts and morercpthosts.cdb; see
	// [HostList] and [RcptHostsHook]). It is called at RCPT with the
	// session (its address, HELO, TLS state; it has no User, since an
	// authenticated client may relay and is not asked about). An error
	// refuses with "421 unable to read controls" and closes, as qmail.
	// When both RcptHostsContext and RcptHosts are nil, every domain is
	// refused, unless OpenRelay is set. Recipients without "@" are always
	// accepted, as by qmail.
	RcptHostsContext func(ctx context.Context, s *Session, domain string) (bool, error)
	// RcptHosts is RcptHostsContext without the context and the session;
	// it is used only when RcptHostsContext is nil.
	//
	// Deprecated: set RcptHostsContext ([RcptHostsHook] adapts a func of
	// the domain alone, such as [HostList]'s).
	RcptHosts func(domain string) (bool, error)
	// OpenRelay accepts every recipient from everyone when RcptHostsContext
	// and RcptHosts are nil: qmail's behaviour with no control/rcpthosts.
	// Never set it on a server reachable from the Internet.
	OpenRelay bool
	// RelayFrom lets clients whose address lies in one of these prefixes
	// relay, as if their connection's environment set RELAYCLIENT to ""
	// (what a tcprules rule 127.:allow,RELAYCLIENT="" does), without a
	// rules file: the trusted networks of a library user. The address is
	// TCPREMOTEIP when the environment has it (a PROXY header's client,
	// say), else the connection's; IPv4-mapped IPv6 addresses and
	// prefixes are compared as IPv4. A connection whose environment
	// already sets RELAYCLIENT keeps its value (and suffix). Nil trusts
	// no network.
	RelayFrom []netip.Prefix
	// Relay, when set, is asked once as each session starts, unless
	// RELAYCLIENT or RelayFrom already let the client relay, whether the
	// client may relay; true sets RELAYCLIENT to "" in the session's
	// environment, as RelayFrom does. The Session has Env, the addresses
	// and RemoteIP; ctx is the one given to ServeConn (Serve's never ends).
	// It runs before the greeting, and Shutdown and Close do not interrupt
	// it, so it must return quickly. Nil means no.
	Relay func(ctx context.Context, s *Session) bool
	// BadMailFromContext reports whether an envelope sender is refused
	// (control/badmailfrom; see [AddressList] and [BadMailFromHook]). It
	// is called at MAIL with the session (address, HELO, TLS state, User
	// when the client authenticated) and the sender, which is never the
	// null sender; as in qmail-smtpd, MAIL is accepted and every RCPT of
	// the transaction refused with 553. When both BadMailFromContext and
	// BadMailFrom are nil, no sender is refused.
	BadMailFromContext func(ctx context.Context, s *Session, addr string) bool
	// BadMailFrom is BadMailFromContext without the context and the
	// session; it is used only when BadMailFromContext is nil.
	//
	// Deprecated: set BadMailFromContext ([BadMailFromHook] adapts a func
	// of the address alone, such as [AddressList]'s).
	BadMailFrom func(addr string) bool

	// MaxMessageBytes is control/databytes: the largest message, counted
	// after CRLF→LF and dot-unstuffing, without the Received line. 0 means
	// [DefaultMaxMessageBytes] (35 MiB, as large providers accept) in
	// modern mode, and unlimited in Compat mode (qmail's databytes 0);
	// negative means unlimited. The connection's DATABYTES variable, when
	// set, replaces it and is read the same way: its leading digits, 0
	// (or no digits) meaning the mode's default, so that in modern mode a
	// connection can be given a larger limit but never none.
	MaxMessageBytes int64
	// Timeout is control/timeoutsmtpd: the longest wait for each read and
	// write. 0 means 1200 s.
	Timeout time.Duration
	// SessionTimeout bounds a whole connection. 0 means one hour (modern)
	// or none (Compat); negative means none.
	SessionTimeout time.Duration
	// MaxLineLength is the longest command line, CRLF included; longer lines
	// get "500 5.5.2 line too long". 0 means 4096 (modern) or 1 MiB (Compat,
	// where qmail has no limit).
	MaxLineLength int
	// MaxRecipients per message; beyond it RCPT gets 452. 0 means 1000
	// (modern) or unlimited (Compat); negative means unlimited.
	MaxRecipients int
	// MaxErrors is how many error replies a session may earn before it is
	// closed with 421. 0 means 20 (modern) or unlimited (Compat); negative
	// means unlimited.
	MaxErrors int
	// MaxConns limits the sessions Serve runs at once, over all the
	// listeners it serves (ServeConn is not limited), so that idle
	// connections cannot take every descriptor of the process. A connection
	// beyond it gets "421 4.7.0 too many connections, try again later" and
	// is closed at once. 0 means 1000 (modern) or unlimited (Compat: qmail
	// leaves this to tcpserver's -c, the tcprules package's Listener.Limit);
	// negative means unlimited.
	MaxConns int
	// MaxConnsPerIP limits the sessions Serve runs at once for one client:
	// an IPv4 address, or an IPv6 /64 (one host commonly holds a whole /64),
	// taken from TCPREMOTEIP. A connection beyond it gets "421 4.7.0 too
	// many connections from your address" and is closed at once, so that
	// one client cannot take every slot. A connection whose environment
	// sets RELAYCLIENT (a network the tcprules cdb trusts) counts against
	// MaxConns only, as Postfix exempts $mynetworks from its per-client
	// limits. 0 means 20 (modern) or unlimited (Compat); negative means
	// unlimited.
	MaxConnsPerIP int
	// MinDataRate is the lowest rate, in bytes per second, at which a
	// client must send a message (DATA, or a BDAT transaction from its
	// first chunk to its last), averaged over the time the server waits
	// for it and checked once it has waited 30 s: a client that trickles a
	// message a byte at a time is told "451 4.4.2 data transfer too slow,
	// closing connection", the session ends and nothing is queued. Time the
	// Enqueuer takes is not counted. 0 means 1024 bytes/s (modern) or no
	// minimum (Compat: qmail has only timeoutsmtpd per read); negative
	// means no minimum.
	MinDataRate int
	// SessionSettingsContext, when set, is called once as each session
	// starts, with the connection's environment and addresses in the
	// Session (and ctx, the one given to ServeConn, from which
	// [SessionFrom] gives the Session too), and the session uses what it
	// returns in place of Hostname, Greeting, LocalIPHost, MaxMessageBytes
	// and Timeout until it ends. It lets a running server give new values
	// to new sessions (control files reread on SIGHUP, as each qmail-smtpd
	// process reads them when it starts) while sessions in progress keep
	// theirs, since the fields themselves must not change. The
	// connection's DATABYTES still overrides MaxMessageBytes. When both
	// SessionSettingsContext and SessionSettings are nil, the fields are
	// used.
	SessionSettingsContext func(ctx context.Context, s *Session) Settings
	// SessionSettings is SessionSettingsContext without the context; it is
	// used only when SessionSettingsContext is nil.
	//
	// Deprecated: set SessionSettingsContext.
	SessionSettings func(*Session) Settings
	// GreetDelay waits this long before the greeting; a client that talks
	// first is an early talker and is refused with 554. 0 means no wait (and
	// no early-talker check).
	GreetDelay time.Duration

	// TLSConfig offers STARTTLS (RFC 3207) when set. [CertReloader] gives a
	// GetCertificate that follows certificate files on disk.
	TLSConfig *tls.Config
	// Auth offers AUTH PLAIN and LOGIN when set, only under TLS (or on a
	// loopback connection when AuthOnLoopback is set), and checks the
	// credentials, given with Service [auth.ServiceSMTP]: an error wrapping
	// [auth.ErrFailed] (or permanent) is a wrong password (535), any other a
	// temporary failure (454). An authenticated client may relay, as with an
	// empty RELAYCLIENT. The POP3 server takes the same interface.
	Auth auth.Authenticator
	// AuthOnLoopback allows AUTH without TLS from 127.0.0.0/8 and ::1.
	AuthOnLoopback bool
	// AuthFailDelay delays each failed AUTH, doubled after each failure;
	// after three failures the session is closed. 0 means 1 s; negative
	// means no delay.
	AuthFailDelay time.Duration
	// AuthLimiter, when set, slows password guessing across sessions and
	// connections: it is asked before each credentials check and told the
	// outcome after. Nil means none (AuthFailDelay still applies within a
	// session).
	AuthLimiter auth.Limiter

	// CheckSender is called at MAIL with the parsed sender; an error refuses
	// it (the error's Reply, or 553 permanent / 451 temporary).
	CheckSender func(ctx context.Context, s *Session, from string) error
	// CheckRecipient is called at RCPT, after the relay check, with the
	// recipient as it will be queued; an error refuses it (the error's Reply,
	// or "550 5.1.1 sorry, no mailbox here by that name" if permanent, 451
	// otherwise). qmail cannot do this: it bounces unknown users later.
	CheckRecipient func(ctx context.Context, s *Session, to string) error
	// DNSBL is rblsmtpd run in front of the session. Nil means only the
	// connection's RBLSMTPD variable is honoured.
	DNSBL *DNSBL

	// IsLocalIP reports whether an address is one of the host's own (qmail's
	// ipme, for the localiphost rewrite). Nil uses the addresses of the
	// interfaces that are up, plus 0.0.0.0, read once.
	IsLocalIP func(netip.Addr) bool
	// Logger receives one line per session, per transaction and per
	// rejection, and warnings (see the package doc, # Logs). Nil discards.
	Logger *slog.Logger
	// Rejected, when set, is called for each rejection the server logs
	// (for metrics: rejections by reason, failed TLS handshakes and AUTH
	// attempts). It is called from the session's goroutine and must
	// return quickly.
	Rejected func(Rejection)
	// Now is the clock for Received lines and replies. Nil means time.Now.
	Now func() time.Time

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	done      chan struct{} // closed with closed
	closed    atomic.Bool
	connsOnce sync.Once
	conns     connlimit.Limiter
	ipmeOnce  sync.Once
	ipme      map[netip.Addr]bool
	bufs      sync.Pool // *connBufs of ended sessions
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

// Settings are the values qmail-smtpd reads from its one-line control
// files, each with the meaning (zero value included) of the [Server] field
// of the same name. A session fixes them when it starts: see
// [Server.SessionSettingsContext].
type Settings struct {
	Hostname        string        // control/me
	Greeting        string        // control/smtpgreeting
	LocalIPHost     string        // control/localiphost
	MaxMessageBytes int64         // control/databytes; 0 means the default, as for Server.MaxMessageBytes
	Timeout         time.Duration // control/timeoutsmtpd
}

// settings returns the values a new session uses, defaults filled in.
func (srv *Server) settings(ctx context.Context, s *Session) Settings {
	set := Settings{
		Hostname:        srv.Hostname,
		Greeting:        srv.Greeting,
		LocalIPHost:     srv.LocalIPHost,
		MaxMessageBytes: srv.MaxMessageBytes,
		Timeout:         srv.Timeout,
	}
	switch {
	case srv.SessionSettingsContext != nil:
		set = srv.SessionSettingsContext(ctx, s)
	case srv.SessionSettings != nil:
		set = srv.SessionSettings(s)
	}
	if set.Greeting == "" || set.LocalIPHost == "" {
		// set.Hostname stays as configured: the Received line names it
		// only when it was set (receivedBy).
		host := set.Hostname
		if host == "" {
			host = "localhost"
			if h, err := os.Hostname(); err == nil && h != "" {
				host = h
			}
		}
		set.Greeting = cmp.Or(set.Greeting, host)
		set.LocalIPHost = cmp.Or(set.LocalIPHost, host)
	}
	if set.Timeout <= 0 {
		set.Timeout = 1200 * time.Second
	}
	return set
}

// limit returns v if positive, unlimited (0) if negative, and the mode's
// default when zero.
func (srv *Server) limit(v, modern, compat int) int {
	switch {
	case v > 0:
		return v
	case v < 0:
		return 0
	case srv.Compat:
		return compat
	}
	return modern
}

func (srv *Server) isLocalIP(ip netip.Addr) bool {
	if srv.IsLocalIP != nil {
		return srv.IsLocalIP(ip)
	}
	srv.ipmeOnce.Do(func() { srv.ipme = InterfaceIPs() })
	return srv.ipme[ip]
}

// InterfaceIPs is qmail's ipme list: 0.0.0.0 and the IPv4 address of every
// network interface that is up.
func InterfaceIPs() map[netip.Addr]bool {
	m := map[netip.Addr]bool{netip.IPv4Unspecified(): true}
	ifs, err := net.Interfaces()
	if err != nil {
		return m
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() {
					m[ip.Unmap()] = true
				}
			}
		}
	}
	return m
}

// Serve accepts connections on l and serves each in its own goroutine until
// Shutdown or Close; it then waits for its sessions to end and returns
// ErrServerClosed. A connection that has an Env() map[string]string method
// (as the tcprules listener's do) is served with that environment; others
// get TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP, TCPLOCALPORT and PROTO from
// their addresses. Connections beyond MaxConns or MaxConnsPerIP get one 421
// line and are closed.
//
// A connection that is a *tls.Conn (l is tls.NewListener's: implicit
// TLS, RFC 8314, as on the submissions port 465) is served as a session
// under TLS from its start: the handshake is completed, within Timeout,
// before the greeting; STARTTLS is not offered, AUTH is, and the Received
// line says ESMTPS. The *tls.Conn's own configuration applies, not
// TLSConfig.
//
// A failed Accept (no descriptors or memory left, a connection aborted
// before it was accepted, a firewall's EPERM, ...) is logged and retried
// after a pause growing from 5 ms to 1 s, whatever the error: Serve returns
// only when the server is shut down, or with an error wrapping
// net.ErrClosed when l was closed by someone else.
func (srv *Server) Serve(l net.Listener) error {
	if !srv.track(l, true) {
		return ErrServerClosed
	}
	defer srv.track(l, false)
	lim := srv.connLimiter()
	var wg sync.WaitGroup
	defer wg.Wait()
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if srv.closed.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			srv.logger().Warn("smtpserver: accept failed, retrying", "err", err, "retry", delay)
			if !srv.pause(delay) {
				return ErrServerClosed
			}
			continue
		}
		delay = 0
		env := srv.relayFromEnv(c, tcpenv.FromConn(c))
		var release func()
		if _, trusted := env["RELAYCLIENT"]; trusted {
			release, err = lim.AcquireTrusted()
		} else {
			release, err = lim.Acquire(clientAddr(env, c))
		}
		if err != nil {
			r := replyTooManyConns
			if errors.Is(err, connlimit.ErrTotal) {
				r = replyTooManyTotal
			}
			srv.rejectConn(env, clientAddr(env, c), r)
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.refuse(c, r)
			}()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer release()
			srv.serveConn(context.Background(), c, env, release)
		}()
	}
}

// connLimiter returns the Server's count of sessions, its limits set from
// MaxConns and MaxConnsPerIP on first use.
func (srv *Server) connLimiter() *connlimit.Limiter {
	srv.connsOnce.Do(func() {
		srv.conns.Max = srv.limit(srv.MaxConns, 1000, 0)
		srv.conns.PerClient = srv.limit(srv.MaxConnsPerIP, 20, 0)
	})
	return &srv.conns
}

// clientAddr is the address a connection is counted under: TCPREMOTEIP
// (which a PROXY header may have set), else the connection's remote
// address, else the zero Addr.
func clientAddr(env map[string]string, c net.Conn) netip.Addr {
	if ip, err := netip.ParseAddr(env["TCPREMOTEIP"]); err == nil {
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(addrString(c.RemoteAddr())); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// pause waits d, and reports false if the server was shut down meanwhile.
func (srv *Server) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return !srv.closed.Load()
	case <-srv.doneChan():
		return false
	}
}

func (srv *Server) doneChan() chan struct{} {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.doneChanLocked()
}

func (srv *Server) doneChanLocked() chan struct{} {
	if srv.done == nil {
		srv.done = make(chan struct{})
	}
	return srv.done
}

// ConnEnv is the environment Serve gives a connection: tcpenv.FromConn.
//
// Deprecated: use tcpenv.FromConn, the one shared by the servers.
func ConnEnv(c net.Conn) map[string]string { return tcpenv.FromConn(c) }

// refuseTimeout bounds the writing of a refusal: a client that does not
// read it holds nothing longer.
const refuseTimeout = 2 * time.Second

// refuse writes one reply and closes c.
func (srv *Server) refuse(c net.Conn, r Reply) {
	c.SetDeadline(time.Now().Add(refuseTimeout))
	c.Write(r.format(!srv.Compat))
	c.Close()
}

func (srv *Server) track(l net.Listener, add bool) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if add {
		if srv.closed.Load() {
			return false
		}
		if srv.listeners == nil {
			srv.listeners = map[net.Listener]struct{}{}
		}
		srv.listeners[l] = struct{}{}
	} else {
		delete(srv.listeners, l)
	}
	return true
}

// ServeConn serves one connection with the environment env (tcpserver's
// variables: TCPREMOTEIP, TCPREMOTEHOST, TCPREMOTEINFO, TCPLOCALHOST,
// TCPLOCALIP, RELAYCLIENT, DATABYTES, RBLSMTPD; nil is an empty
// environment) and closes it. It returns nil after QUIT, and otherwise why
// the session ended (ErrClientGone, ErrTimeout, ErrProtocol, ...).
// Cancelling ctx closes the connection. A *tls.Conn is served under TLS
// from its start, as Serve does.
func (srv *Server) ServeConn(ctx context.Context, c net.Conn, env map[string]string) error {
	return srv.serveConn(ctx, c, env, nil)
}

// serveConn is ServeConn; release, when not nil, gives back the
// connection's place under MaxConns and MaxConnsPerIP: the session calls it
// on QUIT before its 221, so that a client that opens its next connection
// on reading the 221 finds the place free.
func (srv *Server) serveConn(ctx context.Context, c net.Conn, env map[string]string, release func()) error {
	if env == nil {
		env = map[string]string{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	env = srv.relayEnv(ctx, c, env)
	s := newSession(ctx, srv, c, env)
	s.cancel = cancel // Close ends a session waiting on ctx (an AuthLimiter, a delay)
	s.releaseSlot = release
	srv.mu.Lock()
	if srv.closed.Load() {
		srv.mu.Unlock()
		srv.refuse(c, replyShutdown)
		return ErrServerClosed
	}
	if srv.sessions == nil {
		srv.sessions = map[*session]struct{}{}
	}
	srv.sessions[s] = struct{}{}
	srv.mu.Unlock()
	defer func() {
		srv.mu.Lock()
		delete(srv.sessions, s)
		srv.mu.Unlock()
	}()
	if d := srv.sessionTimeout(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	defer s.release()
	err := s.serve(ctx)
	s.logEnd(ctx, err)
	return err
}

func (srv *Server) sessionTimeout() time.Duration {
	switch {
	case srv.SessionTimeout > 0:
		return srv.SessionTimeout
	case srv.SessionTimeout < 0 || srv.Compat:
		return 0
	}
	return time.Hour
}

// Shutdown stops accepting, lets sessions finish the message they are
// receiving, closes each session when it next waits for a command (with
// "421 server shutting down"), and returns when all have ended or ctx is
// done (then with ctx's error; Close ends the rest).
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.closeListeners()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		srv.mu.Lock()
		for s := range srv.sessions {
			s.interruptIfIdle()
		}
		n := len(srv.sessions)
		srv.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listeners and every connection at once.
func (srv *Server) Close() error {
	err := srv.closeListeners()
	srv.mu.Lock()
	for s := range srv.sessions {
		s.cancel()
		s.raw.Close()
	}
	srv.mu.Unlock()
	return err
}

func (srv *Server) closeListeners() error {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !srv.closed.Swap(true) {
		close(srv.doneChanLocked())
	}
	var err error
	for l := range srv.listeners {
		if e := l.Close(); e != nil && err == nil {
			err = e
		}
	}
	return err
}
