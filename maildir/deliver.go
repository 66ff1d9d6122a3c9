package maildir

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
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

// DeliveryTimeout is how long a delivery may take before it is abandoned:
// qmail-local's 24-hour alarm. [Dir.Clean] removes what an abandoned
// delivery might leave after [CleanAge].
const DeliveryTimeout = 24 * time.Hour

// attempts is how many unique names a delivery tries before giving up,
// waiting retryWait after each name that exists (qmail-local: 3, 2 s).
const (
	attempts  = 3
	retryWait = 2 * time.Second
)

// Naming selects the form of the unique names a [Deliverer] makes.
type Naming int

const (
	// NamingModern is "<sec>.M<usec>P<pid>Q<n>R<random>.<host>", with a
	// process-wide delivery counter Q and 8 cryptographically random bytes
	// R: unique for any number of deliveries per second from one process or
	// from several Deliverer values.
	NamingModern Naming = iota
	// NamingQmail is qmail-local's "<sec>.<pid>.<host>". It is unique only
	// for one delivery per process per second: a second delivery into the
	// same Maildir in the same second finds its name taken (in tmp/, or in
	// new/, which qmail-local never needs to look at since each of its
	// deliveries is a new process) and waits 2 seconds for a new one. Use
	// it only where a drop-in qmail-local must write qmail's names. Unlike
	// qmail-local, which writes gethostname's bytes as they are, the host
	// name is escaped as in NamingModern (a '/' would make qmail-local
	// fail).
	NamingQmail
)

// Deliverer delivers messages into Maildirs with qmail-local's safe
// protocol (write in tmp/, then link into new/). The zero value is ready to
// use: it names files in the modern format with the real host name, pid,
// clock and a cryptographic random part, and enforces a Maildir++ quota
// when the Maildir has a maildirsize file. A Deliverer may be used by many
// goroutines at once and must not be copied after first use.
type Deliverer struct {
	// Host is the host name put in unique names; empty means
	// os.Hostname(). '/' is written as `\057`, ':' as `\072` and ',' as
	// `\054`. Every machine delivering into a shared (NFS) Maildir must
	// have its own.
	Host string
	// Pid is the process id put in unique names; zero means os.Getpid().
	Pid int
	// Now gives the delivery time for unique names; nil means time.Now.
	Now func() time.Time
	// Rand is the source of the random part of unique names; nil means
	// crypto/rand. It is read 8 bytes per name.
	Rand io.Reader
	// Naming selects the unique-name format (default NamingModern).
	Naming Naming
	// SizeTag appends the Maildir++ size field ",S=<bytes>" to the name of
	// each delivered file, which lets quota code and [Dir.Scan] skip a
	// stat. Courier, Dovecot and maildrop write it; qmail does not.
	SizeTag bool
	// Quota, when not zero, is the Maildir++ quota to enforce; it replaces
	// the quota line of maildirsize (creating the file) when different.
	// When zero, the quota of an existing maildirsize is enforced, and a
	// Maildir without one has no quota.
	Quota Quota
	// QuotaPermanent makes an over-quota refusal permanent (5.2.2, the
	// message bounces) instead of temporary (4.2.2, the sender retries).
	QuotaPermanent bool
	// Timeout abandons a delivery that takes longer; zero means
	// DeliveryTimeout (24 hours). The context's own deadline applies too.
	Timeout time.Duration
	// Unnamed writes each message as an unnamed file in tmp/ (Linux's
	// O_TMPFILE) and links it from there straight into new/, instead of
	// creating tmp/X, linking it to new/X and unlinking tmp/X. Readers
	// see the same complete, fsynced file appear in new/ through one
	// link. No tmp/ name is made, so a crash leaves nothing to clean in
	// tmp/, and concurrent deliveries do not queue for tmp/'s directory
	// lock, which a create and an unlink each take. It applies to
	// NamingModern; where the kernel or the file system (NFS among them)
	// has no O_TMPFILE, or /proc/self/fd is missing, deliveries use the
	// tmp/ protocol, as they do when Unnamed is false.
	Unnamed bool
	// Fsync, when set, runs the fsyncs of the message file and of new/
	// in place of fsync(2), given the open descriptor (for instance
	// through an io_uring). It must not return before the data is as
	// durable as fsync(2) makes it, and returns fsync's error.
	Fsync func(fd int) error

	// seq counts the names this Deliverer made: the Q<n> field. Two
	// Deliverer values in one process count separately; their names still
	// differ by the random part.
	seq atomic.Uint64

	// link replaces root.Link in tests that simulate link failures.
	link func(root *os.Root, oldname, newname string) error

	// noUnnamed is set when an unnamed delivery found O_TMPFILE or
	// /proc/self/fd unavailable: later deliveries use tmp/ names.
	noUnnamed atomic.Bool
	// procFD is set once an unnamed delivery found /proc/self/fd.
	procFD atomic.Bool

	// syncs holds, per Maildir with deliveries in progress, the group
	// commit of its new/ fsync; an entry goes with its last delivery.
	syncMu sync.Mutex
	syncs  map[string]*newSync

	// bufs holds copy buffers (*[]byte) between deliveries.
	bufs sync.Pool
}

