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
	"time"

	"github.com/qmailkit/qmailkit/pop3"
)

// The mailbox protocol runs between the mta and a mailbox agent, a
// process under the mailbox owner's uid that opened the maildrop (qmail's
// order: authenticate, switch uid, read), over a SOCK_SEQPACKET
// socketpair:
//
//	O                     the maildrop is open (agent, first record)
//	E kind text           a failure: kind "inuse" (pop3.ErrInUse) or "" (agent)
//	L                     list the messages (mta)
//	l uid size wire ...   some of them, three fields each (agent, repeated)
//	. count               the end of the list (agent)
//	G i                   open message i, 0-based (mta)
//	g                     + its descriptor (agent)
//	U flags               part of the QUIT update: one byte a message, '0',
//	                      'd' deleted or 'r' retrieved (mta, repeated)
//	C                     apply the update (mta)
//	c text ...            done, with the text of each failure (agent)
//	Q                     close the maildrop and exit (mta)
//	q                     closed (agent)

// maxChunk bounds the payload of an l or U record, within maxRecord.
const maxChunk = 32 << 10

// maxListBytes bounds the l records of one listing, so that an agent
// cannot make the mta hold an endless list: 256 MiB is a million
// messages with unique names of 200 bytes.
const maxListBytes = 256 << 20

// maxCommitErrors bounds the failures a c record carries.
const maxCommitErrors = 100

// DefaultMailboxTimeout is RemoteMailbox.Timeout's default.
const DefaultMailboxTimeout = 10 * time.Minute

// RemoteMailbox is a pop3.Mailbox served by a mailbox agent over a
// socket: the mta's end. Open receives the message's descriptor from the
// agent, so the bytes are read directly, and accepts only a regular file.
// Its methods may be called from several goroutines; they take turns.
type RemoteMailbox struct {
	// Timeout bounds each exchange with the agent (listing a large
	// Maildir whose wire sizes are not cached reads every message); zero
	// means DefaultMailboxTimeout.
	Timeout time.Duration

	conn   *net.UnixConn
	mu     sync.Mutex
	n      int // messages listed; -1 before Messages
	closed bool
	broken bool // the agent broke the protocol, or an exchange failed
	buf    []byte
	oob    []byte
}

var _ pop3.Mailbox = (*RemoteMailbox)(nil)

// ErrAgent is a mailbox agent that broke the protocol or went away.
var ErrAgent = errors.New("lspawn: mailbox agent failed")

// NewRemoteMailbox waits for the agent on conn to report its maildrop
// open and returns the mailbox, or the agent's error (wrapping
// pop3.ErrInUse for a maildrop locked by another session). conn is
// closed on error.
func NewRemoteMailbox(ctx context.Context, conn *net.UnixConn) (*RemoteMailbox, error) {
	m := &RemoteMailbox{conn: conn, n: -1, buf: make([]byte, maxRecord), oob: make([]byte, oobSpace)}
	kind, _, fds, err := m.recv(ctx, 0)
	if err == nil && kind != 'O' {
		closeAll(fds)
		err = fmt.Errorf("%w: %w: kind %q at the start", ErrAgent, ErrFormat, kind)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return m, nil
}

// recv reads one record from the agent, with its descriptors (which the
// caller closes), and turns an E record into its error.
func (m *RemoteMailbox) recv(ctx context.Context, nfd int) (byte, []string, []int, error) {
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = DefaultMailboxTimeout
	}
	m.conn.SetReadDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { m.conn.SetReadDeadline(time.Now()) })
	defer stop()
	n, oobn, flags, _, err := m.conn.ReadMsgUnix(m.buf, m.oob)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return 0, nil, nil, fmt.Errorf("%w: %w", ErrAgent, err)
	}
	if n == 0 {
		return 0, nil, nil, fmt.Errorf("%w: %w", ErrAgent, io.EOF)
	}
	want := 0
	if m.buf[0] == 'g' {
		want = nfd
	}
	fds, err := rights(m.oob[:oobn], flags, want)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%w: %w", ErrAgent, err)
	}
	if flags&syscall.MSG_TRUNC != 0 {
		closeAll(fds)
		return 0, nil, nil, fmt.Errorf("%w: %w: record too long", ErrAgent, ErrFormat)
	}
	kind, f, err := parseRecord(m.buf[:n], -1)
	if err != nil {
		closeAll(fds)
		return 0, nil, nil, fmt.Errorf("%w: %w", ErrAgent, err)
	}
	if kind == 'E' {
		if len(f) != 2 {
			return 0, nil, nil, fmt.Errorf("%w: %w: E with %d fields", ErrAgent, ErrFormat, len(f))
		}
		return 0, nil, nil, agentError(f[0], f[1])
	}
	return kind, f, fds, nil
}

