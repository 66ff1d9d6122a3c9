package queue

import (
	"bufio"
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

	"github.com/qmailkit/qmailkit/internal/qq"
)

// MaxAddressLen is the longest envelope address qmail-queue accepts, in
// bytes (qmail's limits manual page says 1000; its code allows 1002).
const MaxAddressLen = 1002

// Envelope is a message's envelope: the sender ("" for bounces) and the
// recipients, stored exactly as given (no case folding, no syntax check).
type Envelope struct {
	Sender     string
	Recipients []string
	// DSN holds the message's Delivery Status Notification parameters
	// (RFC 3461), nil when it has none. They are stored in dsn/N beside
	// qmail's files (see DSN); ReadEnvelope never sets it.
	DSN *DSN
}

// Error is an injection failure with qmail-queue's exit code (see
// [ExitText]). Codes 11 to 40 are permanent, all others temporary.
type Error struct {
	Code int
	Op   string
	Err  error
}

// Error returns "queue: " + the failed step + the cause.
func (e *Error) Error() string {
	if e.Err == nil {
		return "queue: " + e.Op
	}
	return "queue: " + e.Op + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether retrying cannot help (exit codes 11 to 40).
func (e *Error) Permanent() bool { return e.Code >= 11 && e.Code <= 40 }

// Text is what a qmail client says of the failure, without the leading D
// or Z of ExitText: "qq write error or disk full (#4.3.0)".
func (e *Error) Text() string { return ExitText(e.Code, nil)[1:] }

func qerr(code int, op string, err error) error { return &Error{Code: code, Op: op, Err: err} }

// Sentinel errors of the envelope, wrapped in an *Error.
var (
	// ErrAddressTooLong: an address longer than MaxAddressLen (exit 11).
	ErrAddressTooLong = errors.New("envelope address too long")
	// ErrEnvelopeFormat: a record that is not F or T, or a NUL inside
	// an address given to Inject (exit 91).
	ErrEnvelopeFormat = errors.New("envelope format error")
)

// Writer is a message being injected: the mess file exists (state S2 of the
// queue) and receives the bytes written, and the Writer holds its lock,
// which tells cleaners in every process that the injection is alive.
// Commit writes the envelope and queues the message; Abort removes it;
// either releases the lock. A Writer is not safe for concurrent use.
type Writer struct {
	q      *Queue
	id     ID
	origin Origin
	f      *os.File
	bw     *bufio.Writer
	werr   error
	done   bool
	quiet  bool  // Commit does not signal schedulers (the scheduler's own bounces)
	size   int64 // bytes written so far
	reused bool  // a recycled inode: Commit truncates it to what was written
	slot   bool  // a prepared slot: intd/ID exists, and no directory needs an fsync
	dsn    bool  // Commit created dsn/ID: abort removes it
}

// Create starts an injection, qmail-queue's steps 2 to 4: it creates a new
// file (unnamed in pid/, or a pid/ file where the file system cannot),
// takes its inode number as the message ID, links it to mess/S/ID (and
// unlinks the pid file) and writes the Received line. While a scheduler
// runs on q, a prepared slot, or a recycled inode from pid/pool.N, is used
// instead (see the package documentation). The Writer holds a lock on the
// message file until Commit or Abort, which tells cleaners that the
// injection is alive ("Orphans" in the package documentation). The zero
// Origin stands for Options.Origin.
func (q *Queue) Create(ctx context.Context, o Origin) (*Writer, error) {
	if q.ro {
		return nil, ErrReadOnly
	}
	if q.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if o == (Origin{}) {
		o = q.origin
	}
	now := q.now()
	// A prepared slot (slots.go), or a recycled inode, needs no pid/ file:
	// it is one already (see inodePool).
	var w *Writer
	for w == nil {
		id, ok := q.takeSlot()
		if !ok {
			break
		}
		f, ok, err := q.openSlot(id)
		if err != nil {
			return nil, qerr(64, "open mess file", err)
		}
		if ok {
			w = &Writer{q: q, id: id, origin: o, f: f, reused: true, slot: true}
		}
	}
	if w == nil {
		f, ino, err := q.reuseMess()
		if err != nil {
			return nil, qerr(64, "link mess file", err)
		}
		if f != nil {
			w = &Writer{q: q, id: ID(ino), origin: o, f: f, reused: true}
		} else if w, err = q.createMess(o); err != nil {
			return nil, err
		}
	}
	w.bw = q.writers.Get().(*bufio.Writer)
	w.bw.Reset(w.f)
	n, _ := w.bw.WriteString(ReceivedLine(o, now))
	w.size = int64(n)
	return w, nil
}

// release gives the Writer's buffer back to the queue once it is done.
func (w *Writer) release() {
	if w.bw != nil {
		w.bw.Reset(nil)
		w.q.writers.Put(w.bw)
		w.bw = nil
	}
}

// createMess makes a fresh message file and returns its Writer, holding
// the file's lock (live.go): an unnamed file linked to mess/S/N, or, where
// that cannot be done, qmail-queue's way: create a pid/ file, take its
// inode number as the ID, link it to mess/S/ID, unlink it.
func (q *Queue) createMess(o Origin) (*Writer, error) {
	if !q.noUnnamed.Load() {
		if w, ok, err := q.createUnnamed(o); ok {
			return w, err
		}
	}
	var f *os.File
	var pidPath string
	var err error
	for range 9 {
		pidPath = filepath.Join(q.dir, "pid", fmt.Sprintf("%d.%d.%d", o.PID, q.start, q.seq.Add(1)))
		f, err = openFile(pidPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			break
		}
	}
	if err != nil {
		return nil, qerr(63, "create pid file", err)
	}
	st, err := lockNamed(f)
	if err != nil {
		f.Close()
		os.Remove(pidPath)
		return nil, qerr(63, "lock pid file", err)
	}
	w := &Writer{q: q, id: ID(st.Ino), origin: o, f: f}
	if err := os.Link(pidPath, q.path("mess", w.id)); err != nil {
		f.Close()
		os.Remove(pidPath)
		return nil, qerr(64, "link mess file", err)
	}
	if err := os.Remove(pidPath); err != nil {
		w.Abort()
		return nil, qerr(63, "unlink pid file", err)
	}
	return w, nil
}

// ID returns the message's number.
func (w *Writer) ID() ID { return w.id }

// Write appends message bytes. A write error is returned here and again by
// Commit (qmail-queue's exit 53).
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, ErrClosed
	}
	if w.werr != nil {
		return 0, w.werr
	}
	n, err := w.bw.Write(p)
	w.size += int64(n)
	if err != nil {
		w.werr = qerr(53, "write mess file", err)
		return n, w.werr
	}
	return n, nil
}

