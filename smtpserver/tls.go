package smtpserver

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

func (s *session) cmdStartTLS(arg string) error {
	switch {
	case s.tlsOn:
		s.reply(replyTLSAlready)
		return s.flush()
	case arg != "":
		s.reply(replyTLSArg)
		return s.flush()
	}
	s.reply(replyTLSReady)
	if err := s.flush(); err != nil {
		return err
	}
	// Whatever the client sent after STARTTLS in the clear is dropped, never
	// executed after the handshake (CVE-2011-0411).
	s.br.Discard(s.br.Buffered())
	cfg := s.srv.TLSConfig.Clone()
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	tc := tls.Server(s.conn, cfg)
	s.conn.SetDeadline(time.Now().Add(s.set.Timeout))
	if err := tc.HandshakeContext(s.ctx); err != nil {
		s.endReason = ReasonTLS
		s.reject(ReasonTLS, "STARTTLS", Reply{}, slog.String("err", err.Error()))
		return ErrProtocol
	}
	s.conn.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	s.conn = tc
	s.br.Reset(&s.cr) // which reads s.conn, now tc
	s.bw.Reset(tc)
	s.tlsOn = true
	s.info.TLS = &cs
	// Forget everything said in the clear (RFC 3207 section 4.2).
	s.resetTx()
	s.heloSeen, s.ehlo = false, false
	s.info.Helo, s.info.User = "", ""
	s.info.Relay = s.relay
	return nil
}

// implicitTLS completes the handshake of a connection that is TLS from its
// first byte (a *tls.Conn, as tls.NewListener accepts them: implicit TLS,
// RFC 8314 section 3), before the greeting and within the server's
// timeout, and makes the session one under TLS, as after STARTTLS: no
// STARTTLS offered, AUTH offered, the Received line and Session.TLS saying
// TLS. Any other connection is left as it is. A Shutdown cuts a handshake
// in progress at once: nothing has been said yet.
func (s *session) implicitTLS() error {
	tc, ok := s.conn.(*tls.Conn)
	if !ok {
		return nil
	}
	tc.SetDeadline(time.Now().Add(s.set.Timeout))
	s.idle.Store(true)
	if s.shutdown.Load() {
		s.idle.Store(false)
		return ErrServerClosed
	}
	err := tc.HandshakeContext(s.ctx)
	s.idle.Store(false)
	if err != nil {
		ne := s.netErr(err)
		switch {
		case ne == ErrTimeout && s.shutdown.Load():
			return ErrServerClosed
		case ne == ErrClientGone:
			return ne // a port probe, not a failed handshake
		}
		s.endReason = ReasonTLS
		s.reject(ReasonTLS, "CONNECT", Reply{}, slog.String("err", err.Error()))
		if ne == ErrTimeout {
			return ne
		}
		return ErrProtocol
	}
	tc.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	s.tlsOn = true
	s.info.TLS = &cs
	return nil
}

// CertReloader serves a certificate from files, re-reading them when either
// file's modification time or size changes (checked at most once a second),
// so a renewed certificate is used without a restart. Use its
// GetCertificate in a tls.Config.
type CertReloader struct {
	CertFile, KeyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

// GetCertificate is for tls.Config.GetCertificate. If re-reading fails, the
// previous certificate is kept; without one, the error is returned.
func (c *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.cert != nil && now.Sub(c.checked) < time.Second {
		return c.cert, nil
	}
	c.checked = now
	stamp, err := fileStamp(c.CertFile, c.KeyFile)
	if err == nil && stamp == c.stamp && c.cert != nil {
		return c.cert, nil
	}
	cert, lerr := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if lerr != nil {
		if c.cert != nil {
			return c.cert, nil
		}
		return nil, fmt.Errorf("smtpserver: certificate: %w", lerr)
	}
	c.cert, c.stamp = &cert, stamp
	return c.cert, nil
}

func fileStamp(paths ...string) (string, error) {
	var out string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		out += fmt.Sprintf("%d.%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return out, nil
}
