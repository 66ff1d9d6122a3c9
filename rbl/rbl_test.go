package rbl

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// fakeResolver answers from maps and records every query as "TYPE name".
type fakeResolver struct {
	txt  map[string][]string
	a    map[string][]netip.Addr
	fail map[string]bool

	mu      sync.Mutex
	queries []string
}

var _ Resolver = (*fakeResolver)(nil)

var errFake = errors.New("SERVFAIL")

func (f *fakeResolver) record(q string) {
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.mu.Unlock()
}

func (f *fakeResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	f.record("TXT " + name)
	if f.fail[name] {
		return nil, errFake
	}
	return f.txt[name], nil
}

func (f *fakeResolver) LookupA(ctx context.Context, name string) ([]netip.Addr, error) {
	f.record("A " + name)
	if f.fail[name] {
		return nil, errFake
	}
	return f.a[name], nil
}

// vectorResolver is the DNS of the block-list tests for 127.0.0.2.
func vectorResolver() *fakeResolver {
	return &fakeResolver{
		txt: map[string][]string{
			"2.0.0.127.rbl.test":   {"listed see http://x/?ip=127.0.0.2", "\tsec\x01"},
			"2.0.0.127.rbl2.test":  {"second"},
			"2.0.0.127.empty.test": {""},
			"2.0.0.127.long.test":  {strings.Repeat("a", 250)},
		},
		a: map[string][]netip.Addr{
			"2.0.0.127.anti.test": {netip.MustParseAddr("127.0.0.2")},
		},
		fail: map[string]bool{"2.0.0.127.fail.test": true},
	}
}

func r(base string) Source  { return Source{Base: base} }
func rb(base string) Source { return Source{Base: base, Permanent: true} }
func a(base string) Source  { return Source{Base: base, Allow: true} }

const listed = "451 listed see http://x/?ip=127.0.0.2?sec?"

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		sources []Source
		want    string // Result.Message
		failed  bool
		queries []string
	}{
		{"no sources", nil, "", false, nil},
		{"R3 listed", []Source{r("rbl.test")}, listed, false, []string{"TXT 2.0.0.127.rbl.test"}},
		{"R3 -b -r", []Source{rb("rbl.test")}, "553" + listed[3:], false, nil},
		{"R3 -a first accepts", []Source{a("anti.test"), r("rbl.test")}, "", false, []string{"A 2.0.0.127.anti.test"}},
		{"-r before -a blocks", []Source{r("rbl.test"), a("anti.test")}, listed, false, []string{"TXT 2.0.0.127.rbl.test"}},
		{"-a not listed", []Source{a("nx.test"), r("rbl.test")}, listed, false, []string{"A 2.0.0.127.nx.test", "TXT 2.0.0.127.rbl.test"}},
		{"R3 fail open", []Source{r("fail.test")}, "", true, nil},
		{"R3 -c fail closed", []Source{{Base: "fail.test", FailClosed: true}, r("rbl.test")}, "451 " + TempFailText, true, []string{"TXT 2.0.0.127.fail.test"}},
		{"-c -b fail closed stays 451", []Source{{Base: "fail.test", FailClosed: true, Permanent: true}}, "451 " + TempFailText, true, nil},
		{"R3 -b after a failure is 451", []Source{rb("fail.test"), rb("rbl.test")}, listed, true, nil},
		{"-b with failure after", []Source{rb("rbl.test"), rb("fail.test")}, "553" + listed[3:], false, []string{"TXT 2.0.0.127.rbl.test"}},
		{"-a fail open accepts", []Source{a("fail.test"), r("rbl.test")}, "", true, []string{"A 2.0.0.127.fail.test"}},
		{"-a fail closed passes", []Source{{Base: "fail.test", Allow: true, FailClosed: true}, rb("rbl.test")}, listed, true, nil},
		{"R3 empty string", []Source{r("empty.test")}, "", false, nil},
		{"empty then second", []Source{r("empty.test"), r("rbl2.test")}, "451 second", false, nil},
		{"R3 long cut", []Source{r("long.test")}, "451 " + strings.Repeat("a", 200), false, nil},
		{"first listing wins", []Source{r("rbl2.test"), rb("rbl.test")}, "451 second", false, []string{"TXT 2.0.0.127.rbl2.test"}},
		{"nxdomain", []Source{r("nx.test")}, "", false, nil},
	}
	// The same decisions through the DNS field (with "not found" said as
	// *net.Resolver says it, an error), the deprecated Resolver, and DNS
	// set beside a Resolver that would fail every lookup.
	ways := []struct {
		name string
		set  func(*Checker, *fakeResolver)
	}{
		{"DNS", func(c *Checker, f *fakeResolver) { c.DNS = netStyle{f} }},
		{"deprecated Resolver", func(c *Checker, f *fakeResolver) { c.Resolver = f }},
		{"DNS wins", func(c *Checker, f *fakeResolver) {
			c.DNS, c.Resolver = netStyle{f}, &fakeResolver{fail: map[string]bool{"2.0.0.127.rbl.test": true, "2.0.0.127.anti.test": true}}
		}},
	}
	for _, way := range ways {
		for _, tt := range tests {
			t.Run(way.name+"/"+tt.name, func(t *testing.T) {
				res := vectorResolver()
				c := &Checker{Sources: tt.sources, Compat: true}
				way.set(c, res)
				checkVector(t, c, res, tt.want, tt.failed, tt.queries)
			})
		}
	}
}

// netStyle answers as *net.Resolver does: "not found" (no records) is a
// *net.DNSError with IsNotFound, and addresses are asked with a network.
type netStyle struct{ f *fakeResolver }

