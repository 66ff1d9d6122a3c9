package queueadmin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/queue"
)

// Backend carries out the operations: a running *queue.Scheduler is one.
type Backend interface {
	List(ctx context.Context) ([]queue.Entry, error)
	Show(ctx context.Context, ids []queue.ID) ([]queue.Entry, []error, error)
	Hold(ctx context.Context, ids []queue.ID) ([]error, error)
	Release(ctx context.Context, ids []queue.ID) ([]error, error)
	Delete(ctx context.Context, ids []queue.ID) ([]error, error)
	FlushMessages(ctx context.Context, ids []queue.ID) ([]error, error)
	Requeue(ctx context.Context, ids []queue.ID) ([]error, error)
	Flush()
}

// Defaults of Server.
const (
	DefaultMaxConns = 8
	DefaultTimeout  = 5 * time.Minute
	readTimeout     = 10 * time.Second
	writeTimeout    = 30 * time.Second
)

// Server serves the protocol. Set the fields, then call Serve.
type Server struct {
	Backend Backend
	// MaxConns is the most connections served at once; 0 means
	// DefaultMaxConns.
	MaxConns int
	// Timeout bounds each request's operation; 0 means DefaultTimeout.
	Timeout time.Duration
	// Allow decides which peer uids are served; nil means uid 0 and this
	// process's uid.
	Allow func(uid int) bool
	// Logger receives one line per request, and refusals. Nil discards.
	Logger *slog.Logger
}

// Serve accepts connections on l until ctx is done, then closes l, waits
// for the requests in progress (their operations are cancelled) and
// returns nil; or it returns Accept's error.
func (s *Server) Serve(ctx context.Context, l *net.UnixListener) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxConns := s.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	sem := make(chan struct{}, maxConns)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.Close()
			return fmt.Errorf("queueadmin: %w", err)
		}
		select {
		case sem <- struct{}{}:
		default:
			wg.Go(func() {
				defer c.Close()
				c.SetWriteDeadline(time.Now().Add(time.Second))
				writeLine(c, line{V: Version, Done: true, Error: "too many connections; try again", Temporary: true})
			})
			continue
		}
		wg.Go(func() {
			defer c.Close()
			defer func() { <-sem }()
			s.serveConn(ctx, c, log)
		})
	}
}

// peerUID is the uid of c's peer, from the kernel.
func peerUID(c *net.UnixConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if cerr != nil {
		return -1, cerr
	}
	return int(cred.Uid), nil
}

func (s *Server) allowed(uid int) bool {
	if s.Allow != nil {
		return s.Allow(uid)
	}
	return uid == 0 || uid == os.Getuid()
}

func (s *Server) serveConn(ctx context.Context, c *net.UnixConn, log *slog.Logger) {
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	uid, err := peerUID(c)
	if err != nil || !s.allowed(uid) {
		log.Warn("queueadmin: peer refused", "uid", uid, "err", err)
		c.SetWriteDeadline(time.Now().Add(time.Second))
		writeLine(c, line{V: Version, Done: true, Error: "permission denied"})
		return
	}
	c.SetReadDeadline(time.Now().Add(readTimeout))
	br := bufio.NewReaderSize(c, 4096)
	raw, err := readLine(br)
	if err != nil {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		writeLine(c, line{V: Version, Done: true, Error: err.Error()})
		return
	}
	req, ids, err := ParseRequest(raw)
	if err != nil {
		log.Warn("queueadmin: bad request", "uid", uid, "err", err)
		c.SetWriteDeadline(time.Now().Add(time.Second))
		writeLine(c, line{V: Version, Done: true, Error: err.Error()})
		return
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if req.TimeoutMS > 0 {
		timeout = min(timeout, time.Duration(req.TimeoutMS)*time.Millisecond)
	}
	octx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	log.Info("queueadmin: "+req.Op, "uid", uid, "ids", len(ids))
	bw := bufio.NewWriter(c)
	out := func(l line) error {
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		return writeLine(bw, l)
	}
	fail := func(err error) {
		out(line{V: Version, Done: true, Error: err.Error(), Temporary: true})
		bw.Flush()
	}
	switch req.Op {
	case OpList, OpShow:
		var es []queue.Entry
		var errs []error
		err = starting(octx, func() (err error) {
			if req.Op == OpList && len(ids) == 0 {
				es, err = s.Backend.List(octx)
			} else {
				es, errs, err = s.Backend.Show(octx, ids)
			}
			return err
		})
		if err != nil {
			fail(err)
			return
		}
		for i, e := range es {
			if errs != nil && errs[i] != nil {
				if req.Op == OpShow {
					if out(idLine(ids[i], errs[i])) != nil {
						return
					}
				}
				continue
			}
			m := FromEntry(e)
			if out(line{Message: &m}) != nil {
				return
			}
		}
	default:
		var errs []error
		err = starting(octx, func() (err error) {
			switch req.Op {
			case OpHold:
				errs, err = s.Backend.Hold(octx, ids)
			case OpRelease:
				errs, err = s.Backend.Release(octx, ids)
			case OpDelete:
				errs, err = s.Backend.Delete(octx, ids)
			case OpRequeue:
				errs, err = s.Backend.Requeue(octx, ids)
			case OpFlush:
				if len(ids) == 0 {
					s.Backend.Flush()
				} else {
					errs, err = s.Backend.FlushMessages(octx, ids)
				}
			}
			return err
		})
		if err != nil {
			fail(err)
			return
		}
		for i, id := range ids {
			if out(idLine(id, errs[i])) != nil {
				return
			}
		}
	}
	out(line{V: Version, Done: true})
	bw.Flush()
}

// startWait is how long a request waits for a scheduler that does not run
// yet: the mta serves the socket from just before it starts the scheduler.
const startWait = 5 * time.Second

// starting calls fn, and again while it fails with queue.ErrNotRunning,
// for up to startWait.
func starting(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(startWait)
	for {
		err := fn()
		if !errors.Is(err, queue.ErrNotRunning) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func idLine(id queue.ID, err error) line {
	ok := err == nil
	l := line{ID: id.String(), OK: &ok}
	if err != nil {
		l.Error = err.Error()
		l.NotFound = errors.Is(err, queue.ErrNoMessage)
	}
	return l
}

// readLine reads one line of at most MaxRequest bytes, without its "\n".
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > MaxRequest {
			return nil, fmt.Errorf("request longer than %d bytes", MaxRequest)
		}
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, fmt.Errorf("reading the request: %w", err)
		}
	}
}

func writeLine(w interface{ Write([]byte) (int, error) }, l line) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
