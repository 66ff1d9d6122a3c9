package queue

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/qmailkit/qmailkit/internal/durable"
)

// poolMax bounds the number of recycled inodes kept in pid/: enough for
// the files of a few thousand queued messages, so that a burst that the
// deliveries catch up with later frees none of them.
const poolMax = 1 << 14

// poolFlushMin is how many files must be pending before takeBucket flushes
// them rather than take a short bucket.
const poolFlushMin = 256

// poolKeepBytes: a larger file is truncated when pooled, so that the pool
// holds at most poolMax small files' worth of disk space.
const poolKeepBytes = 64 << 10

// poolPrefix names the recycled inodes in pid/: pool.INODE.
const poolPrefix = "pool."

// inodePool recycles the inodes of finished queue files, so that a queue
// in steady state allocates and frees no inodes: each message's mess, intd,
// info and channel files are renamed into pid/ when the message is done and
// renamed out again as the files of a later message.
//
// Why: an inode allocation plus a free costs more than two renames on any
// file system, and far more on ext4 without a journal (common on virtual
// machines), whose allocator steps over every inode freed in the last 60
// seconds (360 while its inode-table block is not yet written back), one
// at a time, while it holds the directory lock. A queue that
// frees four inodes per message and creates four more spends most of its
// CPU there at a few hundred messages a second, and its creations
// serialize; renames do neither.
//
// Safety:
//   - a pooled file has exactly one link, pid/pool.N, where N is its inode
//     number: retire moves a file in only when it has one link;
//   - a pooled file is handed out only after every directory it left was
//     fsynced, so no directory entry of its former life can reappear after
//     a crash and name a file that now holds another message;
//   - the caller writes a reused file from offset 0 and truncates it to its
//     new length before fsyncing it, so no byte of its former life remains;
//   - after a crash, a pool entry can reappear beside the name its file was
//     moved to. The scheduler removes every pool entry when it starts
//     (an unlink, which drops only that extra link), before any file is
//     retired, and CleanStale's 36-hour rule removes forgotten ones.
//
// Only a running Scheduler retires files, so only its process reuses them;
// other injectors allocate fresh inodes as qmail-queue does.
//
// Ready inodes are kept by bucket (inode number modulo the split, the S of
// mess/S), so that a fill of slots (slots.go) takes mess files of one
// mess/S. Pending files are flushed when nothing else is ready, or when a
// fill finds its bucket short and poolFlushMin are pending, since a flush
// fsyncs every directory they left.
type inodePool struct {
	dir     string                 // pid/
	syncDir func(dir string) error // fsyncs a directory (shared with injections); set by Open

	mu       sync.Mutex
	cond     *sync.Cond
	ready    [][]pooled          // pid/pool.N reusable now, by N modulo the split
	nready   int                 // files in ready
	pending  []pooled            // moved in since the last flush
	left     map[string]struct{} // the directories they left
	flushing bool
	on       bool // a Scheduler runs: retire keeps inodes
	off      bool // the file system has no renameat2(RENAME_NOREPLACE)
}

// pooled is a file in the pool: its inode number and mode bits (st_mode &
// 07777, with the mark of live.go), so that a reuse changes the mode only
// when it must, without a stat.
type pooled struct {
	ino  uint64
	mode uint32
}

func newInodePool(dir string, split int) *inodePool {
	p := &inodePool{dir: dir, left: map[string]struct{}{}, ready: make([][]pooled, split)}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *inodePool) name(ino uint64) string {
	return filepath.Join(p.dir, poolPrefix+strconv.FormatUint(ino, 10))
}

// retire removes path, keeping its inode for reuse where it can: missing
// files are fine, as with removeMissingOK. unlinked names the directories
// from which the caller removed other links of the same inode: they are
// fsynced too before the inode is reused.
func (p *inodePool) retire(path string, unlinked ...string) error {
	p.mu.Lock()
	full := !p.on || p.off || p.nready+len(p.pending) >= poolMax
	p.mu.Unlock()
	var st unix.Stat_t
	if full || unix.Lstat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		return removeMissingOK(path)
	}
	ino := st.Ino
	if st.Size > poolKeepBytes {
		if err := os.Truncate(path, 0); err != nil {
			return removeMissingOK(path)
		}
	}
	err := unix.Renameat2(unix.AT_FDCWD, path, unix.AT_FDCWD, p.name(ino), unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
	case errors.Is(err, syscall.ENOENT):
		return nil
	case errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ENOSYS):
		p.mu.Lock()
		p.off = true
		p.mu.Unlock()
		return removeMissingOK(path)
	default:
		return removeMissingOK(path)
	}
	p.mu.Lock()
	p.pending = append(p.pending, pooled{ino, st.Mode & modeBits})
	p.left[filepath.Dir(path)] = struct{}{}
	for _, d := range unlinked {
		p.left[d] = struct{}{}
	}
	p.mu.Unlock()
	return nil
}

