package queue

import (
	"context"
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// maxBouncing bounds the bounce injections in progress at once.
const maxBouncing = 20

// bounceDone reports a bounce injection started by complete.
type bounceDone struct {
	m   *msg
	qp  int
	err error
}

// complete finishes the messages whose completion is due (no channel file
// left), as qmail-send's messdone does: inject the bounce if there is one,
// log "end msg", remove info/, then have the cleaner remove the message.
// A message with a bounce has it injected in a goroutine; the rest of its
// completion happens when that reports back (bounceDone).
func (r *run) complete() {
	if len(r.completing) == 0 {
		return
	}
	now := r.now()
	keep := r.completing[:0]
	for _, m := range r.completing {
		if m.finished {
			continue
		}
		if m.injecting || r.exiting || m.doneAt.After(now) {
			keep = append(keep, m)
			continue
		}
		switch r.messdone(m) {
		case completed:
			continue
		case retryLater:
			m.doneAt = now.Add(completionRetry)
		}
		keep = append(keep, m)
	}
	clear(r.completing[len(keep):])
	r.completing = keep
}

type completion int

const (
	completed  completion = iota
	waiting               // bounce being injected, or no injection slot free
	retryLater            // failed; try again in 123 s
)

// messdone completes m, or starts its bounce injection.
func (r *run) messdone(m *msg) completion {
	q := r.q
	if !m.direct && q.exists("todo", m.id) {
		r.stale[m.id] = true
		delete(r.msgs, m.id) // requeued behind our back: preprocessing redoes it
		return completed
	}
	if q.exists("bounce", m.id) {
		if !m.loaded {
			if err := r.loadSender(m); err != nil {
				r.warn("unable to read " + Path("info", m.id, q.split))
				return retryLater
			}
		}
		env, double, triple := r.s.Bounce.envelope(m.sender)
		if !triple {
			if r.bouncing >= maxBouncing {
				return waiting // a bounceDone will wake the loop
			}
			r.bouncing++
			m.injecting = true
			now := r.now()
			dsn := r.loadDSN(m)
			if m.hasDSN && dsn == nil {
				r.bouncing--
				m.injecting = false
				return retryLater // dsn/N unreadable now: its report needs it
			}
			r.wg.Go(func() {
				qp, err := r.injectBounce(m, env, double, dsn, now)
				r.bounced <- bounceDone{m: m, qp: qp, err: err}
			})
			return waiting
		}
		r.info("triple bounce: discarding bounce/" + m.id.String())
		if err := q.pool.retire(q.path("bounce", m.id)); err != nil {
			r.warn("unable to unlink bounce/" + m.id.String())
			return retryLater
		}
	}
	if !r.endMsg(m) {
		if m.locked {
			m.doneAt = r.now().Add(r.endRetry(m))
			return waiting
		}
		return retryLater
	}
	return completed
}

// endRetry is how long after a failed endMsg it is tried again.
func (r *run) endRetry(m *msg) time.Duration {
	if m.locked {
		m.locked = false
		return lockedRetry
	}
	return completionRetry
}

// bounceInjected finishes a completion whose bounce injection reported.
func (r *run) bounceInjected(b bounceDone) {
	r.bouncing--
	m := b.m
	m.injecting = false
	if b.err != nil {
		r.warn("trouble injecting bounce message, will try later")
		m.doneAt = r.now().Add(completionRetry)
		return
	}
	r.info("bounce msg "+m.id.String()+" qp "+itoa(b.qp), "id", uint64(m.id), "qp", b.qp)
	if err := r.q.pool.retire(r.q.path("bounce", m.id)); err != nil {
		r.warn("unable to unlink bounce/" + m.id.String())
		m.doneAt = r.now().Add(completionRetry)
		return
	}
	if r.endMsg(m) {
		m.doneAt = time.Time{}
		m.finished = true
	} else {
		m.doneAt = r.now().Add(r.endRetry(m))
	}
	if !r.exiting {
		r.scanTodo() // the bounce just queued
	}
}

// endMsg removes a message without a bounce to send.
//
// It holds the lock of mess/S/N (holdMess) from before the message's last
// name goes (info/S/N, or todo/N for a direct message) until its files are
// removed or made a slot: without it, a cleaner in another process could
// find the files in between, marked, unlocked and with neither name, take
// them for a dead injection's and remove them; inode N, freed, could then
// become a new injection's mess/S/N, and this message's removal of intd/N
// and mess/S/N by number would destroy that one ("Removing files by
// number" in live.go). When there is no mess/S/N to hold, only the name is
// removed: what intd/N is left a starting Scheduler removes.
func (r *run) endMsg(m *msg) bool {
	q := r.q
	// The files of a direct message become a slot (recycle, below): its
	// lock is then kept with a descriptor open for writing, which the
	// injection that takes the slot uses.
	held, writable, err := q.holdMessFor(m.id, m.direct && !m.bounced && !m.stale)
	if err != nil && !errors.Is(err, errMessGone) {
		// A lock still held (or a file that will not open): finish later.
		m.locked = errors.Is(err, errMessBusy)
		r.warn("unable to lock " + Path("mess", m.id, q.split) + ": " + logSafe(err.Error()))
		return false
	}
	release := func() {
		if held >= 0 {
			unix.Close(held)
		}
	}
	if r.held[m.id] {
		// Gone for good before the last name, so that it cannot
		// outlive the message and hold a later one numbered N.
		if err := q.removeHold(m.id); err != nil {
			release()
			r.warn(logSafe(err.Error()))
			return false
		}
		delete(r.held, m.id)
	}
	if m.hasDSN {
		// Before the message's last name: no later message numbered N
		// may find it (dsn.go).
		if err := r.q.removeDSN(m.id); err != nil {
			release()
			r.warn("unable to unlink dsn/" + m.id.String())
			return false
		}
		m.hasDSN, m.dsn = false, nil
	}
	r.info("end msg "+m.id.String(), "id", uint64(m.id))
	// Its mess and intd files become a slot for the next message if it
	// was direct, unless other files of it were removed too, whose removal
	// must be durable first (slots.go).
	recycle := m.direct && !m.bounced && !m.stale && held >= 0
	if m.direct {
		if err := removeMissingOK(q.path("todo", m.id)); err != nil {
			release()
			r.warn("unable to unlink todo/" + m.id.String())
			return false
		}
		m.direct = false
		r.direct--
	} else if err := q.pool.retire(q.path("info", m.id)); err != nil {
		release()
		r.warn("unable to unlink " + Path("info", m.id, q.split))
		return false
	}
	if r.s.endHook != nil {
		r.s.endHook(m.id)
	}
	switch {
	case recycle:
		q.recycleSlot(m.id, held, writable)
	case held < 0:
		r.warn("qmail-clean unable to clean up foop/" + m.id.String() + ": no " + Path("mess", m.id, q.split))
	default:
		if err := q.cleanMess(m.id); err != nil {
			r.warn("qmail-clean unable to clean up foop/" + m.id.String())
		}
		release()
	}
	delete(r.msgs, m.id)
	return true
}

// injectBounce runs in its own goroutine: it reads files and injects, and
// touches none of the run's state.
func (r *run) injectBounce(m *msg, env Envelope, double bool, dsn *msgDSN, now time.Time) (int, error) {
	q := r.q
	records, err := readRegularFile(q.path("bounce", m.id))
	if err != nil {
		return 0, err
	}
	mess, err := os.Open(q.path("mess", m.id))
	if err != nil {
		return 0, err
	}
	defer mess.Close()
	o := Origin{PID: q.origin.PID, UID: q.origin.UID, Who: "for bounce"}
	ctx := context.WithoutCancel(r.ctx)
	w, err := q.Create(ctx, o)
	if err != nil {
		return 0, err
	}
	w.quiet = true // the loop scans todo/ itself once it has logged the bounce
	bm := bounceMessage{id: m.id, sender: stripVerp(m.sender), rcpt: env.Recipients[0], double: double,
		records: records, mess: mess, birth: m.birth, now: now, dsn: dsn}
	if err := r.s.Bounce.write(w, bm); err != nil {
		w.Abort()
		return 0, err
	}
	if _, err := w.Commit(ctx, env); err != nil {
		return 0, err
	}
	return o.PID, nil
}
