package smtpclient

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPunycode(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"bücher.example", "xn--bcher-kva.example"},
		{"MÜNCHEN.de", "xn--mnchen-3ya.de"},
		{"例え.テスト", "xn--r8jz45g.xn--zckzah"},
		{"plain.example", "plain.example"},
		{"ñ", "xn--ida"},
	} {
		if got, ok := aLabel(tc.in); !ok || got != tc.want {
			t.Errorf("aLabel(%q) = %q %v, want %q", tc.in, got, ok, tc.want)
		}
	}
	if _, ok := aLabel("bad\xff.example"); ok {
		t.Error("invalid UTF-8 accepted")
	}
	if _, ok := aLabel(strings.Repeat("ü", 70) + ".example"); ok {
		t.Error("over-long label accepted")
	}
}

// Non-ASCII domains are looked up in A-label form (RFC 5890).
func TestLookupIDN(t *testing.T) {
	srv, r := newDNS(t, "xn--bcher-kva.example. 300 IN A 192.0.2.8")
	c := &Client{Resolver: r, LocalAddrs: noLocal, Network: "ip4"}
	d, err := c.Lookup(t.Context(), "bücher.example")
	if err != nil || len(d.Hosts) != 1 || d.Hosts[0].Addr.String() != "192.0.2.8" {
		t.Fatalf("%v %v", d, err)
	}
	if q := srv.Queries(); !slices.Contains(q, "xn--bcher-kva.example. MX udp") {
		t.Errorf("queries %q", q)
	}
}

func TestDeliverNoRecipients(t *testing.T) {
	c := &Client{Resolver: staticResolver{}}
	res, err := c.Deliver(t.Context(), "example.net", "s@x", nil, strings.NewReader(testMsg))
	if err == nil || !IsPermanent(err) || string(res.Report()) != "DNo recipients were given. (#5.3.5)\n\x00" {
		t.Errorf("%q %v", res.Report(), err)
	}
}

// timeoutDialer never connects: every dial ends with the connect timeout.
type timeoutDialer struct {
	mu    sync.Mutex
	dials []string
}

func (d *timeoutDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.dials = append(d.dials, address)
	d.mu.Unlock()
	<-ctx.Done()
	return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
}

// qmail's tcpto: an address that timed out twice, 120 s apart, is skipped
// for an hour; a successful connect clears it.
func TestTCPTO(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := &timeoutDialer{}
	c := &Client{
		Hostname:   "h",
		Resolver:   staticResolver{ip: map[string][]netip.Addr{"example.net": addrs("192.0.2.1")}},
		Dialer:     d,
		Timeouts:   Timeouts{Connect: 20 * time.Millisecond},
		Now:        func() time.Time { return now },
		LocalAddrs: noLocal,
	}
	deliver := func() error {
		_, err := c.Deliver(t.Context(), "example.net", "s@x", []string{"r@example.net"}, strings.NewReader(testMsg))
		return err
	}
	for i, step := range []struct {
		advance time.Duration
		dials   int
	}{
		{0, 1},                // first timeout: count 1
		{time.Minute, 2},      // within 120 s: count stays 1, still tried
		{2 * time.Minute, 3},  // count 2
		{time.Minute, 3},      // skipped
		{50 * time.Minute, 3}, // still skipped
		{15 * time.Minute, 4}, // hold over: tried again
	} {
		now = now.Add(step.advance)
		err := deliver()
		if !errors.Is(err, ErrNoConnection) || IsPermanent(err) {
			t.Errorf("step %d: %v", i, err)
		}
		if len(d.dials) != step.dials {
			t.Errorf("step %d: %d dials, want %d", i, len(d.dials), step.dials)
		}
	}
	// A connection refused (not a timeout) clears the record.
	c.tcptoRecord(netip.MustParseAddr("192.0.2.1"), errors.New("refused"))
	if c.tcptoSkip(netip.MustParseAddr("192.0.2.1")) {
		t.Error("still skipped after a non-timeout failure")
	}
}

// A slow QUIT delays the result by at most Timeouts.Quit.
func TestQuitDoesNotDelay(t *testing.T) {
	f := newFake(t)
	release := make(chan struct{})
	f.SetReply(func(step string, n int, line string) string {
		if step == "QUIT" {
			<-release
		}
		return ""
	})
	defer close(release)
	c := fakeClient(t, f)
	c.Timeouts.Quit = 100 * time.Millisecond
	start := time.Now()
	if _, err := c.Deliver(t.Context(), "example.net", "s@x", []string{"r@example.net"}, strings.NewReader(testMsg)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("delivery took %v with a silent QUIT", d)
	}
}
