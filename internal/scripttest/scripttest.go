// Package scripttest is what the test servers smtpserver/smtptest and
// pop3/pop3test share, so that both script, record and run alike:
//
//   - a [Script] of rules: where a rule applies (an SMTP stage, a POP3
//     command) and what it does are each server's own; when it applies
//     ([Limits]: on which attempts, how many times), its delay, and how the
//     rules that apply at one point are combined ([Script.Match]) are
//     common;
//   - a [Record] of attempts, one per connection, numbered from 1 in the
//     order they were accepted, with the connections still open;
//   - a [Lifecycle]: started once on 127.0.0.1, a listener that numbers the
//     connections and may refuse one itself, delays that end when the
//     server closes, and a Close that shuts the engine down, closes the
//     connections left and waits for the refusals.
package scripttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Limits say when a rule applies, besides where: on which attempts, and
// how many times. The zero value applies always.
type Limits struct {
	// Attempts are the numbers of the attempts the rule is for; empty
	// means every attempt.
	Attempts []int
	// Times is how many uses the rule has before it no longer applies; 0
	// means no limit.
	Times int
}

// OnAttempt returns l with the attempts numbered n added (a copy: l's
// slice is not changed).
func (l Limits) OnAttempt(n ...int) Limits {
	l.Attempts = append(append([]int(nil), l.Attempts...), n...)
	return l
}

// Applies reports whether the rule is for attempt n.
func (l Limits) Applies(n int) bool {
	if len(l.Attempts) == 0 {
		return true
	}
	for _, k := range l.Attempts {
		if k == n {
			return true
		}
	}
	return false
}

// Prefix describes the attempts at the start of a rule's description:
// "on attempt [1 2] ", or "" for every attempt.
func (l Limits) Prefix() string {
	if len(l.Attempts) == 0 {
		return ""
	}
	return fmt.Sprintf("on attempt %v ", l.Attempts)
}

// Suffix describes the times at the end of a rule's description:
// ", 2 times", or "" without a limit.
func (l Limits) Suffix() string {
	if l.Times <= 0 {
		return ""
	}
	return fmt.Sprintf(", %d times", l.Times)
}

// Check reports what makes the limits unusable, or "".
func (l Limits) Check() string {
	if l.Times < 0 {
		return "negative Times"
	}
	return ""
}

// Entry is a rule as a [Script] holds it: the server's own rule, and what
// the script needs to know of it.
type Entry[R any] struct {
	Rule   R
	Limits Limits
	// Delay is waited before the rule's decision; for a DelayOnly rule it
	// is added to the wait of the point it applies to.
	Delay time.Duration
	// DelayOnly marks a rule that decides nothing: it slows the point
	// and lets the other rules, or the server, decide.
	DelayOnly bool
	// Key names a rule that [Script.Set] replaces; "" for none.
	Key string
}

// entry is an Entry in a script, with its count of uses.
type entry[R any] struct {
	Entry[R]
	used atomic.Int64
}

// use counts a use of the rule, and reports false when its Times are used
// up.
func (e *entry[R]) use() bool {
	for {
		u := e.used.Load()
		if e.Limits.Times > 0 && u >= int64(e.Limits.Times) {
			return false
		}
		if e.used.CompareAndSwap(u, u+1) {
			return true
		}
	}
}

// Script is an ordered list of rules; its methods may be called from
// several goroutines at once. The zero value is an empty script.
type Script[R any] struct {
	mu      sync.Mutex
	entries []*entry[R]
}

// Add appends rules to the script, all at once.
func (s *Script[R]) Add(es ...Entry[R]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range es {
		s.entries = append(s.entries, &entry[R]{Entry: e})
	}
}

// Clear removes every rule.
func (s *Script[R]) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = nil
}

// Set replaces the rule whose Key is e's, keeping its place (and starting
// its count of uses again), or appends e when there is none; with remove,
// it removes the rule with that Key instead.
func (s *Script[R]) Set(e Entry[R], remove bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, old := range s.entries {
		if old.Key == e.Key {
			if remove {
				s.entries = append(s.entries[:i:i], s.entries[i+1:]...)
			} else {
				s.entries[i] = &entry[R]{Entry: e}
			}
			return
		}
	}
	if !remove {
		s.entries = append(s.entries, &entry[R]{Entry: e})
	}
}

// Match decides one point of attempt n. It takes, in the order they were
// added, the rules for which applies is true and whose Limits apply to n:
// each DelayOnly rule adds its Delay while its Times last; the first other
// rule for which decides is true, and whose Times last, decides, and adds
// its Delay. decides is not called once a rule has decided, nor for a
// DelayOnly rule; applies and decides are called without the script's lock
// held. Match returns the total delay and the deciding rule, ok false when
// none decided.
func (s *Script[R]) Match(n int, applies, decides func(R) bool) (delay time.Duration, rule R, ok bool) {
	s.mu.Lock()
	entries := append([]*entry[R](nil), s.entries...)
	s.mu.Unlock()
	for _, e := range entries {
		if !e.Limits.Applies(n) || !applies(e.Rule) {
			continue
		}
		switch {
		case e.DelayOnly:
			if e.use() {
				delay += e.Delay
			}
		case ok:
		case decides(e.Rule) && e.use():
			delay += e.Delay
			rule, ok = e.Rule, true
		}
	}
	return delay, rule, ok
}

