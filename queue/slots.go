package queue

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qmailkit/qmailkit/internal/durable"
)

// slotBatch is how many slots one fill prepares: enough that the two
// directory fsyncs of a fill cost an injection an eighth of one each.
const slotBatch = 16

// slotIdle is how long unused slots are kept: after it the scheduler gives
// them back to the pool, so that an idle queue has no mess file but its
// messages' (qmail-qstat counts the files under mess/).
const slotIdle = 2 * time.Second

// slotsMax bounds the slots kept, prepared or recycled.
const slotsMax = 256

// A slot is a message number N whose files exist, durably, at mess/S/N
// and intd/N, for the next injection (see "Slots" in the package
// documentation): the files of a finished direct message (recycleSlot), or
// pooled inodes prepared by a fill (fillSlots). A slot is state S3 of the
// queue with stale bytes in its files, which no one reads: intd/N is read
// only through todo/N, linked after the envelope is rewritten and fsynced.
// Its mess file bears the slot mark (markSlot) until written.

// slots is the Queue's slots.
type slots struct {
	mu       sync.Mutex
	cond     *sync.Cond
	free     []ID
	recycled []ID // finished messages' files, usable once todo/ is fsynced
	// held are the descriptors of the slots whose mess file this
	// process holds open for writing, with its lock, since their message
	// ended (recycleSlot): the injection that takes one gets the
	// descriptor, locked, instead of opening and locking the file again.
	held    map[ID]int
	filling bool
	used    time.Time // the last take or recycle
}

// takeHeld returns the locked descriptor of slot id's mess file that this
// process holds, if any, which the caller then owns.
func (s *slots) takeHeld(id ID) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fd, ok := s.held[id]
	if ok {
		delete(s.held, id)
	}
	return fd, ok
}

// takeSlot returns a slot: a free one, else the recycled ones once todo/ is
// fsynced, else a fill's; false when there is none (no Scheduler runs).
func (q *Queue) takeSlot() (ID, bool) {
	s := &q.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if len(s.free) == 0 && !s.filling && len(s.recycled) == 0 && !q.pool.enabled() {
			return 0, false
		}
		if n := len(s.free); n > 0 {
			sl := s.free[n-1]
			s.free = s.free[:n-1]
			s.used = q.now()
			return sl, true
		}
		if s.filling {
			s.cond.Wait()
			continue
		}
		s.filling = true
		recycled := s.recycled
		s.recycled = nil
		s.mu.Unlock()
		var batch []ID
		if len(recycled) > 0 {
			// Their todo/N links were removed: that must be durable
			// before N names another message, or a crash could bring
			// back the old todo/N over the new files.
			if err := q.todoSync.sync(); err == nil {
				batch = recycled
			} else {
				q.cleanSlots(recycled)
			}
		}
		if len(batch) == 0 {
			batch = q.fillSlots(slotBatch)
		}
		s.mu.Lock()
		s.filling = false
		s.free = append(s.free, batch...)
		s.used = q.now()
		s.cond.Broadcast()
		if len(batch) == 0 {
			return 0, false
		}
	}
}

// fillSlots prepares up to n slots from the pool: mess files from one
// bucket, intd files from any, then one fsync of each directory.
func (q *Queue) fillSlots(n int) []ID {
	mess := q.pool.takeBucket(n)
	if len(mess) == 0 {
		return nil
	}
	var out []ID
	for _, m := range mess {
		id := ID(m.ino)
		i, ok := q.pool.take()
		if !ok {
			q.pool.giveBack(m)
			continue
		}
		mp := q.path("mess", id)
		if err := q.placeSlotFile(m, mp, slotMark, markedMode); err != nil {
			q.pool.giveBack(i)
			continue
		}
		if err := q.placeSlotFile(i, q.path("intd", id), nil, 0o644); err != nil {
			q.dropSlot(id)
			continue
		}
		out = append(out, id)
	}
	if len(out) == 0 {
		return nil
	}
	bucket := uint64(out[0]) % uint64(q.split)
	for _, err := range parallel(2, func(i int) error {
		if i == 0 {
			return q.messSync[bucket].sync()
		}
		return q.intdSync.sync()
	}) {
		if err != nil {
			for _, id := range out {
				q.dropSlot(id)
			}
			return nil
		}
	}
	return out
}

// placeSlotFile moves pooled file f to target with mode (st_mode bits)
// and times ts (nil: now; the 36-hour rule reads mess files' atime),
// both set before it appears there. On an error nothing is left at
// target.
func (q *Queue) placeSlotFile(f pooled, target string, ts []unix.Timespec, mode uint32) error {
	ok, err := q.pool.place(f, target, ts, mode)
	if !ok {
		return errPoolGone
	}
	return err
}