// agentError is the error an E record stands for.
func agentError(kind, text string) error {
	if kind == "inuse" {
		return fmt.Errorf("%s: %w", text, pop3.ErrInUse)
	}
	return errors.New(text)
}

func (m *RemoteMailbox) send(rec []byte) error {
	m.conn.SetWriteDeadline(time.Now().Add(time.Minute))
	if _, _, err := m.conn.WriteMsgUnix(rec, nil, nil); err != nil {
		return fmt.Errorf("%w: %w", ErrAgent, err)
	}
	return nil
}

func (m *RemoteMailbox) check() error {
	if m.closed {
		return fmt.Errorf("%w: mailbox closed", ErrAgent)
	}
	if m.broken {
		return fmt.Errorf("%w: an earlier exchange failed", ErrAgent)
	}
	return nil
}

// failed marks the mailbox unusable after an error of the exchange (not
// the agent's E reply): a reply could then be taken for another's.
func (m *RemoteMailbox) failed(err *error) {
	if errors.Is(*err, ErrAgent) {
		m.broken = true
	}
}

// Messages lists the maildrop, once.
func (m *RemoteMailbox) Messages(ctx context.Context) (_ []pop3.Message, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.failed(&err)
	if err := m.check(); err != nil {
		return nil, err
	}
	if err := m.send([]byte("L")); err != nil {
		return nil, err
	}
	var out []pop3.Message
	total := 0
	for {
		kind, f, _, err := m.recv(ctx, 0)
		if err != nil {
			return nil, err
		}
		switch kind {
		case 'l':
			for _, s := range f {
				total += len(s) + 8
			}
			if total > maxListBytes {
				return nil, fmt.Errorf("%w: %w: a list longer than %d bytes", ErrAgent, ErrFormat, maxListBytes)
			}
			if len(f)%3 != 0 {
				return nil, fmt.Errorf("%w: %w: l with %d fields", ErrAgent, ErrFormat, len(f))
			}
			for i := 0; i < len(f); i += 3 {
				size, err1 := strconv.ParseInt(f[i+1], 10, 64)
				wire, err2 := strconv.ParseInt(f[i+2], 10, 64)
				if err1 != nil || err2 != nil || size < 0 {
					return nil, fmt.Errorf("%w: %w: bad sizes", ErrAgent, ErrFormat)
				}
				out = append(out, pop3.Message{UID: f[i], Size: size, WireSize: wire})
			}
		case '.':
			if len(f) != 1 || f[0] != strconv.Itoa(len(out)) {
				return nil, fmt.Errorf("%w: %w: list count %q, got %d", ErrAgent, ErrFormat, f, len(out))
			}
			m.n = len(out)
			return out, nil
		default:
			return nil, fmt.Errorf("%w: %w: kind %q in a list", ErrAgent, ErrFormat, kind)
		}
	}
}

