package rbl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

// DNSBLResolver is the DNS a [Checker] asks: TXT records for -r sources,
// A records (LookupNetIP with network "ip4") for -a sources.
// *net.Resolver satisfies it, and so does [DNSResolver]. It has the name
// and the methods of smtpserver.DNSBLResolver, the interface of the SMTP
// server's own DNS lists, so that one value serves both (each package
// declares the interface it needs, and neither imports the other).
//
// A name is given as rblsmtpd builds it: the reversed address followed by
// the base, in dotted form, neither validated nor ending in a dot. A name
// that does not exist, or has no records of the type, is either an empty
// answer with a nil error or a *net.DNSError with IsNotFound set (what
// *net.Resolver returns); any other error means the lookup failed,
// temporarily. Its methods may be called from several goroutines at once.
type DNSBLResolver interface {
	// LookupTXT returns the TXT records of name, each one's strings
	// concatenated, in the answer's order.
	LookupTXT(ctx context.Context, name string) ([]string, error)
	// LookupNetIP returns the addresses of host; a Checker asks for
	// network "ip4" (A records) only.
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ DNSBLResolver = (*net.Resolver)(nil)

// Resolver is the DNS a [Checker] needed before its DNS field. A name is
// given as rblsmtpd builds
// it: the reversed address followed by the base, in dotted form, neither
// validated nor ending in a dot. A name that does not exist, or has no
// records of the type, gives an empty answer and a nil error; an error means
// the lookup failed (temporarily, whatever the error says). Its methods may
// be called from several goroutines at once.
//
// Deprecated: use [DNSBLResolver] (Checker.DNS), which *net.Resolver and
// [DNSResolver] satisfy.
type Resolver interface {
	// LookupTXT returns the TXT records of name, each one's strings
	// concatenated, in the answer's order.
	LookupTXT(ctx context.Context, name string) ([]string, error)
	// LookupA returns the A records of name.
	LookupA(ctx context.Context, name string) ([]netip.Addr, error)
}

// DNSResolver is a [DNSBLResolver] (and a [Resolver]) over
// github.com/miekg/dns that asks as djb's
// resolver (the one in ucspi-tcp and djbdns) does, so that rblsmtpd's
// answers do not change with the resolver:
//
//   - The dotted name is read as djb's dns_domain_fromdot reads it: empty
//     labels are skipped ("a..b." is "a.b"), a backslash escapes the next
//     byte or starts up to three octal digits ("\056" is a dot inside a
//     label), and a label over 63 bytes or a name over 255 fails the lookup
//     without a query.
//   - LookupA of a name made only of digits, dots and brackets asks nothing:
//     as dns_ip4 does, the numbers are taken as the bytes of addresses, four
//     by four (so rblsmtpd -a 1.2.3.4 accepts everyone).
//   - Queries go over UDP, with recursion desired and no EDNS, to each
//     server in turn, waiting longer at each round; a truncated answer is
//     asked again over TCP. An answer whose RCODE is neither NOERROR nor
//     NXDOMAIN counts as that server's failure; the lookup fails when every
//     server has failed or the rounds are over. djb's resolver waits out
//     its 11-second round after a SERVFAIL; this one moves on at once.
//   - Only records of class IN count; CNAMEs in the answer are skipped, not
//     followed (the recursive server has followed them).
type DNSResolver struct {
	// Servers are the addresses ("host:port") asked, in order. Nil means
	// [SystemServers] at each lookup.
	Servers []string
	// Timeouts are how long each UDP round waits for each server. Nil means
	// djb's 1, 3, 11 and 45 seconds, so that a silent server fails a lookup
	// after a minute.
	Timeouts []time.Duration
	// TCPTimeout bounds each TCP exchange. 0 means 10 s, as djb's.
	TCPTimeout time.Duration
}

// LookupTXT returns the TXT records of name.
func (r *DNSResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	in, err := r.exchange(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range in.Answer {
		t, ok := rr.(*dns.TXT)
		if !ok || t.Hdr.Class != dns.ClassINET {
			continue
		}
		s, err := txtBytes(t)
		if err != nil {
			return nil, fmt.Errorf("rbl: TXT %s: %w", name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// txtBytes is the concatenation of t's strings as they were on the wire:
// miekg/dns keeps them escaped for zone files, so the record is packed
// again and its RDATA read.
func txtBytes(t *dns.TXT) (string, error) {
	buf := make([]byte, dns.Len(t)+16)
	end, err := dns.PackRR(t, buf, 0, nil, false)
	if err != nil {
		return "", err
	}
	rdata := buf[end-int(t.Hdr.Rdlength) : end]
	var s []byte
	for len(rdata) > 0 {
		n := int(rdata[0])
		if 1+n > len(rdata) {
			return "", errors.New("bad character-string")
		}
		s = append(s, rdata[1:1+n]...)
		rdata = rdata[1+n:]
	}
	return string(s), nil
}

// LookupA returns the A records of name, or the addresses it spells (see
// [DNSResolver]).
func (r *DNSResolver) LookupA(ctx context.Context, name string) ([]netip.Addr, error) {
	if addrs, ok := literalA(name); ok {
		return addrs, nil
	}
	in, err := r.exchange(ctx, name, dns.TypeA)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, rr := range in.Answer {
		if a, ok := rr.(*dns.A); ok && a.Hdr.Class == dns.ClassINET {
			if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
				out = append(out, ip)
			}
		}
	}
	return out, nil
}

// LookupNetIP is LookupA for network "ip4" and "ip" (djb's resolver asks
// only A records for rblsmtpd); "ip6" fails.
func (r *DNSResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	switch network {
	case "ip4", "ip":
		return r.LookupA(ctx, host)
	}
	return nil, fmt.Errorf("rbl: DNSResolver: network %q: only A records are asked", network)
}

// literalA is dns_ip4's shortcut: a name of only digits, dots and brackets
// is a list of byte values, one per dot-separated part (C char arithmetic,
// so 256 is 0), cut to whole groups of four.
func literalA(name string) ([]netip.Addr, bool) {
	var b []byte
	var code byte
	for i := 0; i <= len(name); i++ {
		c := byte('.')
		if i < len(name) {
			c = name[i]
		}
		switch {
		case c == '[' || c == ']':
		case c == '.':
			b = append(b, code)
			code = 0
		case c >= '0' && c <= '9':
			code = code*10 + (c - '0')
		default:
			return nil, false
		}
	}
	var out []netip.Addr
	for len(b) >= 4 {
		out = append(out, netip.AddrFrom4([4]byte(b[:4])))
		b = b[4:]
	}
	return out, true
}

// exchange asks the servers about name and returns the first usable answer.
func (r *DNSResolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	qname, err := djbName(name)
	if err != nil {
		return nil, fmt.Errorf("rbl: %q: %w", name, err)
	}
	servers := r.Servers
	if servers == nil {
		if servers, err = SystemServers(); err != nil {
			return nil, err
		}
	}
	if len(servers) == 0 {
		return nil, errors.New("rbl: no DNS server")
	}
	timeouts := r.Timeouts
	if timeouts == nil {
		timeouts = []time.Duration{1 * time.Second, 3 * time.Second, 11 * time.Second, 45 * time.Second} // dns_transmit's rounds
	}
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	failed := make([]bool, len(servers))
	left := len(servers)
	lastErr := errors.New("no answer")
	for _, timeout := range timeouts {
		for i, srv := range servers {
			if failed[i] {
				continue
			}
			in, err := exchangeOnce(ctx, "udp", timeout, m, srv)
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("rbl: %s: %w", name, err)
			}
			if err != nil {
				lastErr = err
				continue
			}
			if in.Truncated {
				return r.exchangeTCP(ctx, name, m, servers)
			}
			if err := rcodeErr(in); err != nil {
				lastErr = fmt.Errorf("%s: %w", srv, err)
				failed[i] = true
				left--
				continue
			}
			return in, nil
		}
		if left == 0 {
			break
		}
	}
	return nil, fmt.Errorf("rbl: %s: %w", name, lastErr)
}

// exchangeTCP asks over TCP, each server in turn, as djb's resolver does
// after a truncated answer.
func (r *DNSResolver) exchangeTCP(ctx context.Context, name string, m *dns.Msg, servers []string) (*dns.Msg, error) {
	timeout := r.TCPTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	lastErr := errors.New("no answer")
	for _, srv := range servers {
		in, err := exchangeOnce(ctx, "tcp", timeout, m, srv)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("rbl: %s: %w", name, err)
		}
		if err == nil {
			err = rcodeErr(in)
		}
		if err != nil {
			lastErr = fmt.Errorf("%s (tcp): %w", srv, err)
			continue
		}
		return in, nil
	}
	return nil, fmt.Errorf("rbl: %s: %w", name, lastErr)
}

// exchangeOnce sends m to srv and waits for its answer, at most timeout;
// the end of ctx closes the connection at once.
func exchangeOnce(ctx context.Context, network string, timeout time.Duration, m *dns.Msg, srv string) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: timeout}
	conn, err := c.DialContext(ctx, srv)
	if err != nil {
		return nil, err
	}
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		conn.Close()
		close(closed)
	})
	m.Id = dns.Id()
	in, _, err := c.ExchangeWithConnContext(ctx, m, conn)
	if !stop() {
		<-closed
	}
	conn.Close()
	return in, err
}

