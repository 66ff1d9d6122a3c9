package connlimit

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
)

func TestClient(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
	} {
		if got := Client(netip.MustParseAddr(tc.addr)); got.String() != tc.want {
			t.Errorf("Client(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
	if got := Client(netip.Addr{}); got.IsValid() {
		t.Errorf("Client(invalid) = %s, want the zero prefix", got)
	}
}

func TestLimiter(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	v6a := netip.MustParseAddr("2001:db8::1")
	v6b := netip.MustParseAddr("2001:db8::2") // same /64
	l := &Limiter{Max: 4, PerClient: 2}
	var rel []func()
	take := func(addr netip.Addr, want error) {
		t.Helper()
		r, err := l.Acquire(addr)
		if !errors.Is(err, want) {
			t.Fatalf("Acquire(%s) = %v, want %v", addr, err, want)
		}
		if err == nil {
			rel = append(rel, r)
		}
	}
	take(a, nil)
	take(a, nil)
	take(a, ErrClient)
	take(v6a, nil)
	take(v6b, nil)
	take(v6a, ErrClient) // the /64 is one client
	take(b, ErrTotal)
	if l.Open() != 4 {
		t.Fatalf("Open = %d, want 4", l.Open())
	}
	rel[0]()
	rel[0]() // a second call changes nothing
	take(b, nil)
	take(a, ErrTotal)
	for _, r := range rel {
		r()
	}
	if l.Open() != 0 || len(l.per) != 0 {
		t.Fatalf("after release: Open = %d, per = %v", l.Open(), l.per)
	}
}

func TestZeroUnlimited(t *testing.T) {
	var l Limiter
	for range 1000 {
		if _, err := l.Acquire(netip.MustParseAddr("192.0.2.1")); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConcurrent(t *testing.T) {
	l := &Limiter{Max: 10, PerClient: 10}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if r, err := l.Acquire(netip.MustParseAddr("192.0.2.1")); err == nil {
					r()
				}
			}
		})
	}
	wg.Wait()
	if l.Open() != 0 {
		t.Fatalf("Open = %d after all released", l.Open())
	}
}

func TestAcquireTrusted(t *testing.T) {
	l := &Limiter{Max: 3, PerClient: 1}
	a := netip.MustParseAddr("192.0.2.1")
	if _, err := l.Acquire(a); err != nil {
		t.Fatal(err)
	}
	r1, err := l.AcquireTrusted()
	if err != nil {
		t.Fatalf("trusted beyond PerClient: %v", err)
	}
	if _, err := l.AcquireTrusted(); err != nil {
		t.Fatalf("second trusted: %v", err)
	}
	if _, err := l.AcquireTrusted(); !errors.Is(err, ErrTotal) {
		t.Fatalf("trusted beyond Max: %v, want ErrTotal", err)
	}
	r1()
	r1()
	if l.Open() != 2 {
		t.Fatalf("Open = %d after one trusted release, want 2", l.Open())
	}
}
