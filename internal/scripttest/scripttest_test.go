package scripttest

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLimits(t *testing.T) {
	tests := []struct {
		name           string
		l              Limits
		applies        map[int]bool
		prefix, suffix string
		check          string
	}{
		{"zero", Limits{}, map[int]bool{1: true, 7: true}, "", "", ""},
		{"attempts", Limits{}.OnAttempt(1, 3), map[int]bool{1: true, 2: false, 3: true}, "on attempt [1 3] ", "", ""},
		{"attempts twice", Limits{}.OnAttempt(2).OnAttempt(4), map[int]bool{2: true, 4: true, 1: false}, "on attempt [2 4] ", "", ""},
		{"times", Limits{Times: 2}, map[int]bool{1: true}, "", ", 2 times", ""},
		{"negative times", Limits{Times: -1}, map[int]bool{1: true}, "", "", "negative Times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for n, want := range tt.applies {
				if got := tt.l.Applies(n); got != want {
					t.Errorf("Applies(%d) = %v, want %v", n, got, want)
				}
			}
			if got := tt.l.Prefix(); got != tt.prefix {
				t.Errorf("Prefix() = %q, want %q", got, tt.prefix)
			}
			if got := tt.l.Suffix(); got != tt.suffix {
				t.Errorf("Suffix() = %q, want %q", got, tt.suffix)
			}
			if got := tt.l.Check(); got != tt.check {
				t.Errorf("Check() = %q, want %q", got, tt.check)
			}
		})
	}
	// OnAttempt copies: a rule built from another does not change it.
	base := Limits{Attempts: make([]int, 1, 4)}
	a, b := base.OnAttempt(2), base.OnAttempt(3)
	if a.Attempts[1] != 2 || b.Attempts[1] != 3 || len(base.Attempts) != 1 || base.Attempts[:2][1] != 0 {
		t.Errorf("OnAttempt shares its slice: %v %v %v", base.Attempts, a.Attempts, b.Attempts)
	}
}

// rule is a test rule: a point, and a decision ("" for a delay only).
type rule struct{ at, does string }

func e(at, does string, delay time.Duration, l Limits) Entry[rule] {
	return Entry[rule]{Rule: rule{at, does}, Limits: l, Delay: delay, DelayOnly: does == ""}
}

