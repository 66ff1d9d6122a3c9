package dnstest

import (
	"testing"

	"github.com/miekg/dns"
)

func TestServer(t *testing.T) {
	s := New(t,
		"example.com. 300 IN MX 10 mx.example.com.",
		"mx.example.com. 300 IN A 192.0.2.1",
		"alias.example.com. 300 IN CNAME mx.example.com.",
	)
	s.SetRcode("fail.example.com", dns.TypeANY, dns.RcodeServerFailure)
	s.Truncate("example.com")
	ask := func(name string, qtype uint16, proto string) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		c := &dns.Client{Net: proto}
		r, _, err := c.Exchange(m, s.Addr)
		if err != nil {
			t.Fatalf("%s %s: %v", name, proto, err)
		}
		return r
	}
	if r := ask("example.com", dns.TypeMX, "udp"); !r.Truncated || len(r.Answer) != 0 {
		t.Errorf("UDP answer not truncated: %v", r)
	}
	if r := ask("example.com", dns.TypeMX, "tcp"); len(r.Answer) != 1 {
		t.Errorf("TCP answer: %v", r)
	}
	if r := ask("alias.example.com", dns.TypeA, "udp"); len(r.Answer) != 2 {
		t.Errorf("CNAME answer: %v", r)
	}
	if r := ask("mx.example.com", dns.TypeAAAA, "udp"); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("no-data answer: %v", r)
	}
	if r := ask("nope.example.com", dns.TypeA, "udp"); r.Rcode != dns.RcodeNameError {
		t.Errorf("NXDOMAIN expected: %v", r)
	}
	if r := ask("fail.example.com", dns.TypeA, "udp"); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("SERVFAIL expected: %v", r)
	}
	if got := len(s.Queries()); got != 6 {
		t.Errorf("%d queries logged, want 6", got)
	}
}
