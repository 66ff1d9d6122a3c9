package smtpclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
)

// session is one SMTP connection, from greeting to QUIT.
type session struct {
	c        *Client
	raw      net.Conn // the TCP connection
	nc       net.Conn // raw, or the TLS connection over it
	br       *bufio.Reader
	bw       *bufio.Writer
	host     Host
	ip       string // host.Addr in text, as reports show it
	ext      map[string]string
	esmtp    bool
	tls      bool
	verified bool
	// broken: the connection must not be reused (I/O error, 421, malformed
	// reply, data aborted).
	broken bool
	key    poolKey
	wto    time.Duration // write timeout of the current step
	stop   func() bool   // stops the context watch
	pool   *Pool         // holds a connection slot of pool, released on close
	slot   netip.AddrPort
	ctx    context.Context
	since  time.Time   // when the session became idle (pool)
	timer  *time.Timer // idle expiry (pool)
	buf    []byte      // for reading messages
}

type timedWriter struct{ s *session }

func (w timedWriter) Write(p []byte) (int, error) {
	w.s.nc.SetWriteDeadline(time.Now().Add(w.s.wto))
	return w.s.nc.Write(p)
}

func newSession(c *Client, nc net.Conn, h Host) *session {
	s := &session{c: c, raw: nc, nc: nc, host: h, ip: h.Addr.String()}
	s.br = bufio.NewReaderSize(nc, 4096)
	s.bw = bufio.NewWriterSize(timedWriter{s}, 16*1024)
	return s
}

// watch closes the connection when ctx is done, which unblocks any read or
// write in progress.
func (s *session) watch(ctx context.Context) {
	raw := s.raw
	s.ctx = ctx
	s.stop = context.AfterFunc(ctx, func() { raw.Close() })
}

func (s *session) unwatch() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

func (s *session) close() {
	s.unwatch()
	s.broken = true
	s.raw.Close()
	if s.pool != nil {
		s.pool.release(s.slot)
		s.pool = nil
	}
}

// read reads one reply within timeout. A malformed reply is returned with
// Code 0 and no error (it is a temporary failure for the caller); a 421 or a
// malformed reply marks the session broken.
func (s *session) read(timeout time.Duration) (*Reply, error) {
	s.nc.SetReadDeadline(time.Now().Add(timeout))
	r, err := readReply(s.br)
	if errors.Is(err, errMalformed) && len(r.Lines) > 0 {
		s.broken = true
		return r, nil
	}
	if err != nil {
		s.broken = true
		return nil, err
	}
	if r.Code == 421 {
		s.broken = true
	}
	return r, nil
}

// send writes lines and flushes them.
func (s *session) send(timeout time.Duration, lines ...string) error {
	s.wto = timeout
	for _, l := range lines {
		s.bw.WriteString(l)
		s.bw.WriteString("\r\n")
	}
	if err := s.bw.Flush(); err != nil {
		s.broken = true
		return err
	}
	return nil
}

func (s *session) cmd(timeout time.Duration, line string) (*Reply, error) {
	if err := s.send(timeout, line); err != nil {
		return nil, err
	}
	return s.read(timeout)
}

// died is qmail-remote's report for a lost connection.
func (s *session) died(err error, duplicate bool) *Error {
	s.broken = true
	text := "Connected to " + s.ip + " but connection died. (#4.4.2)\n"
	if duplicate {
		text = "Connected to " + s.ip + " but connection died. Possible duplicate! (#4.4.2)\n"
	}
	if s.ctx != nil && s.ctx.Err() != nil {
		err = s.ctx.Err() // the connection was closed because of it
	}
	e := newError(false, text, wrap2(ErrConnectionDied, err))
	e.Host, e.Duplicate = s.ip, duplicate
	return e
}

// verdict classifies a reply code: 0 success, 'Z' temporary, 'D' permanent.
// A malformed reply (code 0) is temporary.
func verdict(code int) byte {
	switch {
	case code == 0:
		return 'Z'
	case code >= 500:
		return 'D'
	case code >= 400:
		return 'Z'
	}
	return 0
}

