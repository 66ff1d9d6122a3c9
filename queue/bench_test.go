package queue

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BenchmarkInject measures durable injections of 1 KB messages by 1 and 20
// concurrent injectors. Compare with maildir's BenchmarkCeiling run in the
// same sitting: its operation (create, write, fsync, rename, directory
// fsync) is the ceiling of one crash-safe commit.
func BenchmarkInject(b *testing.B) {
	msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 16) // 1024 bytes
	for _, workers := range []int{1, 20} {
		b.Run(fmt.Sprintf("injectors=%d", workers), func(b *testing.B) {
			q, err := Open(b.TempDir()+"/queue", Options{Fsync: ringFsync(b)})
			if err != nil {
				b.Fatal(err)
			}
			env := Envelope{Sender: "bench@example.com", Recipients: []string{"rcpt@example.org"}}
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			start := time.Now()
			injectN(b, q, env, msg, workers)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			b.ReportMetric(float64(dirSyncs(q))/float64(b.N), "dirfsyncs/msg")
		})
	}
}

// BenchmarkRestartScan measures what the scheduler does at start-up before
// its first delivery (the 36-hour cleanup walk of mess/, then the scan of
// info/ and the channel files) on a queue holding QMAILKIT_BENCH_QUEUED
// preprocessed messages (default 100000; writing them takes minutes), each
// with a remote and half with a local channel file, and the heap it then
// holds.
func BenchmarkRestartScan(b *testing.B) {
	n := 100000
	if s := os.Getenv("QMAILKIT_BENCH_QUEUED"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	q, err := Open(b.TempDir()+"/queue", Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		id := ID(i)
		write := func(kind, content string) {
			if err := os.WriteFile(q.path(kind, id), []byte(content), 0o600); err != nil {
				b.Fatal(err)
			}
		}
		write("mess", "Received: x\n\nbody\n")
		write("info", "Fsender"+strconv.Itoa(i)+"@example.com\x00")
		write("remote", "Trcpt@example.org\x00")
		if i%2 == 0 {
			write("local", "Tuser@example.com\x00")
		}
	}
	b.ResetTimer()
	var heapMB float64
	var scan time.Duration
	for range b.N {
		b.StopTimer()
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		start := time.Now()
		r := newTestRun(q)
		if err := q.CleanStale(time.Now()); err != nil {
			b.Fatal(err)
		}
		r.startupScan()
		scan += time.Since(start)
		b.StopTimer()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		heapMB = float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
		if len(r.msgs) != n {
			b.Fatalf("%d messages scanned, want %d", len(r.msgs), n)
		}
		runtime.KeepAlive(r)
		b.StartTimer()
	}
	b.ReportMetric(scan.Seconds()/float64(b.N), "s/restart")
	b.ReportMetric(heapMB, "heapMB")
	b.ReportMetric(float64(n), "messages")
}

// newTestRun is the state Run builds, without running it.
func newTestRun(q *Queue) *run {
	s := &Scheduler{Queue: q}
	r := &run{s: s, q: q, log: s.logger(), now: time.Now, router: Routing{}.compile(), msgs: map[ID]*msg{}, stale: map[ID]bool{}, batch: 100, life: DefaultLifetime}
	r.chans[0] = &channel{limit: 10}
	r.chans[1] = &channel{remote: true, limit: 20, perDomain: map[string]int{}}
	return r
}

// BenchmarkEndToEnd measures messages/s from Inject to a durable Maildir
// delivery (tmp, fsync, rename, fsync) through the Scheduler, with 20
// concurrent injectors and qmail's local concurrency of 10. The full MTA
// (SMTP in, dotqmail out) is measured against Postfix by the benchmark
// scripts kept beside the repository, outside the module.
func BenchmarkEndToEnd(b *testing.B) {
	msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 16)
	dir := b.TempDir()
	q, err := Open(dir+"/queue", Options{Fsync: ringFsync(b)})
	if err != nil {
		b.Fatal(err)
	}
	var seq atomic.Uint64
	var delivered atomic.Int64
	all := make(chan struct{})
	target := int64(b.N)
	s := &Scheduler{
		Queue:   q,
		Routing: Routing{Locals: []string{"example.com"}},
		Local: LocalFunc(func(ctx context.Context, d Delivery) Result {
			if err := maildirDeliver(dir+"/Maildir", d.Message, &seq); err != nil {
				return Result{Report: err.Error(), Err: err}
			}
			if delivered.Add(1) == target {
				close(all)
			}
			return Result{Report: "did 0+0+1\n"}
		}),
	}
	ctx, cancel := context.WithCancel(b.Context())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	env := Envelope{Sender: "bench@example.com", Recipients: []string{"user@example.com"}}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range 20 {
		wg.Go(func() {
			for next.Add(1) <= target {
				if _, err := q.Inject(ctx, env, bytes.NewReader(msg)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	<-all
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(float64(dirSyncs(q))/float64(b.N), "queuedirfsyncs/msg")
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkDrain: b.N queued 1 KB messages delivered to a Maildir by a
// scheduler started after they were injected: the scheduler alone.
func BenchmarkDrain(b *testing.B) {
	msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 16)
	dir := b.TempDir()
	q, err := Open(dir+"/queue", Options{Fsync: ringFsync(b)})
	if err != nil {
		b.Fatal(err)
	}
	injectN(b, q, Envelope{Sender: "bench@example.com", Recipients: []string{"user@example.com"}}, msg, 20)
	var seq atomic.Uint64
	var delivered atomic.Int64
	all := make(chan struct{})
	s := &Scheduler{
		Queue:   q,
		Routing: Routing{Locals: []string{"example.com"}},
		Local: LocalFunc(func(ctx context.Context, d Delivery) Result {
			if err := maildirDeliver(dir+"/Maildir", d.Message, &seq); err != nil {
				return Result{Report: err.Error(), Err: err}
			}
			if delivered.Add(1) == int64(b.N) {
				close(all)
			}
			return Result{Report: "did 0+0+1\n"}
		}),
	}
	ctx, cancel := context.WithCancel(b.Context())
	errc := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { errc <- s.Run(ctx) }()
	<-all
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(float64(dirSyncs(q))/float64(b.N), "queuedirfsyncs/msg")
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// injectN injects b.N copies of msg into q from workers goroutines at once.
func injectN(b *testing.B, q *Queue, env Envelope, msg []byte, workers int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if _, err := q.Inject(b.Context(), env, bytes.NewReader(msg)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// dirSyncs is the number of fsyncs of q's mess/S, intd and todo
// directories so far.
func dirSyncs(q *Queue) uint64 {
	n := q.todoSync.count() + q.intdSync.count()
	for _, d := range q.messSync {
		n += d.count()
	}
	return n
}

// BenchmarkInjectNoSync is BenchmarkInject with every fsync skipped (an
// Options.Fsync that returns at once): the CPU and system-call cost of an
// injection, which the disk hides in BenchmarkInject.
func BenchmarkInjectNoSync(b *testing.B) {
	msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 16)
	for _, workers := range []int{1, 20} {
		b.Run(fmt.Sprintf("injectors=%d", workers), func(b *testing.B) {
			q, err := Open(b.TempDir()+"/queue", Options{Fsync: func(int) error { return nil }})
			if err != nil {
				b.Fatal(err)
			}
			env := Envelope{Sender: "bench@example.com", Recipients: []string{"rcpt@example.org"}}
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			injectN(b, q, env, msg, workers)
		})
	}
}

// BenchmarkEndToEndNoSync is BenchmarkEndToEnd with every fsync skipped and
// a local delivery that only reads the message, in the steady state of a
// running MTA: 20 injectors, at most 40 messages between injection and
// delivery (so that, as behind an SMTP server, the Scheduler keeps up and
// finished messages' files become the next ones'), timed after 4000
// messages of warm-up. It reports the process's CPU time per message
// (user and system, which a loaded machine inflates less than wall time):
// the queue's own cost of a message, which the disk hides elsewhere.
func BenchmarkEndToEndNoSync(b *testing.B) {
	msg := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 16)
	q, err := Open(b.TempDir()+"/queue", Options{Fsync: func(int) error { return nil }})
	if err != nil {
		b.Fatal(err)
	}
	const warm = 4000
	inFlight := make(chan struct{}, 40)
	var delivered atomic.Int64
	var target atomic.Int64
	target.Store(warm)
	reached := make(chan struct{}, 1)
	s := &Scheduler{
		Queue:   q,
		Routing: Routing{Locals: []string{"example.com"}},
		Local: LocalFunc(func(ctx context.Context, d Delivery) Result {
			io.Copy(io.Discard, d.Message)
			<-inFlight
			if delivered.Add(1) == target.Load() {
				reached <- struct{}{}
			}
			return Result{Report: "did 0+0+1\n"}
		}),
	}
	ctx, cancel := context.WithCancel(b.Context())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	env := Envelope{Sender: "bench@example.com", Recipients: []string{"user@example.com"}}
	inject := func(n int64) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				for next.Add(1) <= n {
					inFlight <- struct{}{}
					if _, err := q.Inject(ctx, env, bytes.NewReader(msg)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		<-reached
	}
	inject(warm)
	target.Store(warm + int64(b.N))
	b.ResetTimer()
	cpu0 := cpuTime()
	inject(int64(b.N))
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/msg")
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
