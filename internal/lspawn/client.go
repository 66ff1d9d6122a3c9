package lspawn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/qmailkit/qmailkit/dotqmail"
)

// Error is a local delivery that failed. For a delivery the Server made,
// Text is its error's text and Err nil, so that the queue logs what an
// in-process delivery would; when the Client could not get an answer, Text
// says so and Err is the cause. Only the Server's permanent failures are
// permanent.
type Error struct {
	Text string
	Perm bool
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Text + ": " + e.Err.Error()
	}
	return e.Text
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether the failure is permanent.
func (e *Error) Permanent() bool { return e.Perm }

// ErrClosed is the cause of a delivery the Client could not send because
// its connection is closed or broken.
var ErrClosed = errors.New("lspawn: connection to the delivery helper is closed")

// spawnFailure is qmail-lspawn's report for its own temporary failure.
const spawnFailure = "Temporary failure in qmail-lspawn.\n"

// Client sends local deliveries to a [Server] and waits for their outcome.
// Deliver may be called from many goroutines at once. NewClient starts
// the one goroutine that reads the replies; Close ends it.
type Client struct {
	// TempDir holds a copy of a message that is not a file, to pass it to
	// the Server; empty means os.TempDir().
	TempDir string

	conn *net.UnixConn
	done chan struct{} // closed when the reader has stopped

	mu      sync.Mutex
	next    uint64
	pending map[uint64]waiter
	err     error // why the reader stopped
}

// waiter is a request waiting for its reply: a delivery takes only an R
// record, a mailbox only an A.
type waiter struct {
	ch      chan reply // buffered
	mailbox bool
}

type reply struct {
	status       byte
	report, text string
	file         *os.File // an A record's socket
}

// NewClient returns a Client talking over conn, a SOCK_SEQPACKET unix
// socket connected to a Server.
func NewClient(conn *net.UnixConn) *Client {
	c := &Client{conn: conn, done: make(chan struct{}), pending: make(map[uint64]waiter)}
	go c.read()
	return c
}

// Close closes the connection, which ends the Server's, and waits for the
// reader. Deliveries in progress fail temporarily.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

