package assign

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"
)

// genAssign writes an assign file of n records in qmail-pw2u's style: an '='
// and a '+' line per user, then the "+:" catch-all (n+1 records in all, plus
// the wildchars record).
func genAssign(w io.Writer, n int) error {
	bw := bufio.NewWriter(w)
	for i := range n / 2 {
		fmt.Fprintf(bw, "=user%07d:user%07d:%d:100:/home/user%07d:::\n", i, i, 10000+i, i)
		fmt.Fprintf(bw, "+user%07d-:user%07d:%d:100:/home/user%07d:-::\n", i, i, 10000+i, i)
	}
	fmt.Fprintf(bw, "+:alias:7790:2108:/var/qmail/alias:-::\n.\n")
	return bw.Flush()
}

func genAssignFile(b *testing.B, dir string, n int) string {
	b.Helper()
	p := filepath.Join(dir, "assign")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	if err := genAssign(f, n); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return p
}

// benchLocals is a mix of exact hits, wildcard hits and misses that fall
// to the catch-all.
func benchLocals(n int) []string {
	r := rand.New(rand.NewPCG(1, 2))
	locals := make([]string, 4096)
	for i := range locals {
		u := r.IntN(n / 2)
		switch i % 3 {
		case 0:
			locals[i] = fmt.Sprintf("user%07d", u)
		case 1:
			locals[i] = fmt.Sprintf("User%07d-List-%d", u, i)
		default:
			locals[i] = fmt.Sprintf("nobody%d", i)
		}
	}
	return locals
}

// BenchmarkLookup1M: lookups in a users/cdb of 1M records. DB is one open
// snapshot; Users adds the stat that notices a replaced file.
//
//	go test -run '^$' -bench Lookup1M -cpu 1 -count 5 ./assign/
func BenchmarkLookup1M(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	path := filepath.Join(dir, "cdb")
	if err := CompileFile(genAssignFile(b, dir, n), path); err != nil {
		b.Fatal(err)
	}
	locals := benchLocals(n)
	b.Run("DB", func(b *testing.B) {
		db, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		b.ReportAllocs()
		i := 0
		cpu0 := cpuTime()
		for b.Loop() {
			if _, err := db.Lookup(locals[i&4095]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		reportLookups(b, cpu0)
	})
	b.Run("Users", func(b *testing.B) {
		u := &Users{CDB: path}
		defer u.Close()
		ctx := b.Context()
		b.ReportAllocs()
		i := 0
		cpu0 := cpuTime()
		for b.Loop() {
			if _, err := u.Lookup(ctx, locals[i&4095]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		reportLookups(b, cpu0)
	})
	b.Run("UsersMaxAge1s", func(b *testing.B) {
		u := &Users{CDB: path, MaxAge: time.Second}
		defer u.Close()
		ctx := b.Context()
		b.ReportAllocs()
		i := 0
		cpu0 := cpuTime()
		for b.Loop() {
			if _, err := u.Lookup(ctx, locals[i&4095]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		reportLookups(b, cpu0)
	})
}

// cpuTime is the process's user+system CPU time: on a shared machine,
// lookups per CPU-second say what one core does, whatever the wall clock
// lost to other processes.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportLookups reports lookups per wall-clock second and per CPU-second.
func reportLookups(b *testing.B, cpu0 time.Duration) {
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "lookups/cpu-s")
	}
}

// heapSampler records the peak of the live-and-unswept heap while it runs.
type heapSampler struct {
	stop chan struct{}
	wg   sync.WaitGroup
	peak uint64
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{stop: make(chan struct{})}
	h.peak = heapObjects()
	h.wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				h.peak = max(h.peak, heapObjects())
			}
		}
	})
	return h
}

func (h *heapSampler) Stop() uint64 {
	close(h.stop)
	h.wg.Wait()
	return max(h.peak, heapObjects())
}

// BenchmarkCompile1M: compiling an assign file of 1M records into users/cdb,
// with the peak heap (sampled every millisecond) against the output's size.
//
//	go test -run '^$' -bench Compile1M -benchtime 3x -count 5 ./assign/
func BenchmarkCompile1M(b *testing.B) {
	const n = 1_000_000
	dir := b.TempDir()
	src := genAssignFile(b, dir, n)
	out := filepath.Join(dir, "cdb")
	var peak uint64
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		base := heapObjects()
		h := startHeapSampler()
		b.StartTimer()
		if err := CompileFile(src, out); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if p := h.Stop(); p > base {
			peak = max(peak, p-base)
		}
		b.StartTimer()
	}
	fi, err := os.Stat(out)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	b.ReportMetric(float64(fi.Size())/(1<<20), "cdb-MB")
	b.ReportMetric(float64(peak)/float64(fi.Size()), "heap/cdb")
}

// BenchmarkLookupSmall: lookups in a users/cdb that fits in cache, the CPU
// cost of a lookup without memory misses.
func BenchmarkLookupSmall(b *testing.B) {
	db := openString(b, specExample)
	locals := []string{"joe", "Joe-Direct", "bill", "list-foo-bar"}
	b.ReportAllocs()
	i := 0
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := db.Lookup(locals[i&3]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportLookups(b, cpu0)
}
