package uring

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	opFsync       = 3          // IORING_OP_FSYNC
	offSQRing     = 0          // IORING_OFF_SQ_RING
	offCQRing     = 0x8000000  // IORING_OFF_CQ_RING
	offSQEs       = 0x10000000 // IORING_OFF_SQES
	featSingleMap = 1          // IORING_FEAT_SINGLE_MMAP
	registerEvFD  = 4          // IORING_REGISTER_EVENTFD
	sqeSize       = 64
	cqeSize       = 16
)

// params is struct io_uring_params (120 bytes).
type params struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFD         uint32
	resv         [3]uint32
	// sqOff: head, tail, ring_mask, ring_entries, flags, dropped, array,
	// resv1, user_addr (u64).
	sqOff [10]uint32
	// cqOff: head, tail, ring_mask, ring_entries, overflow, cqes, flags,
	// resv1, user_addr (u64).
	cqOff [10]uint32
}

// Ring is an io_uring for fsyncs. It is safe for concurrent use.
type Ring struct {
	fd      int
	sqMap   []byte
	cqMap   []byte
	sqes    []byte
	ev      *os.File // the eventfd the kernel signals on each completion
	reaped  chan struct{}
	slots   chan struct{} // one per operation in flight, at most the CQ's size
	sqMask  uint32
	cqMask  uint32
	sqHead  *uint32
	sqTail  *uint32
	sqArray unsafe.Pointer
	cqHead  *uint32
	cqTail  *uint32
	cqes    unsafe.Pointer

	mu      sync.Mutex
	closed  bool
	next    uint64
	waiting map[uint64]chan int32
}

// New sets up a ring for up to entries fsyncs at once. It fails where
// io_uring is missing or forbidden (old kernels, kernel.io_uring_disabled,
// seccomp filters such as Docker's default): callers then use fsync(2).
func New(entries uint32) (*Ring, error) {
	var p params
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("uring: io_uring_setup: %w", errno)
	}
	r := &Ring{fd: int(fd), waiting: map[uint64]chan int32{}, reaped: make(chan struct{})}
	fail := func(what string, err error) (*Ring, error) {
		r.unmap()
		unix.Close(r.fd)
		return nil, fmt.Errorf("uring: %s: %w", what, err)
	}
	sqSize := int(p.sqOff[6] + p.sqEntries*4)
	cqSize := int(p.cqOff[5] + p.cqEntries*cqeSize)
	if p.features&featSingleMap != 0 {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	if r.sqMap, err = unix.Mmap(r.fd, offSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail("mmap", err)
	}
	r.cqMap = r.sqMap
	if p.features&featSingleMap == 0 {
		if r.cqMap, err = unix.Mmap(r.fd, offCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
			return fail("mmap", err)
		}
	}
	if r.sqes, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail("mmap", err)
	}
	r.sqHead = (*uint32)(unsafe.Pointer(&r.sqMap[p.sqOff[0]]))
	r.sqTail = (*uint32)(unsafe.Pointer(&r.sqMap[p.sqOff[1]]))
	r.sqMask = *(*uint32)(unsafe.Pointer(&r.sqMap[p.sqOff[2]]))
	r.sqArray = unsafe.Pointer(&r.sqMap[p.sqOff[6]])
	r.cqHead = (*uint32)(unsafe.Pointer(&r.cqMap[p.cqOff[0]]))
	r.cqTail = (*uint32)(unsafe.Pointer(&r.cqMap[p.cqOff[1]]))
	r.cqMask = *(*uint32)(unsafe.Pointer(&r.cqMap[p.cqOff[2]]))
	r.cqes = unsafe.Pointer(&r.cqMap[p.cqOff[5]])
	r.slots = make(chan struct{}, min(p.sqEntries, p.cqEntries))

	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return fail("eventfd", err)
	}
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerEvFD, uintptr(unsafe.Pointer(&efd)), 1, 0, 0); errno != 0 {
		unix.Close(efd)
		return fail("register eventfd", errno)
	}
	r.ev = os.NewFile(uintptr(efd), "io_uring eventfd") // non-blocking: read in the poller
	go r.reap()
	return r, nil
}

func (r *Ring) unmap() {
	if r.sqes != nil {
		unix.Munmap(r.sqes)
	}
	if r.cqMap != nil && &r.cqMap[0] != &r.sqMap[0] {
		unix.Munmap(r.cqMap)
	}
	if r.sqMap != nil {
		unix.Munmap(r.sqMap)
	}
}

// Fsync is fsync(2) of fd through the ring. fd must stay open until it
// returns. A cancelled ctx makes it return before the fsync ends only if
// the operation was not yet submitted. An error wrapping ErrRing means the
// fsync was not run; any other is the fsync's, a syscall.Errno.
func (r *Ring) Fsync(ctx context.Context, fd int) error {
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-r.reaped:
		return ErrClosed
	}
	defer func() { <-r.slots }()
	done := make(chan int32, 1)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.next++
	id := r.next
	r.waiting[id] = done
	tail := atomic.LoadUint32(r.sqTail)
	idx := tail & r.sqMask
	sqe := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(&r.sqes[0]), uintptr(idx)*sqeSize)), sqeSize)
	clear(sqe)
	sqe[0] = opFsync
	*(*int32)(unsafe.Pointer(&sqe[4])) = int32(fd)
	*(*uint64)(unsafe.Pointer(&sqe[32])) = id
	*(*uint32)(unsafe.Add(r.sqArray, uintptr(idx)*4)) = idx
	atomic.StoreUint32(r.sqTail, tail+1)
	var errno syscall.Errno
	for {
		var n uintptr
		n, _, errno = unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), 1, 0, 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno == 0 && n != 1 {
			errno = unix.EAGAIN
		}
		break
	}
	if errno != 0 {
		// Not submitted: take the entry back.
		atomic.StoreUint32(r.sqTail, tail)
		delete(r.waiting, id)
		r.mu.Unlock()
		return fmt.Errorf("uring: io_uring_enter: %w (%w)", errno, ErrRing)
	}
	r.mu.Unlock()
	select {
	case res := <-done:
		if res < 0 {
			return syscall.Errno(-res)
		}
		return nil
	case <-r.reaped:
		return ErrClosed
	}
}

// reap waits on the eventfd and passes each completion to its waiter.
func (r *Ring) reap() {
	defer close(r.reaped)
	var buf [8]byte
	for {
		if _, err := r.ev.Read(buf[:]); err != nil {
			return // closed
		}
		for {
			head := atomic.LoadUint32(r.cqHead)
			if head == atomic.LoadUint32(r.cqTail) {
				break
			}
			cqe := unsafe.Add(r.cqes, uintptr(head&r.cqMask)*cqeSize)
			id := *(*uint64)(cqe)
			res := *(*int32)(unsafe.Add(cqe, 8))
			atomic.StoreUint32(r.cqHead, head+1)
			r.mu.Lock()
			done := r.waiting[id]
			delete(r.waiting, id)
			r.mu.Unlock()
			if done != nil {
				done <- res
			}
		}
	}
}

// Close releases the ring once the fsyncs in flight have ended; later
// Fsyncs return ErrClosed.
func (r *Ring) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	for range cap(r.slots) { // wait for every operation in flight
		r.slots <- struct{}{}
	}
	r.ev.Close()
	<-r.reaped
	unix.Close(r.fd)
	r.unmap()
	return nil
}
