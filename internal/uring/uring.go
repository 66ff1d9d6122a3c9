// Package uring runs fsyncs through a Linux io_uring, so that a goroutine
// waiting for one parks in Go's network poller (on an eventfd the ring
// signals) instead of blocking an OS thread in fsync(2): the runtime then
// hands no processor over to another thread per fsync, and its sysmon
// thread is not kept polling every 20 µs. The kernel runs the fsyncs in
// its io-wq workers; their durability is fsync(2)'s.
package uring

import (
	"context"
	"errors"
	"fmt"

	"github.com/qmailkit/qmailkit/internal/durable"
)

// ErrRing marks the errors of the ring itself (it could not take the
// operation), as opposed to the error of an fsync it ran: after one, the
// caller may call fsync(2) itself.
var ErrRing = errors.New("uring: ring unusable")

// ErrClosed is returned by Fsync after Close.
var ErrClosed = fmt.Errorf("uring: closed (%w)", ErrRing)

// Fsync fsyncs fd through r, or calls fsync(2) itself when r is nil or
// cannot take the operation (closed, or failing). The error is fsync's
// (a syscall.Errno).
func Fsync(r *Ring, fd int) error {
	if r != nil {
		if err := r.Fsync(context.Background(), fd); !errors.Is(err, ErrRing) {
			return err
		}
	}
	return durable.Fsync(fd)
}
