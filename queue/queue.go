package queue

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/internal/durable"
)

// DefaultSplit is qmail's conf-split: the number of subdirectories of the
// split directories mess, info, local and remote.
const DefaultSplit = 23

// ErrClosed is returned by operations on a Queue after Close.
var ErrClosed = errors.New("queue: closed")

// ErrReadOnly is returned by operations that change a Queue opened with
// Options.ReadOnly.
var ErrReadOnly = errors.New("queue: opened read-only")

// ID is a message's number: the inode number of its mess file, as in qmail.
type ID uint64

// String returns the decimal number, as qmail writes it in file names and logs.
func (id ID) String() string { return strconv.FormatUint(uint64(id), 10) }

// Origin identifies an injector: its process id (qmail's "qp", the long-term
// queue id), its real uid, and the "invoked ..." words of the Received line.
type Origin struct {
	PID int
	UID int
	// Who is what follows "invoked " in the Received line: "by uid 1000",
	// "by alias", "from network" or "for bounce". Empty means "by uid UID".
	Who string
}

func (o Origin) who() string {
	if o.Who != "" {
		return o.Who
	}
	return "by uid " + strconv.Itoa(o.UID)
}

// Options configure Open. The zero value opens or creates a qmail-layout
// queue with split 23, stamped with this process's pid and uid.
type Options struct {
	// Split is the number of split subdirectories. Zero means: the number
	// found in an existing queue's mess/ directory, else DefaultSplit.
	// A non-zero value that disagrees with an existing queue is an error
	// (qmail-upq moves files after a change of split; we do not).
	Split int

	// ReadOnly opens an existing queue without creating, repairing or
	// cleaning anything, as qmail-qread and qmail-qstat do.
	ReadOnly bool

	// NoCreate opens an existing queue without creating what is missing:
	// a missing subdirectory then fails the operation that needs it, with
	// qmail-queue's exit code (63 pid, 64 mess, 65 intd, 66 todo), as
	// qmail-queue does. Open fails when dir itself is missing.
	NoCreate bool

	// Fsync, when set, runs the fsyncs of injections (of the mess and
	// intd files and of the mess/S, intd and todo directories) in place
	// of fsync(2), given the open descriptor, for instance through an
	// io_uring, so that an injection waiting for its fsyncs parks its
	// goroutine instead of blocking an OS thread (examples/mta does so,
	// through package mta). It must not return before the data is as
	// durable as fsync(2) makes it, and returns fsync's error.
	Fsync func(fd int) error

	// NoClean skips the removal of stale injection leftovers at Open
	// (CleanStale), which walks all of mess/. Short-lived injectors such
	// as qmail-queue set it; the scheduler cleans periodically.
	NoClean bool

	// Origin is the injector identity used when Create is given the zero
	// Origin. Its zero value means os.Getpid(), os.Getuid(), "by uid UID".
	Origin Origin

	// Now returns the current time, for Received dates and the 36-hour
	// cleanup rule. Nil means time.Now.
	Now func() time.Time
}

// Queue is an on-disk qmail queue. It is safe for concurrent use; its
// methods start no goroutines.
type Queue struct {
	dir    string
	split  int
	ro     bool
	origin Origin
	now    func() time.Time
	start  int64 // process start time in pid/ file names

	seq    atomic.Uint64
	closed atomic.Bool

	// noUnnamed is set once O_TMPFILE or /proc/self/fd was found
	// missing: message files are then made as pid/ files (live.go).
	// procFD is set once /proc/self/fd was found.
	noUnnamed, procFD atomic.Bool

	pool *inodePool // recycled inodes, filled while a Scheduler runs here

	// writers holds the buffers of finished Writers (*bufio.Writer), so
	// that an injection allocates none.
	writers sync.Pool

	messSync []*dirSync // one per mess/S
	intdSync *dirSync
	todoSync *dirSync
	slots    slots // prepared while a Scheduler runs (slots.go)

	// fresh hands committed messages to a Scheduler running on q.
	fresh freshList

	fsyncHook func(fd int) error // Options.Fsync; nil: fsync(2)

	// deleteHook, for tests, is called after each removal of a deletion
	// (admin.go) with the kind of file removed; an error stops it there.
	deleteHook func(kind string) error

	// notify is signalled (non-blocking) after every committed injection;
	// a Scheduler running on this Queue waits on it.
	notify chan struct{}
	// running counts the Schedulers running on q: they take fresh
	// messages, and the FIFO need not be pulled for q's injections.
	running atomic.Int32
}

