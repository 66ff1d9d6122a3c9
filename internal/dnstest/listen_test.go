package dnstest

import (
	"errors"
	"syscall"
	"testing"

	"github.com/miekg/dns"
)

func TestListen(t *testing.T) {
	s, err := Listen(t, "127.0.0.1:0", "x.test. 60 IN TXT \"hi\"")
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetQuestion("x.test.", dns.TypeTXT)
	for _, proto := range []string{"udp", "tcp"} {
		r, _, err := (&dns.Client{Net: proto}).Exchange(m, s.Addr)
		if err != nil || len(r.Answer) != 1 {
			t.Errorf("%s: %v %v", proto, r, err)
		}
	}
	// The address is taken now: the caller is told, to try another.
	if _, err := Listen(t, s.Addr); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second Listen on %s: %v, want EADDRINUSE", s.Addr, err)
	}
}
