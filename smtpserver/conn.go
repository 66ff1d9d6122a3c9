package smtpserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/qmailkit/qmailkit"
)

// Session describes a connection to the policy hooks and, through
// [SessionFrom], to the Enqueuer. It is read-only for them and valid during
// the call.
type Session struct {
	// Env is the connection's environment (tcpserver's variables).
	Env map[string]string
	// RemoteAddr and LocalAddr are the connection's addresses.
	RemoteAddr, LocalAddr net.Addr
	// RemoteIP is TCPREMOTEIP, or the remote address's IP.
	RemoteIP netip.Addr
	// Helo is the last HELO, EHLO or LHLO argument ("" before any).
	Helo string
	// TLS is the connection's TLS state after STARTTLS, or from the
	// start on an implicit-TLS connection (a *tls.Conn), else nil.
	TLS *tls.ConnectionState
	// User is the name the client authenticated as, or "".
	User string
	// Relay says whether the client may relay (RELAYCLIENT or AUTH).
	Relay bool
}

type ctxKey struct{}

// SessionFrom returns the session an Enqueue or hook call belongs to, or nil.
func SessionFrom(ctx context.Context) *Session {
	s, _ := ctx.Value(ctxKey{}).(*Session)
	return s
}

// session is one connection's state machine.
type session struct {
	srv    *Server
	conn   net.Conn      // the connection, under TLS after STARTTLS
	raw    net.Conn      // the connection as accepted: only this one is touched by other goroutines
	br     *bufio.Reader // reads cr
	bw     *bufio.Writer
	cr     connReader
	ctx    context.Context
	cancel context.CancelFunc // ends ctx: Server.Close
	// releaseSlot gives back the session's place under Server.MaxConns and
	// MaxConnsPerIP, at QUIT (nil: ServeConn, which has none).
	releaseSlot func()
	info        Session
	compat      bool
	maxLine     int
	set         Settings // Server.settings(), fixed for the session

	// For the log lines (oplog.go): when the session started, the
	// transactions ended at DATA and the messages accepted, the current
	// transaction's RCPTs, and why the session ended when its error does
	// not tell.
	start     time.Time
	ntx, nmsg int
	rcptLog   rcptList
	endReason string

	heloSeen bool
	ehlo     bool
	tlsOn    bool
	errs     int
	authFail int

	idle     atomic.Bool
	shutdown atomic.Bool

	// The minimum data rate (Server.MinDataRate): while rating, reads are
	// timed and their deadline is the sooner of the timeout and the moment
	// the client falls below the rate; rateCut says the deadline armed last
	// was the rate's.
	minRate   int64
	rating    bool
	rateStart int64 // cr.n at the start of the phase
	rateCut   bool

	// The transaction.
	mail      bool
	from      string
	rcpts     []string
	barf      bool
	params    mailParams
	rcptDSN   []map[string]string // DSN parameters per recipient (nil: none yet)
	bdat      *bdatTx
	bdatFail  bool
	order     []int          // LMTP: for each accepted RCPT, its index in rcpts
	rcptSet   map[string]int // rcptKey → index in rcpts, from rcptSetMin recipients on
	databytes int64
	relay     bool
	suffix    string

	bufs *connBufs // br and bw, given back to the Server by release
}

// release gives the session's buffers back to the Server once it has
// ended; the session must not be used after.
func (s *session) release() {
	s.br.Reset(nil)
	s.bw.Reset(nil)
	s.srv.bufs.Put(s.bufs)
	s.br, s.bw, s.bufs = nil, nil, nil
}

// errQuit ends serve successfully.
var errQuit = errors.New("quit")

// connBufs are a session's buffered reader and writer, kept by the Server
// between sessions.
type connBufs struct {
	br *bufio.Reader
	bw *bufio.Writer
}