// connect dials h and brings the session to the point where MAIL may be
// sent. noTLS skips STARTTLS (the retry after a failed handshake).
func (d *delivery) connect(ctx context.Context, h Host, noTLS bool) (*session, error) {
	c := d.c
	log := c.logger()
	// With a pool, open has reserved a connection slot: the session holds
	// it, and gives it back when it closes (or here, when dialing fails).
	slot := netip.AddrPortFrom(h.Addr, uint16(d.dest.Port))
	pool := c.Pool
	if c.QmailCompat {
		pool = nil
	}
	nc, err := c.dial(ctx, h, d.dest.Port)
	if err != nil {
		if pool != nil {
			pool.release(slot)
		}
		c.tcptoRecord(h.Addr, err)
		log.Info("connect failed", "host", h.Name, "addr", h.Addr, "err", err)
		return nil, err
	}
	c.tcptoRecord(h.Addr, nil)
	s := newSession(c, nc, h)
	s.pool, s.slot = pool, slot
	s.watch(ctx)
	to := &c.Timeouts
	r, err := s.read(to.greeting())
	if err != nil {
		s.close()
		return nil, s.died(err, false)
	}
	if r.Code != 220 {
		s.quit()
		return nil, replyError(false, s.ip, "Connected to "+s.ip+" but greeting failed.\n", r, nil)
	}
	if err := s.hello(); err != nil {
		return nil, err
	}
	policy := d.policy(h)
	if policy != TLSNone && !noTLS {
		_, offered := s.ext["STARTTLS"]
		switch {
		case offered:
			r, err := s.cmd(to.command(), "STARTTLS")
			if err != nil {
				s.close()
				return nil, s.died(err, false)
			}
			if r.Code != 220 {
				if policy >= TLSRequire {
					s.quit()
					return nil, replyError(false, s.ip, "Connected to "+s.ip+" but STARTTLS was refused.\n", r, ErrTLSRequired)
				}
				break
			}
			if err := d.handshake(ctx, s); err != nil {
				if policy < TLSRequire {
					s.pool = nil // the retry below keeps the slot
				}
				s.close()
				log.Info("TLS handshake failed", "addr", h.Addr, "err", err)
				if policy >= TLSRequire {
					e := newError(false, "TLS handshake with "+s.ip+" failed: "+oneLine(err)+" (#4.7.5)\n", wrap2(ErrTLSRequired, err))
					e.Host = s.ip
					return nil, e
				}
				return d.connect(ctx, h, true)
			}
			if err := s.hello(); err != nil {
				return nil, err
			}
		case policy >= TLSRequire:
			s.quit()
			e := newError(false, "Connected to "+s.ip+" but it does not offer STARTTLS. (#4.7.5)\n", ErrTLSRequired)
			e.Host = s.ip
			return nil, e
		}
	}
	if d.dest.Routed && d.dest.Route.Username != "" {
		if err := d.auth(s); err != nil {
			return nil, err
		}
	}
	log.Info("connected", "host", h.Name, "addr", h.Addr, "tls", s.tls, "verified", s.verified, "esmtp", s.esmtp)
	return s, nil
}

// hello sends EHLO (HELO in compat mode, or when EHLO gets 500, 502 or 504)
// and records the extensions offered.
func (s *session) hello() error {
	to := &s.c.Timeouts
	name := s.c.hostname()
	s.ext, s.esmtp = map[string]string{}, false
	verb := "EHLO "
	if s.c.QmailCompat {
		verb = "HELO "
	}
	r, err := s.cmd(to.command(), verb+name)
	if err != nil {
		s.close()
		return s.died(err, false)
	}
	if verb == "EHLO " {
		switch r.Code {
		case 250:
			s.esmtp = true
			for _, l := range r.Lines[1:] {
				if len(l) < 4 {
					continue
				}
				kw, params, _ := strings.Cut(l[4:], " ")
				s.ext[strings.ToUpper(kw)] = params
			}
			return nil
		case 500, 502, 504:
			r, err = s.cmd(to.command(), "HELO "+name)
			if err != nil {
				s.close()
				return s.died(err, false)
			}
		}
	}
	if r.Code != 250 {
		s.quit()
		return replyError(false, s.ip, "Connected to "+s.ip+" but my name was rejected.\n", r, nil)
	}
	return nil
}