func TestMatch(t *testing.T) {
	type try struct {
		attempt int
		at      string
		delay   time.Duration
		does    string // "" when nothing decided
	}
	tests := []struct {
		name  string
		rules []Entry[rule]
		tries []try
	}{
		{"nothing", nil, []try{{1, "MAIL", 0, ""}}},
		{"first decides", []Entry[rule]{e("MAIL", "451", 0, Limits{}), e("MAIL", "550", 0, Limits{})},
			[]try{{1, "MAIL", 0, "451"}, {2, "MAIL", 0, "451"}, {1, "RCPT", 0, ""}}},
		{"delays add, before and after the decision", []Entry[rule]{
			e("MAIL", "", time.Second, Limits{}), e("MAIL", "451", 2*time.Second, Limits{}),
			e("MAIL", "550", 4*time.Second, Limits{}), e("MAIL", "", 8*time.Second, Limits{})},
			[]try{{1, "MAIL", 11 * time.Second, "451"}}},
		{"on attempt", []Entry[rule]{e("DATA", "451", 0, Limits{}.OnAttempt(1, 2))},
			[]try{{1, "DATA", 0, "451"}, {2, "DATA", 0, "451"}, {3, "DATA", 0, ""}}},
		{"times: 451 then 250", []Entry[rule]{e("DATA", "451", 0, Limits{Times: 1})},
			[]try{{1, "DATA", 0, "451"}, {1, "DATA", 0, ""}, {2, "DATA", 0, ""}}},
		{"used up passes to the next", []Entry[rule]{e("RCPT", "451", 0, Limits{Times: 2}), e("RCPT", "550", 0, Limits{})},
			[]try{{1, "RCPT", 0, "451"}, {1, "RCPT", 0, "451"}, {1, "RCPT", 0, "550"}}},
		{"delay times", []Entry[rule]{e("MAIL", "", time.Second, Limits{Times: 1})},
			[]try{{1, "MAIL", time.Second, ""}, {1, "MAIL", 0, ""}}},
		{"not counted when not applying", []Entry[rule]{e("MAIL", "451", 0, Limits{Times: 1}.OnAttempt(2))},
			[]try{{1, "MAIL", 0, ""}, {2, "MAIL", 0, "451"}, {2, "MAIL", 0, ""}}},
		{"not counted after a decision", []Entry[rule]{e("MAIL", "421", 0, Limits{Times: 1}), e("MAIL", "451", 0, Limits{Times: 1})},
			[]try{{1, "MAIL", 0, "421"}, {1, "MAIL", 0, "451"}, {1, "MAIL", 0, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Script[rule]
			s.Add(tt.rules...)
			for i, try := range tt.tries {
				delay, r, ok := s.Match(try.attempt, func(r rule) bool { return r.at == try.at }, func(rule) bool { return true })
				does := ""
				if ok {
					does = r.does
				}
				if delay != try.delay || does != try.does {
					t.Errorf("try %d (attempt %d at %s): %v %q, want %v %q", i, try.attempt, try.at, delay, does, try.delay, try.does)
				}
			}
		})
	}
}

// Match asks decides only while nothing decided, never for a delay, and
// a rule decides only when decides says so (FailMessages' rule, which
// looks at the message).
func TestMatchDecides(t *testing.T) {
	var s Script[rule]
	s.Add(e("DATA", "", time.Second, Limits{}), e("DATA", "maybe", 0, Limits{}), e("DATA", "451", 0, Limits{}), e("DATA", "550", 0, Limits{}))
	for _, yes := range []bool{false, true} {
		var asked []string
		_, r, ok := s.Match(1, func(rule) bool { return true }, func(r rule) bool {
			asked = append(asked, r.does)
			return r.does != "maybe" || yes
		})
		want, wantAsked := "451", "maybe 451"
		if yes {
			want, wantAsked = "maybe", "maybe"
		}
		if !ok || r.does != want || strings.Join(asked, " ") != wantAsked {
			t.Errorf("maybe %v: decided %q %v, asked %q; want %q, asked %q", yes, r.does, ok, asked, want, wantAsked)
		}
	}
}

func TestSet(t *testing.T) {
	var s Script[rule]
	keyed := func(does string) Entry[rule] {
		x := e("RCPT", does, 0, Limits{Times: 1})
		x.Key = "bob"
		return x
	}
	s.Add(e("RCPT", "", time.Second, Limits{}))
	s.Set(keyed("550"), false)
	s.Add(e("RCPT", "451", 0, Limits{}))
	match := func() string {
		_, r, ok := s.Match(1, func(rule) bool { return true }, func(rule) bool { return true })
		if !ok {
			return ""
		}
		return r.does
	}
	if got := match(); got != "550" {
		t.Fatalf("keyed rule: %q", got)
	}
	if got := match(); got != "451" {
		t.Fatalf("keyed rule used up: %q", got)
	}
	s.Set(keyed("552"), false) // replaced in its place, its count anew
	if got := match(); got != "552" {
		t.Fatalf("replaced keyed rule: %q", got)
	}
	s.Set(keyed(""), true)
	s.Set(keyed(""), true) // removing what is not there
	if got := match(); got != "451" {
		t.Fatalf("removed keyed rule: %q", got)
	}
	s.Clear()
	if got := match(); got != "" {
		t.Fatalf("cleared script: %q", got)
	}
}

// Many goroutines matching a rule of one use: it decides exactly once.
// Many rules: each is taken in order, without a limit of its own.
func TestMatchConcurrentAndMany(t *testing.T) {
	var s Script[rule]
	s.Add(e("MAIL", "451", 0, Limits{Times: 1}))
	var wins atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, _, ok := s.Match(1, func(rule) bool { return true }, func(rule) bool { return true }); ok {
					wins.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("a rule of one use decided %d times", wins.Load())
	}

	var many Script[rule]
	for range 10000 {
		many.Add(e("RCPT", "", time.Millisecond, Limits{}))
	}
	many.Add(e("RCPT", "550", 0, Limits{}))
	delay, r, ok := many.Match(1, func(rule) bool { return true }, func(rule) bool { return true })
	if delay != 10*time.Second || !ok || r.does != "550" {
		t.Errorf("10000 delays then a refusal: %v %q %v", delay, r.does, ok)
	}
}

type attempt struct {
	n      int
	client string
}

func TestRecord(t *testing.T) {
	var r Record[attempt, *int]
	c1, c2, c3 := new(int), new(int), new(int)
	mk := func(client string) func(int) *attempt {
		return func(n int) *attempt { return &attempt{n, client} }
	}
	a1 := r.Begin("127.0.0.1:1", c1, mk("127.0.0.1:1"))
	a2 := r.Begin("127.0.0.1:2", c2, mk("127.0.0.1:2"))
	if a1.n != 1 || a2.n != 2 {
		t.Fatalf("numbers %d %d", a1.n, a2.n)
	}
	if r.Conn("127.0.0.1:1") != c1 || r.Conn("127.0.0.1:9") != nil {
		t.Error("Conn")
	}
	// The port reused by a new connection: the old one's end forgets
	// nothing.
	r.Begin("127.0.0.1:1", c3, mk("127.0.0.1:1"))
	r.End("127.0.0.1:1", c1)
	if r.Conn("127.0.0.1:1") != c3 {
		t.Error("End forgot a connection that took the old one's place")
	}
	r.End("127.0.0.1:2", c2)
	if open := r.Open(); len(open) != 1 || open[0] != c3 {
		t.Errorf("Open() = %v", open)
	}
	got := r.Attempts(func(a *attempt) attempt { return *a })
	if len(got) != 3 || got[2].n != 3 || got[0].client != "127.0.0.1:1" {
		t.Errorf("Attempts() = %v", got)
	}
	r.Reset()
	if len(r.Attempts(func(a *attempt) attempt { return *a })) != 0 {
		t.Error("Reset kept attempts")
	}
	if a := r.Begin("127.0.0.1:4", c1, mk("127.0.0.1:4")); a.n != 1 {
		t.Errorf("after Reset, attempt %d", a.n)
	}
	if r.Conn("127.0.0.1:1") != c3 {
		t.Error("Reset forgot an open connection")
	}
}

func TestHostPort(t *testing.T) {
	for _, tt := range []struct {
		addr string
		host string
		port int
	}{
		{"127.0.0.1:2525", "127.0.0.1", 2525},
		{"[::1]:25", "::1", 25},
		{"", "", 0},
		{"junk", "", 0},
	} {
		if h, p := Host(tt.addr), Port(tt.addr); h != tt.host || p != tt.port {
			t.Errorf("%q: %q %d, want %q %d", tt.addr, h, p, tt.host, tt.port)
		}
	}
}

func TestLifecycle(t *testing.T) {
	l := &Lifecycle{Name: "xtest"}
	if err := l.Begin(); err != nil {
		t.Fatal(err)
	}
	if err := l.Begin(); err == nil || err.Error() != "xtest: server already started" {
		t.Fatalf("second Begin: %v", err)
	}
	// Every second connection is refused by accepted itself.
	var n atomic.Int64
	refused := make(chan struct{})
	ln, err := l.Listen(func(c net.Conn) (net.Conn, bool) {
		if n.Add(1)%2 == 1 {
			l.Go(func() {
				defer c.Close()
				c.Write([]byte("refused\n"))
				<-l.Closing()
				close(refused)
			})
			return nil, false
		}
		return c, true
	})
	if err != nil {
		t.Fatal(err)
	}
	if Host(ln.Addr().String()) != "127.0.0.1" {
		t.Fatalf("listening on %s", ln.Addr())
	}
	var served []net.Conn
	var mu sync.Mutex
	shutdown := make(chan struct{})
	l.Serve(ln, func(ln net.Listener) error {
		go func() { <-shutdown; ln.Close() }()
		for {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			mu.Lock()
			served = append(served, c)
			mu.Unlock()
			c.Write([]byte("served\n"))
		}
	})
	read := func() string {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 16)
		k, _ := c.Read(b)
		return string(b[:k])
	}
	if got := read(); got != "refused\n" {
		t.Errorf("first connection: %q", got)
	}
	if got := read(); got != "served\n" {
		t.Errorf("second connection: %q", got)
	}
	// A Sleep ends when the server closes.
	slept := make(chan bool)
	go func() { slept <- l.Sleep(context.Background(), time.Hour) }()
	var killed bool
	l.Close(func(ctx context.Context) error {
		close(shutdown)
		return errors.New("not finished")
	}, func() error { killed = true; return nil }, func() []net.Conn {
		mu.Lock()
		defer mu.Unlock()
		return served
	})
	if !killed {
		t.Error("a failed shutdown was not followed by kill")
	}
	select {
	case <-refused: // Close waited for the refusal's goroutine
	default:
		t.Error("Close returned before the goroutines of Go")
	}
	select {
	case ok := <-slept:
		if ok {
			t.Error("Sleep reported its full time")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Sleep did not end at Close")
	}
	for _, c := range served {
		if _, err := c.Write([]byte("x")); err == nil {
			t.Error("a served connection left open")
		}
	}
	l.Close(nil, nil, nil) // once only: nothing is called again
}

func TestSleep(t *testing.T) {
	var l Lifecycle
	if !l.Sleep(context.Background(), 0) || !l.Sleep(context.Background(), -time.Second) {
		t.Error("no wait should report true")
	}
	if !l.Sleep(context.Background(), time.Millisecond) {
		t.Error("a short wait should pass")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if l.Sleep(ctx, time.Hour) {
		t.Error("a cancelled wait reported true")
	}
	// Close without Serve: Sleeps end, nothing else is called.
	l.Close(nil, nil, nil)
	if l.Sleep(context.Background(), time.Hour) {
		t.Error("a wait after Close reported true")
	}
}
