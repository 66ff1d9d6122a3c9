package smtpclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Dialer opens connections; *net.Dialer satisfies it. Tests use it to send
// every connection to a scripted server on 127.0.0.1.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Timeouts bound each step of a delivery. A zero field takes the default
// shown, from RFC 5321 section 4.5.3.2 unless said otherwise.
type Timeouts struct {
	Connect  time.Duration // TCP connect to one address: 60 s (qmail's timeoutconnect)
	Greeting time.Duration // the 220 greeting: 5 min
	Command  time.Duration // EHLO, STARTTLS, AUTH, RSET and MAIL replies: 5 min
	Rcpt     time.Duration // each RCPT reply: 5 min
	Data     time.Duration // the reply to DATA: 2 min
	Block    time.Duration // each write of the message: 3 min
	Final    time.Duration // the reply after the final dot: 10 min
	Quit     time.Duration // waiting for QUIT's 221: 2 s; never delays a result much
	// Remote, when positive, replaces every read and write timeout above
	// except Connect and Quit (qmail's timeoutremote, 1200 s there).
	Remote time.Duration
}

func (t *Timeouts) pick(v, def time.Duration) time.Duration {
	if t.Remote > 0 {
		return t.Remote
	}
	if v > 0 {
		return v
	}
	return def
}

func (t *Timeouts) connect() time.Duration {
	if t.Connect > 0 {
		return t.Connect
	}
	return 60 * time.Second
}
func (t *Timeouts) greeting() time.Duration { return t.pick(t.Greeting, 5*time.Minute) }
func (t *Timeouts) command() time.Duration  { return t.pick(t.Command, 5*time.Minute) }
func (t *Timeouts) rcpt() time.Duration     { return t.pick(t.Rcpt, 5*time.Minute) }
func (t *Timeouts) data() time.Duration     { return t.pick(t.Data, 2*time.Minute) }
func (t *Timeouts) block() time.Duration    { return t.pick(t.Block, 3*time.Minute) }
func (t *Timeouts) final() time.Duration    { return t.pick(t.Final, 10*time.Minute) }
func (t *Timeouts) quit() time.Duration {
	if t.Quit > 0 {
		return t.Quit
	}
	return 2 * time.Second
}

