package lspawn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/internal/qmailqueue"
	"github.com/qmailkit/qmailkit/queue"
	"golang.org/x/sys/unix"
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
	// end; 0 means [DefaultInjectTimeout]. (qmail-queue's alarm is 24
	// hours, but its writer holds nothing of anyone else's; here a
	// connection holds one of the MaxConns slots.)
	Timeout time.Duration
	// IdleTimeout cuts an injection whose descriptors give no byte for
	// that long (a writer that stalls; the message must be readable to
	// its end); 0 means [DefaultInjectIdle].
	IdleTimeout time.Duration
	// MaxPerUID bounds the connections served at once for one peer uid
	// (SO_PEERCRED), so that one local user holding injections open does
	// not take every slot; beyond it a connection gets exit 71 as beyond
	// MaxConns. 0 means [DefaultMaxPerUID]; negative means no bound but
	// MaxConns.
	MaxPerUID int
	// MaxConns bounds the connections served at once; 0 means
	// [DefaultMaxConns]. A connection beyond it is answered at once with
	// exit 71 (temporary: "mail server temporarily rejected message"),
	// so that a delivery forwarding the message defers it; beyond twice
	// MaxConns, a connection is closed unanswered (the client's exit 74).
	MaxConns int
	// MaxBytes bounds the message read from an injection, in bytes, as
	// control/databytes bounds one received by SMTP: one byte more and the
	// injection fails with exit 31 ("mail server permanently refuses
	// message") and nothing is queued. 0 means [DefaultMaxBytes]; negative
	// means no limit.
	MaxBytes int64
	// CheckSpace, when set, is asked before an injection is read (with
	// Now's time) whether the queue's file system has room for a message;
	// when it returns an error the injection is refused with exit 53
	// ("trouble writing to disk": temporary) and nothing is read. nil
	// means no check.
	CheckSpace func(now time.Time) error
	// Now is the clock given to CheckSpace; nil means time.Now.
	Now func() time.Time
	// Who, when set, names the injector in the Received line from the
	// peer's uid, as qmail-queue does from its real uid ("by alias",
	// "from network", "for bounce"); an empty result, or nil Who, gives
	// "by uid N".
	Who func(uid int) string
	// Logger receives the refused requests; nil discards them.
	Logger *slog.Logger
}

// DefaultMaxBytes is QueueServer.MaxBytes's default: 35 MiB, the size
// limit an SMTP server applies without control/databytes
// (smtpserver.DefaultMaxMessageBytes).
const DefaultMaxBytes = 35 << 20

// tooBigExit and noSpaceExit are qmail-queue's exit codes for a message
// over MaxBytes (permanent) and for a queue without room (temporary).
const (
	tooBigExit  = 31
	noSpaceExit = 53
)

// DefaultMaxConns is QueueServer.MaxConns's default.
const DefaultMaxConns = 64

// DefaultMaxPerUID is QueueServer.MaxPerUID's default: a user's
// deliveries forwarding at once (qmail's concurrencylocal is 10) and a
// few sendmail runs.
const DefaultMaxPerUID = 8

// DefaultInjectTimeout is QueueServer.Timeout's default.
const DefaultInjectTimeout = time.Hour

// DefaultInjectIdle is QueueServer.IdleTimeout's default.
const DefaultInjectIdle = 10 * time.Minute

// busyExit is the exit code of a connection beyond MaxConns.
const busyExit = 71

// requestTimeout bounds the wait for a connection's request record.
const requestTimeout = time.Minute

// Serve accepts connections on l (a "unixpacket" listener) and serves
// each in a goroutine, at most MaxConns at once and MaxPerUID for one
// peer uid, until ctx is done or l fails. Then it closes l, ends the injections in progress (their
// messages are not queued, and their clients get exit 54), waits for them
// and returns: nil when ctx ended it.
func (s *QueueServer) Serve(ctx context.Context, l *net.UnixListener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	max := s.MaxConns
	if max <= 0 {
		max = DefaultMaxConns
	}
	perUID := s.MaxPerUID
	if perUID == 0 {
		perUID = DefaultMaxPerUID
	}
	slots := make(chan struct{}, max)
	refusals := make(chan struct{}, max) // connections being told to come back
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		byUID = map[uint32]int{}
	)
	defer wg.Wait()
	refuseConn := func(conn *net.UnixConn) {
		select {
		case refusals <- struct{}{}:
			wg.Go(func() {
				defer func() { <-refusals }()
				refuse(conn)
			})
		default:
			conn.Close() // the client's exchange fails: exit 74
		}
	}
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
		cred, err := peerCred(conn)
		if err != nil {
			s.logger().Warn("lspawn: qmail-queue request refused: peer credentials", "err", err)
			conn.Close()
			continue
		}
		uid := cred.Uid
		if perUID > 0 {
			mu.Lock()
			full := byUID[uid] >= perUID
			if !full {
				byUID[uid]++
			}
			mu.Unlock()
			if full {
				s.logger().Warn("lspawn: qmail-queue request refused: too many connections for the uid", "uid", uid, "max", perUID)
				refuseConn(conn)
				continue
			}
		}
		release := func() {
			if perUID > 0 {
				mu.Lock()
				if byUID[uid]--; byUID[uid] == 0 {
					delete(byUID, uid)
				}
				mu.Unlock()
			}
		}
		select {
		case slots <- struct{}{}:
		default:
			release()
			s.logger().Warn("lspawn: qmail-queue request refused: too many connections", "uid", uid, "max", max)
			refuseConn(conn)
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			defer release()
			defer conn.Close()
			if err := s.ServeConn(ctx, conn); err != nil {
				s.logger().Warn("lspawn: qmail-queue request refused", "uid", uid, "err", err)
			}
		})
	}
}