var _ DNSBLResolver = netStyle{}

func (n netStyle) LookupTXT(ctx context.Context, name string) ([]string, error) {
	out, err := n.f.LookupTXT(ctx, name)
	if err == nil && out == nil {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return out, err
}

func (n netStyle) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if network != "ip4" {
		return nil, errors.New("network " + network)
	}
	out, err := n.f.LookupA(ctx, host)
	if err == nil && out == nil {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return out, err
}

func checkVector(t *testing.T, c *Checker, res *fakeResolver, want string, failed bool, queries []string) {
	t.Helper()
	got := c.Check(t.Context(), "127.0.0.2")
	if got.Message() != want {
		t.Errorf("Message() = %q, want %q", got.Message(), want)
	}
	if got.Blocked() != (want != "") {
		t.Errorf("Blocked() = %v", got.Blocked())
	}
	if (got.Err != nil) != failed {
		t.Errorf("Err = %v, want failed %v", got.Err, failed)
	}
	if got.Err != nil && !errors.Is(got.Err, errFake) {
		t.Errorf("Err %v does not wrap the resolver's error", got.Err)
	}
	if queries != nil && strings.Join(res.queries, ",") != strings.Join(queries, ",") {
		t.Errorf("queries %q, want %q", res.queries, queries)
	}
}

func TestCheckCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	// A canceled lookup is a temporary failure like any other: fail open.
	c := &Checker{Sources: []Source{{Base: "zen.example"}}, Resolver: &DNSResolver{Servers: []string{"127.0.0.1:9"}}}
	got := c.Check(ctx, "192.0.2.7")
	if got.Blocked() || !errors.Is(got.Err, context.Canceled) {
		t.Errorf("Check = %+v", got)
	}
	c.Sources[0].FailClosed = true
	if got := c.Check(ctx, "192.0.2.7"); got.Message() != "451 "+TempFailText {
		t.Errorf("fail closed: %q", got.Message())
	}
}

func TestOverride(t *testing.T) {
	tests := []struct {
		value string
		code  int
		msg   string
	}{
		{"", 0, ""},
		{"-", 553, "553 "},
		{"-perm", 553, "553 perm"},
		{"--x", 553, "553 -x"},
		{"Go away", 451, "451 Go away"},
		// R1: UTF-8 and a newline become '?' byte by byte.
		{"blocked because é\nx", 451, "451 blocked because ???x"},
		{"x\x00y\x7f\xff", 451, "451 x?y??"},
		{strings.Repeat("é", 150), 451, "451 " + strings.Repeat("?", 200)},
	}
	for _, tt := range tests {
		got := Override(tt.value)
		if got.Code != tt.code || got.Message() != tt.msg {
			t.Errorf("Override(%q) = %d %q, want %d %q", tt.value, got.Code, got.Message(), tt.code, tt.msg)
		}
	}
}

func TestReverse(t *testing.T) {
	tests := []struct {
		ip, compat, modern string
	}{
		{"192.0.2.7", "7.2.0.192.", "7.2.0.192."},
		{"", "", ""},
		{".", ".", "."},
		{".1", "1.", "1."},
		{"1.2.", ".2.1.", ".2.1."},
		{"1..2", "2..1.", "2..1."},
		{"001.2.3.4", "4.3.2.001.", "4.3.2.001."},
		{"host", "host.", "host."},
		{"2001:db8::1", "2001:db8::1.", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2."},
		{"::ffff:192.0.2.7", "7.2.0.::ffff:192.", "7.2.0.192."},
		{"fe80::1%eth0", "fe80::1%eth0.", "fe80::1%eth0."},
		{"2001:zz::1", "2001:zz::1.", "2001:zz::1."},
	}
	for _, tt := range tests {
		if got := reverse(tt.ip, true); got != tt.compat {
			t.Errorf("reverse(%q, compat) = %q, want %q", tt.ip, got, tt.compat)
		}
		if got := reverse(tt.ip, false); got != tt.modern {
			t.Errorf("reverse(%q, modern) = %q, want %q", tt.ip, got, tt.modern)
		}
	}
}

// Modern mode asks IPv6 lists by nibbles; IPv4 query names are the same in
// both modes.
func TestCheckModernIPv6(t *testing.T) {
	nib := "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.example"
	res := &fakeResolver{txt: map[string][]string{nib: {"v6 listed"}, "7.2.0.192.zen.example": {"v4 listed"}}}
	for _, tt := range []struct {
		ip     string
		compat bool
		want   string
	}{
		{"2001:db8::1", false, "451 v6 listed"},
		{"2001:db8::1", true, ""},
		{"192.0.2.7", false, "451 v4 listed"},
		{"192.0.2.7", true, "451 v4 listed"},
		{"::ffff:192.0.2.7", false, "451 v4 listed"},
	} {
		c := &Checker{Sources: []Source{r("zen.example")}, Resolver: res, Compat: tt.compat}
		if got := c.Check(t.Context(), tt.ip).Message(); got != tt.want {
			t.Errorf("%s compat=%v: %q, want %q", tt.ip, tt.compat, got, tt.want)
		}
	}
}

func TestMessage(t *testing.T) {
	if got := (Result{}).Message(); got != "" {
		t.Errorf("not blocked: %q", got)
	}
	// The cut comes before the cleaning and counts bytes.
	text := strings.Repeat("x", 199) + "éé"
	if got := (Result{Code: 553, Text: text}).Message(); got != "553 "+strings.Repeat("x", 199)+"?" {
		t.Errorf("cut: %q", got)
	}
}
