package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/auth"
)

// session is one connection.
type session struct {
	srv    *Server
	ctx    context.Context
	cancel context.CancelFunc // ends ctx (Server.Close)
	raw    net.Conn           // the accepted connection (deadlines, Close)
	conn   net.Conn           // what is read and written: raw with deadlines, maybe TLS
	env    map[string]string
	br     *bufio.Reader
	bw     *bufio.Writer
	compat bool
	tls    bool
	idle   atomic.Bool

	challenge string
	user      string
	haveUser  bool
	fails     int

	// For the log lines (oplog.go).
	began     time.Time
	loggedIn  string // the user, once in the transaction state
	nretr     int    // messages retrieved whole
	retrBytes int64
	ndel      int // messages deleted at QUIT
	delBytes  int64
	endReason string

	// The transaction state.
	mb        Mailbox
	msgs      []Message
	deleted   []bool
	retrieved []bool
	ndeleted  int
	last      int
	wireSized bool
	buf       []byte
	pre       prefixReader // RETR and TOP's reader, reused
}

// errQuit ends a session normally; errEnd ends it after a reply.
var (
	errQuit = errors.New("quit")
	errEnd  = errors.New("end")
)

// ServeConn serves one connection with the environment env (tcpserver's
// variables; nil is an empty one) and closes it. It returns nil after
// QUIT and otherwise why the session ended. Cancelling ctx closes the
// connection.
func (srv *Server) ServeConn(ctx context.Context, c net.Conn, env map[string]string) error {
	s := srv.newSession(ctx, c, env)
	if !srv.trackSession(s, true) {
		s.cancel()
		c.Close()
		return ErrServerClosed
	}
	defer srv.trackSession(s, false)
	ctx, cancel := s.start(s.ctx)
	defer cancel()
	s.ctx = ctx
	s.challenge = srv.timestamp()
	switch {
	case srv.Compat:
		s.reply("+OK " + s.challenge)
	case srv.APOP:
		s.reply("+OK POP3 server ready " + s.challenge)
	default:
		s.reply("+OK POP3 server ready")
	}
	return s.finish(s.loop())
}

// ServeMailbox serves one connection already in the transaction state on
// an open mailbox, as qmail-pop3d does after checkpassword has run it: it
// lists the mailbox, replies "+OK " (the client's answer to PASS), and
// serves commands until QUIT or the end of the connection. It closes the
// mailbox and the connection. A listing failure is answered with "-ERR
// unable to scan $HOME/Maildir", qmail-pop3d's text.
func (srv *Server) ServeMailbox(ctx context.Context, c net.Conn, env map[string]string, mb Mailbox) error {
	s := srv.newSession(ctx, c, env)
	if !srv.trackSession(s, true) {
		s.cancel()
		mb.Close()
		c.Close()
		return ErrServerClosed
	}
	defer srv.trackSession(s, false)
	ctx, cancel := s.start(s.ctx)
	defer cancel()
	s.ctx = ctx
	if err := s.enter(mb); err != nil {
		s.reply("-ERR unable to scan $HOME/Maildir")
		return s.finish(err)
	}
	return s.finish(s.loop())
}

func (srv *Server) newSession(ctx context.Context, c net.Conn, env map[string]string) *session {
	if env == nil {
		env = map[string]string{}
	}
	s := &session{srv: srv, raw: c, env: env, compat: srv.Compat, began: time.Now()}
	// Close cancels it, which also ends a login waiting for the
	// AuthLimiter or a Handoff.
	s.ctx, s.cancel = context.WithCancel(ctx)
	_, s.tls = c.(*tls.Conn)
	s.conn = &deadlineConn{Conn: c, timeout: srv.timeout()}
	// Bounds an implicit TLS handshake, which the greeting's write
	// starts; each command line then gets its own deadline.
	c.SetReadDeadline(time.Now().Add(srv.timeout()))
	s.br = bufio.NewReaderSize(s.conn, 4096)
	s.bw = bufio.NewWriterSize(s.conn, 16<<10)
	return s
}

// start applies the session timeout and makes ctx's end close the
// connection.
func (s *session) start(ctx context.Context) (context.Context, context.CancelFunc) {
	var cancel context.CancelFunc = func() {}
	if d := s.srv.sessionTimeout(); d > 0 {
		ctx, cancel = context.WithTimeout(ctx, d)
	}
	stop := context.AfterFunc(ctx, func() { s.raw.Close() })
	return ctx, func() { stop(); cancel(); s.cancel() }
}

