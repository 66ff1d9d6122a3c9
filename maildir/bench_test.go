package maildir

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDeliver measures whole deliveries (create, write, fsync, close,
// link, fsync new/, unlink) into one Maildir under b.TempDir, by message
// size and number of goroutines delivering at once. Compare deliveries/s
// with BenchmarkCeiling on the same file system.
func BenchmarkDeliver(b *testing.B) {
	for _, unnamed := range []bool{false, true} {
		for _, size := range []int{1 << 10, 100 << 10} {
			for _, g := range []int{1, 8} {
				b.Run(fmt.Sprintf("unnamed=%v/%dKB/g%d", unnamed, size>>10, g), func(b *testing.B) {
					d, err := Create(filepath.Join(b.TempDir(), "Maildir"))
					if err != nil {
						b.Fatal(err)
					}
					msg := bytes.Repeat([]byte("0123456789abcdef\n"), size/17+1)[:size]
					dl := &Deliverer{Unnamed: unnamed}
					var next atomic.Int64
					var wg sync.WaitGroup
					b.SetBytes(int64(size))
					b.ResetTimer()
					cpu0 := cpuTime()
					for range g {
						wg.Go(func() {
							for next.Add(1) <= int64(b.N) {
								if _, err := dl.Deliver(b.Context(), d, bytes.NewReader(msg)); err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					wg.Wait()
					b.StopTimer()
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
					b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
				})
			}
		}
	}
}

// cpuTime is the process's user and system CPU time so far: what a
// delivery costs where the CPU, not the disk, is the limit.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCeiling is the operation of a crash-safe commit alone (create,
// write, fsync, close, rename into new/, fsync new/ through a handle each
// goroutine keeps open) in this process, with BenchmarkDeliver's sizes and
// goroutines: run both in one command to compare them under the same
// load: go test -run '^$' -bench 'Deliver|Ceiling' ./maildir.
func BenchmarkCeiling(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10} {
		for _, g := range []int{1, 8} {
			b.Run(fmt.Sprintf("%dKB/g%d", size>>10, g), func(b *testing.B) {
				root := b.TempDir()
				tmpd, newd := filepath.Join(root, "tmp"), filepath.Join(root, "new")
				for _, d := range []string{tmpd, newd} {
					if err := os.Mkdir(d, 0o700); err != nil {
						b.Fatal(err)
					}
				}
				msg := bytes.Repeat([]byte("0123456789abcdef\n"), size/17+1)[:size]
				var next atomic.Int64
				var wg sync.WaitGroup
				b.SetBytes(int64(size))
				b.ResetTimer()
				for w := range g {
					wg.Go(func() {
						dirf, err := os.Open(newd)
						if err != nil {
							b.Error(err)
							return
						}
						defer dirf.Close()
						for i := 0; next.Add(1) <= int64(b.N); i++ {
							if err := ceilingOp(tmpd, newd, fmt.Sprintf("%d.%d", w, i), msg, dirf); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
			})
		}
	}
}

// BenchmarkPaired alternates, in each goroutine, one delivery and one
// fsyncrate operation of the same size, timing each: on a shared, noisy
// machine the two see the same load, so their ratio is steadier than that
// of two benchmarks run minutes apart. It reports the median latency of
// each ("deliver-ms", "ceiling-ms") and "%ceiling": the ceiling's
// median latency as a percentage of the delivery's (100 = as fast as the
// bare operation). b.N counts pairs.
func BenchmarkPaired(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10} {
		for _, g := range []int{1, 8} {
			b.Run(fmt.Sprintf("%dKB/g%d", size>>10, g), func(b *testing.B) {
				base := b.TempDir()
				d, err := Create(filepath.Join(base, "Maildir"))
				if err != nil {
					b.Fatal(err)
				}
				tmpd, newd := filepath.Join(base, "c", "tmp"), filepath.Join(base, "c", "new")
				for _, p := range []string{tmpd, newd} {
					if err := os.MkdirAll(p, 0o700); err != nil {
						b.Fatal(err)
					}
				}
				msg := bytes.Repeat([]byte("0123456789abcdef\n"), size/17+1)[:size]
				dl := &Deliverer{}
				var next atomic.Int64
				var mu sync.Mutex
				var dlat, clat []time.Duration
				var wg sync.WaitGroup
				b.ResetTimer()
				for w := range g {
					wg.Go(func() {
						dirf, err := os.Open(newd)
						if err != nil {
							b.Error(err)
							return
						}
						defer dirf.Close()
						var dl1, cl1 []time.Duration
						for i := 0; next.Add(1) <= int64(b.N); i++ {
							t0 := time.Now()
							if _, err := dl.Deliver(b.Context(), d, bytes.NewReader(msg)); err != nil {
								b.Error(err)
								return
							}
							t1 := time.Now()
							if err := ceilingOp(tmpd, newd, fmt.Sprintf("%d.%d", w, i), msg, dirf); err != nil {
								b.Error(err)
								return
							}
							dl1, cl1 = append(dl1, t1.Sub(t0)), append(cl1, time.Since(t1))
						}
						mu.Lock()
						dlat, clat = append(dlat, dl1...), append(clat, cl1...)
						mu.Unlock()
					})
				}
				wg.Wait()
				b.StopTimer()
				if len(dlat) == 0 {
					return
				}
				slices.Sort(dlat)
				slices.Sort(clat)
				dm, cm := dlat[len(dlat)/2], clat[len(clat)/2]
				b.ReportMetric(float64(dm)/1e6, "deliver-ms")
				b.ReportMetric(float64(cm)/1e6, "ceiling-ms")
				b.ReportMetric(100*float64(cm)/float64(dm), "%ceiling")
			})
		}
	}
}

// ceilingOp is fsyncrate's operation: create, write, fsync, close, rename
// into new/, fsync new/.
func ceilingOp(tmpd, newd, name string, msg []byte, dirf *os.File) error {
	f, err := os.OpenFile(filepath.Join(tmpd, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(msg); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(filepath.Join(tmpd, name), filepath.Join(newd, name))
	}
	if err == nil {
		err = dirf.Sync()
	}
	return err
}

// BenchmarkList measures listing a Maildir of 100,000 messages (half in
// new/, half in cur/ with flags): List stats each file relative to the
// directory handle; Scan stats none when names carry ",S=".
func BenchmarkList(b *testing.B) {
	const n = 100000
	dir := filepath.Join(b.TempDir(), "Maildir")
	d, err := Create(dir)
	if err != nil {
		b.Fatal(err)
	}
	// Hard links to a few files: creating 100,000 inodes takes far longer.
	// (ext4 allows 65,000 links to one inode.)
	var template string
	for i := range n {
		if i%50000 == 0 {
			template = filepath.Join(dir, fmt.Sprintf("template%d", i))
			if err := os.WriteFile(template, []byte("x\n\nx\n"), 0o600); err != nil {
				b.Fatal(err)
			}
		}
		name := fmt.Sprintf("1700000000.M%dP1Q%dR0123456789abcdef.h,S=5", i, i)
		sub := "new"
		if i%2 == 1 {
			sub, name = "cur", name+":2,S"
		}
		if err := os.Link(template, filepath.Join(dir, sub, name)); err != nil {
			b.Fatal(err)
		}
	}
	for _, l := range []struct {
		name string
		f    func() ([]Message, error)
	}{{"List", d.List}, {"Scan", d.Scan}} {
		b.Run(l.name, func(b *testing.B) {
			for b.Loop() {
				msgs, err := l.f()
				if err != nil || len(msgs) != n {
					b.Fatalf("%d messages, %v", len(msgs), err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "messages/s")
		})
	}
}