func newSession(ctx context.Context, srv *Server, c net.Conn, env map[string]string) *session {
	b, _ := srv.bufs.Get().(*connBufs)
	if b == nil {
		b = &connBufs{bufio.NewReaderSize(nil, 4096), bufio.NewWriterSize(nil, 4096)}
	}
	b.bw.Reset(c)
	s := &session{
		srv:    srv,
		conn:   c,
		raw:    c,
		br:     b.br,
		bw:     b.bw,
		bufs:   b,
		compat: srv.Compat,
		start:  time.Now(),
	}
	s.cr.s = s
	b.br.Reset(&s.cr)
	s.maxLine = srv.limit(srv.MaxLineLength, 4096, 1<<20)
	s.info.Env = env
	s.info.RemoteAddr = c.RemoteAddr()
	s.info.LocalAddr = c.LocalAddr()
	if ip, err := netip.ParseAddr(env["TCPREMOTEIP"]); err == nil {
		s.info.RemoteIP = ip.Unmap()
	} else if ap, err := netip.ParseAddrPort(addrString(c.RemoteAddr())); err == nil {
		s.info.RemoteIP = ap.Addr().Unmap()
	}
	if v, ok := env["RELAYCLIENT"]; ok {
		s.relay, s.suffix = true, v
	}
	s.info.Relay = s.relay
	s.set = srv.settings(context.WithValue(ctx, ctxKey{}, &s.info), &s.info)
	db := s.set.MaxMessageBytes
	if v, ok := env["DATABYTES"]; ok {
		db = int64(min(scanUlong(v), math.MaxInt64))
	}
	s.databytes = srv.messageLimit(db)
	s.minRate = int64(srv.limit(srv.MinDataRate, 1024, 0))
	return s
}

// DefaultMaxMessageBytes is the largest message a modern server accepts
// when neither [Server.MaxMessageBytes] nor DATABYTES sets a limit: 35 MiB,
// what large mail providers accept.
const DefaultMaxMessageBytes = 35 << 20

// messageLimit is the databytes a session enforces for the value v of
// MaxMessageBytes or DATABYTES: v if positive, the mode's default if zero,
// and 0 (unlimited) if negative.
func (srv *Server) messageLimit(v int64) int64 {
	switch {
	case v > 0:
		return v
	case v < 0 || srv.Compat:
		return 0
	}
	return DefaultMaxMessageBytes
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// scanUlong is qmail's scan_ulong: leading decimal digits, 0 if none.
func scanUlong(s string) uint64 {
	var u uint64
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		u = u*10 + uint64(s[i]-'0')
	}
	return u
}

// enhanced reports whether replies carry RFC 3463 codes: in modern mode,
// once the client has used EHLO or LHLO (RFC 2034 section 3).
func (s *session) enhanced() bool { return !s.compat && s.ehlo }

// reply buffers r; it is written when the server next waits for input or
// flushes explicitly, which is how qmail-smtpd supports PIPELINING.
func (s *session) reply(r Reply) {
	if r.Code >= 500 {
		s.errs++
	}
	s.bw.Write(r.format(s.enhanced()))
}

func (s *session) flush() error {
	if s.bw.Buffered() == 0 {
		return nil
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.set.Timeout))
	if err := s.bw.Flush(); err != nil {
		return s.netErr(err)
	}
	return nil
}

// replyFlush writes r now.
func (s *session) replyFlush(r Reply) error {
	s.reply(r)
	return s.flush()
}

// netErr classifies a read or write error.
func (s *session) netErr(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return ErrClientGone
	}
	return err
}

// readErr ends the session after a failed read: a timeout is told to the
// client with qmail's 451, a shutdown with 421, end of input silently.
func (s *session) readErr(err error) error {
	err = s.netErr(err)
	if err == ErrTimeout {
		if s.shutdown.Load() {
			s.conn.SetWriteDeadline(time.Now().Add(time.Second))
			s.replyFlush(replyShutdown)
			return ErrServerClosed
		}
		if s.rateCut {
			s.reject(ReasonSlow, "DATA", replyTooSlow, slog.Int64("min_rate", s.minRate))
			s.replyFlush(replyTooSlow)
			return ErrTooSlow
		}
		s.replyFlush(replyTimeout)
	}
	return err
}

