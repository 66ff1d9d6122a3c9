package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Ossified is qmail's OSSIFIED: leftovers of an injection older than this
// are removed. It exceeds qmail-queue's 24-hour suicide alarm, so no live
// injector can lose its files.
const Ossified = 129600 * time.Second

// CleanStale removes what interrupted injections left behind.
//
// An injection by this package (Queue.Create, Queue.Inject, and the
// programs built on them, such as examples/qmail-queue) holds a lock on
// its message file until it commits or aborts, and marks the file (mode
// 01644, the sticky bit); the kernel drops the lock when the process dies.
// So a marked mess/S/N that has neither todo/N nor info/S/N and whose lock
// is free belongs to an injector that is gone, whatever its age: it is
// removed at once, with intd/N, and so is a marked pid/ file whose lock is
// free. A file whose lock is held is never touched, however old.
//
// What bears no mark (made by qmail's own qmail-queue, which takes no
// lock, or by an injector killed before it could mark its pid/ file) may
// belong to a live injection and is removed by qmail's 36-hour rule, as
// qmail-clean and qmail-send do: files in pid/ whose atime is more than
// 36 hours (Ossified) before now, and each mess/S/N whose atime is more
// than 36 hours before now and that has neither info/S/N nor todo/N,
// together with intd/N. Beyond qmail it also removes an intd/N older than
// 36 hours that has neither mess/S/N nor todo/N.
//
// Open calls it, and the Scheduler every 76431 s; a Scheduler that starts
// does more (see "Orphans" in the package documentation).
func (q *Queue) CleanStale(now time.Time) error { return q.cleanStale(now, false) }

