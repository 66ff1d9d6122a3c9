package logbuf

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowWriter records each write and takes a while over it, as a pipe to a
// busy log reader does.
type slowWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	delay  time.Duration
	gate   chan struct{} // when not nil, each write waits for a receive from it
}

func (w *slowWriter) Write(p []byte) (int, error) {
	if w.gate != nil {
		<-w.gate
	}
	time.Sleep(w.delay)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	return w.buf.Write(p)
}

func (w *slowWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// Lines from many goroutines all arrive, each whole, each goroutine's in
// its order, in fewer writes than lines.
func TestWriterBatchesInOrder(t *testing.T) {
	sw := &slowWriter{delay: 200 * time.Microsecond}
	b := New(sw)
	const writers, lines = 8, 200
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(b, "g%d line %d\n", g, i)
			}
		})
	}
	wg.Wait()
	b.Close()
	got := strings.Split(strings.TrimSuffix(sw.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	next := make([]int, writers)
	for _, l := range got {
		var g, i int
		if _, err := fmt.Sscanf(l, "g%d line %d", &g, &i); err != nil || g < 0 || g >= writers {
			t.Fatalf("mangled line %q", l)
		}
		if i != next[g] {
			t.Fatalf("goroutine %d: line %d after %d", g, i, next[g]-1)
		}
		next[g]++
	}
	if sw.writes >= writers*lines {
		t.Errorf("%d writes for %d lines: nothing batched", sw.writes, writers*lines)
	}
}

// A line is written without waiting for another to join it; Close
// writes what waits; after Close, writes go straight through.
func TestWriterClose(t *testing.T) {
	sw := &slowWriter{}
	b := New(sw)
	b.Write([]byte("one\n"))
	deadline := time.Now().Add(5 * time.Second)
	for sw.String() != "one\n" {
		if time.Now().After(deadline) {
			t.Fatalf("a lone line was not written: %q", sw.String())
		}
		time.Sleep(time.Millisecond)
	}
	b.Write([]byte("two\n"))
	b.Close()
	if sw.String() != "one\ntwo\n" {
		t.Fatalf("after Close: %q", sw.String())
	}
	b.Close()
	b.Write([]byte("three\n"))
	if sw.String() != "one\ntwo\nthree\n" {
		t.Errorf("after Close: %q", sw.String())
	}
}

// A stalled reader stops the writers once maxPending bytes wait, and
// nothing is lost when it resumes.
func TestWriterBackpressure(t *testing.T) {
	sw := &slowWriter{gate: make(chan struct{})}
	b := New(sw)
	line := bytes.Repeat([]byte("x"), 1023)
	line = append(line, '\n')
	n := 2*maxPending/len(line) + 10
	done := make(chan struct{})
	go func() {
		for range n {
			b.Write(line)
		}
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("writes of twice maxPending did not block while the reader stalled")
	case <-time.After(200 * time.Millisecond):
	}
	close(sw.gate) // the reader resumes
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writes stayed blocked after the reader resumed")
	}
	b.Close()
	if got := len(sw.String()); got != n*len(line) {
		t.Errorf("%d bytes written, want %d", got, n*len(line))
	}
}
