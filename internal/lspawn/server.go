package lspawn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/dotqmail"
)

// Deliverer delivers to one local recipient; *dotqmail.Local is one.
type Deliverer interface {
	Deliver(ctx context.Context, sender, recipient string, msg io.Reader) (dotqmail.Result, error)
}

// Server delivers the messages a [Client] sends it, each in its own
// goroutine, and sends back the outcomes.
type Server struct {
	// Local delivers; it must be set. A *dotqmail.Local in a root process
	// delivers each message in a child process under the recipient's uid.
	Local Deliverer
	// Mailboxes opens the maildrops the Client asks for
	// (Client.OpenMailbox); nil refuses them.
	Mailboxes MailboxOpener
	// DeliveryTimeout bounds each delivery: when it is up, the delivery's
	// context ends, which kills a dotqmail.Local's qmail-local child, and
	// the delivery is deferred. It is the outer bound around the time
	// limit qmail-local puts on each program it runs. Zero means
	// [DefaultDeliveryTimeout]; negative means none.
	DeliveryTimeout time.Duration
	// Logger receives protocol errors and the refusals: a mailbox agent
	// not started (unknown user, uid 0, too many agents), a delivery
	// killed at its time limit. Nil discards them.
	Logger *slog.Logger
}

// DefaultDeliveryTimeout is Server.DeliveryTimeout's default: Postfix's
// command_time_limit of 1000 s, which qmail-local applies to each
// program, and a minute for the rest of the delivery.
const DefaultDeliveryTimeout = 1060 * time.Second

// MailboxOpener starts a mailbox agent for a user: a process under the
// user's uid that has opened the user's maildrop and serves it with
// [ServeMailbox]. It returns the Client's end of the agent's socket
// (a SOCK_SEQPACKET unix socket), which the Server passes on and closes.
// seen asks the agent to flag messages retrieved whole as seen at QUIT.
type MailboxOpener interface {
	OpenMailbox(ctx context.Context, name string, seen bool) (*os.File, error)
}

// ServeConn serves one Client on conn, a SOCK_SEQPACKET unix socket, until
// the Client closes it or ctx is done. Then it cancels the deliveries in
// progress, whose outcome can no longer be sent (a Client closes once its
// deliveries are done, or to give them up), waits for them and returns:
// nil after the Client's close, else the error that ended it. A record
// that breaks the protocol ends the connection with an error wrapping
// [ErrFormat].
func (s *Server) ServeConn(ctx context.Context, conn *net.UnixConn) error {
	logger := s.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancelAll := context.WithCancel(ctx)
	defer cancelAll()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		running = make(map[uint64]context.CancelFunc)
	)
	defer func() {
		cancelAll()
		wg.Wait()
	}()
	timeout := s.DeliveryTimeout
	if timeout == 0 {
		timeout = DefaultDeliveryTimeout
	}
	buf := make([]byte, maxRecord)
	oob := make([]byte, oobSpace)
	for {
		n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("lspawn: %w", err)
		}
		req, err := parseRequest(buf[:n], oob[:oobn], flags)
		if err != nil {
			logger.Error("lspawn: refusing the connection", "err", err)
			return err
		}
		if req.kind == 'C' {
			mu.Lock()
			if cancel := running[req.id]; cancel != nil {
				cancel()
			}
			mu.Unlock()
			continue
		}
		if req.kind == 'M' {
			wg.Go(func() { s.openMailbox(ctx, conn, req, logger) })
			continue
		}
		dctx, cancel := context.WithCancel(ctx)
		if timeout > 0 {
			dctx, cancel = context.WithTimeout(ctx, timeout)
		}
		mu.Lock()
		if running[req.id] != nil {
			mu.Unlock()
			cancel()
			req.msg.Close()
			err := fmt.Errorf("%w: id %d already in progress", ErrFormat, req.id)
			logger.Error("lspawn: refusing the connection", "err", err)
			return err
		}
		running[req.id] = cancel
		mu.Unlock()
		wg.Go(func() {
			defer func() {
				mu.Lock()
				delete(running, req.id)
				mu.Unlock()
				cancel()
				req.msg.Close()
			}()
			// A SectionReader, not the file: dotqmail.Local then gives the
			// qmail-local child a copy, never the queue's file, whose
			// inode the queue reuses for other users' messages.
			res, err := s.Local.Deliver(dctx, req.sender, req.recipient, io.NewSectionReader(req.msg, 0, req.size))
			if err != nil && errors.Is(dctx.Err(), context.DeadlineExceeded) {
				logger.Warn("lspawn: delivery killed at its time limit; deferred", "recipient", req.recipient, "sender", req.sender, "limit", timeout)
				err = fmt.Errorf("lspawn: delivery time limit (%v) reached: %w", timeout, err)
				if res.Report == "" {
					res.Report = "Delivery time limit reached. (#4.3.0)\n"
				}
			}
			status, text := "K", ""
			if err != nil {
				status, text = "Z", err.Error()
				if dotqmail.ExitCode(err) == 100 {
					status = "D"
				}
				if len(text) > maxErrText {
					text = text[:maxErrText]
				}
			}
			rec := appendRecord(nil, 'R', strconv.FormatUint(req.id, 10), status, res.Report, text)
			if _, _, err := conn.WriteMsgUnix(rec, nil, nil); err != nil && !errors.Is(err, net.ErrClosed) {
				logger.Warn("lspawn: cannot send a delivery's outcome", "id", req.id, "err", err)
			}
		})
	}
}

