package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Ossified is qmail's OSSIFIED: leftovers of an injection older than this
// are removed. It exceeds qmail-queue's 24-hour suicide alarm, so no live
// injector can lose its files.
const Ossified = 129600 * time.Second

// CleanStale removes what interrupted injections left behind, as
// qmail-clean and qmail-send's 36-hour rule do: files in pid/ whose atime is
// more than 36 hours before now, and each mess/S/N whose atime is more than
// 36 hours before now and that has neither info/S/N nor todo/N, together
// with intd/N. Beyond qmail it also removes an intd/N older than 36 hours
// that has neither mess/S/N nor todo/N (a crash between the two creations
// on a file system without synchronous metadata). Nothing younger is
// touched: another process may be injecting. Open calls it.
func (q *Queue) CleanStale(now time.Time) error { return q.cleanStale(now, false) }

// cleanStale is CleanStale; with slots set (a Scheduler starting, before
// any slot of its own exists) it also removes, whatever their age, the
// slots that a crash left: mess files still bearing the slot mark
// (markSlot) with neither info/S/N nor todo/N.
func (q *Queue) cleanStale(now time.Time, slots bool) error {
	if q.ro {
		return ErrReadOnly
	}
	var errs []error
	old := func(fi fs.FileInfo) bool {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return false
		}
		return now.Sub(time.Unix(st.Atim.Unix())) > Ossified
	}
	pidDir := filepath.Join(q.dir, "pid")
	ents, err := os.ReadDir(pidDir)
	if err != nil {
		errs = append(errs, err)
	}
	for _, e := range ents {
		p := filepath.Join(pidDir, e.Name())
		if fi, err := os.Lstat(p); err == nil && old(fi) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	for s := 0; s < q.split; s++ {
		d := filepath.Join(q.dir, "mess", strconv.Itoa(s))
		ents, err := os.ReadDir(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range ents {
			id, ok := parseNum(e.Name())
			if !ok {
				continue
			}
			fi, err := os.Lstat(filepath.Join(d, e.Name()))
			if err != nil || !old(fi) && !(slots && isSlotMark(fi)) || q.exists("info", id) || q.exists("todo", id) {
				continue
			}
			if err := q.cleanMess(id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	intd := filepath.Join(q.dir, "intd")
	ents, err = os.ReadDir(intd)
	if err != nil {
		errs = append(errs, err)
	}
	for _, e := range ents {
		id, ok := parseNum(e.Name())
		if !ok {
			continue
		}
		fi, err := os.Lstat(filepath.Join(intd, e.Name()))
		if err != nil || now.Sub(fi.ModTime()) <= Ossified || q.exists("mess", id) || q.exists("todo", id) {
			continue
		}
		if err := removeMissingOK(q.path("intd", id)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("queue: clean: %w", err)
	}
	return nil
}

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
		clean, num = q.cleanMess, req[5:]
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