// Directory modes of a qmail install (qmail's hier.c), owners aside.
var dirModes = []struct {
	name  string
	mode  fs.FileMode
	split bool
}{
	{"pid", 0o700, false},
	{"mess", 0o750, true},
	{"intd", 0o700, false},
	{"todo", 0o750, false},
	{"info", 0o700, true},
	{"local", 0o700, true},
	{"remote", 0o700, true},
	{"bounce", 0o700, false},
	{"dsn", 0o700, false}, // DSN parameters (dsn.go), not qmail's
	{"lock", 0o750, false},
	{"hold", 0o700, true}, // not qmail's: held messages (admin.go)
}

// Open opens the queue in dir (QMAILHOME/queue), creating the directory, its
// subdirectories and the lock files with qmail's modes where they are
// missing, and removing the leftovers of interrupted injections older than
// 36 hours as qmail-clean does (see [Queue.CleanStale]). With
// Options.ReadOnly nothing is created or removed.
func Open(dir string, opts Options) (*Queue, error) {
	q := &Queue{
		dir:    dir,
		ro:     opts.ReadOnly,
		origin: opts.Origin,
		now:    opts.Now,
		notify: make(chan struct{}, 1),

		fsyncHook: opts.Fsync,
	}
	q.writers.New = func() any { return bufio.NewWriterSize(nil, 32<<10) }
	if q.now == nil {
		q.now = time.Now
	}
	if q.origin == (Origin{}) {
		q.origin = Origin{PID: os.Getpid(), UID: os.Getuid()}
	}
	q.start = q.now().Unix()
	found, err := existingSplit(filepath.Join(dir, "mess"))
	if err != nil {
		return nil, fmt.Errorf("queue: open: %w", err)
	}
	switch {
	case opts.Split < 0:
		return nil, fmt.Errorf("queue: open: negative split %d", opts.Split)
	case opts.Split == 0 && found > 0:
		q.split = found
	case opts.Split == 0:
		q.split = DefaultSplit
	case found > 0 && found != opts.Split:
		return nil, fmt.Errorf("queue: open: %s has split %d, not %d", dir, found, opts.Split)
	default:
		q.split = opts.Split
	}
	switch {
	case q.ro:
		if _, err := os.Stat(filepath.Join(dir, "mess")); err != nil {
			return nil, fmt.Errorf("queue: open: %w", err)
		}
	case opts.NoCreate:
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			if err == nil {
				err = fmt.Errorf("%s: not a directory", dir)
			}
			return nil, fmt.Errorf("queue: open: %w", err)
		}
	default:
		if err := q.create(); err != nil {
			return nil, fmt.Errorf("queue: open: %w", err)
		}
	}
	q.messSync = make([]*dirSync, q.split)
	for i := range q.messSync {
		q.messSync[i] = q.newDirSync(filepath.Join(dir, "mess", strconv.Itoa(i)))
	}
	q.intdSync = q.newDirSync(filepath.Join(dir, "intd"))
	q.todoSync = q.newDirSync(filepath.Join(dir, "todo"))
	q.pool = newInodePool(filepath.Join(dir, "pid"), q.split)
	q.slots.cond = sync.NewCond(&q.slots.mu)
	shared := map[string]*dirSync{q.intdSync.dir: q.intdSync, q.todoSync.dir: q.todoSync}
	for _, d := range q.messSync {
		shared[d.dir] = d
	}
	q.pool.syncDir = func(dir string) error {
		if d := shared[dir]; d != nil {
			return d.sync() // one fsync with concurrent injections
		}
		return q.syncDir(dir)
	}
	if !q.ro && !opts.NoClean {
		if err := q.CleanStale(q.now()); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// existingSplit counts the numeric subdirectories of mess/, 0 if none.
func existingSplit(mess string) (int, error) {
	ents, err := os.ReadDir(mess)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if _, ok := parseNum(e.Name()); ok && e.IsDir() {
			n++
		}
	}
	return n, nil
}