func (s *session) interruptIfIdle() {
	s.shutdown.Store(true)
	if s.idle.Load() {
		s.raw.SetReadDeadline(time.Now())
	}
}

// readLine reads one command line: every byte up to LF, one CR before the
// LF dropped, cut at the first NUL (qmail's commands.c). A line longer than
// maxLine is discarded through its LF and reported with tooLong.
func (s *session) readLine() (line string, tooLong bool, err error) {
	if s.br.Buffered() == 0 {
		if err := s.flush(); err != nil {
			return "", false, err
		}
		s.idle.Store(true)
		defer s.idle.Store(false)
		s.armRead()
		if s.shutdown.Load() {
			s.replyFlush(replyShutdown)
			return "", false, ErrServerClosed
		}
	} else {
		// A pipelined line may still be incomplete: never block on an old
		// deadline.
		s.armRead()
	}
	var buf []byte
	for {
		frag, err := s.br.ReadSlice('\n')
		if !tooLong {
			if s.maxLine > 0 && len(buf)+len(frag) > s.maxLine {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, frag...)
			}
		}
		if err == bufio.ErrBufferFull {
			if s.br.Buffered() == 0 {
				s.armRead()
			}
			continue
		}
		if err != nil {
			return "", false, s.readErr(err)
		}
		break
	}
	if tooLong {
		return "", true, nil
	}
	buf = buf[:len(buf)-1]
	if n := len(buf); n > 0 && buf[n-1] == '\r' {
		buf = buf[:n-1]
	}
	if i := indexByte(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	return string(buf), false, nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// serve runs the session to its end.
func (s *session) serve(ctx context.Context) error {
	s.ctx = context.WithValue(ctx, ctxKey{}, &s.info)
	defer s.abortBDAT()
	if err := s.implicitTLS(); err != nil {
		return err
	}
	if d := s.srv.GreetDelay; d > 0 {
		s.conn.SetReadDeadline(time.Now().Add(d))
		if _, err := s.br.Peek(1); err == nil {
			s.conn.SetWriteDeadline(time.Now().Add(s.set.Timeout))
			s.bw.Write(replySync.format(!s.compat))
			s.bw.Flush()
			s.endReason = ReasonProtocol
			s.rejectText(ReasonProtocol, "CONNECT", replySync, replyText(replySync, !s.compat))
			return ErrProtocol
		} else if !isTimeout(err) {
			return s.netErr(err)
		}
	}
	if block, ok := s.rblDecision(); ok {
		return s.rblConversation(block)
	}
	word := "ESMTP"
	if s.srv.LMTP {
		word = "LMTP"
	}
	s.reply(Reply{Code: 220, Text: s.set.Greeting + " " + word})
	for {
		if max := s.srv.limit(s.srv.MaxErrors, 20, 0); max > 0 && s.errs >= max {
			s.endReason = ReasonErrors
			s.reject(ReasonErrors, "", replyTooManyErrs)
			s.reply(replyTooManyErrs)
			s.flush()
			return ErrProtocol
		}
		line, tooLong, err := s.readLine()
		if err != nil {
			return err
		}
		if tooLong {
			s.reply(replyLineTooLong)
			continue
		}
		if err := s.command(line); err != nil {
			if err == errQuit {
				return nil
			}
			return err
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// command executes one command line. A non-nil error ends the session.
func (s *session) command(line string) error {
	verb, arg := splitCommand(line)
	lmtp := s.srv.LMTP
	switch {
	case verb == "HELO" && !lmtp:
		s.helo(arg, false)
		s.bw.Write(Reply{Code: 250, Text: s.set.Greeting}.format(false))
		return s.flush()
	case verb == "EHLO" && !lmtp, verb == "LHLO" && lmtp:
		s.helo(arg, true)
		// RFC 2034 section 3: no enhanced codes on HELO/EHLO replies.
		s.bw.Write(Reply{Code: 250, Text: strings.Join(s.extensions(), "\n")}.format(false))
		return s.flush()
	case verb == "MAIL":
		return s.cmdMail(arg)
	case verb == "RCPT":
		return s.cmdRcpt(arg)
	case verb == "DATA":
		return s.cmdData(arg)
	case verb == "BDAT" && s.chunking():
		return s.cmdBdat(arg)
	case verb == "RSET":
		s.resetTx()
		s.reply(replyFlushed)
		return nil
	case verb == "NOOP":
		s.reply(replyOK)
		return s.flush()
	case verb == "VRFY":
		s.reply(replyVrfy)
		return s.flush()
	case verb == "HELP":
		s.reply(replyHelp)
		return s.flush()
	case verb == "QUIT":
		if s.releaseSlot != nil {
			s.releaseSlot()
		}
		s.reply(Reply{Code: 221, Enhanced: "2.0.0", Text: s.set.Greeting})
		s.flush()
		return errQuit
	case verb == "STARTTLS" && s.srv.TLSConfig != nil:
		return s.cmdStartTLS(arg)
	case verb == "AUTH" && s.srv.Auth != nil:
		return s.cmdAuth(arg)
	}
	s.reply(replyUnimpl)
	return s.flush()
}

func (s *session) helo(arg string, ehlo bool) {
	s.resetTx()
	s.heloSeen = true
	s.ehlo = ehlo
	s.info.Helo = arg
}

func (s *session) chunking() bool { return !s.compat }

func (s *session) authOffered() bool {
	if s.srv.Auth == nil {
		return false
	}
	return s.tlsOn || s.srv.AuthOnLoopback && s.info.RemoteIP.IsLoopback()
}

// extensions is the EHLO reply: the greeting, then the extensions that are
// enabled, in a fixed order.
func (s *session) extensions() []string {
	ext := []string{s.set.Greeting, "PIPELINING", "8BITMIME"}
	if !s.compat {
		if s.databytes > 0 {
			ext = append(ext, "SIZE "+strconv.FormatInt(s.databytes, 10))
		} else {
			ext = append(ext, "SIZE")
		}
		ext = append(ext, "ENHANCEDSTATUSCODES")
	}
	if s.srv.TLSConfig != nil && !s.tlsOn {
		ext = append(ext, "STARTTLS")
	}
	if s.authOffered() {
		ext = append(ext, "AUTH PLAIN LOGIN")
	}
	if !s.compat {
		ext = append(ext, "SMTPUTF8", "CHUNKING")
	}
	if s.dsnOffered() {
		ext = append(ext, "DSN")
	}
	return ext
}

// resetTx ends any transaction.
func (s *session) resetTx() {
	s.abortBDAT()
	s.mail, s.from, s.rcpts, s.barf, s.bdatFail = false, "", nil, false, false
	s.order, s.rcptSet, s.rcptDSN = nil, nil, nil
	s.params = mailParams{}
	s.rcptLog = nil
}

// localIPHost is addrparse's last step: a domain literal naming one of our
// own addresses becomes localiphost.
func (s *session) localIPHost(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return addr
	}
	ip, ok := scanBracketIP(addr[i+1:])
	if !ok || !s.srv.isLocalIP(ip) {
		return addr
	}
	return addr[:i+1] + s.set.LocalIPHost
}

// address parses a MAIL or RCPT argument. In modern mode it also checks the
// "FROM:"/"TO:" keyword and returns the parameters' text.
//
// An address holding a control character is refused (qmail takes it, and
// a CR in a quoted local part then reaches the Return-Path and
// Delivered-To header lines): in modern mode every byte below 0x20 and DEL,
// none of which RFC 5321 allows even quoted; in Compat mode CR, LF and NUL,
// the bytes that split a header line.
func (s *session) address(arg, keyword string, smtputf8 bool) (addr, rest string, bad *Reply) {
	ctl := &replyCtlRcpt
	if keyword == "FROM:" {
		ctl = &replyCtlSender
	}
	if s.compat {
		addr, _ = parseAddr(arg)
		addr = s.localIPHost(addr)
		if len(addr) >= 900 {
			return "", "", &replySyntax
		}
		if strings.ContainsAny(addr, "\r\n\x00") {
			return "", "", ctl
		}
		return addr, "", nil
	}
	if !hasPrefixFold(arg, keyword) {
		return "", "", &replyArgSyntax
	}
	addr, rest = parseAddr(arg)
	if hasControl(addr) {
		return "", "", ctl
	}
	if r := checkModernAddr(addr, smtputf8); r != nil {
		return "", "", r
	}
	return s.localIPHost(addr), rest, nil
}

// hasControl reports whether s holds a byte below 0x20, DEL, or a C1
// control character in UTF-8 (U+0080 to U+009F, as SMTPUTF8 addresses may
// carry; U+0085 is a line end to some software).
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == 0xc2 && i+1 < len(s) && s[i+1] >= 0x80 && s[i+1] <= 0x9f {
			return true
		}
	}
	return false
}

func (s *session) cmdMail(arg string) error {
	if s.srv.LMTP && !s.heloSeen {
		r := Reply{503, "5.5.1", "LHLO first"} // RFC 2033 section 4.1
		s.reply(r)
		s.reject(ReasonSequence, "MAIL", r)
		return nil
	}
	var p mailParams
	addr, rest, bad := s.address(arg, "FROM:", true)
	if bad == nil && !s.compat {
		var r *Reply
		p, r = parseMailParams(rest, true, s.srv.Auth != nil, s.dsnOffered())
		switch {
		case r != nil:
			bad = r
		case !p.smtputf8 && hasNonASCII(addr):
			bad = &replyNeedUTF8
		case p.hasSize && s.databytes > 0 && p.size > s.databytes:
			bad = &replySizeExceeded
		}
	}
	if bad != nil {
		s.reply(*bad)
		reason := ReasonSyntax
		if bad == &replySizeExceeded {
			reason = ReasonSize
		}
		if addr == "" {
			addr = argAddr(arg, "FROM:")
		}
		s.reject(reason, "MAIL", *bad, slog.String("from", logAddr(addr)))
		return nil
	}
	if h := s.srv.CheckSender; h != nil {
		if err := h(s.ctx, &s.info, addr); err != nil {
			r := s.errReply(err, Reply{451, "4.3.0", "temporary failure checking sender"},
				Reply{553, "5.7.1", "sorry, that sender is not accepted here"})
			s.reply(r)
			s.reject(reasonOf(err, permReason(r, ReasonPolicy)), "MAIL", r, slog.String("from", logAddr(addr)))
			return nil
		}
	}
	s.resetTx()
	s.mail, s.from, s.params = true, addr, p
	s.barf = addr != "" && s.badMailFrom(addr)
	s.reply(replyMailOK)
	return nil
}

func hasNonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}

