package queue

import (
	"bytes"
	"container/heap"
	"os"
	"time"
)

// Direct delivery.
//
// qmail-send preprocesses every todo/N into info/S/N and channel files, and
// only then delivers. The scheduler instead takes a todo/N with one
// recipient straight to its delivery, the recipient held in memory (a
// direct message), when the deliveries have room for it; the others wait
// in todo/. A direct message whose delivery ends in its first attempt
// (delivered, or failed with the failure in bounce/N) never gets info or
// channel files: its completion removes todo/N first (the point after which
// it is done), then intd/N and mess/S/N. One deferred, or cut short by the
// scheduler's exit, is written out as qmail-send would have left it after
// that attempt: info/S/N and its channel file, then todo/N goes, as after
// preprocessing, and it goes on as a preprocessed message. A message with
// several recipients is written out before its first attempt, so that each
// recipient's success is marked on disk as it comes.
//
// Nothing is weaker than with preprocessing first. Until todo/N is
// removed, a crash only makes the next start take the message from todo/N
// again and attempt its delivery again (a duplicate, never a loss, as with
// a D mark lost in a crash), after removing what the interrupted attempt
// left (info, channel files, bounce/N): a failure is then reported once.

// directMax bounds the direct messages in memory: twice what the channels
// can deliver at once, so that a delivery slot never waits for todo/.
func (r *run) directMax() int {
	return 2 * (r.chans[0].limit + r.chans[1].limit)
}

// startDirect schedules the passes of a direct message read from todo/N.
func (r *run) startDirect(m *msg, now time.Time) {
	r.msgs[m.id] = m
	r.direct++
	if rcptCount(m) > 1 || len(r.held) > 0 && r.held[m.id] {
		// Several recipients finish at different times: each success is
		// better marked on disk at once, so such a message is written out
		// before its first pass, as qmail-send preprocesses.
		r.settle = append(r.settle, m)
		return
	}
	n := 0
	for i, j := range m.jobs {
		if j != nil {
			j.next = now
			heap.Push(&r.chans[i].waiting, j)
			n++
		}
	}
	if n == 0 {
		r.toComplete(m, now)
	}
}

// directPassDone ends the pass of one channel of a direct message; when
// every channel's pass is over, the message either completes (nothing
// left to deliver) or is written out.
func (r *run) directPassDone(j *job) {
	j.fin = true
	m := j.m
	left := false
	for _, j := range m.jobs {
		if j == nil {
			continue
		}
		if !j.fin {
			return
		}
		if hasT(j.data) {
			left = true
		}
	}
	if left {
		r.settle = append(r.settle, m)
		return
	}
	m.jobs = [2]*job{}
	// Done at once, as a D mark is written at once: the sooner todo/N
	// goes, the fewer deliveries a crash repeats.
	if !m.bounced && r.endMsg(m) {
		return
	}
	r.toComplete(m, r.now())
}

// rcptCount is the number of recipients of a direct message.
func rcptCount(m *msg) int {
	n := 0
	for _, j := range m.jobs {
		if j != nil {
			n += bytes.Count(j.data, []byte{0})
		}
	}
	return n
}

// hasT reports whether channel records hold a recipient not yet done.
func hasT(data []byte) bool { return hasRecord(data, 'T') }

// hasRecord reports whether channel records hold one of type t.
func hasRecord(data []byte, t byte) bool {
	for len(data) > 0 {
		rec, rest, _ := bytes.Cut(data, []byte{0})
		if len(rec) > 0 && rec[0] == t {
			return true
		}
		data = rest
	}
	return false
}

// settleSome writes out up to one batch of direct messages with recipients
// left: info/S/N and their channel files, due at the pass's retry time.
func (r *run) settleSome() {
	if len(r.settle) == 0 {
		return
	}
	n := min(len(r.settle), preBatch)
	batch := r.settle[:n:n]
	r.settle = r.settle[n:]
	if len(r.settle) == 0 {
		r.settle = nil
	}
	r.writeOut(batch)
}

// settleAtExit writes out the direct messages of which a delivery has
// ended, so that the next start does not deliver them again; the others
// stay in todo/ untouched.
func (r *run) settleAtExit() {
	queued := map[*msg]bool{}
	for _, m := range r.settle {
		queued[m] = true
	}
	for _, m := range r.msgs {
		if !m.direct || queued[m] {
			continue
		}
		for _, j := range m.jobs {
			if j != nil && hasRecord(j.data, 'D') {
				r.settle = append(r.settle, m)
				break
			}
		}
	}
	for len(r.settle) > 0 {
		r.settleSome()
	}
}

// writeOut makes direct messages preprocessed ones (info/S/N and channel
// files, then todo/N removed); those it cannot are forgotten, and todo/N
// brings them back at the next scan.
func (r *run) writeOut(batch []*msg) {
	now := r.now()
	ps := make([]prepared, len(batch))
	oks := make([]bool, len(batch))
	parallel(len(batch), func(i int) error {
		ps[i], oks[i] = r.writeFiles(batch[i], now)
		return nil
	})
	var ready []prepared
	for i, p := range ps {
		if oks[i] {
			ready = append(ready, p)
		}
	}
	r.commit(ready)
	for _, m := range batch {
		if m.direct { // not committed
			m.direct = false
			r.direct--
			delete(r.msgs, m.id)
			r.stale[m.id] = true
		}
	}
}

// writeFiles writes a direct message's info and channel files, unsynced.
// It runs in parallel with others and changes no state of the run.
func (r *run) writeFiles(m *msg, now time.Time) (prepared, bool) {
	q := r.q
	p := prepared{m: m}
	var files []*os.File
	fail := func(what string) (prepared, bool) {
		for _, f := range files {
			f.Close()
		}
		r.warn("trouble writing to " + Path(what, m.id, q.split))
		return prepared{}, false
	}
	for i, j := range m.jobs {
		if j == nil || !hasT(j.data) {
			continue
		}
		at := now
		if j.fin {
			at = j.retry
		}
		k := kind(i == 1)
		f, err := q.writeNew(q.path(k, m.id), j.data, at)
		if err != nil {
			return fail(k)
		}
		files = append(files, f)
		p.at[i] = at
		if i == 0 {
			p.local = true
		} else {
			p.remote = true
		}
	}
	// The info mtime is the message's birth, from which retries count.
	info, err := q.writeNew(q.path("info", m.id), append(append([]byte{'F'}, m.sender...), 0), m.birth)
	if err != nil {
		return fail("info")
	}
	p.files = append(files, info)
	m.jobs = [2]*job{}
	return p, true
}
