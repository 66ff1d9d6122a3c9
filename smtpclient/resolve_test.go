package smtpclient

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func mustRoutes(t testing.TB, text string) *Routes {
	t.Helper()
	rs, err := ParseRoutes(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func hostAddrs(d *Destination) []string {
	var s []string
	for _, h := range d.Hosts {
		s = append(s, h.Addr.String())
	}
	return s
}

func noLocal() ([]netip.Addr, error) { return addrs("0.0.0.0", "::"), nil }

func checkErr(t *testing.T, err error, perm bool, sentinel error, text string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *Error", err, err)
	}
	if e.Permanent() != perm || IsPermanent(err) != perm {
		t.Errorf("Permanent() = %v, want %v (%v)", e.Permanent(), perm, err)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Errorf("errors.Is(%v, %v) = false", err, sentinel)
	}
	if e.Report != text {
		t.Errorf("report %q, want %q", e.Report, text)
	}
}

// MX ordering, random among equal preferences, and ipme (addresses of
// this host and those after them are dropped).
func TestLookupMXOrder(t *testing.T) {
	_, r := newDNS(t,
		"example.net. 300 IN MX 10 a.example.net.",
		"example.net. 300 IN MX 10 b.example.net.",
		"example.net. 300 IN MX 20 c.example.net.",
		"a.example.net. 300 IN A 192.0.2.1",
		"b.example.net. 300 IN A 192.0.2.2",
		"b.example.net. 300 IN A 192.0.2.3",
		"c.example.net. 300 IN A 192.0.2.4",
	)
	seen := map[string]bool{}
	for _, pick := range []int{0, 1} {
		c := &Client{Resolver: r, LocalAddrs: noLocal, Network: "ip4", Rand: func(n int) int { return pick % n }}
		d, err := c.Lookup(t.Context(), "example.net")
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(hostAddrs(d), " ")
		seen[got] = true
		for i, h := range d.Hosts {
			want := 10
			if i == 3 {
				want = 20
			}
			if h.Pref != want {
				t.Errorf("%s: pref %d, want %d", h.Addr, h.Pref, want)
			}
		}
	}
	want := map[string]bool{
		"192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4": true,
		"192.0.2.2 192.0.2.3 192.0.2.1 192.0.2.4": true,
	}
	if len(seen) != 2 || !seen["192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.4"] || !seen["192.0.2.2 192.0.2.3 192.0.2.1 192.0.2.4"] {
		t.Errorf("orders seen %v, want %v", seen, want)
	}
	// The default random source gives both orders too.
	c := &Client{Resolver: r, LocalAddrs: noLocal, Network: "ip4"}
	seen = map[string]bool{}
	for i := 0; i < 200 && len(seen) < 2; i++ {
		d, err := c.Lookup(t.Context(), "example.net")
		if err != nil {
			t.Fatal(err)
		}
		seen[hostAddrs(d)[0]] = true
	}
	if !seen["192.0.2.1"] || !seen["192.0.2.2"] {
		t.Errorf("first hosts seen in 200 lookups: %v", seen)
	}

	// This host is 192.0.2.2: prefme = 10, nothing eligible.
	c = &Client{Resolver: r, Network: "ip4", LocalAddrs: func() ([]netip.Addr, error) { return addrs("0.0.0.0", "192.0.2.2"), nil }}
	_, err := c.Lookup(t.Context(), "example.net")
	checkErr(t, err, true, ErrLocalMX, "Sorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n")
	// This host is 192.0.2.4: only the preference-10 addresses.
	c.LocalAddrs = func() ([]netip.Addr, error) { return addrs("192.0.2.4"), nil }
	d, err := c.Lookup(t.Context(), "example.net")
	if err != nil || len(d.Hosts) != 3 || slices.Contains(hostAddrs(d), "192.0.2.4") {
		t.Errorf("prefme 20: %v %v", d, err)
	}
}

func TestLookupCases(t *testing.T) {
	srv, r := newDNS(t,
		"nomail.example. 300 IN MX 0 .",
		"implicit.example. 300 IN A 192.0.2.10",
		"implicit.example. 300 IN AAAA 2001:db8::10",
		"noaddr.example. 300 IN MX 10 ghost.example.",
		"softmx.example. 300 IN MX 10 broken.example.",
		"softmx2.example. 300 IN MX 10 broken.example.",
		"softmx2.example. 300 IN MX 20 mx.example.",
		"mx.example. 300 IN A 192.0.2.20",
		"literalmx.example. 300 IN MX 10 192.0.2.30.",
		"cname.example. 300 IN CNAME implicit.example.",
		"relay.example. 300 IN A 192.0.2.40",
		"relay.example. 300 IN A 192.0.2.41",
	)
	srv.SetRcode("servfail.example", dns.TypeMX, dns.RcodeServerFailure)
	srv.SetRcode("servfaila.example", dns.TypeA, dns.RcodeServerFailure)
	srv.SetRcode("broken.example", dns.TypeANY, dns.RcodeServerFailure)
	srv.SetRcode("bad\x01host.example", dns.TypeANY, dns.RcodeNameError)

	const (
		tempDNS = "Sorry, I couldn't find any host by that name. (#4.1.2)\n"
		noMX    = "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n"
	)
	for _, tc := range []struct {
		name, domain, routes string
		network              string
		want                 []string // addresses, or nil with an error
		port                 int
		perm                 bool
		sentinel             error
		text                 string
	}{
		{name: "null MX (vector 20)", domain: "nomail.example", perm: true, sentinel: ErrNullMX,
			text: "Sorry, domain nomail.example does not accept mail (null MX). (#5.1.10)\n"},
		{name: "implicit MX, IPv6 first", domain: "implicit.example", want: []string{"2001:db8::10", "192.0.2.10"}},
		{name: "implicit MX, ip4", domain: "implicit.example", network: "ip4", want: []string{"192.0.2.10"}},
		{name: "implicit MX, IPv4 preferred", domain: "implicit.example", network: "prefer4", want: []string{"192.0.2.10", "2001:db8::10"}},
		{name: "CNAME to implicit", domain: "cname.example", network: "ip4", want: []string{"192.0.2.10"}},
		{name: "NXDOMAIN", domain: "nope.example", perm: true, sentinel: ErrNoHost,
			text: "Sorry, I couldn't find any host named nope.example. (#5.1.2)\n"},
		{name: "MX SERVFAIL", domain: "servfail.example", sentinel: ErrDNSTemporary, text: tempDNS},
		{name: "implicit A SERVFAIL", domain: "servfaila.example", network: "ip4", sentinel: ErrDNSTemporary, text: tempDNS},
		{name: "exchanger without address", domain: "noaddr.example", perm: true, sentinel: ErrNoExchanger, text: noMX},
		{name: "exchanger SERVFAIL only", domain: "softmx.example", sentinel: ErrDNSTemporary, text: tempDNS},
		{name: "soft failure skipped", domain: "softmx2.example", want: []string{"192.0.2.20"}},
		{name: "literal exchanger", domain: "literalmx.example", want: []string{"192.0.2.30"}},
		{name: "bracket literal", domain: "[192.0.2.50]", want: []string{"192.0.2.50"}},
		{name: "bare literal", domain: "192.0.2.51", want: []string{"192.0.2.51"}},
		{name: "IPv6 literal", domain: "[IPv6:2001:db8::5]", want: []string{"2001:db8::5"}},
		{name: "route to name with port", domain: "x.example", routes: "x.example:relay.example:2525\n", network: "ip4",
			want: []string{"192.0.2.40", "192.0.2.41"}, port: 2525},
		{name: "route to literal", domain: "x.example", routes: ":[192.0.2.60]\n", want: []string{"192.0.2.60"}},
		{name: "route relay NXDOMAIN", domain: "x.example", routes: ":gone.example\n", perm: true, sentinel: ErrNoHost,
			text: "Sorry, I couldn't find any host named gone.example. (#5.1.2)\n"},
		{name: "empty relay: MX lookup", domain: "implicit.example", routes: ".example:\nimplicit.example:\n:[192.0.2.99]\n", network: "ip4", want: []string{"192.0.2.10"}},
		{name: "unprintable host", domain: "bad\x01host.example", perm: true, sentinel: ErrNoHost,
			text: "Sorry, I couldn't find any host named bad?host.example. (#5.1.2)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Client{Resolver: r, LocalAddrs: noLocal, Network: tc.network}
			if tc.network == "prefer4" {
				c.Network, c.PreferIPv4 = "", true
			}
			if tc.routes != "" {
				c.Routes = mustRoutes(t, tc.routes)
			}
			d, err := c.Lookup(t.Context(), tc.domain)
			if tc.want == nil {
				checkErr(t, err, tc.perm, tc.sentinel, tc.text)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := hostAddrs(d); !slices.Equal(got, tc.want) {
				t.Errorf("hosts %v, want %v", got, tc.want)
			}
			port := tc.port
			if port == 0 {
				port = 25
			}
			if d.Port != port {
				t.Errorf("port %d, want %d", d.Port, port)
			}
		})
	}
}

// A literal that is this host, without a route, is refused (qmail-remote's
// "I'm listed as a best-preference MX" check); a route to this host is
// not, since a route turns that check off.
func TestLookupSelf(t *testing.T) {
	c := &Client{Resolver: &DNS{Servers: []string{"127.0.0.1:1"}}}
	for _, host := range []string{"[127.0.0.1]", "127.0.0.1"} {
		_, err := c.Lookup(t.Context(), host)
		checkErr(t, err, true, ErrLocalMX, "Sorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n")
	}
	c.Routes = mustRoutes(t, ":127.0.0.1:2525")
	if d, err := c.Lookup(t.Context(), "example.net"); err != nil || d.Port != 2525 || d.Hosts[0].Addr.String() != "127.0.0.1" {
		t.Errorf("route to self: %v %v", d, err)
	}
}

// The route for example.net does not match sub.example.net.
func TestLookupRouteNoMatch(t *testing.T) {
	_, r := newDNS(t, "other.example. 300 IN A 192.0.2.1")
	c := &Client{Resolver: r, Routes: mustRoutes(t, "example.net:127.0.0.1:38125\n")}
	_, err := c.Lookup(t.Context(), "sub.example.net")
	checkErr(t, err, true, ErrNoHost, "Sorry, I couldn't find any host named sub.example.net. (#5.1.2)\n")
}

// The smtproutes lookup order (see qmail-control(5) and qmail-remote(8)):
// the whole host, then each suffix starting at a dot, longest first, then
// the empty key; keys compare without case.
func TestRoutesLookup(t *testing.T) {
	rs := mustRoutes(t, "a.b.example.com:r1\n.example.com:r2\n:r3\n")
	for host, want := range map[string]string{"a.b.example.com": "r1", "c.example.com": "r2", "example.com": "r3", "A.B.EXAMPLE.COM": "r1"} {
		if rt, ok := rs.Lookup(host); !ok || rt.Relay != want {
			t.Errorf("%s: %v %v, want %s", host, rt, ok, want)
		}
	}
	rs = mustRoutes(t, ".example.com:\n:r3\n")
	if rt, ok := rs.Lookup("x.example.com"); ok {
		t.Errorf("empty relay: got %v", rt)
	}
	if rt, ok := rs.Lookup("example.com"); !ok || rt.Relay != "r3" {
		t.Errorf(".example.com must not match example.com: %v", rt)
	}
	rs = mustRoutes(t, "Example.COM:r4:2525\n")
	if rt, ok := rs.Lookup("example.com"); !ok || rt.Relay != "r4" || rt.Port != 2525 {
		t.Errorf("case and port: %v %v", rt, ok)
	}
	var nilRoutes *Routes
	if _, ok := nilRoutes.Lookup("x"); ok {
		t.Error("nil Routes matched")
	}
}

func TestParseRoutes(t *testing.T) {
	rs := mustRoutes(t, "# comment\n\nnocolon\ninside.example:firewall.example:26  \t\n.example.org:\n:smarthost.example\nexample.net:[192.0.2.7]\nv6.example:[IPv6:2001:db8::1]:587\ndup.example:first\nDUP.example:second\nport.example:relay:\njunk.example:relay:25x\n")
	for _, tc := range []struct {
		host  string
		relay string
		port  int
		ok    bool
	}{
		{"inside.example", "firewall.example", 26, true},
		{"a.example.org", "", 0, false},
		{"example.org", "smarthost.example", 0, true},
		{"example.net", "[192.0.2.7]", 0, true},
		{"v6.example", "[IPv6:2001:db8::1]", 587, true},
		{"dup.example", "second", 0, true}, // the later line wins, as qmail's constmap
		{"port.example", "relay", 0, true},
		{"junk.example", "relay", 25, true},
		{"nocolon", "smarthost.example", 0, true},
	} {
		rt, ok := rs.Lookup(tc.host)
		if ok != tc.ok || rt.Relay != tc.relay || rt.Port != tc.port {
			t.Errorf("%s: %+v %v, want %s:%d %v", tc.host, rt, ok, tc.relay, tc.port, tc.ok)
		}
	}
	if _, err := ParseRoutes(strings.NewReader("x:relay:70000\n")); err == nil {
		t.Error("port 70000 accepted")
	}
	if a, ok := parseLiteral("[IPv6:2001:db8::1]"); !ok || a.String() != "2001:db8::1" {
		t.Errorf("IPv6 literal: %v %v", a, ok)
	}
	for _, s := range []string{"[192.0.2.1", "192.0.2.1]", "[::1]", "2001:db8::1", "1.2.3", "[IPv6:192.0.2.1]"} {
		if _, ok := parseLiteral(s); ok {
			t.Errorf("parseLiteral(%q) ok", s)
		}
	}
}

// TestParseRoutesCredentials: the qmail-remote AUTH patch's syntax.
func TestParseRoutesCredentials(t *testing.T) {
	for _, tc := range []struct {
		line, relay, user, pass string
		port                    int
		bad                     bool
	}{
		{line: "x:smtp.isp.example:587 joe s3cret", relay: "smtp.isp.example", port: 587, user: "joe", pass: "s3cret"},
		{line: "x:smtp.isp.example joe s3cret", relay: "smtp.isp.example", user: "joe", pass: "s3cret"},
		{line: "x:smtp.isp.example\tjoe\tpass with spaces", relay: "smtp.isp.example", user: "joe", pass: "pass with spaces"},
		{line: "x:[192.0.2.1]:25 -joe pw", relay: "[192.0.2.1]", port: 25, user: "joe", pass: "pw"},
		{line: "x:relay:25   joe   pw", relay: "relay", port: 25, user: "joe", pass: "pw"},
		{line: "x:relay:25 joe", bad: true},
		{line: "x:relay:25 - pw", bad: true},
		{line: "x: joe pw", bad: true},
		{line: "x:relay:25", relay: "relay", port: 25},
	} {
		rs, err := ParseRoutes(strings.NewReader(tc.line + "\n"))
		if tc.bad {
			if err == nil {
				t.Errorf("%q accepted", tc.line)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		rt, _ := rs.Lookup("x")
		if rt.Relay != tc.relay || rt.Port != tc.port || rt.Username != tc.user || rt.Password != tc.pass {
			t.Errorf("%q: %+v", tc.line, rt)
		}
	}
}