// take returns a pooled inode whose former directory entries are durably
// gone, flushing the pending ones when none is ready, or false when the
// pool is empty. It is takeBucket(1): it takes from the fullest bucket,
// which keeps the buckets even for takeBucket.
func (p *inodePool) take() (pooled, bool) {
	fs := p.takeBucket(1)
	if len(fs) == 0 {
		return pooled{}, false
	}
	return fs[0], true
}

// takeBucket returns up to n pooled inodes of one bucket (inode number
// modulo the split), the fullest, so that the mess files they become share
// one mess/S directory (and its fsync).
func (p *inodePool) takeBucket(n int) []pooled {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		b := 0
		for i := range p.ready {
			if len(p.ready[i]) > len(p.ready[b]) {
				b = i
			}
		}
		r := p.ready[b]
		if len(r) < n {
			if p.flushing {
				p.cond.Wait()
				continue
			}
			// A flush fsyncs every directory the pending files left (up
			// to all of mess/*): it is worth it when nothing is ready, or
			// when the bucket is short and many are pending.
			if len(p.pending) >= poolFlushMin || p.nready == 0 && len(p.pending) > 0 {
				p.flush()
				continue
			}
		}
		k := min(len(r), n)
		out := slices.Clone(r[len(r)-k:])
		p.ready[b] = r[:len(r)-k]
		p.nready -= k
		return out
	}
}

// addReady makes f reusable; p.mu is held.
func (p *inodePool) addReady(f pooled) {
	b := int(f.ino % uint64(len(p.ready)))
	p.ready[b] = append(p.ready[b], f)
	p.nready++
}

// flush fsyncs the directories the pending files left, then makes them
// ready. It is called with p.mu held and releases it during the fsyncs.
// pid/ itself is not fsynced: a pool entry lost in a crash leaves an
// unnamed inode for fsck, never a wrong file in the queue.
func (p *inodePool) flush() {
	batch, left := p.pending, p.left
	p.pending, p.left = nil, map[string]struct{}{}
	p.flushing = true
	p.mu.Unlock()
	dirs := make([]string, 0, len(left))
	for d := range left {
		dirs = append(dirs, d)
	}
	failed := false
	for _, err := range parallel(len(dirs), func(i int) error { return p.syncDir(dirs[i]) }) {
		if err != nil {
			failed = true
		}
	}
	if failed {
		// Their old entries may still be on disk: never reuse them.
		for _, f := range batch {
			os.Remove(p.name(f.ino))
		}
		batch = nil
	}
	p.mu.Lock()
	p.flushing = false
	for _, f := range batch {
		p.addReady(f)
	}
	p.cond.Broadcast()
}

// enabled reports whether a Scheduler runs (retire keeps inodes).
func (p *inodePool) enabled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.on && !p.off
}

// giveBack returns an inode that take handed out and that was not used.
func (p *inodePool) giveBack(f pooled) {
	p.mu.Lock()
	p.addReady(f)
	p.mu.Unlock()
}