func (s *session) cmdRcpt(arg string) error {
	if !s.mail {
		s.refuseRcpt(ReasonSequence, argAddr(arg, "TO:"), replyMailFirst)
		return nil
	}
	addr, rest, bad := s.address(arg, "TO:", s.params.smtputf8)
	var dsn map[string]string
	if bad == nil && !s.compat {
		dsn, bad = parseRcptParams(rest, s.dsnOffered())
		if bad == nil && addr == "" {
			bad = &Reply{501, "5.1.3", "bad recipient address syntax"}
		}
	}
	if bad != nil {
		if addr == "" {
			addr = argAddr(arg, "TO:")
		}
		s.refuseRcpt(ReasonSyntax, addr, *bad)
		return nil
	}
	if s.barf {
		s.refuseRcpt(ReasonBadMailFrom, addr, replyBadMailFrom)
		return nil
	}
	relay := s.relay || s.info.User != ""
	if relay {
		addr += s.suffix
	}
	if !s.compat {
		// A recipient already accepted in this transaction is accepted
		// again but queued once: a thousand RCPTs of one address are one
		// delivery, not a thousand (qmail queues each).
		if i := s.rcptIndex(addr); i >= 0 {
			if s.srv.LMTP {
				s.order = append(s.order, i)
			}
			s.noteRcpt(addr, replyRcptOK.Code)
			s.reply(replyRcptOK)
			return nil
		}
	}
	if max := s.srv.limit(s.srv.MaxRecipients, 1000, 0); max > 0 && len(s.rcpts) >= max {
		s.bw.Write(replyTooManyRcpt.format(s.enhanced())) // not a client error
		s.noteRcpt(addr, replyTooManyRcpt.Code)
		s.reject(ReasonRecipients, "RCPT", replyTooManyRcpt, slog.String("from", logAddr(s.from)), slog.String("rcpt", logAddr(addr)))
		return nil
	}
	if !relay {
		ok, err := s.rcptHostOK(addr)
		if err != nil {
			s.srv.logger().Error("smtpserver: rcpthosts", "err", err)
			s.endReason = ReasonTempFail
			s.refuseRcpt(ReasonTempFail, addr, replyControls)
			s.flush()
			return ErrProtocol
		}
		if !ok {
			s.refuseRcpt(ReasonRelay, addr, replyNoGateway)
			return nil
		}
	}
	if h := s.srv.CheckRecipient; h != nil {
		if err := h(s.ctx, &s.info, addr); err != nil {
			r := s.errReply(err, Reply{451, "4.3.0", "temporary failure checking recipient"},
				Reply{550, "5.1.1", "sorry, no mailbox here by that name (#5.1.1)"})
			s.refuseRcpt(reasonOf(err, permReason(r, ReasonUnknownRecipient)), addr, r)
			return nil
		}
	}
	if !s.compat {
		s.addRcptKey(addr, len(s.rcpts))
		if s.srv.LMTP {
			s.order = append(s.order, len(s.rcpts))
		}
	}
	if dsn != nil && s.rcptDSN == nil {
		s.rcptDSN = make([]map[string]string, len(s.rcpts), len(s.rcpts)+1)
	}
	if s.rcptDSN != nil {
		s.rcptDSN = append(s.rcptDSN, dsn)
	}
	s.rcpts = append(s.rcpts, addr)
	s.noteRcpt(addr, replyRcptOK.Code)
	s.reply(replyRcptOK)
	return nil
}