// create makes what a qmail install makes, where missing, then fsyncs every
// directory it changed so that the layout itself survives a crash.
func (q *Queue) create() error {
	var changed []string
	mkdir := func(p string, mode fs.FileMode) error {
		err := os.Mkdir(p, mode)
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		if err != nil {
			return err
		}
		// A new directory is durable once its parent's entry is; its
		// own children are covered when it is synced as their parent.
		changed = append(changed, filepath.Dir(p))
		return os.Chmod(p, mode) // the umask must not weaken or widen qmail's modes
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(q.dir)), 0o755); err != nil {
		return err
	}
	if err := mkdir(q.dir, 0o750); err != nil {
		return err
	}
	for _, d := range dirModes {
		p := filepath.Join(q.dir, d.name)
		if err := mkdir(p, d.mode); err != nil {
			return err
		}
		if !d.split {
			continue
		}
		for i := 0; i < q.split; i++ {
			if err := mkdir(filepath.Join(p, strconv.Itoa(i)), d.mode); err != nil {
				return err
			}
		}
	}
	lock := filepath.Join(q.dir, "lock")
	if c, err := createFile(filepath.Join(lock, "sendmutex"), 0o600, nil); err != nil {
		return err
	} else if c {
		changed = append(changed, lock)
	}
	if c, err := createFile(filepath.Join(lock, "tcpto"), 0o644, make([]byte, 1024)); err != nil {
		return err
	} else if c {
		changed = append(changed, lock)
	}
	trig := filepath.Join(lock, "trigger")
	if err := syscall.Mkfifo(trig, 0o622); err == nil {
		changed = append(changed, lock)
		if err := os.Chmod(trig, 0o622); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("mkfifo %s: %w", trig, err)
	}
	seen := map[string]bool{}
	for _, d := range changed {
		if seen[d] {
			continue
		}
		seen[d] = true
		if err := durable.SyncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// createFile creates p exclusively with mode and content, fsynced; it reports
// whether it created the file.
func createFile(p string, mode fs.FileMode, content []byte) (bool, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := f.Write(content); err != nil {
		f.Close()
		return true, err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return true, err
	}
	return true, durable.SyncClose(f)
}

// Dir returns the queue directory.
func (q *Queue) Dir() string { return q.dir }

// Split returns the queue's split.
func (q *Queue) Split() int { return q.split }

// Close marks the queue closed: later injections fail with ErrClosed.
// Injections already past Create complete or fail on their own.
func (q *Queue) Close() error {
	q.closed.Store(true)
	return nil
}

// fsync is f.Sync, with Options.Fsync when set.
func (q *Queue) fsync(f *os.File) error { return durable.SyncFileWith(f, q.fsyncHook) }

// syncDir fsyncs directory dir, with Options.Fsync when set.
func (q *Queue) syncDir(dir string) error { return durable.SyncDirWith(dir, q.fsyncHook) }

// Path returns the path, relative to the queue directory, of message id's
// file in directory kind ("mess", "info", "local", "remote" and "hold" are
// split; "todo", "intd", "bounce" are flat), as qmail's fmtqfn builds it.
func Path(kind string, id ID, split int) string {
	switch kind {
	case "mess", "info", "local", "remote", "hold":
		return kind + "/" + strconv.FormatUint(uint64(id)%uint64(split), 10) + "/" + id.String()
	}
	return kind + "/" + id.String()
}

func (q *Queue) path(kind string, id ID) string {
	return filepath.Join(q.dir, Path(kind, id, q.split))
}

// parseNum parses a queue file name: decimal digits only, as qmail's scan
// accepts (leading zeros are tolerated by qmail's scan_ulong; so are we).
func parseNum(s string) (ID, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return ID(n), true
}
