package queue

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/qmailkit/qmailkit/internal/durable"
)

// Telling a dead injection from a live one.
//
// qmail cannot tell them apart, so its cleaner waits 36 hours, longer than
// qmail-queue's 24-hour suicide alarm, before it removes what an injection
// left. This package's injectors leave a proof of life that the kernel
// takes away when they die:
//
//   - An injector holds flock(LOCK_EX) on its message file from before the
//     file has any name in the queue until the injection ends: Commit has
//     linked todo/N, or Abort has removed the files. The kernel drops the
//     lock when the process dies, however it dies.
//   - Its message file bears the mark, the sticky bit (mode 01644 instead
//     of qmail-queue's 0644; the bit means nothing on a regular file, and
//     qmail's programs ignore it), set only once the lock is held. A file
//     with the mark was therefore locked by its injector, and a marked
//     file whose lock can be taken belongs to an injector that has ended:
//     if it has neither todo/N nor info/S/N, it is an orphan.
//   - A cleaner takes the lock itself (LOCK_NB) before it removes anything
//     of message N, and holds it until mess/S/N and intd/N are gone; it
//     looks for todo/N and info/S/N again once it holds it. An injector
//     links todo/N only while it holds the lock, so a todo/N that is
//     absent then stays absent until the cleaner is done.
//
// The lock is taken before the file becomes visible, so that no cleaner
// can find a marked file whose live injector does not hold its lock yet:
// a fresh message file is created unnamed (O_TMPFILE) with the mark,
// locked, and only then linked to mess/S/N; a recycled inode is locked and
// marked under its pid/pool.N name, which no cleaner treats as an
// injection, and then renamed to mess/S/N. Where the file system has no
// O_TMPFILE (or /proc/self/fd is missing, through which the file is
// linked), the file is created as pid/<pid>.<time>.<seq> with qmail's mode
// 0644, locked, and marked only then: until it is marked it looks like a
// foreign injection, which cleaners leave to the 36-hour rule, so an
// injector killed in that instant leaves a pid/ file for 36 hours, as
// qmail-queue does.
//
// A slot prepared from the pool (slots.go) is marked but not locked: no
// injection owns it yet, and the Scheduler's process may hand it out at
// any time. Its mtime, the epoch until an injection writes it, tells it
// from an injection, and cleaners leave it to the 36-hour rule, except a
// Scheduler that starts (it holds lock/sendmutex, so the Scheduler that
// made the slot is gone). An injection that takes such a slot locks it,
// then checks that it still has a name and still the slot mark: a cleaner
// that removed it did so under the lock, so after the lock the injector
// sees nlink 0; and if inode N, freed, has since become another message's
// mess/S/N, that file is not a slot's. Either way the injector takes
// another slot, and removes nothing by name. A finished message's files
// become a slot while the Scheduler holds their lock, from before todo/N
// is removed until the slot mark is set, so that no cleaner sees them in
// between as a dead injection's; where its descriptor is open for writing
// the Scheduler's process keeps it, and the lock with it, until an
// injection takes the slot and writes through that descriptor (it needs
// neither to open nor to lock the file again, nor to check it: no one
// could remove or change it meanwhile) or the slot is dropped. A cleaner
// finds such a slot locked and leaves it, as a live injection's; if the
// process dies, the slot is an unlocked one as above.
//
// Removing files by number. A message's files are named by its number N,
// the inode number of its mess file, and the numbers of freed inodes come
// back at once on ext4: a file created the next moment may be inode N,
// a new injection's mess/S/N, whose intd/N follows. So whoever removes
// mess/S/N or intd/N by number holds an open descriptor of inode N, its
// mess file, with its lock, and has seen under the lock that the file is
// still the one meant: while the descriptor is open inode N is not freed,
// so no other mess file is numbered N, and no injection numbered N (which
// would need inode N) can write intd/N. A cleaner holds it from its
// decision until mess/S/N and intd/N are gone; a Writer's Abort holds it
// as the injector; the Scheduler holds it from before a finished message's
// last name (info/S/N, or todo/N of a direct message) is removed until its
// files are removed or made a slot (endMsg), since from that removal on a
// cleaner would take the files, marked and unlocked and with neither name,
// for those of a dead injection; and it drops a slot only under its lock,
// while the file still bears the slot mark (dropSlot), since a starting
// Scheduler's cleaner may have removed it. The rename of inode N into the
// pool does not free it, but makes it another file of the pool: so only
// that lock holder retires mess/S/N, and an injection that takes inode N
// back takes its lock first (reuseMess), or finds it a slot and locks it
// before it writes (openSlot). An intd/N without mess/S/N has no inode N
// to hold: a cleaner removes it under the lock of the intd file itself,
// which no injector takes, so that two cleaners never both judge it, and
// while it is there no injection numbered N can create intd/N.
//
// Files that bear no mark (made by qmail's own qmail-queue, by an older
// version of this package, or by an injector killed between creating its
// pid/ file and marking it) cannot be proven dead: the 36-hour rule
// applies to them, as in qmail. The cleaner opens candidates with
// O_NOFOLLOW and O_NONBLOCK and reads nothing, so that neither a symbolic
// link nor a FIFO planted in the queue can make it follow or block, and
// atimes stay as qmail's rule needs them.

// markedMode is the mode of a message file made by this package's
// injectors: qmail-queue's 0644 and the mark (S_ISVTX). A fresh file's
// permission bits are 0644 less the umask, as before.
const markedMode = 0o1644

