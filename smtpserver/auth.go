package smtpserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/auth"
)

// Authenticator checks a user name and password for AUTH as a function:
// nil means good, an error that is permanent (such as [ErrBadCredentials])
// or wraps [auth.ErrFailed] means wrong credentials (535), any other error
// a temporary failure (454). It is an [auth.Authenticator].
//
// Deprecated: set [Server.Auth] to any [auth.Authenticator] (the one
// interface POP3 uses too), for example an [auth.Func].
type Authenticator func(ctx context.Context, user, password string) error

// Authenticate implements [auth.Authenticator]: f with the user name and
// password, a permanent error reported as wrapping [auth.ErrFailed].
func (f Authenticator) Authenticate(ctx context.Context, c auth.Credentials) (*auth.User, error) {
	if f == nil {
		return nil, errors.New("smtpserver: nil Authenticator")
	}
	err := f(ctx, c.User, c.Secret)
	switch {
	case err == nil:
		return &auth.User{Name: c.User, UID: -1, GID: -1}, nil
	case qmailkit.IsPermanent(err) && !errors.Is(err, auth.ErrFailed):
		return nil, fmt.Errorf("%w: %w", auth.ErrFailed, err)
	}
	return nil, err
}

// AuthLimiter slows password guessing across sessions and connections.
//
// Deprecated: use [auth.Limiter], the same interface.
type AuthLimiter = auth.Limiter

// ErrBadCredentials is the error an Authenticator returns for a wrong user
// name or password.
var ErrBadCredentials error = replyAuthBad

// Checkpassword returns an Authenticator that runs a checkpassword-compatible
// program, as the common qmail-smtpd AUTH patches do: prog with args (for
// example "/bin/checkpassword", "/bin/true") gets "user\0password\0
// timestamp\0" on descriptor 3; exit 0 is success, 1 wrong credentials, and
// anything else (111, a crash, exec failure) a temporary failure. The
// program inherits the server's environment.
func Checkpassword(prog string, args ...string) Authenticator {
	return func(ctx context.Context, user, password string) error {
		if strings.ContainsRune(user, 0) || strings.ContainsRune(password, 0) || len(user)+len(password)+64 > 512 {
			return ErrBadCredentials // checkpassword reads at most 512 bytes
		}
		host, _ := os.Hostname()
		stamp := fmt.Sprintf("<%d.%d@%s>", os.Getpid(), time.Now().Unix(), host)
		r, w, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("smtpserver: checkpassword: %w", err)
		}
		defer r.Close()
		cmd := exec.CommandContext(ctx, prog, args...)
		cmd.ExtraFiles = []*os.File{r} // descriptor 3
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			w.Close()
			return fmt.Errorf("smtpserver: checkpassword: %w", err)
		}
		r.Close()
		w.Write([]byte(user + "\x00" + password + "\x00" + stamp + "\x00"))
		w.Close()
		err = cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ee) && ee.ExitCode() == 1:
			return ErrBadCredentials
		}
		return fmt.Errorf("smtpserver: checkpassword %s: %w: %s", prog, err, strings.TrimSpace(stderr.String()))
	}
}

func (s *session) cmdAuth(arg string) error {
	if !s.authOffered() {
		s.reply(replyEncrypt)
		s.reject(ReasonPolicy, "AUTH", replyEncrypt)
		return s.flush()
	}
	if s.info.User != "" {
		s.reply(replyAuthTwice)
		return s.flush()
	}
	if s.mail {
		s.reply(replyAuthInTx)
		return s.flush()
	}
	mech, ir, _ := strings.Cut(arg, " ")
	var user, pass string
	var r *Reply
	var err error
	var method auth.Method
	switch strings.ToUpper(mech) {
	case "PLAIN":
		method = auth.MethodPlain
		user, pass, r, err = s.authPlain(strings.TrimSpace(ir))
	case "LOGIN":
		method = auth.MethodLogin
		user, pass, r, err = s.authLogin(strings.TrimSpace(ir))
	default:
		s.reply(replyAuthMech)
		return s.flush()
	}
	if err != nil {
		return err
	}
	if r != nil {
		s.reply(*r)
		reason := ReasonSyntax
		if *r == replyAuthBad {
			reason = ReasonAuth
		}
		s.reject(reason, "AUTH", *r)
		return s.flush()
	}
	lim := s.srv.AuthLimiter
	var addr netip.Addr
	if lim != nil {
		if ip, err := netip.ParseAddr(s.info.Env["TCPREMOTEIP"]); err == nil {
			addr = ip.Unmap()
		}
		if err := lim.Wait(s.ctx, addr, user); err != nil {
			if s.ctx.Err() != nil {
				return ErrClientGone
			}
			s.reject(ReasonRate, "AUTH", replyAuthLimited, slog.String("user", logAddr(user)), slog.String("err", err.Error()))
			s.reply(replyAuthLimited)
			return s.flush()
		}
	}
	if !addr.IsValid() {
		if ip, err := netip.ParseAddr(s.info.Env["TCPREMOTEIP"]); err == nil {
			addr = ip.Unmap()
		}
	}
	_, aerr := s.srv.Auth.Authenticate(s.ctx, auth.Credentials{
		Service: auth.ServiceSMTP, Method: method, User: user, Secret: pass,
		Remote: addr, Env: s.info.Env,
	})
	bad := errors.Is(aerr, auth.ErrFailed) || qmailkit.IsPermanent(aerr)
	if lim != nil && (aerr == nil || bad) {
		lim.Done(addr, user, aerr == nil)
	}
	switch {
	case aerr == nil:
		s.info.User = user
		s.info.Relay = true
		s.reply(replyAuthOK)
		s.srv.logger().Info("smtpserver: authenticated", "ip", s.info.RemoteIP, "user", user)
	case bad:
		s.authFail++
		s.reject(ReasonAuth, "AUTH", replyAuthBad, slog.String("user", logAddr(user)))
		if d := s.authDelay(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return ErrClientGone
			}
		}
		if s.authFail >= 3 {
			s.endReason = ReasonAuth
			s.reply(replyAuthBad)
			s.replyFlush(replyAuthTooMany)
			return ErrProtocol
		}
		s.reply(replyAuthBad)
	default:
		s.srv.logger().Warn("smtpserver: authenticator", "err", aerr)
		s.reject(ReasonTempFail, "AUTH", replyAuthTemp, slog.String("user", logAddr(user)))
		s.reply(replyAuthTemp)
	}
	return s.flush()
}