// cleanStale is CleanStale; with start set (a Scheduler starting: it holds
// lock/sendmutex, so no other scheduler runs, and no slot of its own
// exists yet) it also removes, whatever their age:
//   - the slots that a crash left (mess files with the slot mark, markSlot,
//     and neither info/S/N nor todo/N, whose lock is free);
//   - each intd/N with neither todo/N nor mess/S/N: an injector writes
//     intd/N only while it holds mess/S/N, so no live one owns it;
//   - each local/S/N, remote/S/N and bounce/N with neither info/S/N nor
//     todo/N: only a scheduler writes them, and none runs.
func (q *Queue) cleanStale(now time.Time, start bool) error {
	if q.ro {
		return ErrReadOnly
	}
	var errs []error
	old := func(st *unix.Stat_t) bool {
		return now.Sub(time.Unix(st.Atim.Unix())) > Ossified
	}
	pidDir := filepath.Join(q.dir, "pid")
	names, err := readNames(pidDir)
	if err != nil {
		errs = append(errs, err)
	}
	for _, n := range names {
		p := filepath.Join(pidDir, n)
		pool := strings.HasPrefix(n, poolPrefix) // the Scheduler's, not an injection's
		_, err := probe(p, func(st *unix.Stat_t) bool {
			return !pool && isMarked(st) || old(st)
		}, func() error { return removeMissingOK(p) })
		if err != nil {
			errs = append(errs, err)
		}
	}
	for s := 0; s < q.split; s++ {
		d := filepath.Join(q.dir, "mess", strconv.Itoa(s))
		names, err := readNames(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, n := range names {
			id, ok := parseNum(n)
			if !ok || q.queued(id) {
				continue
			}
			_, err := probe(filepath.Join(d, n), func(st *unix.Stat_t) bool {
				// Again under the lock: a live injector links todo/N
				// only while it holds it.
				if q.queued(id) {
					return false
				}
				switch {
				case old(st):
					return true
				case isSlotTimes(st):
					return start
				}
				return isMarked(st)
			}, func() error { return q.cleanDead(id) })
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	intd := filepath.Join(q.dir, "intd")
	names, err = readNames(intd)
	if err != nil {
		errs = append(errs, err)
	}
	for _, n := range names {
		id, ok := parseNum(n)
		if !ok {
			continue
		}
		p := filepath.Join(intd, n)
		orphan := func(st *unix.Stat_t) bool {
			return (start || now.Sub(time.Unix(st.Mtim.Unix())) > Ossified) && !q.exists("mess", id) && !q.exists("todo", id)
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil || !orphan(&st) {
			continue
		}
		// Decided again under the lock of the intd file itself, so that
		// two cleaners never both judge it: the one that holds it sees
		// it still there, and no other can have removed it and let a
		// new message numbered N (inode N freed and reused) write its
		// own intd/N there, which could then be taken for this one.
		// While it is there, no injection numbered N can create intd/N.
		if _, err := probe(p, orphan, func() error { return removeMissingOK(p) }); err != nil {
			errs = append(errs, err)
		}
	}
	if start {
		errs = append(errs, q.cleanChannels()...)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("queue: clean: %w", err)
	}
	return nil
}

// cleanChannels removes the channel, bounce, hold and dsn files of
// messages that are neither queued (todo/N) nor preprocessed (info/S/N): a
// crash left them (a scheduler starting holds lock/sendmutex, so none is
// writing them), or a deletion interrupted after the message's last name
// went; a dsn/N only when mess/S/N is gone too, since an injection writes
// dsn/N only while it holds mess/S/N.
func (q *Queue) cleanChannels() []error {
	var errs []error
	dirs := []string{filepath.Join(q.dir, "bounce")}
	if names, err := readNames(filepath.Join(q.dir, "dsn")); err == nil {
		for _, n := range names {
			id, ok := parseNum(n)
			if !ok || q.queued(id) {
				continue
			}
			if q.exists("mess", id) {
				continue // an injection in progress, or mess/S/N's own cleaning removes it
			}
			if err := removeMissingOK(filepath.Join(q.dir, "dsn", n)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for s := 0; s < q.split; s++ {
		for _, k := range []string{"local", "remote", "hold"} {
			dirs = append(dirs, filepath.Join(q.dir, k, strconv.Itoa(s)))
		}
	}
	for _, d := range dirs {
		names, err := readNames(d)
		if errors.Is(err, fs.ErrNotExist) && strings.Contains(d, "/hold/") {
			continue // a queue made before hold/ was, opened without creating
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, n := range names {
			id, ok := parseNum(n)
			if !ok || q.queued(id) {
				continue
			}
			if err := removeMissingOK(filepath.Join(d, n)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// queued reports whether message id is queued (todo/N) or preprocessed
// (info/S/N). todo/N is looked at first: a scheduler creates info/S/N
// before it removes todo/N, so a message that is being preprocessed is
// seen in one or the other.
func (q *Queue) queued(id ID) bool { return q.exists("todo", id) || q.exists("info", id) }

func (q *Queue) exists(kind string, id ID) bool {
	_, err := os.Lstat(q.path(kind, id))
	return err == nil || !errors.Is(err, fs.ErrNotExist)
}

// cleanMess is qmail-clean's foop/N: unlink intd/N, then mess/S/N. The
// envelope's inode may have had a todo/N name too, removed earlier: todo/
// is fsynced with intd/ before the inode is reused.
func (q *Queue) cleanMess(id ID) error {
	if err := q.pool.retire(q.path("intd", id), filepath.Join(q.dir, "todo")); err != nil {
		return err
	}
	return q.pool.retire(q.path("mess", id))
}

// cleanDead removes the files of an injection that died: dsn/N, then
// intd/N and mess/S/N.
func (q *Queue) cleanDead(id ID) error {
	if err := removeMissingOK(q.path("dsn", id)); err != nil {
		return err
	}
	return q.cleanMess(id)
}

// cleanTodo is qmail-clean's todo/N: unlink intd/N, then todo/N (the last
// link of the envelope's inode).
func (q *Queue) cleanTodo(id ID) error {
	if err := removeMissingOK(q.path("intd", id)); err != nil {
		return err
	}
	return q.pool.retire(q.path("todo", id), filepath.Join(q.dir, "intd"))
}

func removeMissingOK(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// CleanRequest performs one request of qmail-clean's protocol on the queue
// and returns its one-byte reply: "foop/N" unlinks intd/N and mess/S/N,
// "todo/N" unlinks intd/N and todo/N; '+' on success (missing files are
// fine), '!' on an unlink error, 'x' for a malformed request (shorter than 7
// or longer than 100 bytes, no number, another prefix). req excludes the
// terminating NUL.
func (q *Queue) CleanRequest(req string) byte {
	if q.ro {
		return '!'
	}
	if len(req) < 6 || len(req) > 99 { // 7..100 bytes with the NUL
		return 'x'
	}
	var clean func(ID) error
	var num string
	switch {
	case len(req) > 5 && req[:5] == "foop/":
		clean, num = q.cleanDead, req[5:] // dsn/N too: qmail-send knows nothing of it
	case len(req) > 5 && req[:5] == "todo/":
		clean, num = q.cleanTodo, req[5:]
	default:
		return 'x'
	}
	id, ok := parseNum(num)
	if !ok {
		return 'x'
	}
	if clean(id) != nil {
		return '!'
	}
	return '+'
}