type newSync struct {
	durable.GroupSync
	users int
}

// syncNew fsyncs dir/new for a delivery whose link into it has returned,
// sharing the fsync with concurrent deliveries into the same Maildir
// (durable.GroupSync): a delivery is reported durable only by an fsync that
// began after its link.
func (dl *Deliverer) syncNew(dir string) error {
	key := filepath.Clean(dir)
	dl.syncMu.Lock()
	if dl.syncs == nil {
		dl.syncs = map[string]*newSync{}
	}
	s := dl.syncs[key]
	if s == nil {
		s = &newSync{}
		s.Fn = func() error { return durable.SyncDirWith(filepath.Join(key, "new"), dl.Fsync) }
		dl.syncs[key] = s
	}
	s.users++
	dl.syncMu.Unlock()
	err := s.Sync()
	dl.syncMu.Lock()
	if s.users--; s.users == 0 {
		delete(dl.syncs, key)
	}
	dl.syncMu.Unlock()
	return err
}

// sync fsyncs f, with dl.Fsync when set.
func (dl *Deliverer) sync(f *os.File) error { return durable.SyncFileWith(f, dl.Fsync) }

// DeliveryError is the error of a failed delivery, telling which step
// failed. Every DeliveryError is temporary, except one wrapping a
// permanent *QuotaError; the temporary file of the delivery has always been
// removed. One failure comes after the message is in new/: the fsync of
// new/ (Step "sync"). The message may then not survive a crash, so the
// delivery is reported as failed; a retry may deliver it twice, which
// qmail's rule prefers to losing it.
type DeliveryError struct {
	// Step is what failed: "open" (reaching the Maildir; qmail-local's
	// "Unable to chdir to maildir"), "create" (choosing a name or
	// creating the tmp/ file), "read" (the message reader; qmail-local's
	// "Unable to read message"), "write", "sync" (fsync or close),
	// "quota", or "link". A timeout is reported in the step it
	// interrupted, wrapping context.DeadlineExceeded (qmail-local's
	// "Timeout on maildir delivery").
	Step string
	Err  error
}

func (e *DeliveryError) Error() string { return "maildir: deliver: " + e.Step + ": " + e.Err.Error() }
func (e *DeliveryError) Unwrap() error { return e.Err }

// Deliver delivers the message read from r into dir with a zero
// [Deliverer]. Its names always carry Q1: the random part keeps them
// unique; use one long-lived Deliverer to have Q count deliveries.
func (d Dir) Deliver(ctx context.Context, r io.Reader) (string, error) {
	var dl Deliverer
	return dl.Deliver(ctx, d, r)
}