// rcptKey is the form in which two recipients are the same: the address as
// queued, its domain (after the last "@") lower-cased.
func rcptKey(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[:i+1] + asciiLower(addr[i+1:])
	}
	return addr
}

// sameRcpt reports whether a and b are the same recipient (see rcptKey).
func sameRcpt(a, b string) bool {
	i, j := strings.LastIndexByte(a, '@'), strings.LastIndexByte(b, '@')
	if i < 0 || i != j {
		return a == b
	}
	return a[:i] == b[:j] && strings.EqualFold(a[i+1:], b[j+1:])
}

// rcptSetMin is the number of recipients from which duplicates are found
// through a map instead of a scan.
const rcptSetMin = 16

// rcptIndex returns the index in s.rcpts of the recipient addr, or -1.
func (s *session) rcptIndex(addr string) int {
	if s.rcptSet != nil {
		if i, ok := s.rcptSet[rcptKey(addr)]; ok {
			return i
		}
		return -1
	}
	for i, r := range s.rcpts {
		if sameRcpt(r, addr) {
			return i
		}
	}
	return -1
}

// addRcptKey records that addr is recipient i, building the map of
// recipients once there are rcptSetMin of them.
func (s *session) addRcptKey(addr string, i int) {
	if s.rcptSet == nil {
		if i+1 < rcptSetMin {
			return
		}
		s.rcptSet = make(map[string]int, 2*rcptSetMin)
		for k, r := range s.rcpts {
			s.rcptSet[rcptKey(r)] = k
		}
	}
	s.rcptSet[rcptKey(addr)] = i
}