// modeBits are the bits of st_mode compared with markedMode.
const modeBits = 0o7777

// isMarked reports whether st is a regular file with the mark.
func isMarked(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&unix.S_ISVTX != 0
}

// lockFD takes the injector's lock on fd, waiting while a cleaner holds it
// (a cleaner holds it for a few system calls).
func lockFD(fd int) error {
	for {
		if err := unix.Flock(fd, unix.LOCK_EX); err != unix.EINTR {
			return err
		}
	}
}

// createUnnamed makes a fresh message file: an unnamed file in pid/ with
// the mark, locked, linked to mess/S/N (N its inode number) through
// /proc/self/fd. It reports false, with nothing made, when the file system
// or the kernel has no O_TMPFILE or there is no /proc/self/fd: the caller
// then creates a pid/ file as qmail-queue does.
func (q *Queue) createUnnamed(o Origin) (*Writer, bool, error) {
	pid := q.dir + "/pid"
	fd, err := durable.Openat(unix.AT_FDCWD, pid, unix.O_TMPFILE|unix.O_RDWR, markedMode)
	switch {
	case err == unix.EOPNOTSUPP || err == unix.EISDIR || err == unix.EINVAL:
		// No O_TMPFILE here (EISDIR: a kernel that does not know it).
		q.noUnnamed.Store(true)
		return nil, false, nil
	case err != nil:
		return nil, true, qerr(63, "create pid file", &os.PathError{Op: "open", Path: pid, Err: err})
	}
	self := "/proc/self/fd/" + strconv.Itoa(fd)
	if !q.procFD.Load() {
		if err := unix.Faccessat(unix.AT_FDCWD, self, unix.F_OK, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			unix.Close(fd)
			q.noUnnamed.Store(true)
			return nil, false, nil
		}
		q.procFD.Store(true)
	}
	fail := func(code int, op string, err error) (*Writer, bool, error) {
		unix.Close(fd)
		return nil, true, qerr(code, op, err)
	}
	if err := lockFD(fd); err != nil {
		return fail(63, "lock pid file", &os.PathError{Op: "flock", Path: pid, Err: err})
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fail(63, "stat pid file", &os.PathError{Op: "fstat", Path: pid, Err: err})
	}
	if st.Mode&unix.S_ISVTX == 0 {
		// The file system ignored the mark on creation; the file is
		// invisible still, so no cleaner can see it unmarked.
		if err := unix.Fchmod(fd, st.Mode&0o777|unix.S_ISVTX); err != nil {
			return fail(63, "chmod pid file", &os.PathError{Op: "fchmod", Path: pid, Err: err})
		}
	}
	id := ID(st.Ino)
	mess := q.path("mess", id)
	for {
		err = unix.Linkat(unix.AT_FDCWD, self, unix.AT_FDCWD, mess, unix.AT_SYMLINK_FOLLOW)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fail(64, "link mess file", &os.LinkError{Op: "link", Old: pid + "/(unnamed)", New: mess, Err: err})
	}
	return &Writer{q: q, id: id, origin: o, f: os.NewFile(uintptr(fd), mess)}, true, nil
}

// lockNamed locks a pid/ file that createMess just created and marks it:
// the mark comes after the lock, since the file is visible (see above).
func lockNamed(f *os.File) (*unix.Stat_t, error) {
	fd := int(f.Fd())
	if err := lockFD(fd); err != nil {
		return nil, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	if st.Nlink == 0 {
		return nil, &os.PathError{Op: "flock", Path: f.Name(), Err: errRemoved}
	}
	if err := unix.Fchmod(fd, st.Mode&0o777|unix.S_ISVTX); err != nil {
		return nil, &os.PathError{Op: "fchmod", Path: f.Name(), Err: err}
	}
	return &st, nil
}

// errRemoved: a cleaner removed the file before the injector held its lock.
var errRemoved = errors.New("removed by a cleaner")

// probe is a cleaner's look at the file at path: it opens it (without
// following a symbolic link, without blocking on a FIFO) and, for a
// regular file, tries the injector's lock. alive is true when an injector
// holds it. Otherwise, with the lock held and st the file's status, it
// calls remove if decide says so, and releases the lock after remove
// returns. A path that is gone is no error; a symbolic link or another
// file that is not a regular one is given to decide without a lock (no
// injector makes one, and isMarked is false for it).
func probe(path string, decide func(st *unix.Stat_t) bool, remove func() error) (alive bool, err error) {
	fd, err := durable.Openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	switch {
	case err == unix.ENOENT:
		return false, nil
	case err == unix.ELOOP || err == unix.ENXIO:
		// A symbolic link, or a socket: nothing an injector makes.
		var st unix.Stat_t
		if unix.Lstat(path, &st) == nil && decide(&st) {
			return false, remove()
		}
		return false, nil
	case err == unix.EACCES || err == unix.EPERM:
		return false, nil // not this cleaner's to judge
	case err != nil:
		return false, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		if decide(&st) {
			return false, remove()
		}
		return false, nil
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	if err == unix.EWOULDBLOCK {
		return true, nil
	}
	if err != nil {
		return false, &os.PathError{Op: "flock", Path: path, Err: err}
	}
	// Under the lock: is path still this file? (A pid/ name can be
	// removed and made again; a mess/S/N name only ever names inode N.)
	var now unix.Stat_t
	if err := unix.Lstat(path, &now); err != nil || now.Ino != st.Ino || now.Dev != st.Dev {
		return false, nil
	}
	if decide(&now) {
		return false, remove()
	}
	return false, nil
}