// Client delivers messages by SMTP. Its zero value works: MX lookups through
// /etc/resolv.conf, port 25, opportunistic STARTTLS, no connection reuse. A
// Client is safe for concurrent use; set its fields before the first
// delivery and do not change or copy it afterwards.
type Client struct {
	// Hostname is the name sent in EHLO/HELO (qmail's control/helohost);
	// empty means os.Hostname, or "localhost" when that fails.
	Hostname string
	// Resolver looks up MX and address records; nil means a [DNS] with
	// /etc/resolv.conf.
	Resolver Resolver
	// Dialer opens TCP connections; nil means a *net.Dialer.
	Dialer Dialer
	// Port is the port delivered to when no route gives one; 0 means 25.
	Port int
	// Routes are artificial routes (qmail's control/smtproutes); nil means none.
	Routes *Routes
	// TLS is the STARTTLS policy for destinations found by MX lookup; a route
	// has its own (Route.TLS).
	TLS TLSPolicy
	// TLSConfig is the base configuration for STARTTLS (RootCAs,
	// MinVersion, ...); nil means defaults. ServerName and verification
	// are set per connection.
	TLSConfig *tls.Config
	// Timeouts bound each step; the zero value holds RFC 5321's defaults.
	Timeouts Timeouts
	// Network is "ip" (IPv6 and IPv4 addresses, IPv6 first), "ip4" or
	// "ip6"; empty means "ip", or "ip4" with QmailCompat.
	Network string
	// PreferIPv4 tries each host's IPv4 addresses before its IPv6 ones.
	PreferIPv4 bool
	// LocalAddrs returns this host's addresses, for the check that refuses
	// to deliver to ourselves (qmail's ipme); nil means [InterfaceAddrs].
	LocalAddrs func() ([]netip.Addr, error)
	// Rand returns a random int in [0, n), for the order of MX hosts of
	// equal preference; nil means math/rand/v2.IntN.
	Rand func(n int) int
	// Pool, when set, keeps connections open after a delivery and reuses
	// them for the next message to the same address; nil means one
	// connection per delivery, as qmail-remote.
	Pool *Pool
	// QmailCompat makes the client behave exactly as qmail-remote on the
	// wire and in its reports: HELO (no EHLO, no extensions, no STARTTLS),
	// one transaction for all recipients, IPv4 only, the report at the
	// first connected host, QUIT without waiting, and a message whose last
	// line has no LF fails with #5.6.2. The message is still encoded
	// safely: every line end becomes CRLF and every line is dot-stuffed.
	QmailCompat bool
	// Logger receives one line per connection and per transaction; nil
	// means no logging.
	Logger *slog.Logger
	// TCPTO remembers connect timeouts (qmail's tcpto); nil means a
	// [MemoryTCPTO] for this Client.
	TCPTO TCPTO
	// Now returns the current time, for TCPTO; nil means time.Now.
	Now func() time.Time
	// HostTLS, when set, gives the STARTTLS policy of connections to one
	// host, named as its certificate must be (a route's ServerName or
	// relay, else the MX host's name; lower case, no final dot), where it
	// returns ok: it then overrides the route's and the Client's policy,
	// and roots, when not nil, are the only certificate authorities that
	// verify the host (as qmail's TLS patch reads control/tlshosts/HOST.pem).
	HostTLS func(host string) (policy TLSPolicy, roots *x509.CertPool, ok bool)

	mu         sync.Mutex
	memTCPTO   *MemoryTCPTO
	defaultDNS *DNS
}

func (c *Client) port() int {
	if c.Port > 0 {
		return c.Port
	}
	return 25
}

