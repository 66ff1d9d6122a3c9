package smtpserver

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveLoopback serves srv on 127.0.0.1:0 until the test ends.
func serveLoopback(t *testing.T, srv *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return l.Addr().String()
}

// dialFrom connects to addr from the loopback address from.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot connect from %s (is all of 127.0.0.0/8 on lo?): %v", from, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Relaying for trusted networks from Go values: RelayFrom's prefixes and
// the Relay func, tested with real sessions from 127.0.0.1 and 127.0.0.2.
// A client that may not relay gets qmail's 553 for a foreign domain; one
// that may gets 250 and its message queued.
func TestRelayFrom(t *testing.T) {
	p := netip.MustParsePrefix
	many := make([]netip.Prefix, 0, 10001)
	for i := range 10000 {
		many = append(many, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
	}
	many = append(many, p("127.0.0.2/32"))
	only2 := func(ctx context.Context, s *Session) bool {
		return ctx != nil && s.RemoteIP == netip.MustParseAddr("127.0.0.2") && s.Env["TCPREMOTEIP"] == "127.0.0.2"
	}
	for _, tc := range []struct {
		name           string
		from           []netip.Prefix
		relay          func(context.Context, *Session) bool
		compat         bool
		relay1, relay2 bool // whether 127.0.0.1 and 127.0.0.2 may relay
	}{
		{name: "none"},
		{name: "127.0.0.1/32", from: []netip.Prefix{p("127.0.0.1/32")}, relay1: true},
		{name: "127.0.0.0/8", from: []netip.Prefix{p("127.0.0.0/8")}, relay1: true, relay2: true},
		{name: "other network", from: []netip.Prefix{p("192.0.2.0/24"), p("::1/128")}},
		{name: "4-in-6 prefix", from: []netip.Prefix{p("::ffff:127.0.0.2/128")}, relay2: true},
		{name: "ten thousand prefixes", from: many, relay2: true},
		{name: "invalid prefix ignored", from: []netip.Prefix{{}}},
		{name: "func", relay: only2, relay2: true},
		{name: "func and prefix", from: []netip.Prefix{p("127.0.0.1/32")}, relay: only2, relay1: true, relay2: true},
		{name: "compat", from: []netip.Prefix{p("127.0.0.1/32")}, compat: true, relay1: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &sink{}
			var mu sync.Mutex
			seen := map[string]bool{} // Session.Relay at RCPT, by client
			srv := &Server{
				Hostname:  "mx.example.com",
				Compat:    tc.compat,
				Enqueuer:  k,
				RcptHosts: func(d string) (bool, error) { return d == "example.com", nil },
				RelayFrom: tc.from,
				Relay:     tc.relay,
				CheckRecipient: func(ctx context.Context, s *Session, to string) error {
					mu.Lock()
					seen[s.RemoteIP.String()] = s.Relay
					mu.Unlock()
					return nil
				},
			}
			addr := serveLoopback(t, srv)
			for _, c := range []struct {
				ip    string
				relay bool
			}{{"127.0.0.1", tc.relay1}, {"127.0.0.2", tc.relay2}} {
				// Mail for a local domain is accepted from everyone.
				if got, _ := sendMessage(t, dialFrom(t, c.ip, addr), "joe@example.com"); !strings.HasPrefix(got, "250") {
					t.Errorf("from %s to a local domain: %q", c.ip, got)
				}
				got, data := sendMessage(t, dialFrom(t, c.ip, addr), "bob@example.net")
				if relayed := strings.HasPrefix(got, "250") && strings.HasPrefix(data, "250"); relayed != c.relay {
					t.Errorf("from %s to a foreign domain: RCPT %q, data %q; want relaying %v", c.ip, got, data, c.relay)
				}
				if !c.relay && !strings.HasPrefix(got, "553") {
					t.Errorf("from %s: refusal %q, want qmail's 553", c.ip, got)
				}
				mu.Lock()
				if seen[c.ip] != c.relay {
					t.Errorf("from %s: Session.Relay %v, want %v", c.ip, seen[c.ip], c.relay)
				}
				mu.Unlock()
			}
		})
	}
}

// RelayFrom and Relay through ServeConn: the environment's TCPREMOTEIP
// (a PROXY header's client) is the address checked, RELAYCLIENT's suffix
// is kept, and the caller's map is not changed.
func TestRelayFromEnv(t *testing.T) {
	p := netip.MustParsePrefix
	for _, tc := range []struct {
		name  string
		env   map[string]string
		from  []netip.Prefix
		relay func(context.Context, *Session) bool
		rcpt  string // the recipient queued, or "" if refused
	}{
		{"TCPREMOTEIP trusted", map[string]string{"TCPREMOTEIP": "192.0.2.7"}, []netip.Prefix{p("192.0.2.0/24")}, nil, "bob@example.net"},
		{"TCPREMOTEIP not trusted", map[string]string{"TCPREMOTEIP": "198.51.100.7"}, []netip.Prefix{p("127.0.0.0/8")}, nil, ""},
		{"RELAYCLIENT suffix kept", map[string]string{"TCPREMOTEIP": "192.0.2.7", "RELAYCLIENT": "@fixme"}, []netip.Prefix{p("192.0.2.0/24")}, nil, "bob@example.net@fixme"},
		{"func sees the env", map[string]string{"TCPREMOTEIP": "198.51.100.7", "X": "trusted"}, nil,
			func(_ context.Context, s *Session) bool { return s.Env["X"] == "trusted" }, "bob@example.net"},
		{"func says no", map[string]string{"TCPREMOTEIP": "198.51.100.7"}, nil,
			func(context.Context, *Session) bool { return false }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &sink{}
			srv := &Server{Hostname: "mx.example.com", Enqueuer: k, RelayFrom: tc.from, Relay: tc.relay}
			before := len(tc.env)
			_, hadRelay := tc.env["RELAYCLIENT"]
			cl := start(t, srv, tc.env)
			sendMessage(t, cl.c, "bob@example.net")
			cl.wait()
			msgs := k.messages()
			switch {
			case tc.rcpt == "" && len(msgs) != 0:
				t.Errorf("relayed: %+v", msgs)
			case tc.rcpt != "" && (len(msgs) != 1 || len(msgs[0].to) != 1 || msgs[0].to[0] != tc.rcpt):
				t.Errorf("queued %+v, want one message to %q", msgs, tc.rcpt)
			}
			if _, has := tc.env["RELAYCLIENT"]; len(tc.env) != before || has != hadRelay {
				t.Errorf("the caller's environment was changed: %v", tc.env)
			}
		})
	}
}