// rcptHostOK is qmail's rcpthosts check, as in qmail-smtpd(8).
func (s *session) rcptHostOK(addr string) (bool, error) {
	domain, ok := domainOf(addr)
	if !ok {
		return true, nil
	}
	switch {
	case s.srv.RcptHostsContext != nil:
		return s.srv.RcptHostsContext(s.ctx, &s.info, asciiLower(domain))
	case s.srv.RcptHosts != nil:
		return s.srv.RcptHosts(asciiLower(domain))
	}
	return s.srv.OpenRelay, nil
}

// badMailFrom is qmail's badmailfrom check of a sender.
func (s *session) badMailFrom(addr string) bool {
	switch {
	case s.srv.BadMailFromContext != nil:
		return s.srv.BadMailFromContext(s.ctx, &s.info, addr)
	case s.srv.BadMailFrom != nil:
		return s.srv.BadMailFrom(addr)
	}
	return false
}

// errReply turns an error from a hook or the Enqueuer into a reply: the
// Reply it carries, else perm or temp by its permanence. This is the one
// place where errors become replies.
func (s *session) errReply(err error, temp, perm Reply) Reply {
	var r Reply
	if errors.As(err, &r) && r.Code >= 400 && r.Code < 600 {
		return r
	}
	s.srv.logger().Warn("smtpserver: refused", "ip", s.info.RemoteIP, "err", err)
	if qmailkit.IsPermanent(err) {
		return perm
	}
	return temp
}

