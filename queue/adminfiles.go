package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qmailkit/qmailkit/internal/durable"
)

// The files of queue administration (see Administration in doc.go), and
// the operations for when no Scheduler runs.

// requeueFiles moves the pending remote recipients of preprocessed message
// id that rt routes locally to local/S/N: their records are appended to
// it (created if missing), fsynced with its directory, and only then
// marked done in remote/S/N, which is fsynced. It reports whether it
// created local/S/N.
func (q *Queue) requeueFiles(id ID, rt *router) (bool, error) {
	rp := q.path("remote", id)
	rf, err := os.OpenFile(rp, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("queue: requeue %s: %w", id, err)
	}
	defer rf.Close()
	data, err := io.ReadAll(rf)
	if err != nil {
		return false, fmt.Errorf("queue: requeue %s: %w", id, err)
	}
	moved, kept := reroute(rt, data)
	if moved == nil {
		return false, nil
	}
	lp := q.path("local", id)
	created := false
	lf, err := os.OpenFile(lp, os.O_WRONLY|os.O_APPEND, 0)
	if errors.Is(err, fs.ErrNotExist) {
		created = true
		lf, err = os.OpenFile(lp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err != nil {
		return false, fmt.Errorf("queue: requeue %s: %w", id, err)
	}
	if _, err := lf.Write(moved); err != nil {
		lf.Close()
		return false, fmt.Errorf("queue: requeue %s: %w", id, err)
	}
	if err := durable.SyncClose(lf); err != nil {
		return false, fmt.Errorf("queue: requeue %s: %w", id, err)
	}
	if created {
		if err := durable.SyncDir(filepath.Dir(lp)); err != nil {
			return false, fmt.Errorf("queue: requeue %s: %w", id, err)
		}
	}
	for off := range kept {
		if kept[off] != data[off] {
			if _, err := rf.WriteAt([]byte{'D'}, int64(off)); err != nil {
				return created, fmt.Errorf("queue: requeue %s: %w", id, err)
			}
		}
	}
	if err := rf.Sync(); err != nil {
		return created, fmt.Errorf("queue: requeue %s: %w", id, err)
	}
	return created, nil
}

// writeHold creates hold/S/N and makes it durable.
func (q *Queue) writeHold(id ID) error {
	p := q.path("hold", id)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("queue: hold %s: %w", id, err)
	}
	if _, err := createFile(p, 0o600, nil); err != nil {
		return fmt.Errorf("queue: hold %s: %w", id, err)
	}
	if err := durable.SyncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("queue: hold %s: %w", id, err)
	}
	return nil
}

// removeHold removes hold/S/N durably; a missing one is fine.
func (q *Queue) removeHold(id ID) error {
	p := q.path("hold", id)
	err := os.Remove(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = durable.SyncDir(filepath.Dir(p))
	}
	if err != nil {
		return fmt.Errorf("queue: release %s: %w", id, err)
	}
	return nil
}

// isHeld reports whether hold/S/N exists.
func (q *Queue) isHeld(id ID) bool { return q.exists("hold", id) }

// heldIDs lists the hold markers.
func (q *Queue) heldIDs() map[ID]bool {
	held := map[ID]bool{}
	for s := 0; s < q.split; s++ {
		names, _ := readNames(filepath.Join(q.dir, "hold", strconv.Itoa(s)))
		for _, n := range names {
			if id, ok := parseNum(n); ok {
				held[id] = true
			}
		}
	}
	return held
}

