package smtpserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/qmailkit/qmailkit/internal/dnstest"
)

// DNSBL query names: the address's labels reversed (nibbles for IPv6)
// before the zone (RFC 5782 section 2).
func TestVector12ReverseName(t *testing.T) {
	tests := []struct{ ip, want string }{
		{"192.0.2.1", "1.2.0.192.zen.example"},
		{"2001:db8::1", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.example"},
		{"::1", "1." + strings.Repeat("0.", 31) + "zen.example"},
		{"::ffff:192.0.2.1", "1.2.0.192.zen.example"},
	}
	for _, tt := range tests {
		if got := ReverseName(netip.MustParseAddr(tt.ip), "zen.example"); got != tt.want {
			t.Errorf("ReverseName(%s) = %s", tt.ip, got)
		}
	}
}

func rblSession(t *testing.T, compat bool, d *DNSBL, env map[string]string) *conn {
	srv := compatServer(&sink{})
	srv.Compat = compat
	srv.DNSBL = d
	e := qmailEnv()
	e["TCPREMOTEIP"] = "192.0.2.1"
	for k, v := range env {
		e[k] = v
	}
	return start(t, srv, e)
}

// rblsmtpd's conversation, as recorded from ucspi-tcp 0.88.
func TestVector11Rblsmtpd(t *testing.T) {
	c := rblSession(t, true, nil, map[string]string{"RBLSMTPD": "Go away"})
	c.send("HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nNOOP\r\nRSET\r\nEHLO x\r\nQUIT\r\n")
	for _, want := range []string{"220 rblsmtpd.local", "250 rblsmtpd.local", "250 rblsmtpd.local", "451 Go away", "451 Go away",
		"250 rblsmtpd.local", "250 rblsmtpd.local", "250 rblsmtpd.local", "221 rblsmtpd.local"} {
		c.expect(want)
	}
	c.expectEOF()

	c = rblSession(t, true, nil, map[string]string{"RBLSMTPD": "-Blocked: policy"})
	c.expect("220 rblsmtpd.local")
	c.send("RCPT TO:<c@d>\r\n")
	c.expect("553 Blocked: policy")

	c = rblSession(t, true, nil, map[string]string{"RBLSMTPD": ""})
	c.expect("220 mx.example.org ESMTP")

	c = rblSession(t, true, &DNSBL{Timeout: -1}, map[string]string{"RBLSMTPD": "bad\x01char\xe9"})
	c.expect("451 bad?char?")
	c.expectEOF()

	c = rblSession(t, true, &DNSBL{Timeout: -1}, map[string]string{"RBLSMTPD": strings.Repeat("x", 250)})
	c.expect("451 " + strings.Repeat("x", 200))
	c.expectEOF()

	// Modern mode adds enhanced codes.
	c = rblSession(t, false, nil, map[string]string{"RBLSMTPD": "-No"})
	c.expect("220 rblsmtpd.local")
	c.send("DATA\r\n")
	c.expect("553 5.7.1 No")
}

func TestRblsmtpdTimeout(t *testing.T) {
	c := rblSession(t, true, &DNSBL{Timeout: 100 * time.Millisecond}, map[string]string{"RBLSMTPD": "slow"})
	c.expect("220 rblsmtpd.local")
	c.expectEOF()
}

func TestDNSBLLookups(t *testing.T) {
	ns := dnstest.New(t,
		`1.2.0.192.bl.example. 300 IN TXT "listed: see" " example"`,
		`1.2.0.192.white.example. 300 IN A 127.0.0.2`,
		`5.2.0.192.bl.example. 300 IN TXT "five"`,
	)
	ns.SetRcode("9.2.0.192.bl.example.", dns.TypeTXT, dns.RcodeServerFailure)
	ns.SetRcode("9.2.0.192.white.example.", dns.TypeA, dns.RcodeServerFailure)
	res := &DNSResolver{Servers: []string{ns.Addr}, Timeout: 2 * time.Second}
	bl := DNSBLRule{Zone: "bl.example"}
	white := DNSBLRule{Zone: "white.example", Allow: true}
	tests := []struct {
		name  string
		d     DNSBL
		ip    string
		block bool
		code  int
		text  string
	}{
		{"listed", DNSBL{Rules: []DNSBLRule{bl}}, "192.0.2.1", true, 451, "listed: see example"},
		{"listed -b", DNSBL{Rules: []DNSBLRule{bl}, Permanent: true}, "192.0.2.1", true, 553, "listed: see example"},
		{"not listed", DNSBL{Rules: []DNSBLRule{bl}}, "192.0.2.2", false, 0, ""},
		{"allowed first", DNSBL{Rules: []DNSBLRule{white, bl}}, "192.0.2.1", false, 0, ""},
		{"allowed after", DNSBL{Rules: []DNSBLRule{bl, white}}, "192.0.2.1", true, 451, "listed: see example"},
		{"servfail -C", DNSBL{Rules: []DNSBLRule{bl}}, "192.0.2.9", false, 0, ""},
		{"servfail -c", DNSBL{Rules: []DNSBLRule{bl}, FailClosed: true}, "192.0.2.9", true, 451, "temporary RBL lookup error"},
		{"a servfail -C accepts", DNSBL{Rules: []DNSBLRule{white, {Zone: "bl.example"}}}, "192.0.2.9", false, 0, ""},
		{"failure forces 451", DNSBL{Rules: []DNSBLRule{{Zone: "white.example", Allow: true}, {Zone: "bl.example"}}, Permanent: true, FailClosed: true}, "192.0.2.9", true, 451, "temporary RBL lookup error"},
		{"second list", DNSBL{Rules: []DNSBLRule{{Zone: "none.example"}, bl}}, "192.0.2.5", true, 451, "five"},
	}
	// The same answers through DNS (a DNSResolver, Go's *net.Resolver,
	// which says "not found" with an error) and the deprecated Resolver.
	goRes := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, ns.Addr)
	}}
	resolvers := []struct {
		name string
		set  func(*DNSBL)
	}{
		{"DNS DNSResolver", func(d *DNSBL) { d.DNS = res }},
		{"DNS net.Resolver", func(d *DNSBL) { d.DNS = goRes }},
		{"deprecated Resolver", func(d *DNSBL) { d.Resolver = res }},
		{"DNS wins over Resolver", func(d *DNSBL) { d.DNS, d.Resolver = goRes, failResolver{} }},
	}
	for _, r := range resolvers {
		for _, tt := range tests {
			t.Run(r.name+"/"+tt.name, func(t *testing.T) {
				d := tt.d
				r.set(&d)
				block, code, text := d.Decide(t.Context(), map[string]string{}, netip.MustParseAddr(tt.ip))
				if block != tt.block || code != tt.code || text != tt.text {
					t.Errorf("Decide = %v %d %q, want %v %d %q", block, code, text, tt.block, tt.code, tt.text)
				}
			})
		}
	}
	// RBLSMTPD decides before any query.
	n := len(ns.Queries())
	d := DNSBL{Rules: []DNSBLRule{bl}, Resolver: res}
	if block, _, _ := d.Decide(t.Context(), map[string]string{"RBLSMTPD": ""}, netip.MustParseAddr("192.0.2.1")); block {
		t.Error("RBLSMTPD= did not accept")
	}
	if len(ns.Queries()) != n {
		t.Error("RBLSMTPD set but DNS was queried")
	}
	// End to end: a listed client never gets to the real server.
	c := rblSession(t, false, &DNSBL{Rules: []DNSBLRule{bl}, Resolver: res}, nil)
	c.expect("220 rblsmtpd.local")
	c.send("RCPT TO:<x@y>\r\n")
	c.expect("451 4.7.1 listed: see example")
}

