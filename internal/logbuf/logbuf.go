// Package logbuf batches the log lines that many goroutines write into few
// write calls, without holding any back: a line written while no write is
// in progress is written at once by the Writer's goroutine, and the lines
// written meanwhile go out together in its next write. Under load a server
// that logs several lines per message then makes one write for many lines
// instead of one each (and wakes its log reader, a pipe to multilog or
// journald, as seldom).
package logbuf

import (
	"io"
	"sync"
)

// maxPending bounds the bytes waiting for the writer goroutine: beyond it,
// Write waits, so a stalled log reader slows the writers instead of
// growing memory.
const maxPending = 1 << 20

// Writer is an io.Writer that passes what it is given on to another
// io.Writer from its own goroutine, in order, batching what arrives while a
// write is in progress. Each Write call's bytes stay together. Close must
// be called to write what is left and end the goroutine; lines written
// after Close are written directly.
type Writer struct {
	w    io.Writer
	wake chan struct{}
	done chan struct{}

	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte // waiting
	spare  []byte // the buffer of the last batch, for reuse
	closed bool
}

// New returns a Writer writing to w and starts its goroutine.
func New(w io.Writer) *Writer {
	b := &Writer{w: w, wake: make(chan struct{}, 1), done: make(chan struct{})}
	b.cond = sync.NewCond(&b.mu)
	go b.loop()
	return b
}

// Write queues p for writing and returns len(p), nil; errors of the
// underlying writer are not reported (a logger has no use for them).
func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	for len(b.buf) >= maxPending && !b.closed {
		b.cond.Wait()
	}
	if b.closed {
		b.mu.Unlock()
		return b.w.Write(p)
	}
	b.buf = append(b.buf, p...)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default: // a wake-up is pending: it takes these bytes too
	}
	return len(p), nil
}

func (b *Writer) loop() {
	defer close(b.done)
	for range b.wake {
		b.mu.Lock()
		batch := b.buf
		b.buf = b.spare[:0]
		b.mu.Unlock()
		if len(batch) > 0 {
			b.w.Write(batch)
		}
		b.mu.Lock()
		if cap(batch) <= maxPending {
			b.spare = batch
		} else {
			b.spare = nil
		}
		b.cond.Broadcast()
		closed := b.closed && len(b.buf) == 0
		b.mu.Unlock()
		if closed {
			return
		}
	}
}

// Close writes what is waiting, ends the goroutine and makes later writes
// direct. It returns nil.
func (b *Writer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		<-b.done
		return nil
	}
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	<-b.done
	return nil
}