// removeMessage deletes message id's files in the order given in the
// package documentation (Administration), under the lock of mess/S/N. deleteHook, for tests, is called
// after each removal and stops the deletion when it returns an error.
func (q *Queue) removeMessage(id ID) error {
	fd, err := q.holdMess(id)
	switch {
	case errors.Is(err, errMessBusy):
		return fmt.Errorf("queue: delete %s: its message file is locked (an injection or a cleaner); try again", id)
	case err != nil && !errors.Is(err, errMessGone):
		return fmt.Errorf("queue: delete %s: %w", id, err)
	}
	if fd >= 0 {
		defer unix.Close(fd)
	}
	step := func(kind string, sync bool) error {
		p := q.path(kind, id)
		err := os.Remove(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err == nil && sync {
			err = durable.SyncDir(filepath.Dir(p))
		}
		if err == nil && q.deleteHook != nil {
			err = q.deleteHook(kind)
		}
		if err != nil {
			return fmt.Errorf("queue: delete %s: %w", id, err)
		}
		return nil
	}
	// The names: info/S/N, then todo/N, each gone for good before the next
	// (an info/S/N left beside a todo/N is an interrupted preprocessing's,
	// which the todo/N overrides; without the todo/N it would be a message).
	for _, k := range []string{"info", "todo"} {
		if err := step(k, true); err != nil {
			return err
		}
	}
	for _, k := range []string{"local", "remote", "bounce", "hold", "dsn", "intd", "mess"} {
		if err := step(k, false); err != nil {
			return err
		}
	}
	return nil
}

// lockSend takes lock/sendmutex for an operation without a Scheduler.
func (q *Queue) lockSend() (*os.File, error) {
	if q.ro {
		return nil, ErrReadOnly
	}
	f, err := os.OpenFile(filepath.Join(q.dir, "lock", "sendmutex"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrRunning
		}
		return nil, fmt.Errorf("queue: lock: %w", err)
	}
	return f, nil
}

// offline runs fn for each ID under lock/sendmutex.
func (q *Queue) offline(ids []ID, fn func(id ID) error) ([]error, error) {
	lock, err := q.lockSend()
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	res := make([]error, len(ids))
	for i, id := range ids {
		if !q.queued(id) {
			res[i] = fmt.Errorf("%w: %s", ErrNoMessage, id)
			continue
		}
		res[i] = fn(id)
	}
	return res, nil
}

// Hold holds messages while no Scheduler runs (see Scheduler.Hold). It
// returns ErrRunning when one does.
func (q *Queue) Hold(ids []ID) ([]error, error) {
	return q.offline(ids, q.writeHold)
}

// Release releases messages while no Scheduler runs; the next one to start
// attempts them at once.
func (q *Queue) Release(ids []ID) ([]error, error) {
	now := q.now()
	return q.offline(ids, func(id ID) error {
		if err := q.removeHold(id); err != nil {
			return err
		}
		return q.touchChannels(id, now)
	})
}

// Delete deletes messages while no Scheduler runs (see Scheduler.Delete).
func (q *Queue) Delete(ids []ID) ([]error, error) {
	return q.offline(ids, q.removeMessage)
}

// Flush makes messages due when the next Scheduler starts, all of them
// when ids is empty, by setting their channel files' mtime (the next
// attempt a Scheduler reads at its start) to now.
func (q *Queue) Flush(ids []ID) ([]error, error) {
	now := q.now()
	if len(ids) == 0 {
		es, err := q.scan(context.Background())
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if !e.Queued {
				ids = append(ids, e.ID)
			}
		}
	}
	return q.offline(ids, func(id ID) error { return q.touchChannels(id, now) })
}

// Requeue routes the pending remote recipients of messages again with
// routing, while no Scheduler runs (see Scheduler.Requeue); the next one
// to start attempts them at once.
func (q *Queue) Requeue(routing Routing, ids []ID) ([]error, error) {
	rt := routing.compile()
	now := q.now()
	return q.offline(ids, func(id ID) error {
		if q.exists("todo", id) {
			return nil // routed when preprocessed
		}
		if _, err := q.requeueFiles(id, rt); err != nil {
			return err
		}
		return q.touchChannels(id, now)
	})
}

// touchChannels sets the mtime of id's channel files to t.
func (q *Queue) touchChannels(id ID, t time.Time) error {
	for _, k := range []string{"local", "remote"} {
		if err := os.Chtimes(q.path(k, id), t, t); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("queue: %w", err)
		}
	}
	return nil
}