// finish flushes, closes, releases the mailbox without its update, and
// turns the loop's result into ServeConn's.
func (s *session) finish(err error) error {
	s.bw.Flush()
	s.logEnd(err)
	if s.mb != nil {
		s.mb.Close()
		s.mb = nil
	}
	s.raw.Close()
	switch {
	case errors.Is(err, errQuit):
		return nil
	case errors.Is(err, errEnd):
		return ErrLoginEnded
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, errLineTooLong):
		return ErrClientGone
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %w", ErrClientGone, err)
	}
	return err
}

func (s *session) reply(line string) {
	s.bw.WriteString(line)
	s.bw.WriteString("\r\n")
}

// ok writes a positive reply: qmail's "+OK " when compat, "+OK text"
// otherwise.
func (s *session) ok(text string) {
	if s.compat || text == "" {
		s.reply("+OK ")
		return
	}
	s.reply("+OK " + text)
}

var errLineTooLong = errors.New("pop3: line too long")

// errLimited is the condition of a login the AuthLimiter refused.
var errLimited = errors.New("pop3: too many failed logins")

// readLine reads a line up to LF, drops one CR before it, and turns NUL
// bytes into LF as qmail's commands.c does. A line longer than max (CRLF
// included) is discarded up to its LF and reported as errLineTooLong.
// Bytes after the last LF at the end of input are dropped, as by qmail.
//
// The whole line must come within the server's Timeout: the read deadline
// is set once, here, not before each read.
func (s *session) readLine(max int) (string, error) {
	if !s.lineBuffered() {
		s.raw.SetReadDeadline(time.Now().Add(s.srv.timeout()))
	}
	var acc []byte
	n, tooLong := 0, false
	for {
		frag, err := s.br.ReadSlice('\n')
		n += len(frag)
		if n > max {
			tooLong, acc = true, nil
		}
		if err == nil {
			switch {
			case tooLong:
				return "", errLineTooLong
			case acc == nil:
				return clean(frag), nil
			}
			return clean(append(acc, frag...)), nil
		}
		if err != bufio.ErrBufferFull {
			return "", err
		}
		if !tooLong {
			acc = append(acc, frag...)
		}
	}
}

