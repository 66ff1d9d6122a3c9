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

	"github.com/qmailkit/qmailkit"
)

// Authenticator checks a user name and password for AUTH, as a
// checkpassword program does: nil means good, an error that is permanent
// (such as [ErrBadCredentials]) means wrong credentials (535), any other
// error a temporary failure (454).
type Authenticator func(ctx context.Context, user, password string) error

// AuthLimiter slows password guessing across sessions and connections
// (see package authlimit for one). The server calls Wait before each
// credentials check of AUTH PLAIN and LOGIN and Done after it; it declares
// the interface so that any implementation fits without importing this
// package.
type AuthLimiter interface {
	// Wait is called before each credentials check, with the client's
	// address and the user name it gave. It returns when the check may go
	// ahead, or an error to refuse the attempt without checking it: the
	// server answers as for a temporary failure.
	Wait(ctx context.Context, addr netip.Addr, user string) error
	// Done reports the outcome of a check that went ahead: ok is true for
	// right credentials, false for wrong ones. Temporary failures of the
	// authenticator are not reported.
	Done(addr netip.Addr, user string, ok bool)
}

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
	switch strings.ToUpper(mech) {
	case "PLAIN":
		user, pass, r, err = s.authPlain(strings.TrimSpace(ir))
	case "LOGIN":
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
	aerr := s.srv.Auth(s.ctx, user, pass)
	if lim != nil && (aerr == nil || qmailkit.IsPermanent(aerr)) {
		lim.Done(addr, user, aerr == nil)
	}
	switch {
	case aerr == nil:
		s.info.User = user
		s.info.Relay = true
		s.reply(replyAuthOK)
		s.srv.logger().Info("smtpserver: authenticated", "ip", s.info.RemoteIP, "user", user)
	case qmailkit.IsPermanent(aerr):
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
	return decodeResponse(line)
}

func decodeResponse(line string) ([]byte, *Reply, error) {
	line = strings.TrimSpace(line)
	if line == "*" {
		return nil, &replyAuthCancel, nil
	}
	if line == "=" {
		return []byte{}, nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		return nil, &replyAuthDecode, nil
	}
	return b, nil, nil
}

// authPlain is RFC 4616: authzid NUL authcid NUL password; the authzid must
// be empty or equal the authcid.
func (s *session) authPlain(ir string) (user, pass string, r *Reply, err error) {
	var b []byte
	if ir == "" {
		b, r, err = s.challenge("")
	} else {
		b, r, err = decodeResponse(ir)
	}
	if err != nil || r != nil {
		return "", "", r, err
	}
	parts := bytes.Split(b, []byte{0})
	if len(parts) != 3 {
		return "", "", &replyAuthDecode, nil
	}
	authz, authc, pw := string(parts[0]), string(parts[1]), string(parts[2])
	if authz != "" && authz != authc {
		return "", "", &replyAuthBad, nil
	}
	return authc, pw, nil, nil
}

// authLogin is the de facto LOGIN mechanism: user name, then password,
// each base64 after a 334 challenge (or the user as initial response).
func (s *session) authLogin(ir string) (user, pass string, r *Reply, err error) {
	var b []byte
	if ir == "" {
		b, r, err = s.challenge("VXNlcm5hbWU6")
	} else {
		b, r, err = decodeResponse(ir)
	}
	if err != nil || r != nil {
		return "", "", r, err
	}
	user = string(b)
	b, r, err = s.challenge("UGFzc3dvcmQ6")
	if err != nil || r != nil {
		return "", "", r, err
	}
	return user, string(b), nil, nil
}
