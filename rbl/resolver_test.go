package rbl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/qmailkit/qmailkit/internal/dnstest"
	"github.com/qmailkit/qmailkit/smtpserver"
)

var (
	_ Resolver      = (*DNSResolver)(nil)
	_ DNSBLResolver = (*DNSResolver)(nil)
	// One value serves the SMTP server's DNS lists and a Checker: the
	// two interfaces have the same methods.
	_ smtpserver.DNSBLResolver = DNSBLResolver(nil)
	_ DNSBLResolver            = smtpserver.DNSBLResolver(nil)
)

func TestDNSResolver(t *testing.T) {
	long := strings.Repeat("L", 250)
	s := dnstest.New(t,
		`2.0.0.127.rbl.test. 60 IN TXT "listed " "see http://x/?ip=127.0.0.2"`,
		`2.0.0.127.rbl.test. 60 IN TXT "\009sec\001\255"`,
		`2.0.0.127.rbl.test. 60 IN A 127.0.0.2`,
		`2.0.0.127.anti.test. 60 IN A 127.0.0.2`,
		`2.0.0.127.anti.test. 60 IN A 127.0.0.3`,
		`2.0.0.127.anti.test. 60 IN TXT "not asked"`,
		`2.0.0.127.empty.test. 60 IN TXT ""`,
		`2.0.0.127.big.test. 60 IN TXT "`+long+`" "`+long+`" "`+long+`"`,
		`alias.test. 60 IN CNAME 2.0.0.127.rbl2.test.`,
		`2.0.0.127.rbl2.test. 60 IN TXT "via cname"`,
		`a\.b.test. 60 IN TXT "escaped dot"`,
	)
	s.SetRcode("2.0.0.127.fail.test", dns.TypeANY, dns.RcodeServerFailure)
	s.SetRcode("2.0.0.127.refused.test", dns.TypeANY, dns.RcodeRefused)
	s.Truncate("2.0.0.127.big.test")
	s.Silence("2.0.0.127.silent.test")
	res := &DNSResolver{Servers: []string{s.Addr}, Timeouts: []time.Duration{200 * time.Millisecond, 300 * time.Millisecond}}

	txtTests := []struct {
		name    string
		want    []string
		wantErr bool
	}{
		{"2.0.0.127.rbl.test", []string{"listed see http://x/?ip=127.0.0.2", "\tsec\x01\xff"}, false},
		{"2.0.0.127.RBL.Test.", []string{"listed see http://x/?ip=127.0.0.2", "\tsec\x01\xff"}, false},
		{"2.0.0.127..rbl..test", []string{"listed see http://x/?ip=127.0.0.2", "\tsec\x01\xff"}, false},
		{"2.0.0.127.empty.test", []string{""}, false},
		{"2.0.0.127.nx.test", nil, false},
		{"2.0.0.127.anti.test", []string{"not asked"}, false},
		{"2.0.0.127.big.test", []string{long + long + long}, false},
		{"alias.test", []string{"via cname"}, false},
		{`a\056b.test`, []string{"escaped dot"}, false},
		{"2.0.0.127.fail.test", nil, true},
		{"2.0.0.127.refused.test", nil, true},
		{"2.0.0.127.silent.test", nil, true},
		{strings.Repeat("a", 64) + ".test", nil, true},
	}
	for _, tt := range txtTests {
		t.Run("TXT "+tt.name, func(t *testing.T) {
			got, err := res.LookupTXT(t.Context(), tt.name)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	aTests := []struct {
		name    string
		want    []string
		wantErr bool
	}{
		{"2.0.0.127.anti.test", []string{"127.0.0.2", "127.0.0.3"}, false},
		{"2.0.0.127.empty.test", nil, false},
		{"2.0.0.127.nx.test", nil, false},
		{"2.0.0.127.fail.test", nil, true},
		// Numbers are addresses, four bytes each, without a query.
		{"2.0.0.127.1.2.3.4", []string{"2.0.0.127", "1.2.3.4"}, false},
		{"2.0.0.127.1.2", []string{"2.0.0.127"}, false},
		{"1.2.3", nil, false},
		{"[1.2.3.256]", []string{"1.2.3.0"}, false},
	}
	// LookupNetIP "ip4" (what a Checker asks through DNS) and "ip" are
	// LookupA.
	lookups := map[string]func(ctx context.Context, name string) ([]netip.Addr, error){
		"A": res.LookupA,
		"NetIP ip4": func(ctx context.Context, name string) ([]netip.Addr, error) {
			return res.LookupNetIP(ctx, "ip4", name)
		},
		"NetIP ip": func(ctx context.Context, name string) ([]netip.Addr, error) {
			return res.LookupNetIP(ctx, "ip", name)
		},
	}
	for how, lookup := range lookups {
		for _, tt := range aTests {
			t.Run(how+" "+tt.name, func(t *testing.T) {
				got, err := lookup(t.Context(), tt.name)
				if (err != nil) != tt.wantErr {
					t.Fatalf("err = %v, want error %v", err, tt.wantErr)
				}
				var gs []string
				for _, a := range got {
					gs = append(gs, a.String())
				}
				if !slices.Equal(gs, tt.want) {
					t.Errorf("got %q, want %q", gs, tt.want)
				}
			})
		}
	}
	if _, err := res.LookupNetIP(t.Context(), "ip6", "2.0.0.127.anti.test"); err == nil {
		t.Error(`LookupNetIP("ip6") did not fail`)
	}
	q := strings.Join(s.Queries(), "\n")
	for _, want := range []string{"2.0.0.127.big.test. TXT tcp", "2.0.0.127.RBL.Test. TXT udp", "a\\.b.test. TXT udp"} {
		if !strings.Contains(strings.ToLower(q), strings.ToLower(want)) {
			t.Errorf("no query %q in\n%s", want, q)
		}
	}
	for _, not := range []string{"1.2.3.4", "1.2.3. ", strings.Repeat("a", 64)} {
		if strings.Contains(q, not) {
			t.Errorf("query %q should not have been sent:\n%s", not, q)
		}
	}
	// A SERVFAIL is given up at once: one query, no waiting for the rounds.
	if n := strings.Count(q, "fail.test. TXT"); n != 1 {
		t.Errorf("%d queries for the SERVFAIL name, want 1", n)
	}
	// A silent server is asked once per round.
	if n := strings.Count(q, "silent.test. TXT udp"); n != 2 {
		t.Errorf("%d queries for the silent name, want 2", n)
	}
}

// The next server answers for one that fails, and the end of ctx ends a
// lookup that waits for a silent server at once.
func TestDNSResolverServers(t *testing.T) {
	bad := dnstest.New(t)
	bad.SetRcode("x.test", dns.TypeANY, dns.RcodeServerFailure)
	silent := dnstest.New(t)
	silent.Silence("x.test")
	good := dnstest.New(t, `x.test. 60 IN TXT "good"`)
	res := &DNSResolver{Servers: []string{bad.Addr, silent.Addr, good.Addr}, Timeouts: []time.Duration{100 * time.Millisecond}}
	got, err := res.LookupTXT(t.Context(), "x.test")
	if err != nil || !slices.Equal(got, []string{"good"}) {
		t.Fatalf("LookupTXT = %q, %v", got, err)
	}

	res = &DNSResolver{Servers: []string{silent.Addr}, Timeouts: []time.Duration{time.Hour}}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := res.LookupTXT(ctx, "x.test"); err == nil {
		t.Fatal("no error from a silent server")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("canceled lookup took %v", d)
	}
}

func TestSystemServers(t *testing.T) {
	t.Setenv("DNSCACHEIP", "127.0.0.9.127.0.0.10")
	got, err := SystemServers()
	if err != nil || !slices.Equal(got, []string{"127.0.0.9:53", "127.0.0.10:53"}) {
		t.Errorf("SystemServers with $DNSCACHEIP = %q, %v", got, err)
	}
	t.Setenv("DNSCACHEIP", "")
	data, _ := os.ReadFile("/etc/resolv.conf")
	got, err = SystemServers()
	if err != nil || !slices.Equal(got, resolvConf(data)) {
		t.Errorf("SystemServers without $DNSCACHEIP = %q, %v; resolv.conf gives %q", got, err, resolvConf(data))
	}
}

// The zero DNSResolver asks port 53 of $DNSCACHEIP: as root, a server on
// 127.53.x.1:53 answers it.
func TestDNSResolverCacheIP(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to listen on port 53 (djb's resolver asks no other port)")
	}
	var s *dnstest.Server
	for i := range 20 {
		addr := fmt.Sprintf("127.53.%d.1:53", 200+i)
		var err error
		if s, err = dnstest.Listen(t, addr, `7.2.0.192.zen.test. 60 IN TXT "from cache ip"`); err == nil {
			break
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatal(err)
		}
	}
	if s == nil {
		t.Skip("no free 127.53.x.1:53")
	}
	host, _, _ := net.SplitHostPort(s.Addr)
	t.Setenv("DNSCACHEIP", host)
	c := &Checker{Sources: []Source{{Base: "zen.test"}}}
	if got := c.Check(t.Context(), "192.0.2.7").Message(); got != "451 from cache ip" {
		t.Errorf("Check = %q", got)
	}
}

func TestCacheIP(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{"", []string{}, false},
		{"127.0.0.1", []string{"127.0.0.1:53"}, true},
		{"127.0.0.1.10.0.0.2", []string{"127.0.0.1:53", "10.0.0.2:53"}, true},
		{"..127.0.0.1..10.0.0.2x", []string{"127.0.0.1:53", "10.0.0.2:53"}, true},
		{"127.0.0.1 10.0.0.2", []string{"127.0.0.1:53"}, true},
		{"127.0.0.1,10.0.0.2", []string{"127.0.0.1:53"}, true},
		{"0.0.0.0", []string{}, true},
		{"300.0.0.1", []string{"44.0.0.1:53"}, true},
		{"::1", []string{}, false},
		{"1.2.3", []string{}, false},
		{strings.Repeat("1.1.1.1.", 20), slices.Repeat([]string{"1.1.1.1:53"}, 16), true},
	}
	for _, tt := range tests {
		got, ok := cacheIP(tt.in)
		if ok != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("cacheIP(%q) = %q %v, want %q %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestResolvConf(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", []string{"127.0.0.1:53"}},
		{"nameserver 192.0.2.1\nnameserver\t \t192.0.2.2\n", []string{"192.0.2.1:53", "192.0.2.2:53"}},
		{"search x\nnameserver ::1\nnameserver 0.0.0.0\n", []string{"127.0.0.1:53"}},
		{"  nameserver 192.0.2.1\nNameserver 192.0.2.2\nnameserver192.0.2.3\n", []string{"127.0.0.1:53"}},
		{"nameserver 192.0.2.1 # x", []string{"192.0.2.1:53"}},
		{"nameserver 192.0.2.1x\n", []string{"192.0.2.1:53"}},
		{strings.Repeat("nameserver 192.0.2.9\n", 20), slices.Repeat([]string{"192.0.2.9:53"}, 16)},
	}
	for _, tt := range tests {
		if got := resolvConf([]byte(tt.in)); !slices.Equal(got, tt.want) {
			t.Errorf("resolvConf(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDjbName(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"", ".", false},
		{"...", ".", false},
		{"7.2.0.192.zen.example", "7.2.0.192.zen.example.", false},
		{".a..b.", "a.b.", false},
		{`a\.b`, `a\046b.`, false},
		{`a\056b`, `a\046b.`, false},
		{`a\0567`, `a\0467.`, false},
		{`a\777`, `a\255.`, false},
		{`a\8`, `a8.`, false},
		{`a\`, `a.`, false},
		{"2001:db8::1.x", `2001\058db8\058\0581.x.`, false},
		{"a b", `a\032b.`, false},
		{strings.Repeat("a", 63), strings.Repeat("a", 63) + ".", false},
		{strings.Repeat("a", 64), "", true},
		{strings.Repeat("a.", 127), strings.Repeat("a.", 127), false},
		{strings.Repeat("a.", 128), "", true},
	}
	for _, tt := range tests {
		got, err := djbName(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("djbName(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil {
			if _, ok := dns.IsDomainName(got); !ok {
				t.Errorf("djbName(%q) = %q, not a name miekg/dns packs", tt.in, got)
			}
		}
	}
}

func TestLiteralA(t *testing.T) {
	tests := []struct {
		in   string
		want []netip.Addr
		ok   bool
	}{
		{"", nil, true},
		{"1.2.3.4", []netip.Addr{netip.MustParseAddr("1.2.3.4")}, true},
		{"1.2.3.4.x", nil, false},
		{"1.2.3.4.5.6.7.8.9", []netip.Addr{netip.MustParseAddr("1.2.3.4"), netip.MustParseAddr("5.6.7.8")}, true},
		{"257..", nil, true},
		{"257...", []netip.Addr{netip.MustParseAddr("1.0.0.0")}, true},
	}
	for _, tt := range tests {
		got, ok := literalA(tt.in)
		if ok != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("literalA(%q) = %v %v, want %v %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