// Open returns message i, whose file the agent opened and passed.
func (m *RemoteMailbox) Open(ctx context.Context, i int) (_ io.ReadCloser, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.failed(&err)
	if err := m.check(); err != nil {
		return nil, err
	}
	if err := m.send(appendRecord(nil, 'G', strconv.Itoa(i))); err != nil {
		return nil, err
	}
	kind, _, fds, err := m.recv(ctx, 1)
	if err != nil {
		return nil, err
	}
	if kind != 'g' {
		closeAll(fds)
		return nil, fmt.Errorf("%w: %w: kind %q for a message", ErrAgent, ErrFormat, kind)
	}
	// Only a regular file: a pipe or a device from the agent could
	// keep the session's read waiting for ever.
	var st syscall.Stat_t
	if err := syscall.Fstat(fds[0], &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		closeAll(fds)
		return nil, fmt.Errorf("%w: message %d is not a regular file", ErrAgent, i+1)
	}
	return os.NewFile(uintptr(fds[0]), "message"), nil
}

// Commit sends the update and returns the agent's failures.
func (m *RemoteMailbox) Commit(ctx context.Context, u pop3.Update) (err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.failed(&err)
	if err := m.check(); err != nil {
		return err
	}
	n := max(m.n, len(u.Deleted), len(u.Retrieved))
	flags := make([]byte, n)
	for i := range flags {
		switch {
		case i < len(u.Deleted) && u.Deleted[i]:
			flags[i] = 'd'
		case i < len(u.Retrieved) && u.Retrieved[i]:
			flags[i] = 'r'
		default:
			flags[i] = '0'
		}
	}
	for len(flags) > 0 {
		c := flags[:min(len(flags), maxChunk)]
		flags = flags[len(c):]
		if err := m.send(appendRecord(nil, 'U', string(c))); err != nil {
			return err
		}
	}
	if err := m.send([]byte("C")); err != nil {
		return err
	}
	kind, f, _, err := m.recv(ctx, 0)
	if err != nil {
		return err
	}
	if kind != 'c' {
		return fmt.Errorf("%w: %w: kind %q for a commit", ErrAgent, ErrFormat, kind)
	}
	var errs []error
	for _, text := range f {
		errs = append(errs, errors.New(text))
	}
	return errors.Join(errs...)
}

// Close asks the agent to release the maildrop, waits (briefly) for it to
// say so, so that the next session finds it unlocked, and closes the
// socket.
func (m *RemoteMailbox) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	if !m.broken && m.send([]byte("Q")) == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m.recv(ctx, 0)
		cancel()
	}
	return m.conn.Close()
}