// place moves pooled file f to target, which must not exist, after giving
// it mode (st_mode bits) and times ts (nil: now; the cleaner's 36-hour
// rule reads atime), so that no one sees it at target with those of its
// former life. It reports false when the pool entry has gone (removed by
// a cleaner); any other error is an *os.LinkError, and nothing was moved.
func (p *inodePool) place(f pooled, target string, ts []unix.Timespec, mode uint32) (bool, error) {
	src := p.name(f.ino)
	fail := func(err error) (bool, error) {
		if errors.Is(err, syscall.ENOENT) {
			if _, serr := os.Lstat(src); errors.Is(serr, fs.ErrNotExist) {
				return false, nil
			}
		}
		return true, &os.LinkError{Op: "rename", Old: src, New: target, Err: err}
	}
	if f.mode != mode {
		if err := unix.Fchmodat(unix.AT_FDCWD, src, mode, 0); err != nil {
			os.Remove(src) // its mode is unknown now
			return fail(err)
		}
		f.mode = mode
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, src, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		p.giveBack(f)
		return fail(err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, target, unix.RENAME_NOREPLACE); err != nil {
		if !errors.Is(err, syscall.ENOENT) {
			p.giveBack(f)
		}
		return fail(err)
	}
	return true, nil
}

// enable forgets every pooled inode, removes the pool entries on disk
// (including those a crash may have left as second links of live files) and
// turns retiring on or off. A Scheduler turns it on when it starts, before
// it retires anything, and off when it stops.
func (p *inodePool) enable(on bool) {
	p.mu.Lock()
	for p.flushing {
		p.cond.Wait()
	}
	for i := range p.ready {
		p.ready[i] = nil
	}
	p.nready, p.pending, p.left = 0, nil, map[string]struct{}{}
	p.on = on
	p.mu.Unlock()
	names, err := readNames(p.dir)
	if err != nil {
		return
	}
	for _, n := range names {
		if strings.HasPrefix(n, poolPrefix) {
			os.Remove(filepath.Join(p.dir, n))
		}
	}
}

// newFile creates target exclusively, opened with flag (os.O_WRONLY or
// os.O_RDWR) and mode perm, from a pooled inode when one is ready. A reused
// file keeps its old bytes until overwritten: the caller must truncate it
// to the length written before fsyncing it (reused reports whether that is
// needed).
func (q *Queue) newFile(target string, flag int, perm fs.FileMode) (f *os.File, reused bool, err error) {
	f, _, err = q.reuse(func(uint64) string { return target }, flag, perm)
	if f != nil || err != nil {
		return f, f != nil, err
	}
	f, err = openFile(target, flag|os.O_CREATE|os.O_EXCL, perm)
	return f, false, err
}

// reuse moves a pooled inode to target(its inode number) with mode perm
// and opens it with flag. It returns a nil file when the pool has none
// ready.
func (q *Queue) reuse(target func(ino uint64) string, flag int, perm fs.FileMode) (*os.File, uint64, error) {
	for {
		pf, ok := q.pool.take()
		if !ok {
			return nil, 0, nil
		}
		path := target(pf.ino)
		placed, err := q.pool.place(pf, path, nil, uint32(perm.Perm()))
		if err != nil {
			return nil, 0, err
		}
		if !placed {
			continue
		}
		f, err := openFile(path, flag, 0)
		if err != nil {
			os.Remove(path)
			return nil, 0, err
		}
		return f, pf.ino, nil
	}
}

// reuseMess makes a pooled inode the next message file, as an injector's
// (live.go): it opens pid/pool.N, locks it, gives it the mark and fresh
// times, and only then renames it to mess/S/N, opened for reading and
// writing. It returns a nil file when the pool has none ready.
func (q *Queue) reuseMess() (*os.File, uint64, error) {
	p := q.pool
	for {
		pf, ok := p.take()
		if !ok {
			return nil, 0, nil
		}
		src := p.name(pf.ino)
		fd, err := durable.Openat(unix.AT_FDCWD, src, unix.O_RDWR|unix.O_NOFOLLOW, 0)
		if err == unix.ENOENT {
			continue // a cleaner removed it
		}
		if err != nil {
			os.Remove(src)
			return nil, 0, &os.PathError{Op: "open", Path: src, Err: err}
		}
		target := q.path("mess", ID(pf.ino))
		placed, err := lockAndPlace(fd, pf, src, target)
		if err != nil || !placed {
			unix.Close(fd)
			if err != nil {
				p.giveBack(pooled{pf.ino, markedMode})
				return nil, 0, err
			}
			continue
		}
		return os.NewFile(uintptr(fd), target), pf.ino, nil
	}
}

// lockAndPlace is reuseMess's work on the open pool entry src: it reports
// false when the entry was removed by a cleaner meanwhile.
func lockAndPlace(fd int, pf pooled, src, target string) (bool, error) {
	if err := lockFD(fd); err != nil {
		return false, &os.PathError{Op: "flock", Path: src, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, &os.PathError{Op: "fstat", Path: src, Err: err}
	}
	if st.Nlink == 0 {
		return false, nil
	}
	if pf.mode != markedMode {
		if err := unix.Fchmod(fd, markedMode); err != nil {
			return false, &os.PathError{Op: "fchmod", Path: src, Err: err}
		}
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, src, nil, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return false, &os.PathError{Op: "utimes", Path: src, Err: err}
	}
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, target, unix.RENAME_NOREPLACE)
	if errors.Is(err, syscall.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, &os.LinkError{Op: "rename", Old: src, New: target, Err: err}
	}
	return true, nil
}

// openFile is os.OpenFile for the queue's regular files without the
// runtime poller: os.OpenFile spends four fcntl calls and an epoll_ctl on
// every open to find out that a regular file cannot be polled, and the queue
// opens several files per message.
func openFile(path string, flag int, perm fs.FileMode) (*os.File, error) {
	fd, err := durable.Openat(unix.AT_FDCWD, path, flag, uint32(perm.Perm()))
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// readRegularFile reads the regular file at path. Anything else there is
// an error, neither followed nor waited on: a symlink could point out of
// the queue, and a FIFO would block the open until a writer comes, then
// each read; the caller (the scheduler's loop) must not wait on either.
func readRegularFile(path string) ([]byte, error) {
	fd, err := durable.Openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &os.PathError{Op: "read", Path: path, Err: errors.New("not a regular file")}
	}
	return io.ReadAll(f)
}

// readQueueFile is os.ReadFile through openFile.
func readQueueFile(path string) ([]byte, error) {
	f, err := openFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