// List lists the queue's messages for administration: the preprocessed
// ones, then those in todo/, with their hold state and their next attempt
// as the last Scheduler saved it. It takes no lock and changes nothing:
// while a Scheduler runs, use Scheduler.List, which knows its schedule.
func (q *Queue) List(ctx context.Context) ([]Entry, error) {
	return q.scan(ctx)
}

// Show is List for messages ids alone, with ErrNoMessage for an ID not in
// the queue.
func (q *Queue) Show(ids []ID) ([]Entry, []error) {
	return q.entries(ids)
}

// scan reads every message's entry from disk; unreadable ones are left out.
func (q *Queue) scan(ctx context.Context) ([]Entry, error) {
	names, err := readNames(filepath.Join(q.dir, "todo"))
	if err != nil {
		return nil, fmt.Errorf("queue: list: %w", err)
	}
	todo := map[ID]bool{}
	var ids []ID
	for _, n := range names {
		if id, ok := parseNum(n); ok {
			todo[id] = true
			ids = append(ids, id)
		}
	}
	var es []Entry
	for m, err := range q.Messages() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err != nil {
			if m.ID == 0 {
				return nil, err
			}
			continue
		}
		if !todo[m.ID] {
			// One in todo/ too is being preprocessed, or was when a
			// crash came: its todo/N is the truth.
			es = append(es, q.entry(m, false))
		}
	}
	for _, id := range ids {
		if e, err := q.todoEntry(id); err == nil {
			es = append(es, e)
		}
	}
	return es, nil
}

// entries reads the entries of ids.
func (q *Queue) entries(ids []ID) ([]Entry, []error) {
	es := make([]Entry, len(ids))
	errs := make([]error, len(ids))
	for i, id := range ids {
		var err error
		if q.exists("todo", id) {
			es[i], err = q.todoEntry(id)
		} else {
			var m Message
			m, err = q.Message(id)
			es[i] = q.entry(m, false)
		}
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w: %s", ErrNoMessage, id)
		}
		if err != nil {
			es[i] = Entry{}
		}
		errs[i] = err
	}
	return es, errs
}

// entry completes a Message read from disk with its hold state and the
// next attempt saved in its channel files' mtime.
func (q *Queue) entry(m Message, queued bool) Entry {
	e := Entry{Message: m, Queued: queued, Held: q.isHeld(m.ID)}
	if queued || e.Held {
		return e
	}
	for _, k := range []string{"local", "remote"} {
		fi, err := os.Stat(q.path(k, m.ID))
		if err == nil && (e.Next.IsZero() || fi.ModTime().Before(e.Next)) {
			e.Next = fi.ModTime()
		}
	}
	return e
}

// todoEntry reads message id from todo/N: its envelope, unrouted.
func (q *Queue) todoEntry(id ID) (Entry, error) {
	data, err := readQueueFile(q.path("todo", id))
	if err != nil {
		return Entry{}, err
	}
	fi, err := os.Stat(q.path("todo", id))
	if err != nil {
		return Entry{}, err
	}
	mi, err := os.Stat(q.path("mess", id))
	if err != nil {
		return Entry{}, err
	}
	m := Message{ID: id, Birth: fi.ModTime(), Size: mi.Size()}
	m.Bouncing = q.exists("bounce", id)
	for len(data) > 0 {
		rec, rest, ok := bytes.Cut(data, []byte{0})
		if !ok {
			break
		}
		data = rest
		if len(rec) == 0 {
			continue
		}
		switch rec[0] {
		case 'F':
			m.Sender = string(rec[1:])
		case 'T':
			m.Recipients = append(m.Recipients, Recipient{Addr: string(rec[1:])})
		}
	}
	e := q.entry(m, true)
	if !e.Held {
		e.Next = fi.ModTime() // due as soon as a Scheduler reads it
	}
	return e, nil
}
