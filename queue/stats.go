package queue

import (
	"sync"
	"time"
)

// What a Scheduler tells an operator without reading the queue: counts
// it keeps in memory ([Scheduler.Stats]), and each recipient's final
// outcome ([Scheduler.Observe]).

// heartbeatInterval is the longest the scheduler's loop sleeps, so that
// [SchedulerStats.Heartbeat] tells a loop that is stuck from one that is idle.
const heartbeatInterval = 10 * time.Second

// oldestInterval is how often the oldest message's birth is looked for
// again among the messages in memory (a walk of the scheduler's map, not
// of the queue's directories).
const oldestInterval = time.Second

// SchedulerStats is the state of a Scheduler, as its loop last published it.
type SchedulerStats struct {
	// Running is true from the start of Run until it returns.
	Running bool
	// Heartbeat is when Run's loop last went round, by Scheduler.Now. An
	// idle loop goes round at least every 10 seconds; a heartbeat much
	// older than that means the loop is stuck.
	Heartbeat time.Time
	// Messages is the number of messages the scheduler knows of: those it
	// has preprocessed (or is delivering straight from todo/), plus
	// Unprocessed. A message queued by another process counts from the
	// moment its trigger or a rescan of todo/ makes the scheduler list it.
	Messages int
	// Unprocessed is the number of messages listed in todo/, or handed
	// over by this process's Queue, that are not yet preprocessed.
	Unprocessed int
	// Oldest is the arrival time of the oldest preprocessed message in the
	// queue (its info file's mtime, from which retries count), at most a
	// second out of date; zero when there is none.
	Oldest time.Time
}

// Outcome is the final result of a delivery to one recipient, given to
// [Scheduler.Observe]. A deferral is not final: the recipient is tried
// again, and has an Outcome once it is delivered or bounced.
type Outcome struct {
	ID        ID
	Remote    bool   // the remote channel (else local)
	Recipient string // as delivered: after routing (virtual domain prefix added)
	// Success is true for a delivery, false for a permanent failure
	// (bounced), including a temporary failure of a message older than
	// the queue lifetime.
	Success bool
	// Age is the time from the message's arrival (its birth, as for
	// retries) to the outcome.
	Age time.Duration
}

// statsBox is where the loop publishes Stats for other goroutines.
type statsBox struct {
	mu sync.Mutex
	st SchedulerStats
}

// Stats returns the counts Run's loop last published: it reads no file,
// so that a metrics scrape costs nothing however large the queue. Before
// Run (and after it returned) Running is false and the counts are zero.
func (s *Scheduler) Stats() SchedulerStats {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	return s.stats.st
}

// publish stores the run's counts for Scheduler.Stats.
func (r *run) publish(now time.Time) {
	if len(r.msgs) == 0 {
		r.oldest = time.Time{}
	} else if !now.Before(r.nextOldest) {
		var oldest time.Time
		for _, m := range r.msgs {
			if oldest.IsZero() || !m.birth.IsZero() && m.birth.Before(oldest) {
				oldest = m.birth
			}
		}
		r.oldest, r.nextOldest = oldest, now.Add(oldestInterval)
	}
	unproc := len(r.todo) + r.q.fresh.count()
	b := &r.s.stats
	b.mu.Lock()
	b.st = SchedulerStats{Running: true, Heartbeat: now, Messages: len(r.msgs) + unproc, Unprocessed: unproc, Oldest: r.oldest}
	b.mu.Unlock()
}

// stopped publishes that Run has returned.
func (s *Scheduler) stopped() {
	s.stats.mu.Lock()
	s.stats.st = SchedulerStats{}
	s.stats.mu.Unlock()
}

// observe tells Observe, if set, of a recipient's final outcome.
func (r *run) observe(j *job, rcpt string, success bool) {
	if r.s.Observe == nil {
		return
	}
	r.s.Observe(Outcome{ID: j.m.id, Remote: j.remote, Recipient: rcpt, Success: success, Age: max(r.now().Sub(j.m.birth), 0)})
}