func (s *session) cmdData(arg string) error {
	var seq *Reply
	switch {
	case !s.mail:
		seq = &replyMailFirst
	case len(s.rcpts) == 0:
		seq = &replyRcptFirst
	case s.bdat != nil || s.bdatFail:
		seq = &replyBdatMixed
	}
	if seq != nil {
		s.reply(*seq)
		s.reject(ReasonSequence, "DATA", *seq)
		return s.flush()
	}
	dr := newDataReader(s.br, s.databytes, !s.compat, false)
	dr.beforeFill = s.armRead
	from, rcpts, order, rec := s.from, s.rcpts, s.order, s.receivedLine()
	tx := s.takeTx()
	mailDSN, rcptDSN := s.params.dsn(), s.rcptDSN
	s.resetTx() // the transaction ends as soon as DATA is accepted
	s.beginRate()
	defer s.endRate()
	in := &dataIn{s: s, dr: dr, rec: rec, lazy354: true}
	id, err := s.enqueue(from, rcpts, mailDSN, rcptDSN, in)
	if !in.started {
		// The Enqueuer failed before reading: qmail's "qqt failure", no 354.
		if err == nil {
			err = errors.New("smtpserver: enqueuer returned without reading the message")
		}
		r := s.errReply(err, replyQqt, replyQqPerm)
		s.reply(r)
		s.reject(reasonOf(err, ReasonQueue), "DATA", r)
		s.logTx(tx, 0, "", r, nil)
		return s.flush()
	}
	if in.fatal != nil {
		var r Reply
		if in.fatal == ErrProtocol {
			r = replySync
			s.endReason = ReasonProtocol
			s.reject(ReasonProtocol, "DATA", r)
		}
		s.logTx(tx, 0, "", r, nil)
		return in.fatal
	}
	if !dr.done && dr.fatal == nil {
		dr.drain()
	}
	if dr.fatal != nil {
		if dr.fatal == errBareLF {
			r := replyBareLF
			if s.compat {
				r = replyBareLFCompat
			}
			s.replyFlush(r)
			s.endReason = ReasonProtocol
			s.reject(ReasonProtocol, "DATA", r)
			s.logTx(tx, dr.n, "", r, nil)
			return ErrProtocol
		}
		err := s.readErr(dr.fatal)
		s.logTx(tx, dr.n, "", endReply(err), nil)
		return err
	}
	s.finalReplies(tx, "DATA", rcpts, order, dr, in.sawEOF, id, err)
	return s.flush()
}

