package durable

import (
	"errors"
	"testing"
	"time"
)

// Group commit: callers that register while a leader's fsync runs share the
// next fsync; a failed fsync fails everyone it covered.
func TestGroupSync(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	var calls int
	var fail bool
	d := &GroupSync{}
	d.Fn = func() error {
		calls++
		started <- struct{}{}
		<-release
		if fail {
			return errors.New("EIO")
		}
		return nil
	}
	run := func(n int) chan error {
		errs := make(chan error, n)
		for range n {
			go func() { errs <- d.Sync() }()
		}
		return errs
	}
	first := run(1)
	<-started // the leader is inside fsync
	rest := run(5)
	for { // wait until all five have registered
		d.mu.Lock()
		s := d.seq
		d.mu.Unlock()
		if s == 6 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	release <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-started // one of the five leads the second fsync, for all five
	release <- struct{}{}
	for range 5 {
		if err := <-rest; err != nil {
			t.Fatal(err)
		}
	}
	if calls != 2 {
		t.Errorf("%d fsyncs for 6 callers, want 2", calls)
	}
	fail = true
	errs := run(1)
	<-started
	release <- struct{}{}
	if err := <-errs; err == nil {
		t.Error("failed fsync reported success")
	}
}