func rcodeErr(in *dns.Msg) error {
	switch in.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
		return nil
	}
	s, ok := dns.RcodeToString[in.Rcode]
	if !ok {
		s = "RCODE " + strconv.Itoa(in.Rcode)
	}
	return errors.New(s)
}

// djbName reads a dotted name as dns_domain_fromdot does and returns it in
// miekg/dns's presentation form, every byte outside letters, digits, '-'
// and '_' escaped as \DDD.
func djbName(name string) (string, error) {
	var out []byte
	wire := 1 // the root label
	var label []byte
	flush := func() error {
		if len(label) == 0 {
			return nil
		}
		if wire+len(label)+1 > 255 {
			return errors.New("name too long")
		}
		wire += len(label) + 1
		for _, c := range label {
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
				out = append(out, c)
			default:
				out = fmt.Appendf(out, "\\%03d", c)
			}
		}
		out = append(out, '.')
		label = label[:0]
		return nil
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '.' {
			if err := flush(); err != nil {
				return "", err
			}
			continue
		}
		if c == '\\' {
			if i+1 == len(name) {
				break // a trailing backslash ends the name, as in djb's loop
			}
			i++
			c = name[i]
			if c >= '0' && c <= '7' {
				c -= '0'
				for range 2 {
					if i+1 < len(name) && name[i+1] >= '0' && name[i+1] <= '7' {
						i++
						c = c<<3 + (name[i] - '0')
					}
				}
			}
		}
		if len(label) >= 63 {
			return "", errors.New("label too long")
		}
		label = append(label, c)
	}
	if err := flush(); err != nil {
		return "", err
	}
	if len(out) == 0 {
		return ".", nil
	}
	return string(out), nil
}

