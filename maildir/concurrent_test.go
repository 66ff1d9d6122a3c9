package maildir

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	concurrentEnvDir  = "QMAILKIT_MAILDIR_TEST_DIR"
	concurrentEnvProc = "QMAILKIT_MAILDIR_TEST_PROC"
	concurrentProcs   = 2
	concurrentWorkers = 8
	concurrentTotal   = 1000
)

// concurrentMessage is the content of delivery i of process proc: a
// header naming it and a body whose length and bytes depend on both, so
// that any clobbered, truncated or mixed-up file is caught.
func concurrentMessage(proc, i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "X-Test: %d %d\n\n", proc, i)
	n := 50 + (proc*7919+i*104729)%5000
	for j := range n {
		b.WriteByte(byte('a' + (proc+i+j)%26))
	}
	b.WriteByte('\n')
	return b.String()
}

// deliverConcurrently makes this process's share of the deliveries with
// concurrentWorkers goroutines. Even goroutines share one Deliverer (its Q
// counter orders their names); odd ones use a fresh Deliverer for each
// message, so their names all carry Q1 and only the random part and the
// pid tell them apart. Every name has the same second and host, to give
// collisions every chance.
func deliverConcurrently(t *testing.T, d Dir, proc int) {
	now := func() time.Time { return time.Unix(1700000000, 0) }
	shared := &Deliverer{Now: now, Host: "h"}
	var wg sync.WaitGroup
	for w := range concurrentWorkers {
		wg.Go(func() {
			for i := w; i < concurrentTotal/concurrentProcs; i += concurrentWorkers {
				dl := shared
				if w%2 == 1 {
					dl = &Deliverer{Now: now, Host: "h"}
				}
				if _, err := dl.Deliver(t.Context(), d, strings.NewReader(concurrentMessage(proc, i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// Acceptance: 8 goroutines in each of 2 processes deliver 1000 messages in
// all into one Maildir; every message is there once, intact. The second
// process is this test binary run again with the Maildir in its
// environment.
func TestConcurrentDelivery(t *testing.T) {
	if dir := os.Getenv(concurrentEnvDir); dir != "" {
		proc, err := strconv.Atoi(os.Getenv(concurrentEnvProc))
		if err != nil {
			t.Fatal(err)
		}
		deliverConcurrently(t, Dir(dir), proc)
		return
	}
	d := newDir(t)
	var children []*exec.Cmd
	var outs []*bytes.Buffer
	for proc := 1; proc < concurrentProcs; proc++ {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestConcurrentDelivery$", "-test.count=1")
		cmd.Env = append(os.Environ(), concurrentEnvDir+"="+string(d), concurrentEnvProc+"="+strconv.Itoa(proc))
		out := new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children, outs = append(children, cmd), append(outs, out)
	}
	deliverConcurrently(t, d, 0)
	for i, cmd := range children {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child process: %v\n%s", err, outs[i])
		}
	}

	ents, err := os.ReadDir(filepath.Join(string(d), "new"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != concurrentTotal {
		t.Errorf("new/ holds %d files, want %d", len(ents), concurrentTotal)
	}
	seen := map[[2]int]string{}
	pids := map[string]bool{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(string(d), "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var proc, i int
		if _, err := fmt.Sscanf(string(b), "X-Test: %d %d\n", &proc, &i); err != nil {
			t.Errorf("%s: unreadable content %.40q", e.Name(), b)
			continue
		}
		if want := concurrentMessage(proc, i); string(b) != want {
			t.Errorf("%s: content of message %d/%d damaged (%d bytes, want %d)", e.Name(), proc, i, len(b), len(want))
		}
		if prev, dup := seen[[2]int{proc, i}]; dup {
			t.Errorf("message %d/%d delivered twice: %s and %s", proc, i, prev, e.Name())
		}
		seen[[2]int{proc, i}] = e.Name()
		_, rest, _ := strings.Cut(e.Name(), "P")
		pid, _, _ := strings.Cut(rest, "Q")
		pids[pid] = true
	}
	if len(seen) != concurrentTotal {
		t.Errorf("%d distinct messages, want %d", len(seen), concurrentTotal)
	}
	if len(pids) != concurrentProcs {
		t.Errorf("names carry %d pids, want %d", len(pids), concurrentProcs)
	}
	wantFiles(t, d, "tmp", nil)
}

// patternReader generates size bytes without holding them: the message of
// the heap test.
type patternReader struct {
	left int64
	pos  int
	pat  []byte
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.pat[r.pos:])
		n += c
		r.pos = (r.pos + c) % len(r.pat)
	}
	r.left -= int64(n)
	return n, nil
}

// Acceptance: a 100 MB delivery grows the heap by less than 1 MB: the
// message is streamed, never held.
func TestDeliverHeapBound(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100 MB")
	}
	const size = 100 << 20
	d := newDir(t)
	pat := make([]byte, 4093) // prime: the pattern never aligns with buffers
	for i := range pat {
		pat[i] = byte(i * 31)
	}
	r := &patternReader{left: size, pat: pat}
	dl := &Deliverer{}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	name, err := dl.Deliver(t.Context(), d, r)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("100 MB delivery: %d bytes allocated, heap grew by %d bytes", allocated, grown)
	if allocated > 1<<20 || grown > 1<<20 {
		t.Errorf("100 MB delivery allocated %d bytes, heap grew by %d: want under 1 MB", allocated, grown)
	}
	f, err := os.Open(filepath.Join(string(d), "new", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if fi.Size() != size {
		t.Fatalf("delivered %d bytes, want %d", fi.Size(), size)
	}
	// Spot-check the content at the start, middle and end.
	for _, off := range []int64{0, size/2 + 17, size - 4093} {
		got := make([]byte, 4093)
		if _, err := f.ReadAt(got, off); err != nil {
			t.Fatal(err)
		}
		p := int(off % 4093)
		want := append(append([]byte{}, pat[p:]...), pat[:p]...)
		if !bytes.Equal(got, want) {
			t.Fatalf("content differs at offset %d", off)
		}
	}
}
