package smtpclient

import (
	"cmp"
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Host is one address to try, with the exchanger it belongs to.
type Host struct {
	// Name is the exchanger's name without the final dot, the relay, or the
	// literal as given.
	Name string
	// Addr is the address to connect to.
	Addr netip.Addr
	// Pref is the MX preference (0 for implicit MX, literals and relays).
	Pref int
}

// Destination is where a domain's mail goes: addresses in the order to try.
type Destination struct {
	// Hosts are the eligible addresses, best preference first; within one
	// preference the exchangers are in random order and each exchanger's
	// addresses in resolver order.
	Hosts []Host
	// Port is the port to connect to.
	Port int
	// Route is the smtproutes entry used; Routed says whether there was one.
	Route  Route
	Routed bool
}

// Lookup finds where mail for domain goes, as qmail-remote(8) does: an
// smtproutes relay, an IP literal ("[192.0.2.1]", "192.0.2.1",
// "[IPv6:2001:db8::1]"), or the MX records (implicit MX from the address
// records when there are none), minus the exchangers at or beyond this
// host's own preference. Errors are [*Error] values wrapping [ErrNoHost],
// [ErrNoExchanger], [ErrNullMX], [ErrLocalMX] or [ErrDNSTemporary].
func (c *Client) Lookup(ctx context.Context, domain string) (*Destination, error) {
	d := &Destination{Port: c.port()}
	host, ok := aLabel(domain)
	if !ok {
		return nil, newError(true, "Sorry, I couldn't find any host named "+printable(domain)+". (#5.1.2)\n", ErrNoHost)
	}
	if rt, ok := c.Routes.Lookup(domain); ok {
		d.Route, d.Routed = rt, true
		if host, ok = aLabel(rt.Relay); !ok {
			return nil, newError(true, "Sorry, I couldn't find any host named "+printable(rt.Relay)+". (#5.1.2)\n", ErrNoHost)
		}
		if rt.Port != 0 {
			d.Port = rt.Port
		}
	}
	if a, ok := parseLiteral(host); ok {
		d.Hosts = []Host{{Name: host, Addr: a}}
	} else if d.Routed {
		addrs, err := c.lookupIP(ctx, host)
		if err != nil {
			return nil, hostError(host, err)
		}
		for _, a := range addrs {
			d.Hosts = append(d.Hosts, Host{Name: host, Addr: a})
		}
	} else {
		hosts, err := c.lookupMX(ctx, host)
		if err != nil {
			return nil, err
		}
		d.Hosts = hosts
	}
	if d.Routed {
		return d, nil // a route may point at this host: no ipme check
	}
	return d, c.dropSelf(d, domain)
}

// lookupMX is qmail-remote's MX resolution: the MX records in preference
// order, random within one preference, or the host's own addresses when
// there are none; a null MX (RFC 7505) is a permanent failure.
func (c *Client) lookupMX(ctx context.Context, host string) ([]Host, error) {
	r := c.resolver()
	mxs, err := r.LookupMX(ctx, host)
	if err != nil && !isNotFound(err) {
		return nil, newError(false, "Sorry, I couldn't find any host by that name. (#4.1.2)\n", wrap2(ErrDNSTemporary, err))
	}
	if len(mxs) == 1 && mxs[0].Pref == 0 && (mxs[0].Host == "." || mxs[0].Host == "") {
		return nil, newError(true, "Sorry, domain "+printable(host)+" does not accept mail (null MX). (#5.1.10)\n", ErrNullMX)
	}
	if len(mxs) == 0 {
		addrs, err := c.lookupIP(ctx, host)
		if err != nil {
			return nil, hostError(host, err)
		}
		hosts := make([]Host, len(addrs))
		for i, a := range addrs {
			hosts[i] = Host{Name: host, Addr: a}
		}
		return hosts, nil
	}
	mxs = slices.Clone(mxs)
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return cmp.Compare(a.Pref, b.Pref) })
	for i := 0; i < len(mxs); {
		j := i + 1
		for j < len(mxs) && mxs[j].Pref == mxs[i].Pref {
			j++
		}
		c.shuffle(mxs[i:j])
		i = j
	}
	var hosts []Host
	soft := false
	for _, mx := range mxs {
		name := strings.TrimSuffix(mx.Host, ".")
		if name == "" {
			continue
		}
		if a, err := netip.ParseAddr(name); err == nil && a.Is4() {
			pref := int(mx.Pref)
			if c.QmailCompat {
				pref = 0 // qmail quirk: an IPv4-literal exchanger gets 0
			}
			hosts = append(hosts, Host{Name: name, Addr: a, Pref: pref})
			continue
		}
		addrs, err := c.lookupIP(ctx, name)
		if err != nil {
			if !isNotFound(err) {
				soft = true
			}
			continue
		}
		for _, a := range addrs {
			hosts = append(hosts, Host{Name: name, Addr: a, Pref: int(mx.Pref)})
		}
	}
	if len(hosts) == 0 {
		if soft {
			return nil, newError(false, "Sorry, I couldn't find any host by that name. (#4.1.2)\n", ErrDNSTemporary)
		}
		return nil, newError(true, "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n", ErrNoExchanger)
	}
	if c.QmailCompat {
		// A literal exchanger got preference 0: keep the list ordered.
		slices.SortStableFunc(hosts, func(a, b Host) int { return cmp.Compare(a.Pref, b.Pref) })
	}
	return hosts, nil
}