func (s *session) authDelay() time.Duration {
	d := s.srv.AuthFailDelay
	if d < 0 {
		return 0
	}
	if d == 0 {
		d = time.Second
	}
	return d << (s.authFail - 1)
}

// errAuthzid is a PLAIN response whose authorization identity is neither
// empty nor the user's own: a session acts for the user it authenticated,
// so the server refuses it as wrong credentials (535).
var errAuthzid = errors.New("smtpserver: AUTH PLAIN: authorization identity differs from the user")

// saslRounds bounds the challenges of one AUTH exchange (PLAIN takes one,
// LOGIN two).
const saslRounds = 4

// exchange runs the SASL exchange of mech (RFC 4954): ir is the initial
// response of the AUTH command, "" for none and "=" for an empty one; each
// challenge goes out base64-encoded after 334, each response comes back
// the same way, and "*" cancels. A Reply is the server's answer to a
// failed exchange: 501 for a cancel, bad base64 or a response mech
// refuses, 535 for an authorization identity other than the user's.
func (s *session) exchange(mech sasl.Server, ir string) (*Reply, error) {
	var resp []byte // nil: no initial response
	if ir != "" {
		var r *Reply
		if resp, r = decodeResponse(ir); r != nil {
			return r, nil
		}
	}
	for range saslRounds {
		challenge, done, err := mech.Next(resp)
		switch {
		case errors.Is(err, errAuthzid):
			return &replyAuthBad, nil
		case err != nil:
			return &replyAuthDecode, nil
		case done:
			return nil, nil
		}
		var r *Reply
		resp, r, err = s.challenge(base64.StdEncoding.EncodeToString(challenge))
		if err != nil || r != nil {
			return r, err
		}
	}
	return &replyAuthDecode, nil
}

// challenge sends a 334 and reads the client's response, decoded. A "*"
// cancels.
func (s *session) challenge(text string) ([]byte, *Reply, error) {
	s.reply(Reply{Code: 334, Text: text})
	line, tooLong, err := s.readLine()
	if err != nil {
		return nil, nil, err
	}
	if tooLong {
		return nil, &replyLineTooLong, nil
	}
	b, r := decodeResponse(line)
	return b, r, nil
}

// decodeResponse decodes one client response: "*" cancels, "=" is empty
// (RFC 4954 section 4), anything else is base64. A decoded response is
// never nil, which a sasl.Server would take for no response at all.
func decodeResponse(line string) ([]byte, *Reply) {
	line = strings.TrimSpace(line)
	if line == "*" {
		return nil, &replyAuthCancel
	}
	if line == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		return nil, &replyAuthDecode
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// authPlain is RFC 4616, parsed by go-sasl's PLAIN server: authzid NUL
// authcid NUL password; the authzid must be empty or equal the authcid.
// The credentials are checked afterwards, by the caller.
func (s *session) authPlain(ir string) (user, pass string, r *Reply, err error) {
	mech := sasl.NewPlainServer(func(authz, authc, pw string) error {
		if authz != "" && authz != authc {
			return errAuthzid
		}
		user, pass = authc, pw
		return nil
	})
	if r, err = s.exchange(mech, ir); err != nil || r != nil {
		return "", "", r, err
	}
	return user, pass, nil, nil
}

// authLogin is the de facto LOGIN mechanism: user name, then password,
// each base64 after a 334 challenge (or the user as initial response).
func (s *session) authLogin(ir string) (user, pass string, r *Reply, err error) {
	mech := &loginServer{done: func(u, p string) { user, pass = u, p }}
	if r, err = s.exchange(mech, ir); err != nil || r != nil {
		return "", "", r, err
	}
	return user, pass, nil, nil
}

// loginServer is the server side of LOGIN as a sasl.Server (go-sasl has
// only its client): "Username:", then "Password:", each answered by one
// response; a user name given as the initial response skips the first.
type loginServer struct {
	user  []byte
	state int // 0: nothing yet; 1: user asked; 2: password asked; 3: done
	done  func(user, pass string)
}

// Next implements sasl.Server.
func (l *loginServer) Next(resp []byte) (challenge []byte, done bool, err error) {
	switch {
	case l.state == 0 && resp == nil:
		l.state = 1
		return []byte("Username:"), false, nil
	case l.state <= 1:
		l.user, l.state = resp, 2
		return []byte("Password:"), false, nil
	case l.state == 2:
		l.state = 3
		l.done(string(l.user), string(resp))
		return nil, true, nil
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}