// lineBuffered reports whether a whole line is already buffered, so that
// reading it waits for nothing (pipelined commands need no new deadline).
func (s *session) lineBuffered() bool {
	n := s.br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := s.br.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

func clean(b []byte) string {
	b = b[:len(b)-1]
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	line := string(b)
	if strings.IndexByte(line, 0) >= 0 {
		line = strings.ReplaceAll(line, "\x00", "\n")
	}
	return line
}

// loop reads and runs commands. Replies are flushed when no further
// command is already waiting (RFC 2449 PIPELINING), so a pipelined batch
// gets its replies in few writes.
func (s *session) loop() error {
	for {
		if s.br.Buffered() == 0 {
			if err := s.bw.Flush(); err != nil {
				return err
			}
			s.idle.Store(true)
			if s.srv.closing.Load() {
				return ErrServerClosed
			}
		}
		line, err := s.readLine(s.srv.maxLine())
		s.idle.Store(false)
		if err == errLineTooLong {
			s.reply("-ERR line too long")
			continue
		}
		if err != nil {
			if s.srv.closing.Load() {
				return ErrServerClosed
			}
			return err
		}
		verb, arg := ParseCommand(line)
		if s.mb == nil {
			err = s.authorization(verb, arg)
		} else {
			err = s.transaction(verb, arg)
		}
		if err != nil {
			return err
		}
	}
}

// extensions reports whether CAPA, STLS and AUTH are spoken: always in
// modern mode, and in compat mode only when TLS is configured (an
// unconfigured drop-in answers like qmail).
func (s *session) extensions() bool {
	return !s.compat || s.srv.TLSConfig != nil
}

// plaintextOK reports whether a password may be sent in the clear now.
func (s *session) plaintextOK() bool {
	return s.tls || s.srv.AllowPlaintext || isLoopback(s.env, s.raw)
}

const errPlaintext = "-ERR [AUTH] Plaintext authentication disallowed without TLS"

func (s *session) authorization(verb, arg string) error {
	if s.extensions() {
		switch verb {
		case "CAPA":
			s.capa()
			return nil
		case "STLS":
			return s.stls()
		case "AUTH":
			return s.auth(arg)
		case "UTF8":
			// RFC 6856: user names and passwords are taken as they
			// come, so UTF-8 needs no switch; messages are sent
			// unchanged.
			s.ok("UTF8 enabled")
			return nil
		}
	}
	switch verb {
	case "USER":
		if arg == "" {
			s.reply("-ERR syntax error")
			return nil
		}
		if !s.plaintextOK() {
			s.reply(errPlaintext)
			return nil
		}
		s.user, s.haveUser = arg, true
		s.ok("send PASS")
	case "PASS":
		if !s.haveUser {
			s.reply("-ERR USER first")
			return nil
		}
		if arg == "" {
			s.reply("-ERR syntax error")
			return nil
		}
		if !s.plaintextOK() {
			s.reply(errPlaintext)
			return nil
		}
		return s.login(Credentials{User: s.user, Secret: arg, Method: MethodUser})
	case "APOP":
		if !s.compat && !s.srv.APOP {
			s.reply("-ERR unknown command")
			return nil
		}
		name, digest, ok := strings.Cut(arg, " ")
		if !ok {
			s.reply("-ERR syntax error")
			return nil
		}
		return s.login(Credentials{User: name, Secret: digest, Method: MethodAPOP})
	case "QUIT":
		s.ok("bye")
		return errQuit
	case "NOOP":
		if !s.compat {
			s.reply("-ERR authorization first")
			return nil
		}
		s.ok("")
	default:
		if s.compat {
			s.reply("-ERR authorization first")
			return nil
		}
		switch verb {
		case "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "LAST":
			s.reply("-ERR authorization first")
		default:
			s.reply("-ERR unknown command")
		}
	}
	return nil
}

func (s *session) capa() {
	s.ok("Capability list follows")
	s.reply("TOP")
	s.reply("UIDL")
	if s.mb == nil && s.plaintextOK() {
		s.reply("USER")
		s.reply("SASL PLAIN")
	}
	s.reply("RESP-CODES")
	s.reply("AUTH-RESP-CODE")
	s.reply("PIPELINING")
	if s.mb == nil && !s.tls && s.srv.TLSConfig != nil {
		s.reply("STLS")
	}
	if s.mb == nil {
		s.reply("UTF8")
	}
	s.reply("IMPLEMENTATION qmailkit")
	s.reply(".")
}

// stls is RFC 2595 section 4: bytes the client pipelined after STLS are
// dropped, never run, and the session forgets everything it was told
// before.
func (s *session) stls() error {
	switch {
	case s.srv.TLSConfig == nil:
		s.reply("-ERR STLS not available")
		return nil
	case s.tls:
		s.reply("-ERR already under TLS")
		return nil
	}
	s.ok("Begin TLS negotiation")
	if err := s.bw.Flush(); err != nil {
		return err
	}
	s.br.Discard(s.br.Buffered())
	s.raw.SetReadDeadline(time.Now().Add(s.srv.timeout()))
	tc := tls.Server(&deadlineConn{Conn: s.raw, timeout: s.srv.timeout()}, s.srv.TLSConfig)
	if err := tc.HandshakeContext(s.ctx); err != nil {
		return fmt.Errorf("%w: %w", errTLSHandshake, err)
	}
	s.conn, s.tls = tc, true
	s.br.Reset(tc)
	s.bw.Reset(tc)
	s.user, s.haveUser = "", false
	return nil
}

// auth is RFC 5034 with the PLAIN mechanism (RFC 4616).
func (s *session) auth(arg string) error {
	mech, ir, hasIR := strings.Cut(arg, " ")
	if mech == "" {
		s.ok("")
		if s.plaintextOK() {
			s.reply("PLAIN")
		}
		s.reply(".")
		return nil
	}
	if !strings.EqualFold(mech, "PLAIN") {
		s.reply("-ERR unsupported authentication mechanism")
		return nil
	}
	if !s.plaintextOK() {
		s.reply(errPlaintext)
		return nil
	}
	if !hasIR {
		s.reply("+ ")
		if err := s.bw.Flush(); err != nil {
			return err
		}
		line, err := s.readLine(8192)
		if err == errLineTooLong {
			s.reply("-ERR line too long")
			return nil
		}
		if err != nil {
			return err
		}
		ir = line
	} else if ir == "=" {
		ir = ""
	}
	if ir == "*" {
		s.reply("-ERR authentication cancelled")
		return nil
	}
	user, pass, err := decodePlain(strings.TrimSpace(ir))
	if errors.Is(err, ErrAuthFailed) {
		s.logLogin(Credentials{User: user, Method: MethodPlain}, resultFailed, err)
		return s.loginFailed(err)
	}
	if err != nil {
		s.reply("-ERR invalid AUTH PLAIN response")
		return nil
	}
	return s.login(Credentials{User: user, Secret: pass, Method: MethodPlain})
}

// login checks credentials and enters the transaction state.
func (s *session) login(cred Credentials) error {
	cred.Challenge, cred.Env = s.challenge, s.env
	cred.Service, cred.Remote = auth.ServicePOP3, remoteAddr(s.env, s.raw)
	s.user, s.haveUser = "", false
	log := s.srv.logger()
	if h := s.srv.Handoff; h != nil {
		if err := s.bw.Flush(); err != nil {
			return err
		}
		err := h.Handoff(s.ctx, s.raw, cred)
		var re *ReplyError
		switch {
		case err == nil:
		case errors.Is(err, ErrChildCrashed):
			s.reply("-ERR aack, child crashed")
		case errors.As(err, &re):
			s.reply("-ERR " + re.Text)
		default:
			s.reply("-ERR authorization failed")
		}
		switch {
		case err == nil:
			s.loggedIn = cred.User
			s.logLogin(cred, resultOK, nil)
		case errors.Is(err, ErrAuthFailed):
			s.logLogin(cred, resultFailed, err)
		default:
			s.logLogin(cred, resultTempFail, err)
		}
		return errEnd
	}
	lim := s.srv.AuthLimiter
	addr := cred.Remote
	if lim != nil {
		if err := s.bw.Flush(); err != nil {
			return err
		}
		start := time.Now()
		if err := lim.Wait(s.ctx, addr, cred.User); err != nil {
			if s.ctx.Err() != nil {
				return s.ctx.Err()
			}
			s.logLogin(cred, resultRate, err)
			return s.loginFailed(errLimited)
		}
		if d := time.Since(start); d >= 100*time.Millisecond {
			log.Info("pop3: login delayed by the limiter", "user", cred.User, "remote", s.env["TCPREMOTEIP"], "delay", d)
		}
	}
	var u *User
	err := ErrAuthFailed
	if s.srv.Auth != nil {
		u, err = s.srv.Auth.Authenticate(s.ctx, cred)
		if err == nil && u == nil {
			err = errors.New("pop3: authenticator returned no user")
		}
	}
	if lim != nil && (err == nil || errors.Is(err, ErrAuthFailed)) {
		lim.Done(addr, cred.User, err == nil)
	}
	if err != nil {
		if errors.Is(err, ErrAuthFailed) {
			s.logLogin(cred, resultFailed, err)
		} else {
			s.logLogin(cred, resultTempFail, err)
		}
		return s.loginFailed(err)
	}
	mb, err := s.srv.openMailbox(s.ctx, u)
	if err != nil {
		log.Warn("pop3: open mailbox", "user", u.Name, "err", err)
		s.logLogin(cred, resultTempFail, err)
		switch {
		case s.compat:
			s.reply("-ERR this user has no $HOME/Maildir")
			return errEnd
		case errors.Is(err, ErrInUse):
			s.reply("-ERR [IN-USE] mailbox already locked")
		case qmailkit.IsPermanent(err):
			s.reply("-ERR [SYS/PERM] unable to open mailbox")
		default:
			s.reply("-ERR [SYS/TEMP] unable to open mailbox")
		}
		return nil
	}
	if err := s.enter(mb); err != nil {
		log.Warn("pop3: list mailbox", "user", u.Name, "err", err)
		s.logLogin(cred, resultTempFail, err)
		if s.compat {
			s.reply("-ERR unable to scan $HOME/Maildir")
			return errEnd
		}
		s.reply("-ERR [SYS/TEMP] unable to scan mailbox")
		return nil
	}
	s.loggedIn = u.Name
	s.logLogin(cred, resultOK, nil)
	return nil
}

// loginFailed answers a refused login: compat ends the session as
// qmail-popup; modern mode waits (longer each time) and allows three
// attempts.
func (s *session) loginFailed(err error) error {
	if s.compat {
		s.reply("-ERR authorization failed")
		s.endReason = "auth"
		return errEnd
	}
	s.fails++
	if d := s.srv.failDelay(); d > 0 {
		t := time.NewTimer(d << (s.fails - 1))
		select {
		case <-s.ctx.Done():
			t.Stop()
			return s.ctx.Err()
		case <-t.C:
		}
	}
	switch {
	case errors.Is(err, ErrAuthFailed):
		s.reply("-ERR [AUTH] authentication failed")
	case err == errLimited:
		// RFC 3206 section 4: SYS/TEMP, since the credentials were not
		// checked and the client may try again later.
		s.reply("-ERR [SYS/TEMP] too many failed logins, try again later")
	default:
		s.reply("-ERR [SYS/TEMP] authentication temporarily unavailable")
	}
	if s.fails >= 3 {
		s.endReason = "auth"
		return errEnd
	}
	return nil
}

// enter lists the mailbox and enters the transaction state, replying as
// qmail-pop3d does once it has scanned the Maildir.
func (s *session) enter(mb Mailbox) error {
	msgs, err := mb.Messages(s.ctx)
	if err != nil {
		mb.Close()
		return err
	}
	s.mb, s.msgs = mb, msgs
	s.deleted = make([]bool, len(msgs))
	s.retrieved = make([]bool, len(msgs))
	s.buf = make([]byte, 32<<10)
	if s.compat {
		s.ok("")
	} else {
		s.ok(strconv.Itoa(len(msgs)) + " messages")
	}
	return nil
}
