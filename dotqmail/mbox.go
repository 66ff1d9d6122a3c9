package dotqmail

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// LockTimeout is how long an mbox delivery waits for the file's lock:
// qmail-local's 30-second alarm.
const LockTimeout = 30 * time.Second

// lockPoll is how often a waiting mbox delivery tries the lock again.
const lockPoll = 50 * time.Millisecond

// errLockTimeout is the cause of "File has been locked for 30 seconds
// straight."
var errLockTimeout = errors.New("dotqmail: mbox lock timeout")

// mbox appends the message to an mbox file as qmail-local does: opened
// for append (created 0600), an exclusive flock held for the write, the
// UFLINE, RPLINE and DTLINE, the message with ">From " quoting and a final
// newline, and a blank line; fsynced; cut back to its old length if
// anything fails while the lock is held.
//
// The file must be a regular file (or not exist yet): a FIFO, a device or
// a socket defers the message with "Unable to open <path>: not a regular
// file. (#4.2.1)" without being opened, or, when it replaced the file
// between the check and the open, once the non-blocking open (qmail's
// O_NDELAY) returned.
func (x *run) mbox(ctx context.Context, path, arg string) error {
	notRegular := func(err error) error {
		return &Error{Text: "Unable to open " + arg + ": " + errNotRegular.Error() + ". (#4.2.1)",
			Err: &fs.PathError{Op: "open", Path: path, Err: err}}
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return notRegular(errNotRegular)
	}
	fd, _, err := openRegular(path, syscall.O_WRONLY|syscall.O_APPEND|syscall.O_CREAT, 0o600)
	if err == errNotRegular {
		return notRegular(err)
	}
	if err != nil {
		err = &fs.PathError{Op: "open", Path: path, Err: err}
		return &Error{Text: "Unable to open " + arg + ": " + errText(err) + ". (#4.2.1)", Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	locked, err := lockFile(ctx, f, x.d.lockTimeout())
	if err != nil {
		if errors.Is(err, errLockTimeout) {
			return &Error{Text: "File has been locked for 30 seconds straight. (#4.3.0)", Err: err}
		}
		return &Error{Text: "Temporary error on mbox delivery. (#4.3.0)", Err: err}
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return &Error{Text: "Unable to write " + arg + ": " + errText(err) + ". (#4.3.0)", Err: err}
	}
	fail := func(text string, err error) error {
		if locked {
			f.Truncate(end)
		}
		return &Error{Text: text, Err: err}
	}
	w := &errWriter{w: f}
	bw := bufio.NewWriterSize(w, 32<<10)
	bw.WriteString(x.l.uf)
	bw.WriteString(x.l.rp)
	bw.WriteString(x.l.dt)
	if err := quoteFrom(ctx, bw, x.msg.reader()); err != nil && w.err == nil {
		return fail("Unable to read message: "+errText(err)+". (#4.3.0)", err)
	}
	bw.WriteByte('\n')
	if err := bw.Flush(); err != nil {
		return fail("Unable to write "+arg+": "+errText(err)+". (#4.3.0)", err)
	}
	if err := f.Sync(); err != nil {
		return fail("Unable to write "+arg+": "+errText(err)+". (#4.3.0)", err)
	}
	if err := f.Close(); err != nil {
		return fail("Unable to write "+arg+": "+errText(err)+". (#4.3.0)", err)
	}
	return nil
}

// errWriter remembers the first write error, so that a read error is told
// apart from a write error the buffered writer hit first.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// lockFile takes an exclusive flock on f, trying again every lockPoll until
// timeout. It reports whether the lock is held: a file system that cannot
// lock (ENOLCK, EINVAL, EOPNOTSUPP...) gets an unlocked delivery, as with
// qmail-local.
func lockFile(ctx context.Context, f *os.File, timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		err := flock(f)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil
		}
		if !time.Now().Before(deadline) {
			return false, errLockTimeout
		}
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		case <-t.C:
		}
	}
}

func flock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
			if ferr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return ferr
}

// quoteFrom copies a message to w as an mbox body (mboxrd): every line
// made of zero or more '>' and then "From " gets one more '>' in front, and
// a last line without a newline gets one. It streams: memory does not grow
// with line length. Only the start of each line is looked at byte by byte;
// the rest is copied a buffer at a time.
func quoteFrom(ctx context.Context, w *bufio.Writer, r io.Reader) error {
	const from = "From "
	br := bufio.NewReaderSize(r, 32<<10)
	var (
		gts     int  // '>' bytes seen at the line's start, not yet written
		matched int  // bytes of "From " matched after them
		last    byte = '\n'
		lines   int
	)
	pending := func(quote bool) {
		if quote {
			w.WriteByte('>')
		}
		for ; gts > 0; gts-- {
			w.WriteByte('>')
		}
		w.WriteString(from[:matched])
		matched = 0
	}
	for {
		// At the start of a line: decide whether it needs a '>'.
		decided := false
		for !decided {
			c, err := br.ReadByte()
			if err != nil {
				if gts > 0 || matched > 0 {
					pending(false)
					last = 'x'
				}
				return finish(w, last, err)
			}
			switch {
			case matched == 0 && c == '>':
				gts++
			case c == from[matched]:
				if matched++; matched == len(from) {
					pending(true)
					last, decided = ' ', true
				}
			default:
				pending(false)
				w.WriteByte(c)
				last = c
				if c == '\n' {
					continue // an empty or short line: the next one starts
				}
				decided = true
			}
		}
		// The rest of the line, a buffer at a time.
		for {
			chunk, err := br.ReadSlice('\n')
			if len(chunk) > 0 {
				w.Write(chunk)
				last = chunk[len(chunk)-1]
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				return finish(w, last, err)
			}
			break
		}
		if lines++; lines&0x3ff == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// finish ends a quoted body at the reader's end: a missing final newline is
// added. Other read errors are returned.
func finish(w *bufio.Writer, last byte, err error) error {
	if err != io.EOF {
		return err
	}
	if last != '\n' {
		w.WriteByte('\n')
	}
	return nil
}