// Record numbers the attempts (connections) of a server and keeps them,
// with the connections still open by client address. It has no lock: the
// server's lock guards it, as it guards the attempts' fields. The zero
// value is empty.
type Record[A any, C comparable] struct {
	attempts []*A
	n        int
	live     map[string]C
}

// Begin records a new attempt from client on the open connection c: it
// gives it the next number and makes it with newAttempt.
func (r *Record[A, C]) Begin(client string, c C, newAttempt func(number int) *A) *A {
	r.n++
	a := newAttempt(r.n)
	r.attempts = append(r.attempts, a)
	if r.live == nil {
		r.live = map[string]C{}
	}
	r.live[client] = c
	return a
}

// Conn returns the open connection from client, or the zero C.
func (r *Record[A, C]) Conn(client string) C { return r.live[client] }

// End forgets c as the open connection from client, unless another has
// taken its place.
func (r *Record[A, C]) End(client string, c C) {
	if r.live[client] == c {
		delete(r.live, client)
	}
}

// Open returns the open connections.
func (r *Record[A, C]) Open() []C {
	out := make([]C, 0, len(r.live))
	for _, c := range r.live {
		out = append(out, c)
	}
	return out
}

// Attempts returns the attempts in order, each copied by clone.
func (r *Record[A, C]) Attempts(clone func(*A) A) []A {
	out := make([]A, len(r.attempts))
	for i, a := range r.attempts {
		out[i] = clone(a)
	}
	return out
}

// Reset forgets the attempts: the next is number 1 again. The open
// connections stay open and known.
func (r *Record[A, C]) Reset() {
	r.attempts, r.n = nil, 0
}

// Lifecycle runs a test server: started once, on 127.0.0.1, and closed
// once. The zero value is ready; Name prefixes its errors.
type Lifecycle struct {
	// Name is the package, "smtptest" or "pop3test", for errors.
	Name string

	mu        sync.Mutex
	started   bool
	closing   chan struct{}
	closeOnce sync.Once
	done      chan error     // Serve's result, once Serve was called
	wg        sync.WaitGroup // the goroutines of Go
}

// Begin marks the server started; it fails when it was already.
func (l *Lifecycle) Begin() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started {
		return errors.New(l.Name + ": server already started")
	}
	l.started = true
	return nil
}

// Listen listens on 127.0.0.1 on a port of the system's choosing. The
// listener it returns calls accepted with each connection: accepted
// returns the connection to hand to the engine, or false when it took
// care of the connection itself (a refusal run with [Lifecycle.Go]).
func (l *Lifecycle) Listen(accepted func(net.Conn) (net.Conn, bool)) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%s: listen: %w", l.Name, err)
	}
	return &listener{Listener: ln, accepted: accepted}, nil
}

// Serve runs serve(ln) in a goroutine of its own, whose end Close waits
// for.
func (l *Lifecycle) Serve(ln net.Listener, serve func(net.Listener) error) {
	l.mu.Lock()
	l.done = make(chan error, 1)
	done := l.done
	l.mu.Unlock()
	go func() { done <- serve(ln) }()
}

// listener hands on the connections accepted returns.
type listener struct {
	net.Listener
	accepted func(net.Conn) (net.Conn, bool)
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c, ok := l.accepted(nc); ok {
			return c, nil
		}
	}
}

// Go runs f in a goroutine that Close waits for.
func (l *Lifecycle) Go(f func()) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f()
	}()
}

// Closing returns a channel closed when Close begins.
func (l *Lifecycle) Closing() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing == nil {
		l.closing = make(chan struct{})
	}
	return l.closing
}

// Sleep waits d, or until ctx is done or the server closes; it reports
// whether d passed. A d of 0 or less does not wait.
func (l *Lifecycle) Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-l.Closing():
	}
	return false
}

// Close closes the server once: it ends every Sleep, and if Serve was
// called, shuts the engine down with shutdown (given 5 s; kill when it did
// not finish), waits for Serve to return, closes the connections open
// gives, and waits for the goroutines of Go.
func (l *Lifecycle) Close(shutdown func(context.Context) error, kill func() error, open func() []net.Conn) {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		if l.closing == nil {
			l.closing = make(chan struct{})
		}
		close(l.closing)
		done := l.done
		l.mu.Unlock()
		if done == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			kill()
		}
		<-done
		for _, c := range open() {
			c.Close()
		}
		l.wg.Wait()
	})
}

// Host returns the IP address of addr ("127.0.0.1:2525" gives
// "127.0.0.1").
func Host(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

// Port returns the port of addr, 0 if it has none.
func Port(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}
