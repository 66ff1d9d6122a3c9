package durable

import "sync"

// GroupSync shares an fsync between concurrent callers that changed the same
// directory (group commit), without a goroutine of its own: a caller that
// has made its change calls Sync, and either becomes the leader, which runs
// Fn for every caller registered before Fn began, or waits for a leader
// whose Fn began after it registered.
//
// Correctness: a caller registers (seq++) only after its change has
// returned, and a leader records target = seq before calling Fn, so every
// registration <= target happened before the fsync started, and that fsync
// covers it. A failed fsync fails every caller it was meant to cover; none
// of them is told its change is durable.
//
// Fn must be set before the first Sync. The zero value is otherwise ready.
type GroupSync struct {
	Fn func() error

	mu      sync.Mutex
	cond    *sync.Cond
	seq     uint64 // registrations so far
	done    uint64 // every registration <= done is durable
	failed  uint64 // registrations <= failed were covered by a failed fsync ...
	failErr error  // ... with this error
	running bool
	calls   uint64 // fsyncs issued, for tests and benchmarks
}

// Sync returns when the change the caller made before calling it is
// durable, or with the error of the fsync that was to cover it.
func (g *GroupSync) Sync() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	g.seq++
	me := g.seq
	for {
		if me <= g.failed && me > g.done {
			return g.failErr
		}
		if me <= g.done {
			return nil
		}
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		target := g.seq
		g.calls++
		g.mu.Unlock()
		err := g.Fn()
		g.mu.Lock()
		g.running = false
		if err != nil {
			g.failed, g.failErr = target, err
		} else if target > g.done {
			g.done = target
		}
		g.cond.Broadcast()
	}
}

// Count returns the number of fsyncs run so far.
func (g *GroupSync) Count() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls
}