// Deliver delivers the message read from r into dir and returns the name of
// the new file in dir/new. As qmail-local does, it creates a file with a
// unique name in tmp/ (O_EXCL; when the name exists it waits 2 seconds and
// tries a new name, 3 names in all), copies r into it checking every write,
// fsyncs and closes it checking both, checks the quota, links it into new/
// (or, where the file system has no hard links, renames it there after
// checking that the name is free: it never replaces a file), fsyncs new/,
// and removes the tmp/ file. The message is delivered once the link is
// made; Deliver reports success only after new/ is fsynced.
//
// Every failure removes the tmp/ file and returns a *[DeliveryError]. A
// delivery that runs past Timeout (24 hours by default) or ctx is
// abandoned between reads; a reader that blocks forever is not
// interrupted, so a network reader needs its own deadline.
func (dl *Deliverer) Deliver(ctx context.Context, dir Dir, r io.Reader) (name string, err error) {
	timeout := dl.Timeout
	if timeout <= 0 {
		timeout = DeliveryTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fail := func(step string, err error) (string, error) {
		return "", &DeliveryError{Step: step, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return fail("open", err)
	}
	if dl.Unnamed && dl.Naming == NamingModern && dl.link == nil && !dl.noUnnamed.Load() {
		if name, done, err := dl.deliverUnnamed(ctx, dir, r); done {
			return name, err
		}
	}
	root, err := openRoot(string(dir))
	if err != nil {
		return fail("open", err)
	}
	defer root.Close()

	f, tmpName, err := dl.create(ctx, root)
	if err != nil {
		return fail("create", err)
	}
	tmpPath := "tmp/" + tmpName
	// From here on the tmp/ file is ours: every return removes it.
	defer root.Remove(tmpPath)

	size, step, err := dl.copyMessage(ctx, f, r)
	if err != nil {
		f.Close()
		return fail(step, err)
	}
	if err := dl.sync(f); err != nil {
		f.Close()
		return fail("sync", err)
	}
	if err := f.Close(); err != nil { // NFS reports write errors here
		return fail("sync", err)
	}
	if err := ctx.Err(); err != nil {
		return fail("sync", err)
	}

	qroot, err := dl.checkQuota(root, dir, size)
	if err != nil {
		return fail("quota", err)
	}
	if qroot != nil && qroot != root {
		defer qroot.Close()
	}

	newName := tmpName
	if dl.SizeTag {
		newName += ",S=" + strconv.FormatInt(size, 10)
	}
	if err := dl.linkNew(root, tmpPath, "new/"+newName); err != nil {
		return fail("link", err)
	}
	// Delivered. Make the new entry durable before saying so, with one
	// fsync for the deliveries into this Maildir that are this far.
	if err := dl.syncNew(string(dir)); err != nil {
		return fail("sync", err)
	}
	addDelta(qroot, size)
	return newName, nil
}

// checkQuota checks the Maildir++ quota for a message of size bytes into
// the Maildir open as root: the quota of a folder is its parent's. It
// returns the root whose maildirsize gets the delivery's delta line (root,
// or its parent, which the caller closes), or nil when no quota is kept.
func (dl *Deliverer) checkQuota(root *os.Root, dir Dir, size int64) (*os.Root, error) {
	qroot, qpath := root, string(dir)
	if _, err := root.Lstat(folderFile); err == nil {
		qpath = filepath.Dir(filepath.Clean(qpath))
		var err error
		if qroot, err = openRoot(qpath); err != nil {
			return nil, err
		}
	}
	track, err := checkQuota(qroot, qpath, dl.Quota, dl.QuotaPermanent, dl.now(), size)
	if err != nil || !track {
		if qroot != root {
			qroot.Close()
		}
		return nil, err
	}
	return qroot, nil
}

// addDelta appends a delivery's line to the maildirsize in qroot (nil:
// none). Best effort, as in Courier: a lost line is fixed by the next
// recalculation.
func addDelta(qroot *os.Root, size int64) {
	if qroot == nil {
		return
	}
	if qf, err := openRegular(qroot, quotaFile, os.O_WRONLY|os.O_APPEND); err == nil {
		writeDelta(qf, size, 1)
	}
}

func (dl *Deliverer) now() time.Time {
	if dl.Now != nil {
		return dl.Now()
	}
	return time.Now()
}

// create makes tmp/<unique> with O_EXCL, trying up to attempts names.
func (dl *Deliverer) create(ctx context.Context, root *os.Root) (*os.File, string, error) {
	for i := 1; ; i++ {
		name, err := dl.uniqueName()
		if err != nil {
			return nil, "", err
		}
		f, err := root.OpenFile("tmp/"+name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil && dl.Naming == NamingQmail {
			// This process may have delivered under this name earlier
			// in the same second.
			if _, serr := root.Lstat("new/" + name); serr == nil {
				f.Close()
				root.Remove("tmp/" + name)
				f, err = nil, &fs.PathError{Op: "create", Path: "new/" + name, Err: fs.ErrExist}
			}
		}
		if err == nil {
			return f, name, nil
		}
		if !errors.Is(err, fs.ErrExist) || i == attempts {
			return nil, "", err
		}
		t := time.NewTimer(retryWait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, "", fmt.Errorf("%w (while waiting to retry after %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// uniqueName makes the next unique name of this Deliverer.
func (dl *Deliverer) uniqueName() (string, error) {
	host := dl.Host
	if host == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		host = h
	}
	host = escapeHost(host)
	pid := dl.Pid
	if pid == 0 {
		pid = os.Getpid()
	}
	t := dl.now()
	if dl.Naming == NamingQmail {
		return qmailName(t, pid, host), nil
	}
	var rnd [8]byte
	src := dl.Rand
	if src == nil {
		src = rand.Reader
	}
	if _, err := io.ReadFull(src, rnd[:]); err != nil {
		return "", fmt.Errorf("random source: %w", err)
	}
	return uniqueName(t, pid, dl.seq.Add(1), rnd, host), nil
}

// copyBufSize is the size of the one buffer a delivery uses (taken from the
// Deliverer's pool): messages stream through it, whatever their size.
const copyBufSize = 32 << 10

// copyMessage copies r to f, checking every write's byte count and ctx
// between reads. It returns the number of bytes written, and on failure
// the step that failed ("read" or "write").
func (dl *Deliverer) copyMessage(ctx context.Context, f *os.File, r io.Reader) (int64, string, error) {
	bp, _ := dl.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, copyBufSize)
		bp = &b
	}
	defer dl.bufs.Put(bp)
	buf := *bp
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, "read", err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			w, werr := f.Write(buf[:n])
			total += int64(w)
			if werr == nil && w != n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return total, "write", werr
			}
		}
		if rerr == io.EOF {
			return total, "", nil
		}
		if rerr != nil {
			return total, "read", rerr
		}
	}
}

// linkNew links the tmp/ file to its name in new/. Where the file system
// has no hard links (EPERM, ENOTSUP), it renames instead, after checking
// that the new name is free, so that it never replaces a message.
func (dl *Deliverer) linkNew(root *os.Root, oldname, newname string) error {
	link := (*os.Root).Link
	if dl.link != nil {
		link = dl.link
	}
	err := link(root, oldname, newname)
	if err == nil || !(errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP)) {
		return err
	}
	switch _, serr := root.Lstat(newname); {
	case serr == nil:
		return fmt.Errorf("%w; not renaming instead: %s exists", err, newname)
	case !errors.Is(serr, fs.ErrNotExist):
		return fmt.Errorf("%w; not renaming instead: %w", err, serr)
	}
	return root.Rename(oldname, newname)
}
