package smtpclient

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/qmailkit/qmailkit/smtpclient/scripted"
)

var _ Dialer = (*scripted.Server)(nil)

func TestPoolReuse(t *testing.T) {
	f := newFake(t)
	f.SetExt([]string{"PIPELINING"})
	c := fakeClient(t, f)
	c.Pool = &Pool{IdleTimeout: time.Minute}
	defer c.Pool.Close()
	for i := range 3 {
		res := deliverTo(t, c, []string{"r" + string(rune('0'+i)) + "@example.net"}, testMsg)
		if res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	if f.Conns() != 1 || c.Pool.Idle() != 1 {
		t.Fatalf("%d connections, %d idle; want 1 and 1", f.Conns(), c.Pool.Idle())
	}
	c.Pool.Close()
	f.Settle()
	log := f.Log()
	if countOf(log, "RSET") != 2 || countOf(log, "<data>") != 3 || log[len(log)-1] != "QUIT" || countOf(log, "EHLO helo.example.org") != 1 {
		t.Errorf("dialogue %q", log)
	}
	// A closed pool keeps nothing.
	if res := deliverTo(t, c, []string{"r@example.net"}, testMsg); res.Err != nil || c.Pool.Idle() != 0 {
		t.Errorf("after Close: %v, %d idle", res.Err, c.Pool.Idle())
	}
}

// A pooled connection the server has closed is replaced transparently; one
// whose RSET is refused too.
func TestPoolStale(t *testing.T) {
	f := newFake(t)
	f.SetExt([]string{})
	c := fakeClient(t, f)
	c.Pool = &Pool{}
	defer c.Pool.Close()
	f.SetReply(step1("RSET", "CLOSE"))
	for range 2 {
		if res := deliverTo(t, c, []string{"r@example.net"}, testMsg); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	f.SetReply(func(step string, n int, line string) string {
		if step == "RSET" {
			return "500 what"
		}
		return ""
	})
	if res := deliverTo(t, c, []string{"r@example.net"}, testMsg); res.Err != nil {
		t.Fatal(res.Err)
	}
	if f.Conns() != 3 {
		t.Errorf("%d connections, want 3", f.Conns())
	}
}

func TestPoolBounds(t *testing.T) {
	a, b := newFake(t), newFake(t)
	c := fakeClient(t, a)
	c.Pool = &Pool{MaxIdlePerHost: 1, MaxIdle: 1}
	defer c.Pool.Close()
	// Two deliveries at once to one host: two connections, one kept.
	block := make(chan struct{})
	a.SetReply(func(step string, n int, line string) string {
		if step == "MAIL" {
			<-block
		}
		return ""
	})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := c.Deliver(t.Context(), "example.net", "s@x", []string{"r@example.net"}, strings.NewReader(testMsg)); err != nil {
				t.Error(err)
			}
		})
	}
	for a.Conns() < 2 {
		time.Sleep(time.Millisecond)
	}
	close(block)
	wg.Wait()
	if c.Pool.Idle() != 1 {
		t.Errorf("%d idle, want 1", c.Pool.Idle())
	}
	// A second host: the overall bound evicts the first host's connection.
	c.Routes = mustRoutes(t, ":127.0.0.1:"+itoa(b.Port))
	if res := deliverTo(t, c, []string{"r@example.net"}, testMsg); res.Err != nil {
		t.Fatal(res.Err)
	}
	a.Settle()
	if c.Pool.Idle() != 1 || countOf(a.Log(), "QUIT") != 2 {
		t.Errorf("%d idle; first host's dialogue %q", c.Pool.Idle(), a.Log())
	}
}

// Idle connections are ended with QUIT after IdleTimeout.
func TestPoolIdleExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := scripted.Pipe(t)
		f.SetExt([]string{"PIPELINING"})
		c := &Client{
			Hostname:   "h",
			Dialer:     f,
			Routes:     mustRoutes(t, ":192.0.2.1"),
			Pool:       &Pool{IdleTimeout: 5 * time.Second},
			LocalAddrs: noLocal,
		}
		deliver := func() {
			if _, err := c.Deliver(t.Context(), "example.net", "s@x", []string{"r@example.net"}, strings.NewReader(testMsg)); err != nil {
				t.Fatal(err)
			}
		}
		deliver()
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if c.Pool.Idle() != 1 {
			t.Fatalf("%d idle after 4 s", c.Pool.Idle())
		}
		deliver() // reuses, and restarts the idle clock
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if c.Pool.Idle() != 1 || f.Conns() != 1 {
			t.Fatalf("%d idle, %d connections", c.Pool.Idle(), f.Conns())
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if c.Pool.Idle() != 0 {
			t.Fatalf("%d idle after the timeout", c.Pool.Idle())
		}
		f.Settle()
		if log := f.Log(); log[len(log)-1] != "QUIT" || !slices.Contains(log, "RSET") {
			t.Errorf("dialogue %q", log)
		}
	})
}

// MaxConnsPerHost: concurrent deliveries to one address share at most that
// many connections; a delivery whose context ends while waiting fails
// temporarily.
func TestPoolMaxConnsPerHost(t *testing.T) {
	f := newFake(t)
	f.SetExt([]string{"PIPELINING"})
	c := fakeClient(t, f)
	c.Pool = &Pool{MaxConnsPerHost: 2, MaxIdlePerHost: 4}
	defer c.Pool.Close()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := c.Deliver(t.Context(), "example.net", "s@x", []string{"r@example.net"}, strings.NewReader(testMsg)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	c.Pool.Close()
	f.Settle()
	if f.Conns() > 2 || len(f.Data()) != 8 {
		t.Errorf("%d connections for 8 messages (want at most 2); %d delivered", f.Conns(), len(f.Data()))
	}
	// Both connections busy: a delivery waits, and gives up with its context.
	c.Pool = &Pool{MaxConnsPerHost: 2}
	defer c.Pool.Close()
	block := make(chan struct{})
	f.SetReply(func(step string, n int, line string) string {
		if step == "MAIL" {
			<-block
		}
		return ""
	})
	before := f.Conns()
	for range 2 {
		wg.Go(func() {
			c.Deliver(t.Context(), "example.net", "s@x", []string{"r@example.net"}, strings.NewReader(testMsg))
		})
	}
	for f.Conns() < before+2 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	res, err := c.Deliver(ctx, "example.net", "s@x", []string{"r@example.net"}, strings.NewReader(testMsg))
	if err == nil || IsPermanent(err) || !strings.HasPrefix(string(res.Report()), "ZSorry, I wasn't able to establish an SMTP connection.") {
		t.Errorf("waiting delivery: %v", err)
	}
	close(block)
	wg.Wait()
}

// MaxConns: an idle connection to another address is closed to make room.
func TestPoolMaxConns(t *testing.T) {
	a, b := newFake(t), newFake(t)
	c := fakeClient(t, a)
	c.Pool = &Pool{MaxConns: 1}
	defer c.Pool.Close()
	if res := deliverTo(t, c, []string{"r@example.net"}, testMsg); res.Err != nil {
		t.Fatal(res.Err)
	}
	c.Routes = mustRoutes(t, ":127.0.0.1:"+itoa(b.Port))
	if res := deliverTo(t, c, []string{"r@example.net"}, testMsg); res.Err != nil {
		t.Fatal(res.Err)
	}
	a.Settle()
	if log := a.Log(); log[len(log)-1] != "QUIT" || c.Pool.Idle() != 1 {
		t.Errorf("first host's dialogue %q, %d idle", log, c.Pool.Idle())
	}
}
