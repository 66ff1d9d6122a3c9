package pop3

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/maildir"
)

// MaildirOptions choose how [OpenMaildir] reads a Maildir. The zero value
// is qmail-pop3d's reading: no lock, sizes as stored, nothing written
// besides the QUIT update.
type MaildirOptions struct {
	// Lock takes an exclusive flock(2) on the file pop3.lock in the Maildir
	// (creating it) for as long as the mailbox is open; when another
	// holder has it, OpenMaildir fails with an error wrapping [ErrInUse].
	// The lock is the kernel's, so it goes away with a crashed process.
	Lock bool
	// WireSizes fills in [Message.WireSize]: from a ",W=<n>" field of the
	// file name (Dovecot writes one), else from the cache file pop3sizes
	// in the Maildir (keyed by unique name and file size), else by reading
	// the message; new results are written back to pop3sizes. Use it only
	// with Lock, so that one session at a time writes the cache.
	WireSizes bool
	// Seen adds the flag S, at QUIT, to the messages retrieved whole with
	// RETR. qmail adds no flag.
	Seen bool
	// MissingOK counts the unlink of a message that is already gone as a
	// success at QUIT. qmail-pop3d reports it as a failure.
	MissingOK bool
	// Now is the session's start time, which decides which messages are
	// listed (those modified strictly before its second) and which tmp/
	// files are cleaned. Nil means time.Now.
	Now func() time.Time
}

// Maildir is a Maildir opened for one POP3 session: a [Mailbox] that
// behaves as qmail-pop3d (spec §4, maildir.md §5).
type Maildir struct {
	dir   maildir.Dir
	opt   MaildirOptions
	msgs  []maildir.Message
	fds   [2]int // new/ and cur/, opened once for openat
	lock  *os.File
	sizes map[string]int64 // wire sizes read from pop3sizes, by "unique size"
}

var _ Mailbox = (*Maildir)(nil)

