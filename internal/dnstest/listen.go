package dnstest

import (
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Listen starts a server as [New] does, but on addr ("127.53.1.1:53")
// rather than on a free port of 127.0.0.1: resolvers that always ask port
// 53, such as djb's (ucspi-tcp, djbdns), need one there. It returns the
// error of binding, so that a caller can try another address when this one
// is taken. The server stops when the test ends.
func Listen(t testing.TB, addr string, records ...string) (*Server, error) {
	t.Helper()
	s := &Server{
		records: map[key][]dns.RR{},
		rcodes:  map[key]int{},
		trunc:   map[string]bool{},
		silent:  map[string]bool{},
	}
	for _, r := range records {
		s.Add(t, r)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("dnstest: %w", err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("dnstest: %w", err)
	}
	s.Addr = pc.LocalAddr().String()
	var started sync.WaitGroup
	started.Add(2)
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: started.Done}
	s.tcp = &dns.Server{Listener: l, Handler: dns.HandlerFunc(s.serveTCP), NotifyStartedFunc: started.Done}
	done := make(chan struct{}, 2)
	go func() { s.udp.ActivateAndServe(); done <- struct{}{} }()
	go func() { s.tcp.ActivateAndServe(); done <- struct{}{} }()
	started.Wait()
	t.Cleanup(func() {
		s.udp.Shutdown()
		s.tcp.Shutdown()
		<-done
		<-done
	})
	return s, nil
}
