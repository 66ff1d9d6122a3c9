package smtpserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DNSBL is rblsmtpd (ucspi-tcp 0.88) built into the server: before the
// greeting, the client's address is looked up in DNS lists, and a listed
// client gets rblsmtpd's conversation, which never lets it send a message.
// The connection's RBLSMTPD variable decides first, as in rblsmtpd: set and
// empty accepts, "-text" blocks permanently, any other text blocks
// temporarily. That variable is honoured even when the server has no
// DNSBL.
type DNSBL struct {
	// Rules are rblsmtpd's -r and -a options, in order; the first that
	// decides wins.
	Rules []DNSBLRule
	// Permanent is -b: a listing gives 553 instead of 451.
	Permanent bool
	// FailClosed is -c: a failed -r lookup blocks with "temporary RBL lookup
	// error" and a failed -a lookup is ignored. The default (-C) ignores a
	// failed -r lookup and accepts on a failed -a lookup.
	FailClosed bool
	// Timeout is -t: how long a blocked client is kept talking. 0 means
	// 60 s; negative is -t 0: the reply line is written once and the
	// connection closed.
	Timeout time.Duration
	// DNS answers the queries: *net.Resolver satisfies [DNSBLResolver]
	// (net.DefaultResolver asks the servers of /etc/resolv.conf), as do
	// [DNSResolver] and the rbl package's djb-compatible resolver. When
	// both DNS and Resolver are nil, a [DNSResolver] with the servers of
	// /etc/resolv.conf answers.
	DNS DNSBLResolver
	// Resolver answers the queries when DNS is nil.
	//
	// Deprecated: set DNS, which *net.Resolver satisfies.
	Resolver Resolver
}

// DNSBLRule is one rblsmtpd list: -r zone (TXT query; an answer blocks with
// its text) or, with Allow, -a zone (A query; an answer accepts).
type DNSBLRule struct {
	Zone  string
	Allow bool
}

// DNSBLResolver is the DNS that DNS block lists need: TXT records for the
// lists that block (rblsmtpd -r) and A records for those that allow (-a,
// asked with network "ip4"). *net.Resolver satisfies it, and so do
// [DNSResolver] and rbl.DNSResolver (djb's resolver, for rblsmtpd's exact
// answers). It is the interface of every DNS-list lookup in the module:
// package rbl declares rbl.DNSBLResolver with the same methods, so that
// one value serves both without either package importing the other.
// Delivery's MX and address lookups are smtpclient.Resolver, and the host
// names of connections tcpenv.Resolver.
//
// A name that does not exist, or has no record of the type, is either an
// empty answer with a nil error or a *net.DNSError with IsNotFound set
// (what *net.Resolver returns); any other error means the lookup failed,
// temporarily. Its methods may be called from several goroutines at once.
type DNSBLResolver interface {
	// LookupTXT returns the TXT records of name, each one's strings
	// concatenated.
	LookupTXT(ctx context.Context, name string) ([]string, error)
	// LookupNetIP returns the addresses of host; a DNS list asks for
	// network "ip4" (A records) only.
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ DNSBLResolver = (*net.Resolver)(nil)

// Resolver is the DNS the DNSBL needed before [DNSBLResolver]. A name that
// does not exist gives an empty answer and a nil error; an error means the
// lookup failed.
//
// Deprecated: use DNSBLResolver (DNSBL.DNS), which *net.Resolver
// satisfies.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupA(ctx context.Context, name string) ([]netip.Addr, error)
}

// DNSResolver is a [DNSBLResolver] over Go's own DNS client (net.Resolver
// with PreferGo), asking Servers ("host:port") over UDP, and TCP when an
// answer is truncated. A name that does not exist gives an empty answer
// and a nil error.
type DNSResolver struct {
	// Servers to ask: the first that takes a connection (UDP always
	// does, so in practice the first); nil asks those of
	// /etc/resolv.conf.
	Servers []string
	// Timeout per query; 0 means 5 s.
	Timeout time.Duration
}

// LookupTXT returns the strings of every TXT record of name, concatenated
// per record.
func (r *DNSResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	ctx, cancel := r.context(ctx)
	defer cancel()
	out, err := r.resolver().LookupTXT(ctx, name)
	return out, r.result(name, err)
}

// LookupA returns the A records of name.
func (r *DNSResolver) LookupA(ctx context.Context, name string) ([]netip.Addr, error) {
	ctx, cancel := r.context(ctx)
	defer cancel()
	out, err := r.resolver().LookupNetIP(ctx, "ip4", name)
	for i, a := range out {
		out[i] = a.Unmap()
	}
	return out, r.result(name, err)
}

// LookupNetIP returns the addresses of host for network "ip4", "ip6" or
// "ip", IPv4-mapped ones unmapped.
func (r *DNSResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	ctx, cancel := r.context(ctx)
	defer cancel()
	out, err := r.resolver().LookupNetIP(ctx, network, host)
	for i, a := range out {
		out[i] = a.Unmap()
	}
	return out, r.result(host, err)
}

func (r *DNSResolver) context(ctx context.Context) (context.Context, context.CancelFunc) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return context.WithTimeout(ctx, timeout)
}

// result maps "no such name" (or no record of the type) to an empty
// answer, and any other failure to an error.
func (r *DNSResolver) result(name string, err error) error {
	var de *net.DNSError
	if err == nil || errors.As(err, &de) && de.IsNotFound {
		return nil
	}
	return fmt.Errorf("smtpserver: dnsbl: %s: %w", name, err)
}