// failResolver fails every lookup.
type failResolver struct{}

func (failResolver) LookupTXT(context.Context, string) ([]string, error) {
	return nil, errors.New("failResolver")
}

func (failResolver) LookupA(context.Context, string) ([]netip.Addr, error) {
	return nil, errors.New("failResolver")
}

// TestDNSBLNotFoundError: a DNSBLResolver may say "no such name" with a
// *net.DNSError (IsNotFound), as *net.Resolver does: that is no listing,
// not a failed lookup (which -c would turn into a block).
func TestDNSBLNotFoundError(t *testing.T) {
	nf := &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}
	tests := []struct {
		name  string
		res   DNSBLResolver
		rules []DNSBLRule
		block bool
		text  string
	}{
		{"txt not found", fakeDNSBL{txtErr: nf}, []DNSBLRule{{Zone: "bl.example"}}, false, ""},
		{"txt failure", fakeDNSBL{txtErr: errors.New("timeout")}, []DNSBLRule{{Zone: "bl.example"}}, true, "temporary RBL lookup error"},
		{"a not found then listed", fakeDNSBL{aErr: nf, txt: []string{"listed"}}, []DNSBLRule{{Zone: "w.example", Allow: true}, {Zone: "bl.example"}}, true, "listed"},
		{"a failure: -c passes over, then listed", fakeDNSBL{aErr: errors.New("servfail"), txt: []string{"listed"}}, []DNSBLRule{{Zone: "w.example", Allow: true}, {Zone: "bl.example"}}, true, "listed"},
		{"a found", fakeDNSBL{a: []netip.Addr{netip.MustParseAddr("127.0.0.2")}, txt: []string{"listed"}}, []DNSBLRule{{Zone: "w.example", Allow: true}, {Zone: "bl.example"}}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := DNSBL{Rules: tt.rules, FailClosed: true, DNS: tt.res}
			block, _, text := d.Decide(t.Context(), nil, netip.MustParseAddr("192.0.2.1"))
			if block != tt.block || text != tt.text {
				t.Errorf("Decide = %v %q, want %v %q", block, text, tt.block, tt.text)
			}
		})
	}
}

// fakeDNSBL answers every TXT and A query alike; A queries must ask
// for "ip4".
type fakeDNSBL struct {
	txt          []string
	a            []netip.Addr
	txtErr, aErr error
}

func (f fakeDNSBL) LookupTXT(context.Context, string) ([]string, error) { return f.txt, f.txtErr }

func (f fakeDNSBL) LookupNetIP(_ context.Context, network, _ string) ([]netip.Addr, error) {
	if network != "ip4" {
		return nil, errors.New("network " + network)
	}
	return f.a, f.aErr
}