// SystemServers are the DNS servers djb's resolver asks: the IPv4 addresses
// in $DNSCACHEIP when it holds any, else those of the nameserver lines of
// /etc/resolv.conf (at most 16; 0.0.0.0 means 127.0.0.1; IPv6 servers are
// not used), else 127.0.0.1; all on port 53.
func SystemServers() ([]string, error) {
	if s, ok := cacheIP(os.Getenv("DNSCACHEIP")); ok {
		return s, nil
	}
	data, err := os.ReadFile("/etc/resolv.conf")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("rbl: %w", err)
	}
	return resolvConf(data), nil
}

// cacheIP reads $DNSCACHEIP as djb's dns_rcip does: addresses one after the
// other, separated by dots, at most 16, up to the first thing that is not
// an address. ok is false when there is none. 0.0.0.0 is never asked.
func cacheIP(s string) (servers []string, ok bool) {
	servers = []string{}
	for n := 0; n < 16; {
		if len(s) > 0 && s[0] == '.' {
			s = s[1:]
			continue
		}
		ip, i := ip4Scan(s)
		if i == 0 {
			break
		}
		s = s[i:]
		n++
		ok = true
		if ip != ([4]byte{}) {
			servers = append(servers, net.JoinHostPort(netip.AddrFrom4(ip).String(), "53"))
		}
	}
	return servers, ok
}

// resolvConf reads the nameserver lines of resolv.conf as dns_rcip does.
func resolvConf(data []byte) []string {
	var servers []string
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) < 11 || string(line[:10]) != "nameserver" || (line[10] != ' ' && line[10] != '\t') {
			continue
		}
		line = line[10:]
		for len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			line = line[1:]
		}
		if len(servers) == 16 {
			continue
		}
		ip, n := ip4Scan(string(line))
		if n == 0 {
			continue
		}
		if ip == ([4]byte{}) {
			ip = [4]byte{127, 0, 0, 1}
		}
		servers = append(servers, net.JoinHostPort(netip.AddrFrom4(ip).String(), "53"))
	}
	if len(servers) == 0 {
		servers = []string{"127.0.0.1:53"}
	}
	return servers
}

// ip4Scan is djb's ip4_scan: four decimal numbers separated by dots, each
// taken modulo 256, with nothing required after them. It returns the bytes
// read, 0 for no address.
func ip4Scan(s string) (ip [4]byte, n int) {
	for i := range 4 {
		if i > 0 {
			if n >= len(s) || s[n] != '.' {
				return ip, 0
			}
			n++
		}
		start := n
		var u uint64
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			u = u*10 + uint64(s[n]-'0')
			n++
		}
		if n == start {
			return ip, 0
		}
		ip[i] = byte(u)
	}
	return ip, n
}
