package queue

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Queue administration, in the running scheduler's loop: see
// "Administration" in the package documentation (doc.go).

// ErrNoMessage is the error for an ID that names no message in the queue.
var ErrNoMessage = errors.New("queue: no such message")

// ErrNotRunning is returned by the Scheduler's administration methods when
// its Run is not running.
var ErrNotRunning = errors.New("queue: the scheduler is not running")

// Entry is one message as queue administration lists it: what qmail-qread
// shows (Message) and the scheduler's state of it.
type Entry struct {
	Message
	// Queued is set for a message still in todo/, not yet preprocessed:
	// Birth is then todo/N's mtime, and Recipients are the envelope's, not
	// yet routed (all pending, Remote unset).
	Queued bool
	Held   bool
	// Next is the next attempt of its earliest pending channel; zero when
	// nothing is pending, or while held. Without a running scheduler it is
	// the time the last one saved (the channel files' mtime).
	Next time.Time
	// Active is the number of its deliveries in progress.
	Active int
}

// adminOp is an administration operation.
type adminOp int

const (
	opHold adminOp = iota + 1
	opRelease
	opDelete
	opFlush
	opRequeue
	opState
)

// adminReq is a request handed to the running loop; the loop sets one
// result per ID, some at once, some (delete, requeue) once the message has
// no pass in progress.
type adminReq struct {
	ctx    context.Context
	op     adminOp
	ids    []ID
	res    []error
	states []Entry // opState
	left   int
	done   chan struct{}
}

func (q *adminReq) set(i int, err error) {
	q.res[i] = err
	if q.left--; q.left == 0 {
		close(q.done)
	}
}

// adminWait is a delete or requeue waiting for the message's passes to end.
type adminWait struct {
	req  *adminReq
	i    int
	m    *msg
	stop func() bool // the context's AfterFunc
}