// openMailbox serves an M request: it has Mailboxes start the agent and
// replies with its socket.
func (s *Server) openMailbox(ctx context.Context, conn *net.UnixConn, req request, logger *slog.Logger) {
	ids := strconv.FormatUint(req.id, 10)
	var f *os.File
	err := errors.New("lspawn: no mailbox agents here")
	if s.Mailboxes != nil {
		f, err = s.Mailboxes.OpenMailbox(ctx, req.recipient, req.seen)
	}
	var rec, oob []byte
	if err != nil {
		logger.Warn("lspawn: mailbox agent refused", "user", req.recipient, "err", err)
		text := err.Error()
		if len(text) > maxErrText {
			text = text[:maxErrText]
		}
		rec = appendRecord(nil, 'A', ids, "Z", text)
	} else {
		defer f.Close()
		rec = appendRecord(nil, 'A', ids, "K", "")
		oob = syscall.UnixRights(int(f.Fd()))
	}
	if _, _, err := conn.WriteMsgUnix(rec, oob, nil); err != nil && !errors.Is(err, net.ErrClosed) {
		logger.Warn("lspawn: cannot send a mailbox", "id", req.id, "err", err)
	}
}

type request struct {
	kind              byte
	id                uint64
	sender, recipient string // M: recipient is the user's name
	seen              bool   // M
	size              int64
	msg               *os.File
}

// parseRequest parses a D, C or M record and takes the descriptor of a D.
func parseRequest(b, oob []byte, flags int) (request, error) {
	nfd := 0
	if len(b) > 0 && b[0] == 'D' {
		nfd = 1
	}
	fds, err := rights(oob, flags, nfd)
	if err != nil {
		return request{}, err
	}
	fail := func(err error) (request, error) {
		closeAll(fds)
		return request{}, err
	}
	if flags&syscall.MSG_TRUNC != 0 {
		return fail(fmt.Errorf("%w: longer than %d bytes", ErrFormat, maxRecord))
	}
	if len(b) > 0 && b[0] == 'C' {
		_, f, err := parseRecord(b, 1)
		if err != nil {
			return fail(err)
		}
		id, err := parseID(f[0])
		if err != nil {
			return fail(err)
		}
		return request{kind: 'C', id: id}, nil
	}
	if len(b) > 0 && b[0] == 'M' {
		_, f, err := parseRecord(b, 3)
		if err != nil {
			return fail(err)
		}
		id, err := parseID(f[0])
		if err != nil {
			return fail(err)
		}
		if f[1] == "" || (f[2] != "0" && f[2] != "1") {
			return fail(fmt.Errorf("%w: bad mailbox request", ErrFormat))
		}
		return request{kind: 'M', id: id, recipient: f[1], seen: f[2] == "1"}, nil
	}
	kind, f, err := parseRecord(b, 4)
	if err != nil {
		return fail(err)
	}
	if kind != 'D' {
		return fail(fmt.Errorf("%w: kind %q in a request", ErrFormat, kind))
	}
	req := request{kind: 'D', sender: f[1], recipient: f[2]}
	if req.id, err = parseID(f[0]); err != nil {
		return fail(err)
	}
	if req.size, err = strconv.ParseInt(f[3], 10, 64); err != nil || req.size < 0 {
		return fail(fmt.Errorf("%w: bad size %q", ErrFormat, f[3]))
	}
	req.msg = os.NewFile(uintptr(fds[0]), "message")
	return req, nil
}

// DelivererFunc adapts a function to [Deliverer].
type DelivererFunc func(ctx context.Context, sender, recipient string, msg io.Reader) (dotqmail.Result, error)

// Deliver calls f.
func (f DelivererFunc) Deliver(ctx context.Context, sender, recipient string, msg io.Reader) (dotqmail.Result, error) {
	return f(ctx, sender, recipient, msg)
}