// lookupIP returns the addresses of host in the order to try them.
func (c *Client) lookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	addrs, err := c.resolver().LookupNetIP(ctx, c.network(), host)
	if err != nil {
		return nil, err
	}
	if c.PreferIPv4 {
		addrs = slices.Clone(addrs)
		slices.SortStableFunc(addrs, func(a, b netip.Addr) int {
			return cmp.Compare(btoi(a.Is6()), btoi(b.Is6()))
		})
	}
	return addrs, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// hostError turns a failed address lookup into qmail's report.
func hostError(host string, err error) error {
	if isNotFound(err) {
		return newError(true, "Sorry, I couldn't find any host named "+printable(host)+". (#5.1.2)\n", wrap2(ErrNoHost, err))
	}
	return newError(false, "Sorry, I couldn't find any host by that name. (#4.1.2)\n", wrap2(ErrDNSTemporary, err))
}

// dropSelf applies qmail-remote's ipme rule: only hosts with a preference
// strictly better than this host's own may be tried.
func (c *Client) dropSelf(d *Destination, domain string) error {
	local, err := c.localAddrs()
	if err != nil {
		return newError(false, "System resources temporarily unavailable. (#4.3.0)\n", err)
	}
	prefme := -1
	for _, h := range d.Hosts {
		if slices.Contains(local, h.Addr.Unmap()) && (prefme < 0 || h.Pref < prefme) {
			prefme = h.Pref
		}
	}
	if prefme < 0 {
		return nil
	}
	d.Hosts = slices.DeleteFunc(d.Hosts, func(h Host) bool { return h.Pref >= prefme })
	if len(d.Hosts) == 0 {
		return newError(true, "Sorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n", ErrLocalMX)
	}
	return nil
}

func (c *Client) localAddrs() ([]netip.Addr, error) {
	if c.LocalAddrs != nil {
		return c.LocalAddrs()
	}
	return InterfaceAddrs()
}

// InterfaceAddrs returns this host's addresses as qmail's ipme sees them:
// 0.0.0.0 and ::, and the addresses of every interface that is up. It is the
// default for [Client.LocalAddrs].
func InterfaceAddrs() ([]netip.Addr, error) {
	addrs := []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		as, err := ifc.Addrs()
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			if p, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(p.IP); ok {
					addrs = append(addrs, ip.Unmap())
				}
			}
		}
	}
	return addrs, nil
}

// parseLiteral recognizes a dotted IPv4 address, bare or in brackets, and
// the RFC 5321 IPv6 literal "[IPv6:...]".
func parseLiteral(s string) (netip.Addr, bool) {
	in, bracketed := strings.CutPrefix(s, "[")
	if bracketed {
		var ok bool
		if in, ok = strings.CutSuffix(in, "]"); !ok {
			return netip.Addr{}, false
		}
		if v6, ok := cutPrefixFold(in, "IPv6:"); ok {
			a, err := netip.ParseAddr(v6)
			return a, err == nil && a.Is6() && a.Zone() == ""
		}
	}
	a, err := netip.ParseAddr(in)
	return a, err == nil && a.Is4()
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// printable shows bytes outside 33–126 as '?', as qmail-remote does.
func printable(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 33 || c > 126 {
			b[i] = '?'
		}
	}
	return string(b)
}

func (c *Client) shuffle(mxs []*net.MX) {
	intn := c.Rand
	if intn == nil {
		intn = rand.IntN
	}
	for i := len(mxs) - 1; i > 0; i-- {
		j := intn(i + 1)
		mxs[i], mxs[j] = mxs[j], mxs[i]
	}
}

// wrap2 joins a sentinel and a cause so errors.Is finds both.
func wrap2(sentinel, cause error) error {
	if cause == nil {
		return sentinel
	}
	return &joined{sentinel, cause}
}

type joined struct{ sentinel, cause error }

func (j *joined) Error() string   { return j.sentinel.Error() + ": " + j.cause.Error() }
func (j *joined) Unwrap() []error { return []error{j.sentinel, j.cause} }
