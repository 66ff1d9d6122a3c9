package dotqmail

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMemory delivers a 100 MB message to three Maildir lines and one
// program line and checks that the heap grows by less than 2 MB: the
// message is streamed, never held in memory.
func TestMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 400 MB")
	}
	const size = 100 << 20
	e := newEnv(t)
	for _, d := range []string{"A", "B", "C"} {
		e.makeMaildir(d)
	}
	e.qmail(".qmail", "./A/\n./B/\n|wc -c > count\n./C/\n", 0o644)
	msgPath := filepath.Join(t.TempDir(), "msg")
	f, err := os.Create(msgPath)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("0123456789abcdef", 4) + "\n"
	chunk := strings.Repeat(line, 64<<10/len(line))
	f.WriteString("Subject: big\n\n")
	for n := int64(0); n < size; {
		k, err := f.WriteString(chunk)
		if err != nil {
			t.Fatal(err)
		}
		n += int64(k)
	}
	fi, _ := f.Stat()
	f.Seek(0, io.SeekStart)
	defer f.Close()

	// Sample the heap while the delivery runs.
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var (
		peak uint64
		wg   sync.WaitGroup
		done = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	res, err := e.d.Deliver(t.Context(), e.tg, f)
	close(done)
	wg.Wait()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("%v: %q", err, res.Report)
	}
	if res.Report != "did 3+0+1\n" || strings.TrimSpace(e.read("count")) != strconv.FormatInt(fi.Size(), 10) {
		t.Errorf("report %q, program counted %q bytes of %d", res.Report, e.read("count"), fi.Size())
	}
	for _, d := range []string{"A", "B", "C"} {
		ents, _ := os.ReadDir(filepath.Join(e.home, d, "new"))
		if len(ents) != 1 {
			t.Fatalf("%s/new holds %d files", d, len(ents))
		}
		fi2, _ := os.Stat(filepath.Join(e.home, d, "new", ents[0].Name()))
		if want := fi.Size() + int64(len("Return-Path: <a@b.c>\nDelivered-To: joe@ex.com\n")); fi2.Size() != want {
			t.Errorf("%s: %d bytes, want %d", d, fi2.Size(), want)
		}
	}
	growth := int64(peak) - int64(before.HeapAlloc)
	t.Logf("heap before %d, peak %d (growth %d bytes), allocated during delivery %d bytes",
		before.HeapAlloc, peak, growth, after.TotalAlloc-before.TotalAlloc)
	if growth >= 2<<20 {
		t.Errorf("heap grew by %d bytes, want < 2 MB", growth)
	}
	if total := after.TotalAlloc - before.TotalAlloc; total >= 2<<20 {
		t.Errorf("delivery allocated %d bytes in all, want < 2 MB", total)
	}
}
