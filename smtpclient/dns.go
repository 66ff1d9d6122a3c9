package smtpclient

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Resolver looks up what delivery needs: MX records and the addresses of
// exchangers. *net.Resolver satisfies it, and so does [*DNS], the miekg/dns
// implementation. It is the module's one interface for these lookups (the
// DNS lists of the SMTP server and of package rbl take
// smtpserver.DNSBLResolver, which *net.Resolver satisfies too).
//
// A name that does not exist, or has no record of the type asked (NXDOMAIN or
// "no data"), must be reported as a *net.DNSError with IsNotFound set: that is
// a permanent condition. Every other error is temporary (RFC 5321 section
// 5.1).
// LookupMX must return the exchanger names as they are in DNS (a null MX,
// RFC 7505, has Host "." and Pref 0) and need not sort them.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	// LookupNetIP returns the addresses of host; network is "ip4" (A),
	// "ip6" (AAAA) or "ip" (both, AAAA first).
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// DNS is a stub resolver built on github.com/miekg/dns: it asks recursive
// servers over UDP, retries over TCP when an answer is truncated, and follows
// CNAME chains. Its zero value reads /etc/resolv.conf at first use.
type DNS struct {
	// Servers are "host:port" addresses of recursive servers, tried in
	// order. Empty means the nameservers of ConfigFile.
	Servers []string
	// ConfigFile is a resolv.conf file; empty means /etc/resolv.conf.
	ConfigFile string
	// Timeout bounds each query to one server; 0 means resolv.conf's
	// "options timeout:n", or 5 s.
	Timeout time.Duration
	// Attempts is how many times each server is tried; 0 means
	// resolv.conf's "options attempts:n", or 2.
	Attempts int

	once         sync.Once
	servers      []string
	confTimeout  time.Duration
	confAttempts int
	confErr      error
}

// maxCNAME bounds the CNAME chain followed.
const maxCNAME = 8

func (d *DNS) config() ([]string, error) {
	if len(d.Servers) > 0 {
		return d.Servers, nil
	}
	d.once.Do(func() {
		file := d.ConfigFile
		if file == "" {
			file = "/etc/resolv.conf"
		}
		conf, err := dns.ClientConfigFromFile(file)
		if err != nil {
			d.confErr = err
			return
		}
		for _, s := range conf.Servers {
			d.servers = append(d.servers, net.JoinHostPort(s, conf.Port))
		}
		d.confTimeout = time.Duration(conf.Timeout) * time.Second
		d.confAttempts = conf.Attempts
		if len(d.servers) == 0 {
			d.confErr = errors.New("no nameserver in " + file)
		}
	})
	return d.servers, d.confErr
}

// LookupMX returns the MX records of name, following CNAMEs.
func (d *DNS) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := d.lookup(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var mxs []*net.MX
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		mxs = append(mxs, &net.MX{Host: mx.Mx, Pref: mx.Preference})
	}
	return mxs, nil
}

// LookupNetIP returns the addresses of host (see [Resolver]). An IP address
// is returned as is.
func (d *DNS) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	var types []uint16
	switch network {
	case "ip4":
		types = []uint16{dns.TypeA}
	case "ip6":
		types = []uint16{dns.TypeAAAA}
	case "ip":
		types = []uint16{dns.TypeAAAA, dns.TypeA}
	default:
		return nil, &net.DNSError{Err: "unknown network " + network, Name: host}
	}
	var addrs []netip.Addr
	var firstErr error
	for _, t := range types {
		rrs, err := d.lookup(ctx, host, t)
		if err != nil {
			if firstErr == nil || isNotFound(firstErr) {
				firstErr = err
			}
			continue
		}
		for _, rr := range rrs {
			var ip net.IP
			switch rr := rr.(type) {
			case *dns.A:
				ip = rr.A
			case *dns.AAAA:
				ip = rr.AAAA
			}
			if a, ok := netip.AddrFromSlice(ip); ok {
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	if len(addrs) > 0 {
		return addrs, nil
	}
	if firstErr == nil {
		firstErr = notFound(host, "")
	}
	return nil, firstErr
}

func notFound(name, server string) error {
	return &net.DNSError{Err: "no such host", Name: name, Server: server, IsNotFound: true}
}

// isNotFound reports whether err says the name or the data does not exist.
func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// lookup returns the records of type qtype for name, following CNAMEs, or a
// *net.DNSError.
func (d *DNS) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	qname := dns.Fqdn(name)
	for range maxCNAME {
		msg, server, err := d.exchange(ctx, qname, qtype)
		if err != nil {
			return nil, err
		}
		if msg.Rcode == dns.RcodeNameError {
			return nil, notFound(name, server)
		}
		// Walk the answer from qname through the CNAMEs it contains.
		target := qname
		for range maxCNAME {
			var found []dns.RR
			next := ""
			for _, rr := range msg.Answer {
				h := rr.Header()
				if !strings.EqualFold(h.Name, target) {
					continue
				}
				if h.Rrtype == qtype {
					found = append(found, rr)
				} else if c, ok := rr.(*dns.CNAME); ok && next == "" {
					next = c.Target
				}
			}
			if len(found) > 0 {
				return found, nil
			}
			if next == "" {
				break
			}
			target = next
		}
		if strings.EqualFold(target, qname) {
			return nil, notFound(name, server) // no data
		}
		qname = target // the chain leaves the answer: ask for its end
	}
	return nil, &net.DNSError{Err: "CNAME chain too long", Name: name}
}

// exchange asks each server in turn (Attempts rounds) until one gives an
// answer that is not a server failure. A truncated UDP answer is asked again
// over TCP.
func (d *DNS) exchange(ctx context.Context, qname string, qtype uint16) (*dns.Msg, string, error) {
	servers, err := d.config()
	if err != nil {
		return nil, "", &net.DNSError{Err: err.Error(), Name: qname, IsTemporary: true}
	}
	timeout, attempts := d.Timeout, d.Attempts
	if timeout <= 0 {
		timeout = d.confTimeout
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if attempts <= 0 {
		attempts = d.confAttempts
	}
	if attempts <= 0 {
		attempts = 2
	}
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	m.RecursionDesired = true
	var last error
	for range attempts {
		for _, server := range servers {
			if err := ctx.Err(); err != nil {
				return nil, server, &net.DNSError{Err: err.Error(), Name: qname, Server: server, IsTemporary: true, IsTimeout: true}
			}
			r, err := d.ask(ctx, "udp", m, server, timeout)
			if err == nil && r.Truncated {
				r, err = d.ask(ctx, "tcp", m, server, timeout)
			}
			if err != nil {
				var ne net.Error
				last = &net.DNSError{Err: err.Error(), Name: qname, Server: server, IsTemporary: true,
					IsTimeout: errors.As(err, &ne) && ne.Timeout()}
				continue
			}
			switch r.Rcode {
			case dns.RcodeSuccess, dns.RcodeNameError:
				return r, server, nil
			}
			last = &net.DNSError{Err: "server answered " + dns.RcodeToString[r.Rcode], Name: qname, Server: server, IsTemporary: true}
		}
	}
	return nil, "", last
}

func (d *DNS) ask(ctx context.Context, proto string, m *dns.Msg, server string, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: proto, Timeout: timeout}
	if proto == "tcp" {
		c.UDPSize = dns.MaxMsgSize
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r, _, err := c.ExchangeContext(ctx, m, server)
	return r, err
}