// OpenMaildir opens the Maildir at path for a session, as qmail-pop3d
// starts (spec §4.1): it cleans tmp/ (files unaccessed for 36 hours),
// takes the lock when asked, and lists new/ then cur/ (names not starting
// with '.', regular files modified before the current second), ordered by
// modification time.
func OpenMaildir(path string, opt MaildirOptions) (*Maildir, error) {
	d, err := maildir.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pop3: open maildir: %w", err)
	}
	m := &Maildir{dir: d, opt: opt, fds: [2]int{-1, -1}}
	if opt.Lock {
		if err := m.takeLock(); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	if opt.Now != nil {
		now = opt.Now()
	}
	// qmail-pop3d ignores a failure to clean; so do we.
	d.Clean(now)
	if err := m.scan(now); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func (m *Maildir) takeLock() error {
	f, err := os.OpenFile(filepath.Join(string(m.dir), "pop3.lock"), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("pop3: lock maildir: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		if err == syscall.EWOULDBLOCK {
			return fmt.Errorf("pop3: lock maildir %s: %w", m.dir, ErrInUse)
		}
		return fmt.Errorf("pop3: lock maildir: %w", err)
	}
	m.lock = f
	return nil
}

func (m *Maildir) scan(now time.Time) error {
	for i, sub := range [2]string{"new", "cur"} {
		fd, err := syscall.Open(filepath.Join(string(m.dir), sub), syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("pop3: scan maildir: open %s: %w", sub, err)
		}
		m.fds[i] = fd
	}
	all, err := m.dir.List()
	if err != nil {
		return fmt.Errorf("pop3: scan maildir: %w", err)
	}
	// maildir.md §5: only files modified strictly before the second the
	// session started; a message delivered in this second waits.
	t := now.Unix()
	msgs := all[:0]
	for _, msg := range all {
		if msg.ModTime.Unix() < t {
			msgs = append(msgs, msg)
		}
	}
	m.msgs = msgs
	return nil
}

// Messages returns the messages found when the Maildir was opened.
func (m *Maildir) Messages(ctx context.Context) ([]Message, error) {
	out := make([]Message, len(m.msgs))
	for i, msg := range m.msgs {
		out[i] = Message{UID: msg.Unique(), Size: msg.Size, WireSize: -1}
	}
	if m.opt.WireSizes {
		if err := m.wireSizes(ctx, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sizeField returns the number in a ",X=<n>" field of a unique name.
func sizeField(unique string, x byte) (int64, bool) {
	for i := strings.IndexByte(unique, ','); i >= 0; {
		f := unique[i+1:]
		j := strings.IndexByte(f, ',')
		if j >= 0 {
			f = f[:j]
		}
		if len(f) > 2 && f[0] == x && f[1] == '=' {
			if n, err := strconv.ParseInt(f[2:], 10, 64); err == nil && n >= 0 {
				return n, true
			}
		}
		if j < 0 {
			break
		}
		i += j + 1
	}
	return 0, false
}

const sizesFile = "pop3sizes"

func sizeKey(uid string, size int64) string {
	return uid + " " + strconv.FormatInt(size, 10)
}

// loadSizes reads pop3sizes: lines "<unique> <file size> <wire size>".
// Anything unreadable is ignored: it is only a cache.
func (m *Maildir) loadSizes() map[string]int64 {
	sizes := map[string]int64{}
	b, err := os.ReadFile(filepath.Join(string(m.dir), sizesFile))
	if err != nil {
		return sizes
	}
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			break // a torn last line
		}
		i := bytes.LastIndexByte(line, ' ')
		if i <= 0 {
			continue
		}
		n, err := strconv.ParseInt(string(line[i+1:]), 10, 64)
		if err != nil || n < 0 {
			continue
		}
		sizes[string(line[:i])] = n
	}
	return sizes
}

func (m *Maildir) wireSizes(ctx context.Context, out []Message) error {
	cache := m.loadSizes()
	computed := false
	buf := make([]byte, 64<<10)
	for i := range out {
		if n, ok := sizeField(out[i].UID, 'W'); ok {
			out[i].WireSize = n
			continue
		}
		if n, ok := cache[sizeKey(out[i].UID, out[i].Size)]; ok {
			out[i].WireSize = n
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := m.Open(ctx, i)
		if err != nil {
			// Gone since the listing: RETR will say so. Count the
			// stored size plus nothing; it is not cached.
			out[i].WireSize = out[i].Size
			continue
		}
		n, err := WireSize(r, buf)
		r.Close()
		if err != nil {
			return fmt.Errorf("pop3: read %s: %w", m.msgs[i].Path(), err)
		}
		out[i].WireSize = n
		computed = true
	}
	if computed || len(cache) > len(out) {
		m.saveSizes(out)
	}
	return nil
}

// saveSizes replaces pop3sizes with the sizes of the current messages. A
// failure is ignored: the sizes are counted again next time.
func (m *Maildir) saveSizes(msgs []Message) {
	tmp := filepath.Join(string(m.dir), sizesFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return
	}
	w := bufio.NewWriterSize(f, 64<<10)
	for _, msg := range msgs {
		if _, ok := sizeField(msg.UID, 'W'); ok {
			continue
		}
		fmt.Fprintf(w, "%s %d %d\n", msg.UID, msg.Size, msg.WireSize)
	}
	if w.Flush() != nil || f.Close() != nil {
		os.Remove(tmp)
		return
	}
	if os.Rename(tmp, filepath.Join(string(m.dir), sizesFile)) != nil {
		os.Remove(tmp)
	}
}

// Open opens message i relative to the directory handle of new/ or cur/,
// without following a symbolic link.
func (m *Maildir) Open(ctx context.Context, i int) (io.ReadCloser, error) {
	if i < 0 || i >= len(m.msgs) {
		return nil, fmt.Errorf("pop3: open message %d: no such message", i+1)
	}
	msg := m.msgs[i]
	dirfd := m.fds[1]
	if msg.Subdir == "new" {
		dirfd = m.fds[0]
	}
	for {
		fd, err := syscall.Openat(dirfd, msg.Name, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pop3: open %s: %w", msg.Path(), err)
		}
		return &fileReader{fd: fd}, nil
	}
}

// fileReader reads a message with plain read(2) calls: a regular file
// needs nothing from the runtime's poller, and RETR is the hot path.
type fileReader struct{ fd int }

func (f *fileReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := syscall.Read(f.fd, p)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f *fileReader) Close() error {
	if f.fd < 0 {
		return nil
	}
	err := syscall.Close(f.fd)
	f.fd = -1
	return err
}

// Commit applies the QUIT update (maildir.md §5 step 6): it unlinks the
// deleted messages (with maildir's Maildir++ quota bookkeeping), and moves
// every other message still in new/ to cur/ with the info "2,", adding S
// to retrieved ones when Seen is set. Failures to unlink are returned, one
// error each; failures to move are ignored, as by qmail-pop3d.
func (m *Maildir) Commit(ctx context.Context, u Update) error {
	var errs []error
	for i, msg := range m.msgs {
		switch {
		case i < len(u.Deleted) && u.Deleted[i]:
			if err := m.dir.Remove(msg); err != nil {
				if m.opt.MissingOK && errors.Is(err, fs.ErrNotExist) {
					continue
				}
				errs = append(errs, err)
			}
		case m.opt.Seen && i < len(u.Retrieved) && u.Retrieved[i]:
			m.dir.SetFlags(msg, msg.Flags().Add(maildir.Seen))
		case msg.Subdir == "new":
			m.dir.Move(msg)
		}
	}
	return errors.Join(errs...)
}

// Close closes the directory handles and releases the lock.
func (m *Maildir) Close() error {
	for i, fd := range m.fds {
		if fd >= 0 {
			syscall.Close(fd)
			m.fds[i] = -1
		}
	}
	if m.lock != nil {
		err := m.lock.Close() // releases the flock
		m.lock = nil
		return err
	}
	return nil
}