var errPoolGone = errors.New("queue: pool entry gone")

// slotMark is the times of a slot's mess file until an injection writes
// it: atime now (for the 36-hour rule), mtime the epoch. So a Scheduler
// that starts after a crash knows the slots that the crash left from
// interrupted injections, whose mess files were written (cleanStale).
var slotMark = []unix.Timespec{{Nsec: unix.UTIME_NOW}, {}}

// markSlot gives the mess file at p the slot mark.
func markSlot(p string) error {
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, slotMark, 0); err != nil {
		return &os.PathError{Op: "utimes", Path: p, Err: err}
	}
	return nil
}

// isSlotMark reports whether a mess file bears the slot mark.
func isSlotMark(fi fs.FileInfo) bool { return fi.ModTime().Equal(time.Unix(0, 0)) }

// isSlotTimes is isSlotMark for a stat.
func isSlotTimes(st *unix.Stat_t) bool { return st.Mtim.Sec == 0 && st.Mtim.Nsec == 0 }

// openSlot opens slot id's mess file for writing and takes the
// injector's lock on it (live.go). It reports false when the slot's files
// are gone (a cleaner removed them, before or while the lock was sought)
// or are no longer a slot's, so that the caller takes another; on any
// other failure the slot's files are removed. A slot made of a finished
// message's files comes with its descriptor, open for writing and locked
// since the message ended (recycleSlot): no one else could remove or
// change the files meanwhile, so it is the slot's as it was made.
func (q *Queue) openSlot(id ID) (*os.File, bool, error) {
	p := q.path("mess", id)
	if fd, ok := q.slots.takeHeld(id); ok {
		return os.NewFile(uintptr(fd), p), true, nil
	}
	fd, err := durable.Openat(unix.AT_FDCWD, p, unix.O_RDWR|unix.O_NOFOLLOW, 0)
	if err == unix.ENOENT {
		// A cleaner removed it (intd/N first); the number may be
		// another message's by now, so nothing is removed by name.
		return nil, false, nil
	}
	if err != nil {
		q.dropSlot(id)
		return nil, false, &os.PathError{Op: "open", Path: p, Err: err}
	}
	var st unix.Stat_t
	err = lockFD(fd)
	if err == nil {
		err = unix.Fstat(fd, &st)
	}
	if err == nil && st.Nlink > 0 && isSlotTimes(&st) && st.Mode&modeBits != markedMode {
		err = unix.Fchmod(fd, markedMode)
	}
	if err != nil {
		unix.Close(fd)
		q.dropSlot(id)
		return nil, false, &os.PathError{Op: "lock", Path: p, Err: err}
	}
	if st.Nlink == 0 || !isSlotTimes(&st) {
		// Removed, intd/N first, by a cleaner that held the lock; or
		// no longer a slot: its files were removed and inode N, freed,
		// became another message's, which this lock waited for. A
		// slot's mess file has the epoch as mtime until written.
		unix.Close(fd)
		return nil, false, nil
	}
	return os.NewFile(uintptr(fd), p), true, nil
}