// refuse answers a connection beyond MaxConns with busyExit. The request
// is read first (its descriptors closed unread): a socket closed with
// unread data resets the connection, and the client would not see the
// reply.
func refuse(conn *net.UnixConn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	oob := make([]byte, oobSpace)
	_, oobn, flags, _, err := conn.ReadMsgUnix(make([]byte, 64), oob)
	if err != nil {
		return
	}
	if fds, err := rights(oob[:oobn], flags, 2); err == nil {
		closeAll(fds)
	}
	conn.WriteMsgUnix(appendRecord(nil, 'X', strconv.Itoa(busyExit)), nil, nil)
}

func (s *QueueServer) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// ServeConn serves one injection on conn: it reads the request and its two
// descriptors, queues the message read from the first and the envelope
// read from the second (internal/qmailqueue), and replies with the exit
// code. The descriptors are read as they come, without O_NONBLOCK, which
// would change them for the sender too (see peerReader); each must be a
// regular file, a pipe or a socket. A malformed request gets no reply and
// an error wrapping [ErrFormat].
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
	defer closeAll(fds)
	if flags&syscall.MSG_TRUNC != 0 || string(buf[:n]) != "Q" {
		return fmt.Errorf("%w: not a qmail-queue request: %q", ErrFormat, buf[:n])
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultInjectTimeout
	}
	idle := s.IdleTimeout
	if idle <= 0 {
		idle = DefaultInjectIdle
	}
	if s.CheckSpace != nil {
		now := time.Now
		if s.Now != nil {
			now = s.Now
		}
		if err := s.CheckSpace(now()); err != nil {
			s.logger().Warn("lspawn: qmail-queue request refused: no room in the queue", "uid", cred.Uid, "pid", cred.Pid, "err", err)
			return s.reply(conn, noSpaceExit)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The reads wait in poll for their descriptor or for stop, whose
	// write end closes when ctx ends: the timeout and Serve's shutdown.
	var stop [2]int
	if err := unix.Pipe2(stop[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("lspawn: pipe: %w", err)
	}
	stopW := os.NewFile(uintptr(stop[1]), "stop")
	defer unix.Close(stop[0])
	defer stopW.Close()
	defer context.AfterFunc(ctx, func() { stopW.Close() })()
	code := 54
	var env *peerReader
	msg, err := newPeerReader(fds[0], stop[0], idle)
	if err == nil {
		defer msg.Close()
		if env, err = newPeerReader(fds[1], stop[0], idle); err == nil {
			defer env.Close()
			max := s.MaxBytes
			if max == 0 {
				max = DefaultMaxBytes
			}
			var r io.Reader = msg
			if max > 0 {
				r = &limitReader{r: msg, left: max}
			}
			o := queue.Origin{PID: int(cred.Pid), UID: int(cred.Uid)}
			if s.Who != nil {
				o.Who = s.Who(int(cred.Uid))
			}
			code = qmailqueue.Run(ctx, s.Queue, o, r, env)
			if lr, ok := r.(*limitReader); ok && lr.over {
				s.logger().Warn("lspawn: qmail-queue request refused: message too big", "uid", cred.Uid, "pid", cred.Pid, "max", max)
			}
		}
	}
	if err != nil {
		s.logger().Warn("lspawn: qmail-queue request refused", "uid", cred.Uid, "pid", cred.Pid, "err", err)
	} else if msg.idled || env.idled { // both set when err is nil
		s.logger().Warn("lspawn: qmail-queue request cut: no data", "uid", cred.Uid, "pid", cred.Pid, "idle", idle)
	}
	return s.reply(conn, code)
}

// reply sends conn the exit code.
func (s *QueueServer) reply(conn *net.UnixConn, code int) error {
	conn.SetWriteDeadline(time.Now().Add(requestTimeout))
	if _, _, err := conn.WriteMsgUnix(appendRecord(nil, 'X', strconv.Itoa(code)), nil, nil); err != nil {
		return fmt.Errorf("lspawn: reply: %w", err)
	}
	return nil
}

// limitReader reads r until left bytes have been read; a byte more fails
// the read with qmail-queue's exit 31 (a *queue.Error, whose code
// qmailqueue.Run returns), and sets over.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.over {
		return 0, errTooBig
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1] // one byte past the limit tells it is exceeded
	}
	n, err := l.r.Read(p)
	if int64(n) > l.left {
		l.over = true
		l.left = 0
		return 0, errTooBig
	}
	l.left -= int64(n)
	return n, err
}

// errTooBig fails the copy of a message over QueueServer.MaxBytes.
var errTooBig = &queue.Error{Code: tooBigExit, Op: "message too big"}

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

// QueueSocket is the path of the unix socket through which processes that
// may not write home's queue (deliveries under users' uids, sendmail and
// qmail-inject run by local users) hand their messages to the process
// that owns it and serves a [QueueServer] there: home/run/qmail-queue.sock.
func QueueSocket(home string) string { return filepath.Join(home, "run", "qmail-queue.sock") }

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