// Done is closed when the connection has ended: the Server exited or
// broke the protocol, or Close was called. Err says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the connection ended, once Done is closed.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// read dispatches replies until the connection fails.
func (c *Client) read() {
	defer close(c.done)
	buf := make([]byte, maxRecord)
	oob := make([]byte, oobSpace)
	var err error
	for {
		var n, oobn, flags int
		n, oobn, flags, _, err = c.conn.ReadMsgUnix(buf, oob)
		var fds []int
		if oobn > 0 {
			fds, _ = rights(oob[:oobn], flags, -1)
		}
		if err != nil {
			closeAll(fds)
			break
		}
		if flags&syscall.MSG_TRUNC != 0 {
			closeAll(fds)
			err = fmt.Errorf("%w: longer than %d bytes", ErrFormat, maxRecord)
			break
		}
		var id uint64
		var r reply
		if id, r, err = parseReply(buf[:n]); err != nil {
			closeAll(fds)
			break
		}
		mailbox := buf[0] == 'A'
		if r.status == 'A' {
			// A mailbox: its socket comes with it, and only then.
			if len(fds) != 1 {
				closeAll(fds)
				err = fmt.Errorf("%w: a mailbox reply with %d descriptors", ErrFormat, len(fds))
				break
			}
			r.status, r.file = 'K', os.NewFile(uintptr(fds[0]), "mailbox")
		} else {
			closeAll(fds)
		}
		c.mu.Lock()
		w, ok := c.pending[id]
		if ok && w.mailbox != mailbox {
			// An A record for a delivery would count it done.
			c.mu.Unlock()
			if r.file != nil {
				r.file.Close()
			}
			err = fmt.Errorf("%w: reply %q for request %d of the other kind", ErrFormat, buf[0], id)
			break
		}
		delete(c.pending, id)
		c.mu.Unlock()
		if ok {
			w.ch <- r // buffered
		} else if r.file != nil {
			r.file.Close()
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		err = ErrClosed
	}
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

// parseReply parses an R record, or an A record (a mailbox), whose status
// K is returned as 'A'.
func parseReply(b []byte) (uint64, reply, error) {
	if len(b) > 0 && b[0] == 'A' {
		_, f, err := parseRecord(b, 3)
		if err != nil {
			return 0, reply{}, err
		}
		id, err := parseID(f[0])
		if err != nil {
			return 0, reply{}, err
		}
		switch f[1] {
		case "K":
			return id, reply{status: 'A'}, nil
		case "Z":
			return id, reply{status: 'Z', text: f[2]}, nil
		}
		return 0, reply{}, fmt.Errorf("%w: mailbox status %q", ErrFormat, f[1])
	}
	kind, f, err := parseRecord(b, 4)
	if err != nil {
		return 0, reply{}, err
	}
	if kind != 'R' {
		return 0, reply{}, fmt.Errorf("%w: kind %q in a reply", ErrFormat, kind)
	}
	id, err := parseID(f[0])
	if err != nil {
		return 0, reply{}, err
	}
	if len(f[1]) != 1 || (f[1][0] != 'K' && f[1][0] != 'Z' && f[1][0] != 'D') {
		return 0, reply{}, fmt.Errorf("%w: status %q", ErrFormat, f[1])
	}
	return id, reply{status: f[1][0], report: f[2], text: f[3]}, nil
}

// Deliver has the Server deliver msg from sender to recipient, as
// dotqmail.Local.Deliver does, and returns the Server's result: its report
// and an *Error that is permanent exactly when the Server's was. A broken
// connection, or ctx done before the reply, is a temporary failure (the
// Server is told to give up a delivery whose ctx is done). msg is passed
// as a descriptor: an *os.File, or an *io.SectionReader over the whole of
// one as the queue gives, is passed itself; anything else is first copied
// to an unlinked file in TempDir.
func (c *Client) Deliver(ctx context.Context, sender, recipient string, msg io.Reader) (dotqmail.Result, error) {
	f, size, copied, err := c.file(msg)
	if err != nil {
		return failure("Unable to read message. (#4.3.0)\n", err)
	}
	if copied {
		defer f.Close()
	}
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return failure(spawnFailure, err)
	}
	c.next++
	id := c.next
	c.pending[id] = waiter{ch: ch}
	c.mu.Unlock()
	ids := strconv.FormatUint(id, 10)
	rec := appendRecord(nil, 'D', ids, sender, recipient, strconv.FormatInt(size, 10))
	if err := c.send(rec, f); err != nil {
		c.forget(id)
		return failure(spawnFailure, err)
	}
	select {
	case r := <-ch:
		return r.result()
	case <-ctx.Done():
		c.forget(id)
		c.conn.WriteMsgUnix(appendRecord(nil, 'C', ids), nil, nil)
		return failure(spawnFailure, ctx.Err())
	case <-c.done:
		c.forget(id)
		select {
		case r := <-ch: // the reply came just before the end
			return r.result()
		default:
		}
		return failure(spawnFailure, c.Err())
	}
}

// OpenMailbox has the Server open user name's maildrop in a mailbox agent,
// a process under the user's uid (the Server looks the user up itself),
// and returns the agent's mailbox; seen is pop3.Server.SeenOnRetr. The
// error of an agent that could not open the maildrop keeps its meaning
// (errors.Is(err, pop3.ErrInUse) for a maildrop locked by another
// session).
func (c *Client) OpenMailbox(ctx context.Context, name string, seen bool) (*RemoteMailbox, error) {
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.next++
	id := c.next
	c.pending[id] = waiter{ch: ch, mailbox: true}
	c.mu.Unlock()
	s := "0"
	if seen {
		s = "1"
	}
	if _, _, err := c.conn.WriteMsgUnix(appendRecord(nil, 'M', strconv.FormatUint(id, 10), name, s), nil, nil); err != nil {
		c.forget(id)
		return nil, fmt.Errorf("lspawn: open mailbox: %w", err)
	}
	var r reply
	select {
	case r = <-ch:
	case <-ctx.Done():
		c.forget(id)
		select {
		case r = <-ch:
			if r.file != nil {
				r.file.Close()
			}
		default:
		}
		return nil, ctx.Err()
	case <-c.done:
		c.forget(id)
		select {
		case r = <-ch:
		default:
			return nil, c.Err()
		}
	}
	if r.file == nil {
		return nil, fmt.Errorf("lspawn: open mailbox: %s", r.text)
	}
	fc, err := net.FileConn(r.file)
	r.file.Close()
	if err != nil {
		return nil, fmt.Errorf("lspawn: open mailbox: %w", err)
	}
	uc, ok := fc.(*net.UnixConn)
	if !ok {
		fc.Close()
		return nil, fmt.Errorf("lspawn: open mailbox: %w: not a unix socket", ErrFormat)
	}
	return NewRemoteMailbox(ctx, uc)
}

// result is the Server's outcome as Deliver returns it.
func (r reply) result() (dotqmail.Result, error) {
	res := dotqmail.Result{Report: r.report}
	if r.status == 'K' {
		return res, nil
	}
	return res, &Error{Text: r.text, Perm: r.status == 'D'}
}

func failure(report string, cause error) (dotqmail.Result, error) {
	return dotqmail.Result{Report: report}, &Error{Text: "lspawn: " + report[:len(report)-1], Err: cause}
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// send writes rec with f's descriptor.
func (c *Client) send(rec []byte, f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Control(func(fd uintptr) {
		_, _, werr = c.conn.WriteMsgUnix(rec, syscall.UnixRights(int(fd)), nil)
	})
	if err != nil {
		return err
	}
	if werr != nil {
		c.mu.Lock()
		if c.err != nil {
			werr = c.err
		}
		c.mu.Unlock()
	}
	return werr
}

// file returns a file holding msg from offset 0 and the message's size:
// msg itself (or the file under it), which the caller owns, when it is
// one, else a copy, which the caller of file must close (copied).
func (c *Client) file(msg io.Reader) (f *os.File, size int64, copied bool, err error) {
	switch m := msg.(type) {
	case *io.SectionReader:
		if r, off, n := m.Outer(); off == 0 {
			if f, ok := r.(*os.File); ok && regular(f) {
				return f, n, false, nil
			}
		}
	case *os.File:
		if fi, err := m.Stat(); err == nil && fi.Mode().IsRegular() {
			return m, fi.Size(), false, nil
		}
	}
	f, err = os.CreateTemp(c.TempDir, ".lspawn-msg-")
	if err != nil {
		return nil, 0, false, err
	}
	os.Remove(f.Name())
	n, err := io.Copy(f, msg)
	if err != nil {
		f.Close()
		return nil, 0, false, err
	}
	return f, n, true, nil
}

func regular(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode().IsRegular()
}
