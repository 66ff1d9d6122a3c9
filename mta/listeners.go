package mta

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/pop3"
	"github.com/qmailkit/qmailkit/smtpserver"
	"github.com/qmailkit/qmailkit/tcpenv"
	"github.com/qmailkit/qmailkit/tcprules"
)

// The listener roles: the keys of Config.Rules, the names of the
// control/tcp.ROLE.cdb files LoadHome reads and the label of the
// connection metrics. These names are a contract: systemd socket units
// will be named by them.
const (
	RoleSMTP        = "smtp"        // Listeners.SMTP, port 25
	RoleSubmission  = "submission"  // Listeners.Submission, port 587
	RoleSubmissions = "submissions" // Listeners.Submissions, port 465
	RolePOP3        = "pop3"        // Listeners.POP3, port 110
	RolePOP3S       = "pop3s"       // Listeners.POP3S, port 995
	RoleLMTP        = "lmtp"        // Listeners.LMTP
)

// roles are the listener roles, in the order of Listeners' fields.
func roles() []string {
	return []string{RoleSMTP, RoleSubmission, RoleSubmissions, RolePOP3, RolePOP3S, RoleLMTP}
}

// Listeners are where Run serves; a nil listener is not served. Each is
// wrapped, when Config.Rules has rules for its role or Config.ProxyFrom
// is set, in a tcprules.Listener (tcpserver's work: the PROXY header of
// a trusted balancer, the rules, the environment; no limit of its own,
// the servers limit their sessions).
type Listeners struct {
	// SMTP is the SMTP server's (port 25): mail for the domains it
	// accepts, and relaying for SMTPPolicy.RelayClients, for clients
	// whose rules (control/tcp.smtp.cdb) set RELAYCLIENT and for clients
	// that authenticated after STARTTLS.
	SMTP net.Listener
	// Submission is the submission server's (RFC 6409, port 587):
	// STARTTLS, then AUTH before any MAIL. Served when Config.Auth is set.
	Submission net.Listener
	// Submissions is the submission server on implicit TLS (RFC 8314,
	// port 465): Serve wraps it in tls.NewListener with Config.TLS (at
	// least TLS 1.2); a session starts with the handshake, then AUTH as
	// on Submission. Served when Config.Auth is set; Config.TLS must be.
	Submissions net.Listener
	// POP3 is the POP3 server's (port 110): STLS, and USER/PASS or AUTH
	// under TLS or from loopback. Served when Config.Auth is set.
	POP3 net.Listener
	// POP3S is the POP3 server on implicit TLS (RFC 8314, port 995),
	// wrapped as Submissions is. Served when Config.Auth is set;
	// Config.TLS must be.
	POP3S net.Listener
	// LMTP is an LMTP server (RFC 2033) whose messages go into the queue
	// (see System.LMTP): for a mail system in front of this one that
	// hands its mail for local users over, one reply per recipient after
	// the data. It takes only local recipients, never relays, offers no
	// AUTH and no TLS: serve it on loopback or a private network only
	// (and tcp.lmtp rules may narrow who connects).
	LMTP net.Listener
}

// each returns the listeners by role, nil ones included.
func (ls Listeners) each() map[string]net.Listener {
	return map[string]net.Listener{
		RoleSMTP: ls.SMTP, RoleSubmission: ls.Submission, RoleSubmissions: ls.Submissions,
		RolePOP3: ls.POP3, RolePOP3S: ls.POP3S, RoleLMTP: ls.LMTP,
	}
}

// Servers are the network servers Serve serves: Submission on both
// Listeners.Submission and Listeners.Submissions, POP3 on Listeners.POP3
// and Listeners.POP3S. A nil server leaves its listeners unserved.
type Servers struct {
	SMTP, Submission *smtpserver.Server
	POP3             *pop3.Server
	// LMTP serves Listeners.LMTP: System.LMTP makes it.
	LMTP *smtpserver.Server
}

