package queue

import "sync"

// Handing committed messages to the Scheduler.
//
// A Scheduler running on the Queue that injected a message need not list
// todo/ and read todo/N and the size of mess/S/N back: Commit hands it the
// message's number, envelope records and size (a fresh message) once
// todo/N is durable, and the Scheduler takes it from there as it would
// have from a scan. Scans still find what other processes queue, what
// was queued before the Scheduler started, and whatever the hand-over
// dropped (see freshMax).
//
// A message is never taken both ways: from the moment Commit is about to
// link todo/N until the Scheduler has taken the fresh message, N is
// pending, and the Scheduler passes over N in a scan's list while it is.
// So the envelope a fresh message carries is always that of the todo/N on
// disk: N can neither be delivered through a scan, nor its inode be
// reused for another message N, before the fresh message is taken.

// freshMax bounds the fresh messages waiting for the Scheduler; beyond it
// they are dropped (they are in todo/) and the Scheduler lists todo/.
const freshMax = 1024

// freshMsg is a committed message as the Scheduler would read it back.
type freshMsg struct {
	id   ID
	todo []byte // todo/N's content
	size int64  // mess/S/N's size
	dsn  bool   // dsn/N exists
}

// freshList holds the fresh messages of one Queue.
type freshList struct {
	mu      sync.Mutex
	msgs    []freshMsg
	pending map[ID]int // being committed, or in msgs
	lost    bool       // a fresh message was dropped since the last take
}

// begin marks id pending before its todo link is made.
func (l *freshList) begin(id ID) {
	l.mu.Lock()
	if l.pending == nil {
		l.pending = map[ID]int{}
	}
	l.pending[id]++
	l.mu.Unlock()
}

// end hands m over (commit), or with a nil todo only unmarks its id (a
// failed commit).
func (l *freshList) end(m freshMsg) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if m.todo != nil && len(l.msgs) < freshMax {
		l.msgs = append(l.msgs, m)
		return
	}
	if m.todo != nil {
		l.lost = true
	}
	l.unmark(m.id)
}

func (l *freshList) unmark(id ID) {
	if l.pending[id]--; l.pending[id] <= 0 {
		delete(l.pending, id)
	}
}

// take removes and returns up to n fresh messages, oldest first, and
// whether any was dropped since the last take (so that todo/ needs a scan).
func (l *freshList) take(n int) ([]freshMsg, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n = min(n, len(l.msgs))
	out := make([]freshMsg, n)
	copy(out, l.msgs)
	for _, m := range out {
		l.unmark(m.id)
	}
	l.msgs = append(l.msgs[:0], l.msgs[n:]...)
	lost := l.lost
	l.lost = false
	return out, lost
}

// waiting reports whether fresh messages wait to be taken.
func (l *freshList) waiting() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.msgs) > 0
}

// count returns the number of fresh messages waiting to be taken.
func (l *freshList) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.msgs)
}

// isPending reports whether id will come, or is waiting, as a fresh
// message.
func (l *freshList) isPending(id ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pending[id] > 0
}