// ReadFrom appends the bytes read from r until EOF, reading them straight
// into the Writer's buffer (io.Copy uses it, so an injection needs no
// second buffer). A write error is an *Error, as from Write; a read error
// is r's, unwrapped.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if w.done {
		return 0, ErrClosed
	}
	var total int64
	for w.werr == nil {
		if w.bw.Available() == 0 {
			if err := w.bw.Flush(); err != nil {
				w.werr = qerr(53, "write mess file", err)
				break
			}
		}
		buf := w.bw.AvailableBuffer()
		n, err := r.Read(buf[:cap(buf)])
		if n > 0 {
			w.bw.Write(buf[:n]) // fits: it only moves the buffer's end
			total += int64(n)
			w.size += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
	return total, w.werr
}

// Commit queues the message with envelope env: it fsyncs the message,
// writes intd/ID, links it to todo/ID and fsyncs each directory involved
// (mess/S, intd, todo; shared with concurrent injections). When Commit
// returns nil the message is durably queued. On an error before the todo
// link the message is removed; an error after it (the todo directory fsync
// failed) leaves the message queued-or-not, so the caller must retry and
// may cause a duplicate, as with qmail.
func (w *Writer) Commit(ctx context.Context, env Envelope) (ID, error) {
	if w.done {
		return 0, ErrClosed
	}
	if err := checkEnvelope(env); err != nil {
		w.Abort()
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		w.Abort()
		return 0, err
	}
	if w.werr != nil {
		w.Abort()
		return 0, w.werr
	}
	if err := w.bw.Flush(); err != nil {
		w.Abort()
		return 0, qerr(53, "write mess file", err)
	}
	if w.reused {
		if err := w.f.Truncate(w.size); err != nil {
			w.Abort()
			return 0, qerr(53, "truncate mess file", err)
		}
	}
	q := w.q
	intd := q.path("intd", w.id)
	var f *os.File
	var reused bool
	var err error
	if w.slot {
		f, err = openFile(intd, os.O_WRONLY, 0)
		reused = true
	} else {
		f, reused, err = q.newFile(intd, os.O_WRONLY, 0o644)
	}
	if err != nil {
		w.Abort()
		return 0, qerr(65, "create intd file", err)
	}
	records := envelopeRecords(w.origin, env)
	_, err = f.Write(records)
	if err == nil && reused {
		err = f.Truncate(int64(len(records)))
	}
	if err != nil {
		f.Close()
		w.abort(true)
		return 0, qerr(53, "write intd file", err)
	}
	// DSN parameters go to dsn/ID (dsn.go), durable with the envelope.
	var df *os.File
	if !env.DSN.empty() {
		w.dsn = true
		df, err = os.OpenFile(q.path("dsn", w.id), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err == nil {
			if _, err = df.Write(dsnRecords(env)); err != nil {
				df.Close()
			}
		}
		if err != nil {
			f.Close()
			w.abort(true)
			return 0, qerr(53, "write dsn file", err)
		}
	}
	// The message and the envelope, and their directory entries, must be
	// durable before todo/ID can exist: a todo entry pointing at a message
	// lost in a crash would be an acknowledged message lost. The four
	// fsyncs are independent and run together (the journal commits them
	// as one); the files were created in qmail-queue's order.
	// A slot's directory entries are durable already.
	var ops [6]int // indices in commitOps
	n := 0
	for i := range commitOps {
		if i >= 2 && i < 4 && w.slot || i >= 4 && df == nil {
			continue
		}
		ops[n] = i
		n++
	}
	errs := parallel(n, func(i int) error {
		switch ops[i] {
		case 0:
			return q.fsync(w.f)
		case 1:
			return q.fsync(f)
		case 2:
			return q.messSync[uint64(w.id)%uint64(q.split)].sync()
		case 3:
			return q.intdSync.sync()
		case 4:
			return q.fsync(df)
		}
		return q.syncDir(filepath.Join(q.dir, "dsn"))
	})
	if cerr := f.Close(); errs[1] == nil {
		errs[1] = cerr
	}
	if df != nil {
		if cerr := df.Close(); errs[n-2] == nil {
			errs[n-2] = cerr
		}
	}
	for i, e := range errs {
		if e != nil {
			w.abort(true)
			return 0, qerr(commitOps[ops[i]].code, commitOps[ops[i]].op, e)
		}
	}
	// A Scheduler running here gets the message handed over (fresh.go).
	fresh := !w.quiet && q.running.Load() > 0
	if fresh {
		q.fresh.begin(w.id)
	}
	if err := os.Link(intd, q.path("todo", w.id)); err != nil {
		if fresh {
			q.fresh.end(freshMsg{id: w.id})
		}
		w.abort(true)
		return 0, qerr(66, "link todo file", err)
	}
	w.done = true
	w.f.Close()
	w.release()
	if err := q.todoSync.sync(); err != nil {
		if fresh {
			q.fresh.end(freshMsg{id: w.id})
		}
		return 0, qerr(66, "fsync todo directory", err)
	}
	if fresh {
		q.fresh.end(freshMsg{id: w.id, todo: records, size: w.size, dsn: w.dsn})
	}
	if !w.quiet {
		q.pull()
	}
	return w.id, nil
}

// commitOps are Commit's fsyncs, with qmail-queue's exit code and the
// step's name for their failure: the mess and intd files, their
// directories (not for a slot), the dsn file and its directory (only for a
// message with DSN parameters).
var commitOps = [...]struct {
	code int
	op   string
}{{53, "fsync mess file"}, {53, "fsync intd file"}, {64, "fsync mess directory"}, {65, "fsync intd directory"}, {53, "fsync dsn file"}, {53, "fsync dsn directory"}}

// Abort removes the message (qmail-queue's cleanup: truncate and unlink
// mess/S/ID). It is a no-op after Commit.
func (w *Writer) Abort() error { return w.abort(false) }

func (w *Writer) abort(intd bool) error {
	if w.done {
		return nil
	}
	w.done = true
	var err error
	if intd || w.slot {
		p := w.q.path("intd", w.id)
		os.Truncate(p, 0)
		if e := os.Remove(p); e != nil && !errors.Is(e, fs.ErrNotExist) {
			err = e
		}
	}
	if w.dsn {
		if e := removeMissingOK(w.q.path("dsn", w.id)); e != nil {
			err = errors.Join(err, e)
		}
	}
	w.f.Truncate(0)
	if e := os.Remove(w.q.path("mess", w.id)); e != nil && !errors.Is(e, fs.ErrNotExist) {
		err = errors.Join(err, e)
	}
	// Closing releases the lock (live.go): only once the files are gone.
	w.f.Close()
	w.release()
	if err != nil {
		return fmt.Errorf("queue: abort %s: %w", w.id, err)
	}
	return nil
}

// Inject queues the message read from r with envelope env and returns its
// ID once message, envelope and every directory entry are durable. The
// message is streamed to disk, never held whole in memory. It is
// qmail-queue for a Go caller.
func (q *Queue) Inject(ctx context.Context, env Envelope, r io.Reader) (ID, error) {
	return q.inject(ctx, Origin{}, env, r)
}

// Enqueue is Inject for an SMTP server (it satisfies smtpserver.Enqueuer):
// the Received line says "invoked from network", as when qmail-smtpd runs
// qmail-queue, and the id is the message number in decimal.
func (q *Queue) Enqueue(ctx context.Context, from string, to []string, r io.Reader) (string, error) {
	o := q.origin
	o.Who = "from network"
	id, err := q.inject(ctx, o, Envelope{Sender: from, Recipients: to}, r)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// Forward is Inject for forwarding during local delivery (it satisfies
// dotqmail.Forwarder); the id is the message number in decimal.
func (q *Queue) Forward(ctx context.Context, sender string, recipients []string, r io.Reader) (string, error) {
	id, err := q.inject(ctx, Origin{}, Envelope{Sender: sender, Recipients: recipients}, r)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

func (q *Queue) inject(ctx context.Context, o Origin, env Envelope, r io.Reader) (ID, error) {
	if err := checkEnvelope(env); err != nil {
		return 0, err
	}
	w, err := q.Create(ctx, o)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(w, ctxReader{ctx, r}); err != nil {
		w.Abort()
		var qe *Error
		if errors.As(err, &qe) {
			return 0, err
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, qerr(54, "read message", err)
	}
	return w.Commit(ctx, env)
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// pull tells schedulers that a message is in todo/: the in-process one
// through a channel, one in another process (ours or qmail-send) through
// the lock/trigger FIFO, whose errors (no reader, full pipe) are ignored.
func (q *Queue) pull() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
	if q.running.Load() > 0 {
		return
	}
	PullTrigger(q.dir)
}

// PullTrigger writes one byte to dir/lock/trigger without blocking, as
// qmail-queue does after a successful injection; every error is ignored.
func PullTrigger(dir string) {
	fd, err := syscall.Open(filepath.Join(dir, "lock", "trigger"), syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	syscall.Write(fd, []byte{0})
	syscall.Close(fd)
}

func checkEnvelope(env Envelope) error {
	check := func(a string) error {
		if len(a) > MaxAddressLen {
			return qerr(11, "envelope", ErrAddressTooLong)
		}
		for i := 0; i < len(a); i++ {
			if a[i] == 0 {
				return qerr(91, "envelope", fmt.Errorf("%w: NUL in address", ErrEnvelopeFormat))
			}
		}
		return nil
	}
	if err := check(env.Sender); err != nil {
		return err
	}
	for _, r := range env.Recipients {
		if err := check(r); err != nil {
			return err
		}
	}
	if env.DSN != nil {
		return env.DSN.check(len(env.Recipients))
	}
	return nil
}

// envelopeRecords is the content of intd/N and todo/N: u<uid>\0p<pid>\0,
// the F record and the T records, without the final extra \0.
func envelopeRecords(o Origin, env Envelope) []byte {
	b := make([]byte, 0, 64+len(env.Sender)+16*len(env.Recipients))
	b = append(b, 'u')
	b = strconv.AppendInt(b, int64(o.UID), 10)
	b = append(b, 0, 'p')
	b = strconv.AppendInt(b, int64(o.PID), 10)
	b = append(b, 0, 'F')
	b = append(b, env.Sender...)
	b = append(b, 0)
	for _, r := range env.Recipients {
		b = append(b, 'T')
		b = append(b, r...)
		b = append(b, 0)
	}
	return b
}

// ReceivedLine returns the line qmail-queue prepends to every message:
// "Received: (qmail PID invoked WHO); DATE\n".
func ReceivedLine(o Origin, t time.Time) string {
	return "Received: (qmail " + strconv.Itoa(o.PID) + " invoked " + o.who() + "); " + Date(t) + " -0000\n"
}

var months = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// Date formats t in UTC as qmail's date822fmt does, without the zone:
// "29 Jul 1996 11:35:35" (day not padded, time fields padded to 2).
func Date(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%d %s %d %02d:%02d:%02d", t.Day(), months[t.Month()-1], t.Year(), t.Hour(), t.Minute(), t.Second())
}

// ReadEnvelope reads qmail-queue's envelope from r: F sender \0, zero or
// more T recipient \0, then \0. Errors are *Error with qmail-queue's exit
// code: 91 (format), 54 (end of input or read error), 11 (address longer
// than MaxAddressLen).
func ReadEnvelope(r io.Reader) (Envelope, error) {
	br, ok := r.(io.ByteReader)
	if !ok {
		br = bufio.NewReaderSize(r, 4096)
	}
	var env Envelope
	first := true
	buf := make([]byte, 0, 128)
	for {
		c, err := br.ReadByte()
		if err != nil {
			return Envelope{}, readErr(err)
		}
		if first {
			if c != 'F' {
				return Envelope{}, qerr(91, "envelope", ErrEnvelopeFormat)
			}
		} else if c == 0 {
			return env, nil
		} else if c != 'T' {
			return Envelope{}, qerr(91, "envelope", ErrEnvelopeFormat)
		}
		buf = buf[:0]
		for {
			c, err := br.ReadByte()
			if err != nil {
				return Envelope{}, readErr(err)
			}
			if c == 0 {
				break
			}
			if len(buf) >= MaxAddressLen {
				return Envelope{}, qerr(11, "envelope", ErrAddressTooLong)
			}
			buf = append(buf, c)
		}
		if first {
			env.Sender = string(buf)
			first = false
		} else {
			env.Recipients = append(env.Recipients, string(buf))
		}
	}
}

func readErr(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return qerr(54, "read envelope", err)
}

// ExitText is the result string a qmail-queue client makes of the
// injector's exit code (qmail's qmail_close): "" for success, else a
// leading D (permanent) or Z (temporary) and the text used in SMTP replies
// and logs. custom is what an injector exiting 82 wrote on descriptor 6.
// A negative code means the injector was killed by a signal.
func ExitText(code int, custom []byte) string { return qq.ExitText(code, custom) }