// finalReplies writes the reply after the data: one, or in LMTP one per
// accepted RCPT, order giving for each the index of its recipient in rcpts
// (a recipient given twice is queued once, and answered twice).
func (s *session) finalReplies(tx txLog, cmd string, rcpts []string, order []int, dr *dataReader, complete bool, id string, err error) {
	var r Reply
	reason := ""
	switch {
	case dr.rejected():
		r, reason = dr.reply(), dr.reason()
	case err != nil:
		r, reason = s.errReply(err, replyQqTemp, replyQqPerm), reasonOf(err, ReasonQueue)
	case !complete:
		s.srv.logger().Error("smtpserver: enqueuer returned success without reading the message to its end")
		r, reason = replyQqIncomplete, ReasonQueue
	default:
		text := "ok " + strconv.FormatInt(s.srv.now().Unix(), 10)
		if id != "" {
			text += " qp " + id
		}
		r = Reply{250, "2.0.0", text}
	}
	if !s.srv.LMTP {
		s.reply(r)
		if reason != "" {
			s.reject(reason, cmd, r)
		}
		s.logTx(tx, dr.n, id, r, nil)
		return
	}
	if order == nil {
		order = make([]int, len(rcpts))
		for i := range order {
			order[i] = i
		}
	}
	var each RecipientErrors
	if !dr.rejected() && errors.As(err, &each) && len(each) == len(rcpts) {
		replies := make([]Reply, len(each))
		for i, e := range each {
			if e == nil {
				replies[i] = Reply{250, "2.0.0", "ok"}
			} else {
				replies[i] = s.errReply(e, replyQqTemp, replyQqPerm)
				s.reject(reasonOf(e, ReasonQueue), cmd, replies[i], slog.String("rcpt", logAddr(rcpts[i])))
			}
		}
		codes := make([]int, 0, len(order))
		for _, i := range order {
			s.reply(replies[i])
			codes = append(codes, replies[i].Code)
		}
		s.logTx(tx, dr.n, id, replies[order[0]], codes)
		return
	}
	codes := make([]int, 0, len(order))
	for range order {
		s.reply(r)
		codes = append(codes, r.Code)
	}
	if reason != "" {
		s.reject(reason, cmd, r)
	}
	s.logTx(tx, dr.n, id, r, codes)
}

// receivedLine is the Received line for the current session: qmail-smtpd's
// line, "with SMTP" included, for a plain session in compat mode; otherwise
// with the RFC 3848 protocol word (ESMTPS, ESMTPA, ...) and a TLS comment.
func (s *session) receivedLine() string {
	env := s.info.Env
	get := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return "unknown"
	}
	ri := receivedInfo{
		remoteHost: get("TCPREMOTEHOST"),
		remoteIP:   get("TCPREMOTEIP"),
	}
	ri.remoteInfo, ri.hasInfo = env["TCPREMOTEINFO"]
	ri.local = s.receivedBy()
	if s.heloSeen && !strings.EqualFold(ri.remoteHost, s.info.Helo) {
		h := s.info.Helo
		ri.helo = &h
	}
	if s.compat && !s.tlsOn && s.info.User == "" {
		ri.protocol = "SMTP"
	} else {
		ri.protocol = protocolWord(s.srv.LMTP, s.tlsOn, s.info.User != "", s.params.smtputf8)
		ri.tlsComment = tlsComment(s.info.TLS)
	}
	return received(ri, s.srv.now())
}

// dataIn is the reader the Enqueuer gets for DATA: on its first Read it
// sends 354 (so an Enqueuer that fails before reading gives qmail's "451
// qqt failure" instead), then the Received line, then the data.
type dataIn struct {
	s       *session
	dr      *dataReader
	rec     string
	lazy354 bool
	started bool
	sawEOF  bool
	fatal   error
}

func (d *dataIn) Read(p []byte) (int, error) {
	if !d.started {
		d.started = true
		if d.lazy354 {
			s := d.s
			if !s.compat && s.br.Buffered() > 0 {
				// RFC 2920: DATA ends a command group; more input now is
				// a client that did not wait for 354.
				s.replyFlush(replySync)
				d.fatal = ErrProtocol
				return 0, d.fatal
			}
			s.reply(replyGoAhead)
			if err := s.flush(); err != nil {
				d.fatal = err
				return 0, err
			}
		}
	}
	if d.fatal != nil {
		return 0, d.fatal
	}
	if d.rec != "" {
		n := copy(p, d.rec)
		d.rec = d.rec[n:]
		return n, nil
	}
	n, err := d.dr.Read(p)
	if err == io.EOF {
		d.sawEOF = true
	}
	return n, err
}
