package smtpclient

import (
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestSend(t *testing.T) {
	one, two := newFake(t), newFake(t)
	two.SetReply(func(step string, n int, line string) string {
		if step == "RCPT" && strings.Contains(line, "nobody") {
			return "550 5.1.1 no such user"
		}
		return ""
	})
	c := &Client{
		Hostname:   "h",
		Resolver:   staticResolver{ip: map[string][]netip.Addr{"one.example": addrs("127.0.0.2"), "two.example": addrs("127.0.0.3")}},
		Dialer:     portDialer{"127.0.0.2": one.Port, "127.0.0.3": two.Port},
		LocalAddrs: noLocal,
	}
	rcpts := []string{"a@one.example", "b@two.example", "c@ONE.example", "nobody@two.example", "nodomain"}
	results, err := c.Send(t.Context(), "s@x", rcpts, strings.NewReader(testMsg))
	if err == nil || !strings.Contains(err.Error(), "nobody@two.example") || !strings.Contains(err.Error(), "nodomain") {
		t.Errorf("err %v", err)
	}
	for i, r := range results {
		if r.Address != rcpts[i] {
			t.Errorf("result %d is for %s", i, r.Address)
		}
		ok := i == 0 || i == 1 || i == 2
		if (r.Err == nil) != ok || (!ok && !IsPermanent(r.Err)) {
			t.Errorf("%s: %v", r.Address, r.Err)
		}
	}
	if !errors.Is(results[4].Err, ErrNoHost) {
		t.Errorf("no domain: %v", results[4].Err)
	}
	one.Settle()
	two.Settle()
	if one.Conns() != 1 || two.Conns() != 1 {
		t.Errorf("connections %d %d, want one per domain", one.Conns(), two.Conns())
	}
	want := "Subject: t\r\n\r\nhello\r\n.\r\n"
	if d1, d2 := one.Data(), two.Data(); !slices.Equal(d1, []string{want}) || !slices.Equal(d2, []string{want}) {
		t.Errorf("data %q %q", d1, d2)
	}
	if !slices.Contains(one.Log(), "RCPT TO:<c@ONE.example>") {
		t.Errorf("recipients grouped wrongly: %q", one.Log())
	}
}

// Many concurrent Sends through one Client: DNS through dnstest, a Pool,
// several domains on two servers. Run with -race.
func TestSendConcurrent(t *testing.T) {
	one, two := newFake(t), newFake(t)
	one.SetExt([]string{"PIPELINING", "8BITMIME", "SIZE 1000000"})
	two.SetExt([]string{})
	_, r := newDNS(t,
		"a.example. 300 IN MX 10 mx1.example.",
		"b.example. 300 IN MX 10 mx1.example.",
		"c.example. 300 IN MX 10 mx2.example.",
		"mx1.example. 300 IN A 127.0.0.2",
		"mx2.example. 300 IN A 127.0.0.3",
	)
	c := &Client{
		Hostname:   "h",
		Resolver:   r,
		Dialer:     portDialer{"127.0.0.2": one.Port, "127.0.0.3": two.Port},
		LocalAddrs: noLocal,
		Network:    "ip4",
		Pool:       &Pool{MaxConnsPerHost: 3, MaxIdlePerHost: 3},
	}
	defer c.Pool.Close()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			rcpts := []string{"x" + strconv.Itoa(i) + "@a.example", "y@b.example", "z@c.example"}
			results, err := c.Send(t.Context(), "s@x", rcpts, strings.NewReader(testMsg))
			if err != nil {
				t.Error(err)
			}
			for _, r := range results {
				if r.Err != nil {
					t.Errorf("%s: %v", r.Address, r.Err)
				}
			}
		})
	}
	wg.Wait()
	c.Pool.Close()
	one.Settle()
	two.Settle()
	if got := len(one.Data()) + len(two.Data()); got != 60 {
		t.Errorf("%d messages received, want 60", got)
	}
	if one.Conns() > 3 || two.Conns() > 3 {
		t.Errorf("connections %d and %d, want at most 3 each", one.Conns(), two.Conns())
	}
}
