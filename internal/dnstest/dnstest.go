// Package dnstest runs a real DNS server (github.com/miekg/dns) on 127.0.0.1
// for tests: UDP and TCP on the same port, answering from a table of
// records, with per-name failures (SERVFAIL, NXDOMAIN, truncation, silence)
// so resolvers can be tested end to end without the network.
package dnstest

import (
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server is a DNS server on 127.0.0.1. Its zero value is not usable: call
// [New].
type Server struct {
	// Addr is "127.0.0.1:port", the same port for UDP and TCP.
	Addr string

	mu      sync.Mutex
	records map[key][]dns.RR
	rcodes  map[key]int
	trunc   map[string]bool
	silent  map[string]bool
	queries []string
	udp     *dns.Server
	tcp     *dns.Server
}

type key struct {
	name  string
	qtype uint16
}

// New starts a server for the test; it stops when the test ends. Each record
// is a zone-file line, such as "example.com. 300 IN MX 10 mx.example.com.".
func New(t testing.TB, records ...string) *Server {
	t.Helper()
	s, err := Listen(t, "127.0.0.1:0", records...)
	if err != nil {
		// The TCP port of the UDP one chosen is taken: rare, not a failure.
		t.Skipf("dnstest: %v", err)
	}
	return s
}

// Add adds a record given as a zone-file line.
func (s *Server) Add(t testing.TB, record string) {
	t.Helper()
	rr, err := dns.NewRR(record)
	if err != nil {
		t.Fatalf("dnstest: %q: %v", record, err)
	}
	h := rr.Header()
	k := key{strings.ToLower(h.Name), h.Rrtype}
	s.mu.Lock()
	s.records[k] = append(s.records[k], rr)
	s.mu.Unlock()
}

// SetRcode makes queries for name and qtype (dns.TypeMX, ...; dns.TypeANY for
// every type) answer with rcode, such as dns.RcodeServerFailure or
// dns.RcodeNameError.
func (s *Server) SetRcode(name string, qtype uint16, rcode int) {
	s.mu.Lock()
	s.rcodes[key{dns.Fqdn(strings.ToLower(name)), qtype}] = rcode
	s.mu.Unlock()
}

// Truncate makes UDP answers for name carry the TC bit and no records, so a
// resolver must retry over TCP to see them.
func (s *Server) Truncate(name string) {
	s.mu.Lock()
	s.trunc[dns.Fqdn(strings.ToLower(name))] = true
	s.mu.Unlock()
}

// Silence makes the server never answer queries for name (a timeout).
func (s *Server) Silence(name string) {
	s.mu.Lock()
	s.silent[dns.Fqdn(strings.ToLower(name))] = true
	s.mu.Unlock()
}

// Queries returns every question asked so far as "name TYPE proto", in order.
func (s *Server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

func (s *Server) serve(w dns.ResponseWriter, r *dns.Msg)    { s.answer(w, r, false) }
func (s *Server) serveTCP(w dns.ResponseWriter, r *dns.Msg) { s.answer(w, r, true) }

func (s *Server) answer(w dns.ResponseWriter, r *dns.Msg, tcp bool) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	proto := "udp"
	if tcp {
		proto = "tcp"
	}
	s.mu.Lock()
	s.queries = append(s.queries, name+" "+dns.TypeToString[q.Qtype]+" "+proto)
	silent := s.silent[name]
	rcode, ok := s.rcodes[key{name, q.Qtype}]
	if !ok {
		rcode, ok = s.rcodes[key{name, dns.TypeANY}]
	}
	trunc := s.trunc[name] && !tcp
	answers := append([]dns.RR(nil), s.records[key{name, q.Qtype}]...)
	var cname []dns.RR
	if len(answers) == 0 && q.Qtype != dns.TypeCNAME {
		cname = s.records[key{name, dns.TypeCNAME}]
		if len(cname) > 0 {
			target := strings.ToLower(cname[0].(*dns.CNAME).Target)
			answers = append(append([]dns.RR(nil), cname[0]), s.records[key{target, q.Qtype}]...)
		}
	}
	exists := len(answers) > 0
	if !exists {
		for k := range s.records {
			if k.name == name {
				exists = true
				break
			}
		}
	}
	s.mu.Unlock()
	switch {
	case silent:
		return
	case ok:
		m.Rcode = rcode
	case trunc:
		m.Truncated = true
	case len(answers) > 0:
		m.Answer = answers
	case !exists:
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}
