package smtpclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/qmailkit/qmailkit/internal/dnstest"
)

var _ Resolver = (*DNS)(nil)
var _ Resolver = (*net.Resolver)(nil)
var _ Dialer = (*net.Dialer)(nil)

func newDNS(t *testing.T, records ...string) (*dnstest.Server, *DNS) {
	t.Helper()
	s := dnstest.New(t, records...)
	return s, &DNS{Servers: []string{s.Addr}, Timeout: 3 * time.Second, Attempts: 1}
}

func addrs(ss ...string) []netip.Addr {
	var a []netip.Addr
	for _, s := range ss {
		a = append(a, netip.MustParseAddr(s))
	}
	return a
}

func TestDNSLookup(t *testing.T) {
	srv, r := newDNS(t,
		"example.com. 300 IN MX 10 mx.example.com.",
		"mx.example.com. 300 IN A 192.0.2.1",
		"mx.example.com. 300 IN AAAA 2001:db8::1",
		"alias.example.com. 300 IN CNAME mx.example.com.",
		"mxalias.example.com. 300 IN CNAME example.com.",
		"big.example.com. 300 IN A 192.0.2.9",
		"chain.example.com. 300 IN CNAME hop.example.org.",
		"hop.example.org. 300 IN CNAME mx.example.com.",
	)
	srv.SetRcode("fail.example.com", dns.TypeANY, dns.RcodeServerFailure)
	srv.Truncate("big.example.com")
	ctx := t.Context()

	mx, err := r.LookupMX(ctx, "example.com")
	if err != nil || len(mx) != 1 || mx[0].Host != "mx.example.com." || mx[0].Pref != 10 {
		t.Errorf("MX: %v %v", mx, err)
	}
	mx, err = r.LookupMX(ctx, "mxalias.example.com")
	if err != nil || len(mx) != 1 || mx[0].Host != "mx.example.com." {
		t.Errorf("MX through CNAME: %v %v", mx, err)
	}
	for _, tc := range []struct {
		network, host string
		want          []netip.Addr
	}{
		{"ip", "mx.example.com", addrs("2001:db8::1", "192.0.2.1")},
		{"ip4", "mx.example.com", addrs("192.0.2.1")},
		{"ip6", "mx.example.com", addrs("2001:db8::1")},
		{"ip4", "alias.example.com", addrs("192.0.2.1")},
		{"ip4", "chain.example.com", addrs("192.0.2.1")}, // chain leaves the answer: asked again
		{"ip4", "big.example.com", addrs("192.0.2.9")},   // truncated over UDP, retried over TCP
		{"ip", "192.0.2.77", addrs("192.0.2.77")},
	} {
		got, err := r.LookupNetIP(ctx, tc.network, tc.host)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("LookupNetIP(%s, %s) = %v, %v; want %v", tc.network, tc.host, got, err, tc.want)
		}
	}
	if q := srv.Queries(); !slices.Contains(q, "big.example.com. A tcp") {
		t.Errorf("no TCP retry after truncation: %v", q)
	}

	notFound := func(err error) bool { return isNotFound(err) }
	temporary := func(err error) bool {
		var de *net.DNSError
		return errors.As(err, &de) && !de.IsNotFound
	}
	for _, tc := range []struct {
		name  string
		fn    func() error
		check func(error) bool
	}{
		{"NXDOMAIN MX", func() error { _, err := r.LookupMX(ctx, "nope.example.com"); return err }, notFound},
		{"no data MX", func() error { _, err := r.LookupMX(ctx, "big.example.com"); return err }, notFound},
		{"no data AAAA", func() error { _, err := r.LookupNetIP(ctx, "ip6", "big.example.com"); return err }, notFound},
		{"NXDOMAIN A", func() error { _, err := r.LookupNetIP(ctx, "ip", "nope.example.com"); return err }, notFound},
		{"SERVFAIL MX", func() error { _, err := r.LookupMX(ctx, "fail.example.com"); return err }, temporary},
		{"SERVFAIL A", func() error { _, err := r.LookupNetIP(ctx, "ip4", "fail.example.com"); return err }, temporary},
	} {
		if err := tc.fn(); err == nil || !tc.check(err) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
}

func TestDNSTimeoutAndFallback(t *testing.T) {
	srv, r := newDNS(t, "mx.example.com. 300 IN A 192.0.2.1")
	srv.Silence("slow.example.com")
	r.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := r.LookupNetIP(t.Context(), "ip4", "slow.example.com")
	var de *net.DNSError
	if !errors.As(err, &de) || de.IsNotFound || !de.IsTimeout {
		t.Errorf("silent server: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %v", d)
	}
	// A dead first server: the second answers.
	dead, _ := net.ListenPacket("udp", "127.0.0.1:0")
	deadAddr := dead.LocalAddr().String()
	dead.Close()
	r.Servers = []string{deadAddr, srv.Addr}
	r.Timeout = 3 * time.Second
	if got, err := r.LookupNetIP(t.Context(), "ip4", "mx.example.com"); err != nil || len(got) != 1 {
		t.Errorf("fallback to second server: %v %v", got, err)
	}
	// Context cancellation is a temporary error.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.LookupMX(ctx, "mx.example.com"); err == nil || isNotFound(err) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestDNSResolvConf(t *testing.T) {
	srv := dnstest.New(t, "mx.example.com. 300 IN A 192.0.2.1")
	host, port, _ := net.SplitHostPort(srv.Addr)
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("nameserver %s\noptions port:%s timeout:3 attempts:4\n", host, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	// miekg reads the port from "port" only via ClientConfig.Port (53); so
	// check that servers come from the file, then point them at the test
	// server's port.
	r := &DNS{ConfigFile: conf, Timeout: 500 * time.Millisecond, Attempts: 1}
	servers, err := r.config()
	if err != nil || len(servers) != 1 || !strings.HasPrefix(servers[0], host+":") {
		t.Fatalf("servers from %s: %v %v", conf, servers, err)
	}
	if r.confTimeout != 3*time.Second || r.confAttempts != 4 {
		t.Errorf("options: timeout %v attempts %d", r.confTimeout, r.confAttempts)
	}
	r2 := &DNS{ConfigFile: filepath.Join(t.TempDir(), "missing")}
	if _, err := r2.LookupMX(t.Context(), "example.com"); err == nil || isNotFound(err) {
		t.Errorf("missing resolv.conf: %v", err)
	}
}