func (c *Client) resolver() Resolver {
	if c.Resolver != nil {
		return c.Resolver
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.defaultDNS == nil {
		c.defaultDNS = &DNS{} // one per Client: it reads resolv.conf once
	}
	return c.defaultDNS
}

func (c *Client) network() string {
	switch {
	case c.Network != "":
		return c.Network
	case c.QmailCompat:
		return "ip4"
	}
	return "ip"
}

func (c *Client) hostname() string {
	if c.Hostname != "" {
		return c.Hostname
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (c *Client) dial(ctx context.Context, h Host, port int) (net.Conn, error) {
	d := c.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeouts.connect())
	defer cancel()
	return d.DialContext(ctx, "tcp", net.JoinHostPort(h.Addr.String(), strconv.Itoa(port)))
}

// Deliver sends one message to the recipients at one domain, as
// qmail-remote does: it finds the destination ([Client.Lookup]), connects to
// each address in turn until one greets and accepts EHLO/HELO, and runs the
// mail transaction(s) there. The message is read from msg as stored (LF line
// ends); when msg is also an io.Seeker it may be read more than once (to
// measure it for SIZE, and for more than 100 recipients).
//
// The result has one entry per recipient, in order: that is what a queue
// acts on. The error (also in Result.Err) is the message's outcome as
// qmail-remote's K/Z/D tells it: nil when the server took the message for
// every recipient it accepted; qmail's "Giving up" when it accepted none;
// otherwise why the message failed. A recipient's own refusal is only in
// its RecipientResult.
func (c *Client) Deliver(ctx context.Context, domain, sender string, recipients []string, msg io.Reader) (*Result, error) {
	return c.deliver(ctx, domain, sender, recipients, msg, nil)
}

func (c *Client) deliver(ctx context.Context, domain, sender string, recipients []string, msg io.Reader, dsn *DSN) (*Result, error) {
	res := newResult(recipients)
	if len(recipients) == 0 {
		res.fail(newError(true, "No recipients were given. (#5.3.5)\n", nil))
		return res, res.Err
	}
	if msg == nil {
		msg = strings.NewReader("") // as net/http's nil body
	}
	dest, err := c.Lookup(ctx, domain)
	if err != nil {
		res.fail(err)
		return res, res.Err
	}
	d := &delivery{c: c, dest: dest, sender: sender, msg: msg, res: res, dsn: dsn}
	d.run(ctx)
	return res, res.Err
}

// delivery is one call of Deliver.
type delivery struct {
	c      *Client
	dest   *Destination
	sender string
	msg    io.Reader
	res    *Result
	dsn    *DSN // nil: none

	// The message's measure, when it could be taken.
	measured bool
	size     int64
	eightbit bool
	start    int64 // offset of the message in a seekable msg
	seekable bool
	readOnce bool
}

func (d *delivery) run(ctx context.Context) {
	c := d.c
	if sk, ok := d.msg.(io.Seeker); ok {
		if off, err := sk.Seek(0, io.SeekCurrent); err == nil {
			d.start, d.seekable = off, true
		}
	}
	var lastErr, dialErr error
	for _, h := range d.dest.Hosts {
		if c.tcptoSkip(h.Addr) {
			continue
		}
		s, err := d.open(ctx, h)
		if err != nil {
			var e *Error
			if errors.As(err, &e) && e.Host != "" {
				lastErr = err
				if c.QmailCompat {
					break // qmail reports at the first host that answered
				}
			} else {
				dialErr = err
			}
			if ctx.Err() != nil {
				break
			}
			continue
		}
		d.res.Host = h
		d.res.TLS, d.res.TLSVerified = s.tls, s.verified
		d.transactions(ctx, s)
		return
	}
	if lastErr == nil {
		lastErr = newError(false, "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n", wrap2(ErrNoConnection, dialErr))
	}
	d.res.fail(lastErr)
}

// open returns a session with h ready for MAIL: from the pool, or dialed,
// greeted, EHLO'd, with STARTTLS and AUTH as the policy says.
func (d *delivery) open(ctx context.Context, h Host) (*session, error) {
	c := d.c
	key := d.poolKey(h)
	if c.Pool != nil && !c.QmailCompat {
		for {
			s, err := c.Pool.take(ctx, key)
			if err != nil {
				return nil, err
			}
			if s == nil {
				break // a connection slot is reserved for connect
			}
			if err := s.reset(ctx); err == nil {
				return s, nil
			}
			s.close()
		}
	}
	s, err := d.connect(ctx, h, false)
	if err != nil {
		return nil, err
	}
	s.key = key
	return s, nil
}

func (d *delivery) policy(h Host) TLSPolicy {
	if d.c.QmailCompat {
		return TLSNone
	}
	if p, _, ok := d.hostTLS(h); ok {
		return p
	}
	if d.dest.Routed {
		return d.dest.Route.TLS
	}
	return d.c.TLS
}

// tlsName is the name a connection to h verifies the certificate against:
// the route's ServerName, else its relay, else the MX host's name.
func (d *delivery) tlsName(h Host) string {
	if d.dest.Routed {
		if d.dest.Route.ServerName != "" {
			return d.dest.Route.ServerName
		}
		return d.dest.Route.Relay
	}
	return h.Name
}

// hostTLS asks Client.HostTLS about the host a connection to h goes to.
func (d *delivery) hostTLS(h Host) (TLSPolicy, *x509.CertPool, bool) {
	if d.c.HostTLS == nil {
		return 0, nil, false
	}
	name := d.tlsName(h)
	if name == "" {
		return 0, nil, false
	}
	return d.c.HostTLS(strings.ToLower(strings.TrimSuffix(name, ".")))
}

func (d *delivery) poolKey(h Host) poolKey {
	rt := d.dest.Route
	return poolKey{
		addr:   netip.AddrPortFrom(h.Addr, uint16(d.dest.Port)),
		policy: d.policy(h),
		server: rt.ServerName,
		user:   rt.Username,
		pass:   rt.Password,
		helo:   d.c.hostname(),
	}
}
