package smtpserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// What an operator sees: one log line per session, per transaction and per
// rejection (see the package doc, # Logs), and the Rejected hook.

// The reason tokens of rejections (see the package doc, # Logs).
const (
	ReasonRelay            = "relay"             // recipient's domain not in rcpthosts
	ReasonBadMailFrom      = "badmailfrom"       // sender in badmailfrom
	ReasonUnknownRecipient = "unknown-recipient" // CheckRecipient refused permanently
	ReasonPolicy           = "policy"            // CheckSender refused permanently, AUTH needs TLS
	ReasonTempFail         = "tempfail"          // a check failed temporarily (hook, rcpthosts, authenticator)
	ReasonDNSBL            = "dnsbl"             // rblsmtpd blocked the client
	ReasonSize             = "size"              // SIZE or message above databytes
	ReasonLoop             = "loop"              // too many Received/Delivered-To lines
	ReasonSyntax           = "syntax"            // bad address, parameter or command argument
	ReasonSequence         = "sequence"          // command out of order (RCPT before MAIL, ...)
	ReasonProtocol         = "protocol"          // bare LF or CR, early talker, data before 354
	ReasonRecipients       = "recipients"        // too many recipients
	ReasonConnections      = "connections"       // too many connections (in all or from the client)
	ReasonSlow             = "slow"              // message sent below MinDataRate
	ReasonErrors           = "errors"            // too many errors in the session
	ReasonAuth             = "auth"              // wrong AUTH credentials
	ReasonRate             = "rate"              // AuthLimiter refused the attempt
	ReasonTLS              = "tls"               // TLS handshake failed
	ReasonQueue            = "queue"             // the Enqueuer refused or failed
)

// Rejection is one refusal the server logs, as given to [Server.Rejected].
type Rejection struct {
	Reason string     // one of the Reason tokens, or a hook's own (see [WithReason])
	IP     netip.Addr // the client's address
	// Reply is what the client was told; zero for a failed TLS
	// handshake, which has no reply.
	Reply Reply
}

// WithReason returns err with a reason token: when a policy hook or the
// Enqueuer returns it, the rejection is logged, and given to
// [Server.Rejected], under that reason instead of the default one. The
// reply is still err's (a [Reply] it wraps, else by its permanence).
func WithReason(err error, reason string) error {
	return &reasonError{err: err, reason: reason}
}

type reasonError struct {
	err    error
	reason string
}

func (e *reasonError) Error() string  { return e.err.Error() }
func (e *reasonError) Unwrap() error  { return e.err }
func (e *reasonError) Reason() string { return e.reason }

// reasonOf is the reason token err carries (see WithReason), else def.
func reasonOf(err error, def string) string {
	var r interface{ Reason() string }
	if errors.As(err, &r) && r.Reason() != "" {
		return r.Reason()
	}
	return def
}

// rcptLog is one RCPT of a transaction and its reply code.
type rcptLog struct {
	Addr string `json:"addr"`
	Code int    `json:"code"`
}

// rcptList is the "to" attribute: a JSON array of {addr, code} objects,
// and "addr:code,addr:code" for text handlers.
type rcptList []rcptLog

// MarshalJSON writes the array of objects (json would use MarshalText).
func (l rcptList) MarshalJSON() ([]byte, error) {
	if l == nil {
		return []byte("[]"), nil
	}
	return json.Marshal([]rcptLog(l))
}

// MarshalText writes addr:code pairs separated by commas.
func (l rcptList) MarshalText() ([]byte, error) {
	var b []byte
	for i, r := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, r.Addr...)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(r.Code), 10)
	}
	return b, nil
}

// maxLogAddr bounds an address (or a refused argument) in a log line.
const maxLogAddr = 320

func logAddr(s string) string {
	if len(s) > maxLogAddr {
		return s[:maxLogAddr]
	}
	return s
}

// argAddr is the address part of a refused MAIL or RCPT argument, for
// the log: the argument without its "FROM:" or "TO:".
func argAddr(arg, keyword string) string {
	if hasPrefixFold(arg, keyword) {
		arg = arg[len(keyword):]
	}
	return strings.TrimSpace(arg)
}

