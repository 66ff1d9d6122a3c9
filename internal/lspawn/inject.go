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

	"github.com/qmailkit/qmailkit/queue"
)

// QueueServer queues the messages [Enqueue] sends over a unix socket, as
// qmail-queue would: for processes that may not write the queue, such as
// deliveries running under a user's uid. The Received line says "invoked
// by uid N" with the sender's uid (SO_PEERCRED) and pid, and the reply is
// qmail-queue's exit code.
type QueueServer struct {
	// Queue receives the messages; it must be set.
	Queue *queue.Queue
	// Timeout bounds an injection, from the request to the envelope's
	// end, as qmail-queue's 24-hour alarm does; 0 means 24 hours.
	Timeout time.Duration
	// Logger receives the refused requests; nil discards them.
	Logger *slog.Logger
}

// requestTimeout bounds the wait for a connection's request record.
const requestTimeout = time.Minute

// Serve accepts connections on l (a "unixpacket" listener) and serves
// each in a goroutine until ctx is done or l fails. Then it closes l,
// ends the injections in progress (their messages are not queued, and
// their clients get exit 54), waits for them and returns: nil when ctx
// ended it.
func (s *QueueServer) Serve(ctx context.Context, l *net.UnixListener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := l.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("lspawn: accept: %w", err)
		}
		wg.Go(func() {
			defer conn.Close()
			if err := s.ServeConn(ctx, conn); err != nil {
				s.logger().Warn("lspawn: qmail-queue request refused", "err", err)
			}
		})
	}
}

func (s *QueueServer) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// ServeConn serves one injection on conn: it reads the request and its two
// descriptors, queues the message read from the first and the envelope
// read from the second, and replies with the exit code. A malformed
// request gets no reply and an error wrapping [ErrFormat].
func (s *QueueServer) ServeConn(ctx context.Context, conn *net.UnixConn) error {
	cred, err := peerCred(conn)
	if err != nil {
		return fmt.Errorf("lspawn: peer credentials: %w", err)
	}
	conn.SetReadDeadline(time.Now().Add(requestTimeout))
	buf := make([]byte, 64)
	oob := make([]byte, oobSpace)
	n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return fmt.Errorf("lspawn: read request: %w", err)
	}
	fds, err := rights(oob[:oobn], flags, 2)
	if err != nil {
		return err
	}
	if flags&syscall.MSG_TRUNC != 0 || string(buf[:n]) != "Q" {
		closeAll(fds)
		return fmt.Errorf("%w: not a qmail-queue request: %q", ErrFormat, buf[:n])
	}
	msg, env := pollable(fds[0], "message"), pollable(fds[1], "envelope")
	defer msg.Close()
	defer env.Close()
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 24 * time.Hour
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Deadlines stop a read of a pipe or socket; closing stops the rest.
	deadline, _ := ctx.Deadline()
	msg.SetReadDeadline(deadline)
	env.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() {
		msg.SetReadDeadline(time.Unix(1, 0))
		env.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()
	code := inject(ctx, s.Queue, queue.Origin{PID: int(cred.Pid), UID: int(cred.Uid)}, msg, env)
	conn.SetWriteDeadline(time.Now().Add(requestTimeout))
	if _, _, err := conn.WriteMsgUnix(appendRecord(nil, 'X', strconv.Itoa(code)), nil, nil); err != nil {
		return fmt.Errorf("lspawn: reply: %w", err)
	}
	return nil
}

// inject is qmail-queue (examples/qmail-queue) on q: the message to its
// end, then the envelope; the exit code.
func inject(ctx context.Context, q *queue.Queue, o queue.Origin, msg, env io.Reader) int {
	w, err := q.Create(ctx, o)
	if err != nil {
		return exitCode(err, 62)
	}
	if _, err := io.Copy(w, msg); err != nil {
		w.Abort()
		var qe *queue.Error
		if errors.As(err, &qe) {
			return qe.Code
		}
		return 54
	}
	e, err := queue.ReadEnvelope(env)
	if err != nil {
		w.Abort()
		return exitCode(err, 54)
	}
	if _, err := w.Commit(ctx, e); err != nil {
		return exitCode(err, 81)
	}
	return 0
}

func exitCode(err error, otherwise int) int {
	var qe *queue.Error
	if errors.As(err, &qe) {
		return qe.Code
	}
	return otherwise
}

// pollable makes a received descriptor an *os.File whose reads deadlines
// and Close can interrupt, when it is a pipe or socket.
func pollable(fd int, name string) *os.File {
	syscall.SetNonblock(fd, true)
	return os.NewFile(uintptr(fd), name)
}

func peerCred(conn *net.UnixConn) (*syscall.Ucred, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}

// Enqueue is qmail-queue's client end of a [QueueServer]: it passes msg
// and env (qmail-queue's descriptors 0 and 1) to the server listening at
// path, which reads them, and returns the server's exit code, or its own
// when it cannot get one: 56 when it cannot connect, 74 when the exchange
// fails.
func Enqueue(path string, msg, env *os.File) int {
	conn, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return 56
	}
	defer conn.Close()
	var fds [2]int
	var werr error
	send := func() {
		_, _, werr = conn.WriteMsgUnix([]byte("Q"), syscall.UnixRights(fds[:]...), nil)
	}
	// Inside both files' Control, so that their descriptors stay open.
	mc, err1 := msg.SyscallConn()
	ec, err2 := env.SyscallConn()
	if err1 != nil || err2 != nil {
		return 74
	}
	err = mc.Control(func(m uintptr) {
		fds[0] = int(m)
		err2 = ec.Control(func(e uintptr) {
			fds[1] = int(e)
			send()
		})
	})
	if err != nil || err2 != nil || werr != nil {
		return 74
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil {
		return 74
	}
	code, err := parseExit(buf[:n])
	if err != nil {
		return 74
	}
	return code
}

// parseExit parses an X record.
func parseExit(b []byte) (int, error) {
	kind, f, err := parseRecord(b, 1)
	if err != nil {
		return 0, err
	}
	code, err := strconv.Atoi(f[0])
	if kind != 'X' || err != nil || code < 0 || code > 255 || strconv.Itoa(code) != f[0] {
		return 0, fmt.Errorf("%w: bad exit record %q", ErrFormat, b)
	}
	return code, nil
}
