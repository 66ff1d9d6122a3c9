package lspawn

import (
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/sys/unix"
)

// errStopped ends the reads of an injection whose time is up or whose
// server is shutting down.
var errStopped = errors.New("lspawn: injection stopped")

// peerReader reads a descriptor received from a peer without changing it.
// Its open file description, and with it O_NONBLOCK, is the peer's too:
// setting the flag would change the peer's own reads and writes, and a
// blocking read(2) could wait for ever, since neither a deadline nor a
// close interrupts it. So each read first waits in poll(2) until the
// descriptor is readable or stop is (its write end closed), then reads by
// a means that cannot wait: recv(MSG_DONTWAIT) on a socket,
// splice(SPLICE_F_NONBLOCK) into a pipe of its own on a pipe (the flag
// applies to the pipes, not to the descriptions), and read(2) on a regular
// file, which never waits for a writer. Other kinds (a terminal could keep
// a read waiting after poll said readable) are refused.
type peerReader struct {
	fd   int
	kind uint32 // unix.S_IFREG, S_IFIFO or S_IFSOCK
	stop int    // readable (end of file) once the reads must end
	pipe [2]int // S_IFIFO: the pipe spliced into, then read
	idle time.Duration
	// idled is set when a read gave up after idle with no data.
	idled bool
}

// errIdle ends the reads of an injection whose writer gave nothing for
// the idle time.
var errIdle = errors.New("lspawn: injection stalled")

// newPeerReader checks fd's kind; stop is the read end of a pipe whose
// write end closes when the reads must end; a read waiting longer than
// idle (if positive) for data fails. Close releases the reader's own
// pipe, never fd.
func newPeerReader(fd, stop int, idle time.Duration) (*peerReader, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("lspawn: received descriptor: %w", err)
	}
	r := &peerReader{fd: fd, kind: st.Mode & unix.S_IFMT, stop: stop, pipe: [2]int{-1, -1}, idle: idle}
	switch r.kind {
	case unix.S_IFREG, unix.S_IFSOCK:
	case unix.S_IFIFO:
		if err := unix.Pipe2(r.pipe[:], unix.O_CLOEXEC); err != nil {
			return nil, fmt.Errorf("lspawn: pipe: %w", err)
		}
	default:
		return nil, fmt.Errorf("%w: a received descriptor is not a regular file, pipe or socket (mode %#o)", ErrFormat, st.Mode)
	}
	return r, nil
}

func (r *peerReader) Close() error {
	if r.pipe[0] >= 0 {
		unix.Close(r.pipe[0])
		unix.Close(r.pipe[1])
		r.pipe = [2]int{-1, -1}
	}
	return nil
}

// maxSplice keeps a splice within the room of an empty pipe of our own.
const maxSplice = 64 << 10

func (r *peerReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var deadline time.Time
	if r.idle > 0 {
		deadline = time.Now().Add(r.idle)
	}
	for {
		fds := []unix.PollFd{{Fd: int32(r.stop), Events: unix.POLLIN}, {Fd: int32(r.fd), Events: unix.POLLIN}}
		wait := -1
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				r.idled = true
				return 0, errIdle
			}
			wait = int(min(left.Milliseconds()+1, 1<<30))
		}
		if _, err := unix.Poll(fds, wait); err != nil {
			if err == unix.EINTR {
				continue
			}
			return 0, fmt.Errorf("lspawn: poll: %w", err)
		}
		if fds[0].Revents != 0 {
			return 0, errStopped
		}
		if fds[1].Revents&unix.POLLNVAL != 0 {
			return 0, errors.New("lspawn: poll: descriptor not open")
		}
		var n int
		var err error
		switch r.kind {
		case unix.S_IFSOCK:
			n, _, err = unix.Recvfrom(r.fd, p, unix.MSG_DONTWAIT)
		case unix.S_IFIFO:
			n, err = r.splice(p)
		default:
			n, err = unix.Read(r.fd, p)
		}
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			continue // another reader of the peer's pipe or socket was first
		case err != nil:
			return 0, fmt.Errorf("lspawn: read: %w", err)
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// splice moves what the peer's pipe holds, up to len(p) bytes, into our
// pipe without waiting, then reads it from there into p: every byte
// spliced is in our pipe, so those reads do not wait.
func (r *peerReader) splice(p []byte) (int, error) {
	n, err := unix.Splice(r.fd, nil, r.pipe[1], nil, min(len(p), maxSplice), unix.SPLICE_F_NONBLOCK)
	if err != nil || n == 0 {
		return 0, err
	}
	for got := 0; got < int(n); {
		m, err := unix.Read(r.pipe[0], p[got:n])
		if err == unix.EINTR {
			continue
		}
		if err != nil || m == 0 {
			return got, fmt.Errorf("lspawn: read our pipe: %v", err)
		}
		got += m
	}
	return int(n), nil
}