// replyText is r as the client saw it, on one line (lines joined by " / ").
func replyText(r Reply, enhanced bool) string {
	if r.Code == 0 {
		return ""
	}
	s := strings.TrimSuffix(string(r.format(enhanced)), "\r\n")
	return strings.ReplaceAll(s, "\r\n", " / ")
}

// TLSVersionName is the "tls" attribute of log lines: "TLS1.2", "TLS1.3".
func tlsVersionName(v uint16) string {
	return strings.ReplaceAll(tls.VersionName(v), " ", "")
}

// infoLogger returns the Logger when it takes lines at level Info, else
// nil: the lines of every session, transaction and rejection are built
// only for a logger that will write them (none when Logger is nil).
func (srv *Server) infoLogger(ctx context.Context) *slog.Logger {
	if l := srv.Logger; l != nil && l.Enabled(ctx, slog.LevelInfo) {
		return l
	}
	return nil
}

// clientAttrs are the attributes that name the client in every line of a
// session: ip, host, helo, tls and cipher, user; those unknown are left
// out.
func (s *session) clientAttrs(a []slog.Attr) []slog.Attr {
	if s.info.RemoteIP.IsValid() {
		a = append(a, slog.String("ip", s.info.RemoteIP.String()))
	}
	if h := s.info.Env["TCPREMOTEHOST"]; h != "" {
		a = append(a, slog.String("host", h))
	}
	if s.info.Helo != "" {
		a = append(a, slog.String("helo", logAddr(s.info.Helo)))
	}
	if cs := s.info.TLS; cs != nil {
		a = append(a, slog.String("tls", tlsVersionName(cs.Version)), slog.String("cipher", tls.CipherSuiteName(cs.CipherSuite)))
	}
	if s.info.User != "" {
		a = append(a, slog.String("user", logAddr(s.info.User)))
	}
	return a
}

// reject logs a rejection and tells Server.Rejected. cmd is the verb
// refused (CONNECT before the greeting); extra are attributes such as the
// refused sender or recipient.
func (s *session) reject(reason, cmd string, r Reply, extra ...slog.Attr) {
	s.rejectText(reason, cmd, r, replyText(r, s.enhanced()), extra...)
}

// rejectText is reject for a reply written as text (with or without its
// enhanced code, whatever the session's state).
func (s *session) rejectText(reason, cmd string, r Reply, text string, extra ...slog.Attr) {
	if l := s.srv.infoLogger(s.ctx); l != nil {
		a := make([]slog.Attr, 0, 10+len(extra))
		a = append(a, slog.String("event", "reject"), slog.String("reason", reason))
		if cmd != "" {
			a = append(a, slog.String("cmd", cmd))
		}
		a = s.clientAttrs(a)
		a = append(a, extra...)
		if text != "" {
			a = append(a, slog.String("reply", text))
		}
		l.LogAttrs(s.ctx, slog.LevelInfo, "smtpserver: reject", a...)
	}
	if h := s.srv.Rejected; h != nil {
		h(Rejection{Reason: reason, IP: s.info.RemoteIP, Reply: r})
	}
}

// refuseRcpt replies r to a RCPT, notes it in the transaction and logs the
// rejection.
func (s *session) refuseRcpt(reason, addr string, r Reply) {
	s.reply(r)
	s.noteRcpt(addr, r.Code)
	s.reject(reason, "RCPT", r, slog.String("from", logAddr(s.from)), slog.String("rcpt", logAddr(addr)))
}

// noteRcpt records a RCPT of the current transaction for its log line.
// Beyond a few thousand, only the count grows: a client cannot make a
// line unbounded.
func (s *session) noteRcpt(addr string, code int) {
	if len(s.rcptLog) < maxLogRcpts {
		s.rcptLog = append(s.rcptLog, rcptLog{Addr: logAddr(addr), Code: code})
	}
}

// maxLogRcpts bounds the recipients listed in a transaction's line.
const maxLogRcpts = 2000

// txLog is what a transaction's line needs once the session has moved on.
type txLog struct {
	from  string
	rcpts rcptList
}

// takeTx returns the current transaction's record for its line.
func (s *session) takeTx() txLog {
	t := txLog{from: s.from, rcpts: s.rcptLog}
	s.rcptLog = nil
	return t
}