// call hands op on ids to the running loop and waits for every result.
func (s *Scheduler) call(ctx context.Context, op adminOp, ids []ID) (*adminReq, error) {
	s.mu.Lock()
	ctl, stopped := s.ctl, s.ctlDone
	s.mu.Unlock()
	if ctl == nil {
		return nil, ErrNotRunning
	}
	req := &adminReq{ctx: ctx, op: op, ids: ids, res: make([]error, len(ids)), left: len(ids), done: make(chan struct{})}
	if op == opState {
		req.states = make([]Entry, len(ids))
	}
	if len(ids) == 0 {
		close(req.done)
		return req, nil
	}
	select {
	case ctl <- req:
	case <-stopped:
		return nil, ErrNotRunning
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Once taken, the loop answers every ID, also when ctx ends (waits
	// are cut then) or when it stops.
	<-req.done
	return req, nil
}

// Hold holds the messages ids: none of their deliveries starts until
// Release, across restarts (see Administration in the package
// documentation). It returns one
// error per ID (nil: held; ErrNoMessage: not in the queue), or an error
// for the whole call: ErrNotRunning, or ctx's.
func (s *Scheduler) Hold(ctx context.Context, ids []ID) ([]error, error) {
	return s.op(ctx, opHold, ids)
}

// Release releases held messages and makes them due now. Releasing a
// message that is not held is no error.
func (s *Scheduler) Release(ctx context.Context, ids []ID) ([]error, error) {
	return s.op(ctx, opRelease, ids)
}

// Delete removes messages from the queue without a bounce (postsuper -d).
// A message with deliveries in progress is removed once they have ended
// and their outcome is recorded, if ctx allows: when ctx ends first, its
// error is that ID's and the message stays. A message that leaves the
// queue by itself meanwhile counts as deleted.
func (s *Scheduler) Delete(ctx context.Context, ids []ID) ([]error, error) {
	return s.op(ctx, opDelete, ids)
}

// FlushMessages makes the waiting deliveries of messages ids due now (Flush
// does so for all). A held message stays held.
func (s *Scheduler) FlushMessages(ctx context.Context, ids []ID) ([]error, error) {
	return s.op(ctx, opFlush, ids)
}

// Requeue routes the pending remote recipients of messages ids again with
// the current routing and makes the messages due now (postsuper -r; see
// Administration in the package documentation). It waits, as Delete does, for passes in progress.
func (s *Scheduler) Requeue(ctx context.Context, ids []ID) ([]error, error) {
	return s.op(ctx, opRequeue, ids)
}

func (s *Scheduler) op(ctx context.Context, op adminOp, ids []ID) ([]error, error) {
	req, err := s.call(ctx, op, ids)
	if err != nil {
		return nil, err
	}
	return req.res, nil
}

// List lists the queue's messages (preprocessed ones, then those still in
// todo/) with the scheduler's state of each: held, next attempt,
// deliveries in progress. A message that cannot be read is left out.
func (s *Scheduler) List(ctx context.Context) ([]Entry, error) {
	es, err := s.Queue.scan(ctx)
	if err != nil {
		return nil, err
	}
	return s.state(ctx, es)
}

// Show is List for the messages ids alone; an ID not in the queue has
// ErrNoMessage as its error, and a zero Entry.
func (s *Scheduler) Show(ctx context.Context, ids []ID) ([]Entry, []error, error) {
	es, errs := s.Queue.entries(ids)
	var found []Entry
	for i, e := range es {
		if errs[i] == nil {
			found = append(found, e)
		}
	}
	found, err := s.state(ctx, found)
	if err != nil {
		return nil, nil, err
	}
	for i := range es {
		if errs[i] == nil {
			es[i], found = found[0], found[1:]
		}
	}
	return es, errs, nil
}

// state adds the loop's state to entries read from disk.
func (s *Scheduler) state(ctx context.Context, es []Entry) ([]Entry, error) {
	ids := make([]ID, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	req, err := s.call(ctx, opState, ids)
	if err != nil {
		return nil, err
	}
	for i := range es {
		st := req.states[i]
		es[i].Held, es[i].Active = st.Held, st.Active
		if !st.Next.IsZero() || st.Held {
			es[i].Next = st.Next
		}
	}
	return es, nil
}

// ctlStart makes the loop reachable by the administration methods.
func (s *Scheduler) ctlStart() chan *adminReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctl = make(chan *adminReq)
	s.ctlDone = make(chan struct{})
	return s.ctl
}

// ctlStop ends it: the requests not yet answered get ErrNotRunning.
func (r *run) ctlStop() {
	s := r.s
	s.mu.Lock()
	close(s.ctlDone)
	s.ctl, s.ctlDone = nil, nil
	s.mu.Unlock()
	for _, w := range r.waits {
		w.stop()
		w.req.set(w.i, ErrNotRunning)
	}
	r.waits = nil
}

// skip reports whether no pass of m may start: m is held, or an
// administration operation waits for its passes to end.
func (r *run) skip(m *msg) bool {
	return m.waits > 0 || len(r.held) > 0 && r.held[m.id]
}

// busy reports whether a pass of m is in progress, or its bounce is
// being injected.
func (m *msg) busy() bool {
	if m.injecting {
		return true
	}
	for _, j := range m.jobs {
		if j != nil && j.inPass {
			return true
		}
	}
	return false
}

// admin carries out req in the loop.
func (r *run) admin(req *adminReq) {
	now := r.now()
	for i, id := range req.ids {
		m := r.msgs[id]
		switch req.op {
		case opState:
			st := &req.states[i]
			st.Held = r.held[id]
			if m != nil {
				for _, j := range m.jobs {
					if j != nil && j.index >= 0 && !st.Held && (st.Next.IsZero() || j.next.Before(st.Next)) {
						st.Next = j.next
					}
				}
				for _, c := range r.chans {
					for _, u := range c.ready {
						if u.j.m == m && !st.Held {
							st.Next = now
						}
					}
				}
				st.Active = m.active
			}
			req.set(i, nil)
		case opHold:
			req.set(i, r.hold(id, m))
		case opRelease:
			req.set(i, r.release(id, m, now))
		case opFlush:
			if m == nil {
				req.set(i, r.present(id))
				continue
			}
			if !r.held[id] {
				r.due(m, now)
			}
			req.set(i, nil)
		case opDelete, opRequeue:
			if m == nil {
				if req.op == opDelete {
					req.set(i, r.deleteUnread(id))
				} else {
					req.set(i, r.present(id))
				}
				continue
			}
			r.withdraw(m)
			m.waits++
			w := &adminWait{req: req, i: i, m: m}
			w.stop = context.AfterFunc(req.ctx, r.s.poke)
			r.waits = append(r.waits, w)
		}
	}
	r.adminStep()
}

// present is nil when message id is in the queue, else ErrNoMessage.
func (r *run) present(id ID) error {
	if r.q.queued(id) {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNoMessage, id)
}

// adminStep finishes the waiting deletes and requeues whose message has
// no pass in progress any more, and cuts those whose context ended.
func (r *run) adminStep() {
	if len(r.waits) == 0 {
		return
	}
	keep := r.waits[:0]
	for _, w := range r.waits {
		id, m := w.req.ids[w.i], w.m
		switch {
		case r.msgs[id] != m:
			// It left the queue meanwhile (delivered, or bounced).
			w.stop()
			if w.req.op == opDelete {
				w.req.set(w.i, nil)
			} else {
				w.req.set(w.i, fmt.Errorf("%w: %s", ErrNoMessage, id))
			}
		case w.req.ctx.Err() != nil:
			w.stop()
			m.waits--
			r.reschedule(m)
			w.req.set(w.i, fmt.Errorf("queue: %s: %w", id, w.req.ctx.Err()))
		case m.busy():
			keep = append(keep, w)
		default:
			w.stop()
			m.waits--
			var err error
			if w.req.op == opDelete {
				err = r.deleteMsg(m)
			} else {
				err = r.requeue(m)
				r.reschedule(m)
			}
			if err != nil && w.req.op == opDelete {
				r.reschedule(m)
			}
			w.req.set(w.i, err)
		}
	}
	clear(r.waits[len(keep):])
	r.waits = keep
}

// withdraw takes m's deliveries that have not started out of their passes
// (they count as deferred) and its waiting jobs out of the queues, so that
// only its deliveries in progress go on.
func (r *run) withdraw(m *msg) {
	for _, c := range r.chans {
		keep := c.ready[:0]
		for _, u := range c.ready {
			if u.j.m != m {
				keep = append(keep, u)
				continue
			}
			u.j.unstart--
			u.j.pending -= len(u.rcpts)
			u.j.deferred += len(u.rcpts)
		}
		clear(c.ready[len(keep):])
		c.ready = keep
	}
	for i, j := range m.jobs {
		if j == nil {
			continue
		}
		if j.index >= 0 {
			heap.Remove(&r.chans[i].waiting, j.index)
		}
		if j.inPass && j.pending == 0 && j.unstart == 0 {
			r.finishJob(j)
		}
	}
}

// reschedule puts m's jobs that wait outside the channels' queues (taken
// out by withdraw, or skipped by nextUnit) back in them, unless m is held
// or another operation waits for it.
func (r *run) reschedule(m *msg) {
	if r.skip(m) || r.inSettle(m) {
		return
	}
	for i, j := range m.jobs {
		if j != nil && j.index < 0 && !j.inPass && !(m.direct && j.fin) {
			heap.Push(&r.chans[i].waiting, j)
		}
	}
}

// due makes m's waiting passes due at now.
func (r *run) due(m *msg, now time.Time) {
	if r.inSettle(m) {
		for _, j := range m.jobs {
			if j != nil {
				j.fin = false // written out due now (writeFiles)
			}
		}
		return
	}
	for i, j := range m.jobs {
		if j == nil || j.inPass || m.direct && j.fin {
			continue
		}
		j.next = now
		if j.index >= 0 {
			heap.Fix(&r.chans[i].waiting, j.index)
		} else {
			heap.Push(&r.chans[i].waiting, j)
		}
	}
	if m.done && !m.injecting {
		m.doneAt = now
	}
}

func (r *run) inSettle(m *msg) bool { return slices.Contains(r.settle, m) }

// hold holds message id (m when the loop has it).
func (r *run) hold(id ID, m *msg) error {
	if r.held[id] {
		return nil
	}
	if m == nil {
		if err := r.present(id); err != nil {
			return err
		}
		if r.q.fresh.isPending(id) {
			// Its hold/S/N would not be seen: the loop takes it from
			// memory. Only for the instant of its commit.
			return fmt.Errorf("queue: %s is being queued; try again", id)
		}
	}
	if err := r.q.writeHold(id); err != nil {
		return err
	}
	r.held[id] = true
	if m == nil {
		return nil
	}
	r.withdraw(m)
	if m.direct && !m.busy() && !r.inSettle(m) && !m.done {
		// Written out, so that it waits as a preprocessed message and
		// not in memory, where it would count against the direct ones.
		r.settle = append(r.settle, m)
	}
	return nil
}

// release releases message id.
func (r *run) release(id ID, m *msg, now time.Time) error {
	if !r.held[id] {
		if m != nil {
			return nil
		}
		if err := r.present(id); err != nil {
			return err
		}
		// Held by a marker the loop has not read (or not held at all).
	}
	if err := r.q.removeHold(id); err != nil {
		return err
	}
	delete(r.held, id)
	if m != nil && m.waits == 0 {
		r.due(m, now)
	}
	return nil
}

// deleteUnread deletes a message that the loop does not have: one in
// todo/ that it has not read yet.
func (r *run) deleteUnread(id ID) error {
	if err := r.present(id); err != nil {
		return err
	}
	if r.q.fresh.isPending(id) {
		return fmt.Errorf("queue: %s is being queued; try again", id)
	}
	if err := r.q.removeMessage(id); err != nil {
		return err
	}
	delete(r.held, id)
	delete(r.stale, id)
	return nil
}

// deleteMsg deletes m, which has no pass in progress.
func (r *run) deleteMsg(m *msg) error {
	if err := r.q.removeMessage(m.id); err != nil {
		return err
	}
	for i, j := range m.jobs {
		if j != nil && j.index >= 0 {
			heap.Remove(&r.chans[i].waiting, j.index)
		}
	}
	if i := slices.Index(r.settle, m); i >= 0 {
		r.settle = slices.Delete(r.settle, i, i+1)
	}
	if m.done {
		m.finished = true // complete drops it
	}
	if m.direct {
		m.direct = false
		r.direct--
	}
	delete(r.msgs, m.id)
	delete(r.held, m.id)
	delete(r.stale, m.id)
	// qmail-send's lines, so that qmailanalog sees the message end.
	r.info("delete msg "+m.id.String(), "id", uint64(m.id))
	r.info("end msg "+m.id.String(), "id", uint64(m.id))
	return nil
}

// requeue routes m's pending remote recipients again (m has no pass in
// progress); then m is due now.
func (r *run) requeue(m *msg) error {
	now := r.now()
	rj := m.jobs[1]
	if rj == nil {
		r.due(m, now)
		return nil
	}
	if m.direct {
		// The records are in memory (one recipient): move them.
		moved, kept := reroute(r.router, rj.data)
		if moved != nil {
			lj := m.jobs[0]
			if lj == nil {
				lj = &job{m: m, data: nil, index: -1}
				m.jobs[0] = lj
			}
			lj.data = append(lj.data, moved...)
			rj.data = kept
			if !hasT(rj.data) {
				if rj.index >= 0 {
					heap.Remove(&r.chans[1].waiting, rj.index)
				}
				m.jobs[1] = nil
			}
		}
		r.due(m, now)
		return nil
	}
	created, err := r.q.requeueFiles(m.id, r.router)
	if err != nil {
		return err
	}
	if created && m.jobs[0] == nil {
		r.schedule(m, false, now)
	}
	r.due(m, now)
	return nil
}

// reroute splits remote channel records: the T records whose address rt
// now makes local (as T records of the local channel), and the records
// left (those turned D).
func reroute(rt *router, data []byte) (moved, kept []byte) {
	kept = slices.Clone(data)
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], 0)
		if end < 0 {
			break
		}
		rec := data[off : off+end]
		if len(rec) > 0 && rec[0] == 'T' {
			if addr, remote := rt.route(string(rec[1:])); !remote {
				moved = append(append(append(moved, 'T'), addr...), 0)
				kept[off] = 'D'
			}
		}
		off += end + 1
	}
	return moved, kept
}