// checkListeners reports what New, Run and Serve refuse: an implicit-TLS
// listener without a TLS configuration, and rules for a role that does not
// exist.
func checkListeners(ls Listeners, tlsConfig *tls.Config, rules map[string]string) error {
	if tlsConfig == nil {
		if ls.Submissions != nil {
			return errors.New("mta: Listeners.Submissions (implicit TLS, port 465) needs Config.TLS (for a home: control/servercert.pem)")
		}
		if ls.POP3S != nil {
			return errors.New("mta: Listeners.POP3S (implicit TLS, port 995) needs Config.TLS (for a home: control/servercert.pem)")
		}
	}
	for role := range rules {
		if !slices.Contains(roles(), role) {
			return fmt.Errorf("mta: Config.Rules: unknown listener role %q (want one of %s)", role, strings.Join(roles(), ", "))
		}
	}
	return nil
}

// homeRules are the rules of a home: control/tcp.ROLE.cdb for each role.
func homeRules(d control.Dir) map[string]string {
	rules := make(map[string]string)
	for _, role := range roles() {
		rules[role] = d.Path("tcp." + role + ".cdb")
	}
	return rules
}

// Limits of control/proxyfrom: a few balancers are expected, and each
// connection is compared with every prefix.
const (
	maxProxyFromBytes   = maxControlFile
	maxProxyFromLine    = 1024
	maxProxyFromEntries = 1024
)

// ReadProxyFrom reads control/proxyfrom, the load balancers trusted to
// send a PROXY protocol header (Config.ProxyFrom): one IP address or
// prefix (10.0.0.0/8, 2001:db8::/32) per line; blank lines and what
// follows a '#' are ignored. A missing file trusts none. A line that is
// not an address or prefix is an error naming the file and the line.
func ReadProxyFrom(d control.Dir) ([]netip.Prefix, error) {
	ls, _, err := lines(d, "proxyfrom")
	if err != nil {
		return nil, err
	}
	return proxyPrefixes(d.Path("proxyfrom"), ls)
}

// parseProxyFrom parses the text of control/proxyfrom; name is the file's,
// for errors.
func parseProxyFrom(name string, r io.Reader) ([]netip.Prefix, error) {
	ls, err := readLines(name, r)
	if err != nil {
		return nil, err
	}
	return proxyPrefixes(name, ls)
}

// proxyPrefixes makes control/proxyfrom's lines prefixes; path names the
// file in errors.
func proxyPrefixes(path string, ls []line) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, l := range ls {
		if len(l.text) > maxProxyFromLine {
			return nil, fmt.Errorf("mta: %s:%d: a line longer than %d bytes", path, l.n, maxProxyFromLine)
		}
		p, err := parseTrusted(l.text)
		if err != nil {
			return nil, fmt.Errorf("mta: %s:%d: %q is not an IP address or prefix: %w", path, l.n, l.text, err)
		}
		if len(out) == maxProxyFromEntries {
			return nil, fmt.Errorf("mta: %s:%d: more than %d addresses or prefixes", path, l.n, maxProxyFromEntries)
		}
		out = append(out, p)
	}
	return out, nil
}