// handshake runs the TLS client handshake after a 220 to STARTTLS.
func (d *delivery) handshake(ctx context.Context, s *session) error {
	c := d.c
	cfg := &tls.Config{}
	if c.TLSConfig != nil {
		cfg = c.TLSConfig.Clone()
	}
	name := d.tlsName(s.host)
	if _, ok := parseLiteral(name); !ok {
		cfg.ServerName = name
	}
	if _, roots, ok := d.hostTLS(s.host); ok && roots != nil {
		cfg.RootCAs = roots
	}
	if d.policy(s.host) == TLSVerify {
		if cfg.ServerName == "" {
			return errors.New("no name to verify the certificate against")
		}
		cfg.InsecureSkipVerify = false
	} else {
		// RFC 7435: encrypt without requiring a valid certificate, but
		// record whether it was valid.
		cfg.InsecureSkipVerify = true
		roots := cfg.RootCAs
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || name == "" {
				return nil
			}
			opts := x509.VerifyOptions{Roots: roots, DNSName: name, Intermediates: x509.NewCertPool()}
			for _, ic := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			s.verified = err == nil
			return nil
		}
	}
	s.raw.SetDeadline(time.Now().Add(c.Timeouts.command()))
	tc := tls.Client(s.raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	s.raw.SetDeadline(time.Time{})
	s.nc, s.tls = tc, true
	if d.policy(s.host) == TLSVerify {
		s.verified = true
	}
	s.br.Reset(tc)
	return nil
}

// auth authenticates to a smarthost with PLAIN or LOGIN, only over TLS.
func (d *delivery) auth(s *session) error {
	rt := d.dest.Route
	fail := func(text string, r *Reply) error {
		s.quit()
		return replyError(false, s.ip, text, r, ErrAuth)
	}
	if !s.tls {
		return fail("Not sending credentials to "+s.ip+" without TLS. (#4.7.0)\n", nil)
	}
	var mech sasl.Client
	mechs := " " + strings.ToUpper(s.ext["AUTH"]) + " "
	switch {
	case strings.Contains(mechs, " PLAIN "):
		mech = sasl.NewPlainClient("", rt.Username, rt.Password)
	case strings.Contains(mechs, " LOGIN "):
		// Not go-sasl's LOGIN client: it sends the user name as an
		// initial response, which servers following the original LOGIN
		// draft do not expect.
		mech = &loginClient{user: rt.Username, pass: rt.Password}
	default:
		return fail("Connected to "+s.ip+" but it offers no AUTH PLAIN or LOGIN. (#4.7.0)\n", nil)
	}
	name, ir, err := mech.Start()
	if err != nil {
		return fail("AUTH "+name+" failed: "+oneLine(err)+" (#4.7.0)\n", nil)
	}
	line := "AUTH " + name
	if ir != nil {
		line += " " + encodeSASL(ir)
	}
	to := s.c.Timeouts.command()
	for {
		r, err := s.cmd(to, line)
		if err != nil {
			s.close()
			return s.died(err, false)
		}
		switch r.Code {
		case 235:
			return nil
		case 334:
			chal, err := base64.StdEncoding.DecodeString(strings.TrimSpace(strings.TrimPrefix(r.Lines[0], "334")))
			if err != nil {
				s.send(to, "*")
				s.read(to)
				return fail("Connected to "+s.ip+" but its AUTH challenge is not base64.\n", r)
			}
			resp, err := mech.Next(chal)
			if err != nil {
				s.send(to, "*")
				s.read(to)
				return fail("Connected to "+s.ip+" but AUTH failed: "+oneLine(err)+"\n", r)
			}
			line = encodeSASL(resp)
		default:
			return fail("Connected to "+s.ip+" but authentication failed.\n", r)
		}
	}
}

func encodeSASL(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// reset checks a pooled session with RSET before its next transaction.
func (s *session) reset(ctx context.Context) error {
	s.watch(ctx)
	r, err := s.cmd(s.c.Timeouts.command(), "RSET")
	if err != nil {
		return err
	}
	if r.Code != 250 {
		return errors.New("RSET: " + r.Text())
	}
	return nil
}

// quit ends the session: QUIT, then (except in compat mode, where
// qmail-remote does not wait) up to Timeouts.Quit for the reply.
func (s *session) quit() {
	defer s.close()
	to := s.c.Timeouts.quit()
	if err := s.send(to, "QUIT"); err != nil || s.c.QmailCompat {
		return
	}
	s.read(to)
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// loginClient is the AUTH LOGIN mechanism: the user name and the password,
// each in answer to a challenge.
type loginClient struct {
	user, pass string
	step       int
}

func (l *loginClient) Start() (string, []byte, error) { return "LOGIN", nil, nil }

func (l *loginClient) Next(challenge []byte) ([]byte, error) {
	l.step++
	switch l.step {
	case 1:
		return []byte(l.user), nil
	case 2:
		return []byte(l.pass), nil
	}
	return nil, errors.New("unexpected LOGIN challenge")
}
