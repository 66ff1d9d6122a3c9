package pop3

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"
)

// What an operator sees: one log line per login attempt and per session
// (see the package doc, # Logs), and the Rejected hook.

// Rejection is a refused login or connection, as given to
// [Server.Rejected].
type Rejection struct {
	// Reason is "auth" (wrong credentials), "tempfail" (the check
	// failed), "rate" (the AuthLimiter refused the attempt), "tls" (a
	// failed TLS handshake) or "connections" (too many).
	Reason string
	IP     netip.Addr // the client's address
}

// The results of a login attempt, in its log line.
const (
	resultOK       = "ok"
	resultFailed   = "failed"
	resultTempFail = "tempfail"
	resultRate     = "rate"
)

// tlsState returns the connection's TLS state, or nil.
func (s *session) tlsState() *tls.ConnectionState {
	for _, c := range []net.Conn{s.conn, s.raw} {
		if tc, ok := c.(*tls.Conn); ok {
			cs := tc.ConnectionState()
			if cs.HandshakeComplete {
				return &cs
			}
		}
	}
	return nil
}

// clientAttrs are the attributes naming the client: ip, tls and cipher.
func (s *session) clientAttrs(a []slog.Attr) []slog.Attr {
	if ip := remoteAddr(s.env, s.raw); ip.IsValid() {
		a = append(a, slog.String("ip", ip.String()))
	}
	if cs := s.tlsState(); cs != nil {
		a = append(a, slog.String("tls", strings.ReplaceAll(tls.VersionName(cs.Version), " ", "")),
			slog.String("cipher", tls.CipherSuiteName(cs.CipherSuite)))
	}
	return a
}

// maxLogUser bounds a user name in a log line.
const maxLogUser = 320

func logUser(u string) string {
	if len(u) > maxLogUser {
		return u[:maxLogUser]
	}
	return u
}

// methodName is a login method as logged: USER, APOP or AUTH.
func methodName(m Method) string {
	if m == MethodPlain {
		return "AUTH"
	}
	return string(m)
}

// logLogin logs a login attempt and, when it failed, tells Rejected.
func (s *session) logLogin(cred Credentials, result string, err error) {
	a := []slog.Attr{slog.String("event", "login"), slog.String("user", logUser(cred.User)), slog.String("method", methodName(cred.Method))}
	a = s.clientAttrs(a)
	a = append(a, slog.String("result", result))
	if err != nil {
		a = append(a, slog.String("err", err.Error()))
	}
	s.srv.logger().LogAttrs(s.ctx, slog.LevelInfo, "pop3: login", a...)
	switch result {
	case resultFailed:
		s.rejected("auth")
	case resultTempFail, resultRate:
		s.rejected(result)
	}
}

func (s *session) rejected(reason string) {
	if h := s.srv.Rejected; h != nil {
		h(Rejection{Reason: reason, IP: remoteAddr(s.env, s.raw)})
	}
}

// logEnd logs the end of the session.
func (s *session) logEnd(err error) {
	end := s.endReason
	var ne net.Error
	switch {
	case end != "":
	case errors.Is(err, errQuit):
		end = "quit"
	case s.tlsFailed(err):
		end = "tls"
		s.rejected("tls")
	case errors.Is(err, ErrServerClosed), s.srv.closing.Load() && err != nil:
		end = "shutdown"
	case errors.Is(err, errEnd):
		end = "login"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		end = "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, errLineTooLong), errors.Is(err, context.Canceled):
		end = "dropped"
	default:
		end = "error"
	}
	a := []slog.Attr{slog.String("event", "session")}
	a = s.clientAttrs(a)
	if s.loggedIn != "" {
		a = append(a, slog.String("user", logUser(s.loggedIn)))
	}
	a = append(a, slog.Int("retrieved", s.nretr), slog.Int64("retrieved_bytes", s.retrBytes),
		slog.Int("deleted", s.ndel), slog.Int64("deleted_bytes", s.delBytes),
		slog.Float64("duration", time.Since(s.began).Seconds()), slog.String("end", end))
	if end == "error" || end == "tls" {
		a = append(a, slog.String("err", err.Error()))
	}
	s.srv.logger().LogAttrs(context.WithoutCancel(s.ctx), slog.LevelInfo, "pop3: session", a...)
}

// tlsFailed reports whether the session ended in a failed TLS handshake:
// STLS's, or an implicit TLS connection's (port 995).
func (s *session) tlsFailed(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errTLSHandshake) {
		return true
	}
	tc, ok := s.raw.(*tls.Conn)
	return ok && !tc.ConnectionState().HandshakeComplete
}

// errTLSHandshake is the condition of a failed STLS handshake.
var errTLSHandshake = errors.New("pop3: TLS handshake")

// rejectConn logs a connection refused by Serve (too many) and tells
// Rejected.
func (srv *Server) rejectConn(env map[string]string, ip netip.Addr, err error) {
	a := []slog.Attr{slog.String("event", "reject"), slog.String("reason", "connections")}
	if ip.IsValid() {
		a = append(a, slog.String("ip", ip.String()))
	}
	a = append(a, slog.String("err", err.Error()))
	srv.logger().LogAttrs(context.Background(), slog.LevelInfo, "pop3: connection refused", a...)
	if srv.Rejected != nil {
		srv.Rejected(Rejection{Reason: "connections", IP: ip})
	}
}

// Serving reports whether a call of Serve is accepting connections: for
// a health check.
func (srv *Server) Serving() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return len(srv.listeners) > 0 && !srv.closing.Load()
}
