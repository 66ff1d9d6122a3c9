package queue

import (
	"sync"

	"github.com/qmailkit/qmailkit/internal/durable"
)

// dirSync shares directory fsyncs between concurrent injections (group
// commit) without a goroutine of its own: a caller that has changed the
// directory registers, and either becomes the leader, which fsyncs the
// directory for every caller registered before its fsync began, or waits
// for a leader whose fsync began after it registered.
//
// Correctness: a caller registers (seq++) only after its link or create has
// returned, and a leader records target = seq before calling fsync, so every
// registration <= target happened before the fsync started, and that fsync
// covers it. A failed fsync fails every caller it was meant to cover; none of
// them is told its entry is durable.
type dirSync struct {
	dir    string
	syncFn func(dir string) error // nil means durable.SyncDir; tests replace it

	mu      sync.Mutex
	cond    *sync.Cond
	seq     uint64 // registrations so far
	done    uint64 // every registration <= done is durable
	failed  uint64 // registrations <= failed were covered by a failed fsync ...
	failErr error  // ... with this error
	running bool
	fsyncs  uint64 // fsyncs issued, for tests and benchmarks
}

// sync returns when the change the caller made to the directory before
// calling it is durable.
func (d *dirSync) sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cond == nil {
		d.cond = sync.NewCond(&d.mu)
	}
	d.seq++
	me := d.seq
	for {
		if me <= d.failed && me > d.done {
			return d.failErr
		}
		if me <= d.done {
			return nil
		}
		if d.running {
			d.cond.Wait()
			continue
		}
		d.running = true
		target := d.seq
		d.fsyncs++
		d.mu.Unlock()
		fn := d.syncFn
		if fn == nil {
			fn = durable.SyncDir
		}
		err := fn(d.dir)
		d.mu.Lock()
		d.running = false
		if err != nil {
			d.failed, d.failErr = target, err
		} else if target > d.done {
			d.done = target
		}
		d.cond.Broadcast()
	}
}

func (d *dirSync) count() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fsyncs
}