// dropSlot gives a slot's files back to the pool (or removes them, intd
// first, when the pool is off), holding the lock of its mess file, and only
// while that file is still a slot's: a starting Scheduler's cleaner may
// have removed the slot, and inode N, freed, may be another message's by
// now ("Removing files by number" in live.go).
func (q *Queue) dropSlot(id ID) {
	fd, ok := q.slots.takeHeld(id)
	if !ok {
		var err error
		if fd, err = q.holdMess(id); err != nil {
			return // gone, or held by an injector: no longer this slot
		}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Nlink == 0 || !isSlotTimes(&st) {
		return
	}
	q.cleanMess(id)
}

// recycleSlot keeps the files of a finished direct message as a slot:
// mess/S/N and intd/N are already where a slot has them, durably, so the
// next message numbered N needs neither renames nor directory fsyncs but
// todo/'s. The caller has removed todo/N, the message's only other name
// (a direct message never had info, channel or bounce files), holding the
// lock of mess/S/N on held (holdMess): so no cleaner in another process
// can take the finished message's files for an injection's that died and
// remove them meanwhile ("Removing files by number" in live.go). When held
// is open for writing (writable), the slot keeps it, locked, for the
// injection that takes it (openSlot), or for dropSlot; otherwise it is
// closed once the slot mark is set or the files are removed.
func (q *Queue) recycleSlot(id ID, held int, writable bool) {
	s := &q.slots
	marked := markSlot(q.path("mess", id)) == nil
	s.mu.Lock()
	keep := marked && q.pool.enabled() && len(s.free)+len(s.recycled) < slotsMax
	if keep {
		s.recycled = append(s.recycled, id)
		s.used = q.now()
		if writable {
			if s.held == nil {
				s.held = map[ID]int{}
			}
			s.held[id] = held
		}
	}
	s.mu.Unlock()
	if !keep {
		q.cleanMess(id)
	}
	if !keep || !writable {
		unix.Close(held)
	}
}

// Errors of holdMess.
var (
	errMessGone = errors.New("no message file")
	errMessBusy = errors.New("message file locked")
)

// holdTries bounds holdMess's wait for a lock that another holds: about
// 80 ms in all. A cleaner holds it for a few system calls, an injector
// that commits from its todo/N link to its close; a process stopped there
// must not stop the Scheduler.
const holdTries = 40

// holdMess opens mess/S/N and takes its lock (live.go), waiting a little
// for a cleaner or a committing injector that holds it, and returns the
// descriptor. While the descriptor is open inode N is not freed, so no
// other file is numbered N; while the lock is held no cleaner removes the
// file and no injection takes it. The error is errMessGone when there is
// no mess/S/N, errMessBusy when the lock stayed held.
func (q *Queue) holdMess(id ID) (int, error) {
	fd, _, err := q.holdMessFor(id, false)
	return fd, err
}

// holdMessFor is holdMess, with the file open for reading and writing
// when write is set and the file allows it (writable), so that it can
// become a slot's descriptor (recycleSlot). O_RDWR does not block on a
// FIFO, as O_RDONLY without O_NONBLOCK would.
func (q *Queue) holdMessFor(id ID, write bool) (fd int, writable bool, err error) {
	p := q.path("mess", id)
	if write {
		fd, err = durable.Openat(unix.AT_FDCWD, p, unix.O_RDWR|unix.O_NOFOLLOW, 0)
		writable = err == nil
	}
	if !writable && err != unix.ENOENT {
		fd, err = durable.Openat(unix.AT_FDCWD, p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	}
	if err == unix.ENOENT {
		return -1, false, errMessGone
	}
	if err != nil {
		return -1, false, &os.PathError{Op: "open", Path: p, Err: err}
	}
	for i := 0; ; {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == unix.EINTR {
			continue
		}
		if err != unix.EWOULDBLOCK || i == holdTries {
			break
		}
		i++
		time.Sleep(time.Duration(i) * 100 * time.Microsecond)
	}
	switch {
	case err == unix.EWOULDBLOCK:
		unix.Close(fd)
		return -1, false, errMessBusy
	case err != nil:
		unix.Close(fd)
		return -1, false, &os.PathError{Op: "flock", Path: p, Err: err}
	}
	return fd, writable, nil
}

// slotNames returns the names (decimal numbers) of the slots not taken.
func (q *Queue) slotNames() map[string]struct{} {
	s := &q.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make(map[string]struct{}, len(s.free)+len(s.recycled))
	for _, l := range [][]ID{s.free, s.recycled} {
		for _, id := range l {
			names[id.String()] = struct{}{}
		}
	}
	return names
}

// slotsIdleAt returns when the unused slots become idle, if there are any.
func (q *Queue) slotsIdleAt() (time.Time, bool) {
	s := &q.slots
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.free)+len(s.recycled) == 0 {
		return time.Time{}, false
	}
	return s.used.Add(slotIdle), true
}

// trimSlots gives the unused slots back to the pool when they have been
// idle for slotIdle at now, or at once when all is set (the Scheduler
// stops; the pool, then off, removes them).
func (q *Queue) trimSlots(now time.Time, all bool) {
	s := &q.slots
	s.mu.Lock()
	for all && s.filling {
		s.cond.Wait()
	}
	if len(s.free)+len(s.recycled) == 0 || !all && now.Before(s.used.Add(slotIdle)) {
		s.mu.Unlock()
		return
	}
	free := append(s.free, s.recycled...)
	s.free, s.recycled = nil, nil
	s.mu.Unlock()
	q.cleanSlots(free)
}

// cleanSlots gives slots' files to the pool (dropSlot; their todo/ link,
// if any, is gone).
func (q *Queue) cleanSlots(ids []ID) {
	for _, id := range ids {
		q.dropSlot(id)
	}
}