// parseTrusted parses an address (a prefix of its full length) or a
// prefix, IPv4-mapped IPv6 ones as IPv4 (the listener compares unmapped
// addresses); zones are refused.
func parseTrusted(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if a.Zone() != "" {
			return netip.Prefix{}, errors.New("an address with a zone")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, errors.New("an IPv4-mapped prefix shorter than /96")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// listenerPolicy returns the rules and the trusted balancers Serve wraps
// the listeners with: the Config's, and for a System that Open made
// control/proxyfrom, read now (see Config.lazySMTP).
func (s *System) listenerPolicy() (map[string]string, []netip.Prefix, error) {
	s.mu.Lock()
	rules, proxy, lazy := maps.Clone(s.cfg.Rules), slices.Clone(s.cfg.ProxyFrom), s.cfg.lazySMTP
	s.mu.Unlock()
	if lazy && s.Home.Home != "" {
		var err error
		if proxy, err = ReadProxyFrom(s.Home); err != nil {
			return nil, nil, err
		}
	}
	return rules, proxy, nil
}

// wrap is what Serve makes of the listener of a role: the tcprules
// Listener (rules and PROXY headers) when there are rules or trusted
// balancers, RelayClients' RELAYCLIENT on SMTP and none ever on LMTP,
// the connection metrics, and for the implicit-TLS roles TLS outermost,
// so that the servers see a *tls.Conn.
func (s *System) wrap(role string, l net.Listener, rules string, proxy []netip.Prefix, tlsConfig *tls.Config) net.Listener {
	if rules != "" || len(proxy) > 0 {
		l = &tcprules.Listener{
			Listener:     l,
			Rules:        rules,
			AllowMissing: true,
			// The servers limit sessions themselves, in all and per
			// client, answering 421 beyond; tcpserver's -c 40 here
			// would let one client's idle connections hold the port.
			Limit:     -1,
			ProxyFrom: proxy,
			Logger:    s.logger.With("part", "tcprules", "listener", role),
		}
	}
	if role == RoleLMTP {
		l = noRelayListener{l}
	}
	l = countListener{l, s.Metrics.server(role)}
	if role == RoleSubmissions || role == RolePOP3S {
		l = tls.NewListener(l, tlsConfig)
	}
	return l
}

// implicitTLS is the configuration of the implicit-TLS listeners: c with
// at least TLS 1.2, as STARTTLS requires.
func implicitTLS(c *tls.Config) *tls.Config {
	if c == nil {
		return nil
	}
	c = c.Clone()
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

// noRelayListener's connections never have RELAYCLIENT, whatever a
// tcp.lmtp rule says: the LMTP server never relays.
type noRelayListener struct{ net.Listener }

func (l noRelayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return noRelayConn{c}, nil
}

// noRelayConn is a connection whose environment has no RELAYCLIENT.
type noRelayConn struct{ net.Conn }

// Env is the connection's environment without RELAYCLIENT.
func (c noRelayConn) Env() map[string]string {
	env := maps.Clone(tcpenv.FromConn(c.Conn))
	delete(env, "RELAYCLIENT")
	return env
}

// LMTP returns an LMTP server (RFC 2033) with the System's SMTP policy
// whose messages go into the queue, for Listeners.LMTP: the mail system
// in front of this one hands it the mail of local users, and gets one
// reply per recipient after the data. It accepts only local recipients
// (those the queue would deliver locally, by Config.Routing as Reload
// changes it; another is refused with 550 5.7.1), whatever the client,
// and refuses at RCPT a local recipient no user takes (unless
// Options.NoRecipientCheck), so that the client bounces at once; it has no
// AUTH, no STARTTLS, no DNS lists (Config.DNSBL) and no limit per client
// (its clients are a few trusted hosts; MaxConns still applies). Serve it on loopback or a
// private network.
func (s *System) LMTP() (*smtpserver.Server, error) {
	srv, err := s.SMTP(false, nil, nil)
	if err != nil {
		return nil, err
	}
	srv.LMTP = true
	srv.Logger = s.logger.With("part", "lmtp")
	srv.MaxConnsPerIP = -1
	srv.DNSBL = nil // its clients are this site's own MTAs
	srv.Relay = nil // nor RelayClients: it never relays
	// The routing decides, not rcpthosts: a domain this system is a
	// backup MX for is not local, and no client relays.
	srv.RcptHostsContext = func(context.Context, *smtpserver.Session, string) (bool, error) { return true, nil }
	check := srv.CheckRecipient
	srv.CheckRecipient = func(ctx context.Context, ss *smtpserver.Session, to string) error {
		// A virtual domain added since the routing last listed them is
		// made local by the look-up (a store failure is answered below,
		// by the virtual recipients' check).
		s.virtualDomain(ctx, domainOf(to))
		if _, remote := s.routing.Load().Route(to); remote {
			return smtpserver.Reply{Code: 550, Enhanced: "5.7.1", Text: "sorry, this LMTP server takes only local recipients (#5.7.1)"}
		}
		if check != nil {
			return check(ctx, ss, to)
		}
		return nil
	}
	return srv, nil
}