// ServeMailbox is the agent's end: it opens the maildrop with open (in
// the agent, under the owner's uid) and serves it on conn until the mta
// sends Q, closes conn, breaks the protocol or ctx is done; then it
// closes the maildrop. It returns nil after Q or the mta's close.
func ServeMailbox(ctx context.Context, conn *net.UnixConn, open func() (pop3.Mailbox, error)) error {
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	send := func(rec []byte, fds ...int) error {
		var oob []byte
		if len(fds) > 0 {
			oob = syscall.UnixRights(fds...)
		}
		conn.SetWriteDeadline(time.Now().Add(time.Minute))
		_, _, err := conn.WriteMsgUnix(rec, oob, nil)
		return err
	}
	fail := func(err error) []byte {
		kind := ""
		if errors.Is(err, pop3.ErrInUse) {
			kind = "inuse"
		}
		text := err.Error()
		if len(text) > maxErrText {
			text = text[:maxErrText]
		}
		return appendRecord(nil, 'E', kind, text)
	}
	mb, err := open()
	if err != nil {
		send(fail(err))
		return err
	}
	defer mb.Close()
	if err := send([]byte("O")); err != nil {
		return fmt.Errorf("lspawn: mailbox agent: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	buf := make([]byte, maxRecord)
	oob := make([]byte, oobSpace)
	var update []byte
	n := -1
	for {
		conn.SetReadDeadline(time.Time{})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rn, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil || rn == 0 {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == nil || errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("lspawn: mailbox agent: %w", err)
		}
		if _, err := rights(oob[:oobn], flags, 0); err != nil || flags&syscall.MSG_TRUNC != 0 {
			return fmt.Errorf("lspawn: mailbox agent: %w", ErrFormat)
		}
		kind, f, err := parseRecord(buf[:rn], -1)
		if err != nil {
			return fmt.Errorf("lspawn: mailbox agent: %w", err)
		}
		var reply []byte
		switch {
		case kind == 'L' && len(f) == 0:
			msgs, err := mb.Messages(ctx)
			if err != nil {
				reply = fail(err)
				break
			}
			n = len(msgs)
			rec := []byte{'l'}
			for _, msg := range msgs {
				if len(rec) > maxChunk {
					if err := send(rec); err != nil {
						return err
					}
					rec = rec[:1]
				}
				rec = appendFields(rec, msg.UID, strconv.FormatInt(msg.Size, 10), strconv.FormatInt(msg.WireSize, 10))
			}
			if len(rec) > 1 {
				if err := send(rec); err != nil {
					return err
				}
			}
			reply = appendRecord(nil, '.', strconv.Itoa(n))
		case kind == 'G' && len(f) == 1:
			i, err := strconv.Atoi(f[0])
			if err != nil || i < 0 || strconv.Itoa(i) != f[0] {
				return fmt.Errorf("lspawn: mailbox agent: %w: bad message number", ErrFormat)
			}
			r, err := mb.Open(ctx, i)
			if err != nil {
				reply = fail(err)
				break
			}
			err = sendFile(ctx, r, func(fd int) error { return send([]byte("g"), fd) })
			r.Close()
			if err != nil {
				return err
			}
			continue
		case kind == 'U' && len(f) == 1:
			if len(update)+len(f[0]) > max(n, 0) {
				return fmt.Errorf("lspawn: mailbox agent: %w: update longer than the list", ErrFormat)
			}
			update = append(update, f[0]...)
			continue
		case kind == 'C' && len(f) == 0:
			u := pop3.Update{Deleted: make([]bool, len(update)), Retrieved: make([]bool, len(update))}
			for i, c := range update {
				u.Deleted[i] = c == 'd'
				u.Retrieved[i] = c == 'r'
			}
			update = nil
			var texts []string
			if err := mb.Commit(ctx, u); err != nil {
				texts = commitTexts(err)
			}
			reply = appendRecord(nil, 'c', texts...)
		case kind == 'Q' && len(f) == 0:
			err := mb.Close()
			send([]byte("q"))
			return err
		default:
			return fmt.Errorf("lspawn: mailbox agent: %w: kind %q", ErrFormat, kind)
		}
		if err := send(reply); err != nil {
			return fmt.Errorf("lspawn: mailbox agent: %w", err)
		}
	}
}

// commitTexts are the texts of a Commit's failures (an errors.Join),
// bounded in number and size.
func commitTexts(err error) []string {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var texts []string
	total := 0
	for i, e := range errs {
		t := e.Error()
		if len(t) > 512 {
			t = t[:512]
		}
		if i == maxCommitErrors || total+len(t) > maxChunk {
			texts = append(texts, fmt.Sprintf("and %d more failures", len(errs)-i))
			break
		}
		total += len(t)
		texts = append(texts, t)
	}
	return texts
}

// sendFile passes the descriptor under r to send: that of an *os.File or
// of pop3.Maildir's message reader (their Fd method). Any other reader is
// copied into an unlinked temporary file, which is passed.
func sendFile(ctx context.Context, r io.Reader, send func(fd int) error) error {
	if fder, ok := r.(interface{ Fd() uintptr }); ok {
		return send(int(fder.Fd()))
	}
	// The mta takes only regular files: spool the message to an
	// unlinked one.
	tmp, err := os.CreateTemp("", ".mailbox-")
	if err != nil {
		return err
	}
	os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := io.Copy(tmp, r); err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return send(int(tmp.Fd()))
}