// logTx logs the end of a transaction at DATA or BDAT: r is the final
// reply (the first one in LMTP), zero when the client got none (it went
// away); in LMTP, codes gives each accepted recipient's reply after the
// data, in RCPT order.
func (s *session) logTx(t txLog, size int64, id string, r Reply, codes []int) {
	s.ntx++
	if r.Code >= 200 && r.Code < 300 {
		s.nmsg++
	}
	if codes != nil {
		k := 0
		for i := range t.rcpts {
			if t.rcpts[i].Code/100 == 2 && k < len(codes) {
				t.rcpts[i].Code = codes[k]
				k++
			}
		}
	}
	l := s.srv.infoLogger(s.ctx)
	if l == nil {
		return
	}
	a := make([]slog.Attr, 0, 12)
	a = append(a, slog.String("event", "transaction"))
	a = s.clientAttrs(a)
	a = append(a, slog.String("from", logAddr(t.from)), slog.Any("to", t.rcpts), slog.Int64("size", size))
	if id != "" {
		a = append(a, slog.String("id", id))
	}
	a = append(a, slog.String("reply", replyText(r, s.enhanced())))
	l.LogAttrs(s.ctx, slog.LevelInfo, "smtpserver: transaction", a...)
}

// logEnd logs the end of the session.
func (s *session) logEnd(ctx context.Context, err error) {
	l := s.srv.infoLogger(ctx)
	if l == nil {
		return
	}
	end := s.endReason
	if end == "" {
		switch {
		case err == nil:
			end = "quit"
		case errors.Is(err, ErrServerClosed):
			end = "shutdown"
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			end = "timeout" // SessionTimeout
		case errors.Is(err, ErrTimeout):
			end = "timeout"
		case ctx.Err() != nil && s.srv.closed.Load():
			end = "shutdown" // Close
		case errors.Is(err, ErrClientGone):
			end = "dropped"
		case errors.Is(err, ErrTooSlow):
			end = ReasonSlow
		case errors.Is(err, ErrProtocol):
			end = ReasonProtocol
		default:
			end = "error"
		}
	}
	a := make([]slog.Attr, 0, 12)
	a = append(a, slog.String("event", "session"))
	a = s.clientAttrs(a)
	a = append(a, slog.Int("transactions", s.ntx), slog.Int("messages", s.nmsg),
		slog.Float64("duration", time.Since(s.start).Seconds()), slog.String("end", end))
	if end == "error" {
		a = append(a, slog.String("err", err.Error()))
	}
	l.LogAttrs(context.WithoutCancel(ctx), slog.LevelInfo, "smtpserver: session", a...)
}

// rejectConn logs a connection refused by Serve before any session (too
// many connections).
func (srv *Server) rejectConn(env map[string]string, ip netip.Addr, r Reply) {
	if l := srv.infoLogger(context.Background()); l != nil {
		a := []slog.Attr{slog.String("event", "reject"), slog.String("reason", ReasonConnections), slog.String("cmd", "CONNECT")}
		if ip.IsValid() {
			a = append(a, slog.String("ip", ip.String()))
		}
		if h := env["TCPREMOTEHOST"]; h != "" {
			a = append(a, slog.String("host", h))
		}
		a = append(a, slog.String("reply", replyText(r, !srv.Compat)))
		l.LogAttrs(context.Background(), slog.LevelInfo, "smtpserver: reject", a...)
	}
	if srv.Rejected != nil {
		srv.Rejected(Rejection{Reason: ReasonConnections, IP: ip, Reply: r})
	}
}

// Serving reports whether a call of Serve is accepting connections: for
// a health check.
func (srv *Server) Serving() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return len(srv.listeners) > 0 && !srv.closed.Load()
}

// permReason is def for a permanent reply and ReasonTempFail for a
// temporary one.
func permReason(r Reply, def string) string {
	if r.Code >= 500 {
		return def
	}
	return ReasonTempFail
}

// endReply is the reply readErr gave the client for the error it
// returned, if any.
func endReply(err error) Reply {
	switch err {
	case ErrTimeout:
		return replyTimeout
	case ErrTooSlow:
		return replyTooSlow
	case ErrServerClosed:
		return replyShutdown
	}
	return Reply{}
}