func (r *DNSResolver) resolver() *net.Resolver {
	if len(r.Servers) == 0 {
		return &net.Resolver{PreferGo: true}
	}
	servers := r.Servers
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		var err error
		for _, s := range servers {
			var c net.Conn
			if c, err = d.DialContext(ctx, network, s); err == nil {
				return c, nil
			}
		}
		return nil, err
	}}
}

// ReverseName is the DNSBL query name of ip in zone: the IPv4 octets
// reversed, or for IPv6 the 32 nibbles reversed (RFC 5782).
func ReverseName(ip netip.Addr, zone string) string {
	ip = ip.Unmap()
	var b strings.Builder
	if ip.Is4() {
		a := ip.As4()
		fmt.Fprintf(&b, "%d.%d.%d.%d.", a[3], a[2], a[1], a[0])
	} else {
		a := ip.As16()
		const hex = "0123456789abcdef"
		for i := 15; i >= 0; i-- {
			b.WriteByte(hex[a[i]&0xf])
			b.WriteByte('.')
			b.WriteByte(hex[a[i]>>4])
			b.WriteByte('.')
		}
	}
	b.WriteString(zone)
	return b.String()
}

// rblBlock is a decision to block.
type rblBlock struct {
	code int
	text string
}

// Decide is rblsmtpd's decision for a client, as in rblsmtpd(1): blocked
// reports whether to refuse it, with the SMTP code (451 or 553) and text.
func (d *DNSBL) Decide(ctx context.Context, env map[string]string, ip netip.Addr) (blocked bool, code int, text string) {
	b, ok := decideRBL(ctx, d, env, ip)
	return ok, b.code, b.text
}

func decideRBL(ctx context.Context, d *DNSBL, env map[string]string, ip netip.Addr) (rblBlock, bool) {
	if v, ok := env["RBLSMTPD"]; ok {
		switch {
		case v == "":
			return rblBlock{}, false
		case v[0] == '-':
			return rblBlock{553, v[1:]}, true
		default:
			return rblBlock{451, v}, true
		}
	}
	if d == nil || !ip.IsValid() {
		return rblBlock{}, false
	}
	res := d.DNS
	if res == nil && d.Resolver != nil {
		res = oldResolver{d.Resolver}
	}
	if res == nil {
		res = &DNSResolver{}
	}
	code := 451
	if d.Permanent {
		code = 553
	}
	dnsFailed := false
	for _, rule := range d.Rules {
		name := ReverseName(ip, rule.Zone)
		if rule.Allow {
			addrs, err := res.LookupNetIP(ctx, "ip4", name)
			if isNotFound(err) {
				addrs, err = nil, nil
			}
			if err != nil {
				dnsFailed = true
				if !d.FailClosed {
					return rblBlock{}, false
				}
				continue
			}
			if len(addrs) > 0 {
				return rblBlock{}, false
			}
			continue
		}
		txts, err := res.LookupTXT(ctx, name)
		if isNotFound(err) {
			txts, err = nil, nil
		}
		if err != nil {
			dnsFailed = true
			if d.FailClosed {
				return rblBlock{451, "temporary RBL lookup error"}, true
			}
			continue
		}
		if t := strings.Join(txts, ""); t != "" {
			if dnsFailed {
				code = 451
			}
			return rblBlock{code, t}, true
		}
	}
	return rblBlock{}, false
}

// isNotFound reports whether err says that a name, or a record of the type
// asked, does not exist: no listing, not a failed lookup.
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// oldResolver adapts a deprecated [Resolver] to [DNSBLResolver].
type oldResolver struct{ r Resolver }

func (o oldResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return o.r.LookupTXT(ctx, name)
}

func (o oldResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return o.r.LookupA(ctx, host)
}

// rblText is rblsmtpd's reply text: at most 200 bytes, bytes outside 32..126
// replaced by "?".
func rblText(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	b := []byte(s)
	for i, c := range b {
		if c < 32 || c > 126 {
			b[i] = '?'
		}
	}
	return string(b)
}

func (s *session) rblDecision() (rblBlock, bool) {
	return decideRBL(s.ctx, s.srv.DNSBL, s.info.Env, s.info.RemoteIP)
}

// rblConversation is rblsmtpd's blocking conversation: 250 to HELO, EHLO,
// MAIL, RSET and NOOP, 221 to QUIT, and the block reply to anything else.
func (s *session) rblConversation(b rblBlock) error {
	r := Reply{Code: b.code, Text: rblText(b.text)}
	if !s.compat {
		r.Enhanced = "4.7.1"
		if b.code == 553 {
			r.Enhanced = "5.7.1"
		}
	}
	line := r.format(!s.compat)
	s.endReason = ReasonDNSBL
	s.rejectText(ReasonDNSBL, "CONNECT", r, replyText(r, !s.compat))
	timeout := 60 * time.Second
	if d := s.srv.DNSBL; d != nil && d.Timeout != 0 {
		timeout = d.Timeout
	}
	if timeout < 0 {
		s.bw.Write(line)
		s.flush()
		return ErrProtocol
	}
	deadline := time.Now().Add(timeout)
	s.bw.WriteString("220 rblsmtpd.local\r\n")
	for {
		if err := s.flush(); err != nil {
			return err
		}
		s.conn.SetReadDeadline(deadline)
		l, err := s.br.ReadString('\n')
		if err != nil {
			return ErrProtocol
		}
		verb, _ := splitCommand(strings.TrimRight(l, "\r\n"))
		switch verb {
		case "HELO", "EHLO", "MAIL", "RSET", "NOOP":
			s.bw.WriteString("250 rblsmtpd.local\r\n")
		case "QUIT":
			s.bw.WriteString("221 rblsmtpd.local\r\n")
			s.flush()
			return nil
		default:
			s.bw.Write(line)
		}
	}
}
