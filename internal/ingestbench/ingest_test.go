// Package ingestbench measures SMTP ingest into the queue: smtpserver.Server
// with queue.Queue.Enqueue as its Enqueuer, the way examples/qmail-smtpd
// serves in-process. It holds only tests.
//
// BenchmarkIngestQueue measures it from inside go test (20 concurrent
// sessions of 1 KB messages over loopback, one message per connection, as
// smtp-source sends). TestServeForBench serves the same stack on an address
// so that smtp-ingest.sh (of the benchmark scripts kept beside the
// repository, outside the module) measures it side by side with Postfix
// and the go-smtp baseline:
//
//	INGEST_BENCH_LISTEN=127.0.0.1:2528 INGEST_BENCH_QUEUE=/tmp/q \
//	    go test -run TestServeForBench -timeout 0 ./internal/ingestbench
//	TIMEOUT=0 LABEL=qmailkit smtp-ingest.sh 127.0.0.1:2528 /tmp/empty-md 20000 20 1024
//
// The test serves until it gets SIGINT or SIGTERM, or INGEST_BENCH_FOR (a
// Go duration, default 1h) has passed. INGEST_BENCH_SPLIT sets the queue's
// split (default: the queue's own, else 23). INGEST_BENCH_CPUPROFILE names a file
// for a CPU profile of the serving time. The queue is only written: nothing
// delivers it, so the script's maildir figure means nothing here
// (TIMEOUT=0 skips its wait).
package ingestbench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/smtpload"
	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/smtpserver"
)

// benchDomain is the domain smtp-ingest.sh sends to (bench@bench.test).
const benchDomain = "bench.test"

var _ smtpserver.Enqueuer = (*queue.Queue)(nil)

// newServer returns the stack under test: a server accepting mail for
// bench.test (rcpthosts) into q, with no error limit so that a benchmark
// failure shows as a failed reply, not a closed session.
func newServer(q *queue.Queue) *smtpserver.Server {
	return &smtpserver.Server{
		Hostname:         "ingestbench.example",
		Enqueuer:         q,
		RcptHostsContext: smtpserver.RcptHostsHook(smtpserver.HostList([]string{benchDomain}, nil)),
		MaxErrors:        -1,
	}
}

// serve runs srv on l until the test ends.
func serve(tb testing.TB, srv *smtpserver.Server, l net.Listener) {
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	tb.Cleanup(func() {
		srv.Close()
		<-done
	})
}

// TestServeForBench serves the stack on $INGEST_BENCH_LISTEN with the queue
// in $INGEST_BENCH_QUEUE for an outside load generator; see the package
// comment.
func TestServeForBench(t *testing.T) {
	addr := os.Getenv("INGEST_BENCH_LISTEN")
	if addr == "" {
		t.Skip("INGEST_BENCH_LISTEN not set: this test serves for ../shared/bench/smtp-ingest.sh")
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Fatalf("INGEST_BENCH_LISTEN=%s: only loopback addresses", addr)
	}
	dir := os.Getenv("INGEST_BENCH_QUEUE")
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "queue")
	}
	dur := time.Hour
	if s := os.Getenv("INGEST_BENCH_FOR"); s != "" {
		if dur, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	}
	var opts queue.Options
	if s := os.Getenv("INGEST_BENCH_SPLIT"); s != "" {
		if opts.Split, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	q, err := queue.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if p := os.Getenv("INGEST_BENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	srv := newServer(q)
	serve(t, srv, l)
	t.Logf("serving %s into %s for %s", l.Addr(), dir, dur)
	ctx, stop := signal.NotifyContext(t.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(dur):
	}
	shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(shut)
}

// BenchmarkIngestQueue: 1 KB messages over 20 concurrent SMTP sessions (one
// message per connection, as smtp-source sends) into the queue over
// loopback; reports messages/s.
// The split=1 case shows what the spread of mess/ over split directories
// costs: it defeats the group commit of the mess directory fsyncs.
func BenchmarkIngestQueue(b *testing.B) {
	for _, split := range []int{queue.DefaultSplit, 1} {
		b.Run(fmt.Sprintf("split=%d", split), func(b *testing.B) { benchIngest(b, split) })
	}
}

func benchIngest(b *testing.B, split int) {
	q, err := queue.Open(filepath.Join(b.TempDir(), "queue"), queue.Options{Split: split})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	serve(b, newServer(q), l)
	addr := l.Addr().String()
	body := []byte("Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 1022)+"\r\n", 1))
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 20 {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := sendOne(addr, body); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	todo, err := os.ReadDir(filepath.Join(q.Dir(), "todo"))
	if err != nil {
		b.Fatal(err)
	}
	if len(todo) != b.N {
		b.Fatalf("%d messages in todo/, want %d", len(todo), b.N)
	}
}

// TestIngestQueue checks the benchmark's stack end to end: a message sent
// to bench@bench.test is queued with its envelope; another domain is
// refused at RCPT.
func TestIngestQueue(t *testing.T) {
	q, err := queue.Open(filepath.Join(t.TempDir(), "queue"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, newServer(q), l)
	body := []byte("Subject: t\r\n\r\nhello\r\n")
	if err := sendOne(l.Addr().String(), body); err != nil {
		t.Fatal(err)
	}
	todo, err := os.ReadDir(filepath.Join(q.Dir(), "todo"))
	if err != nil {
		t.Fatal(err)
	}
	if len(todo) != 1 {
		t.Fatalf("%d messages in todo/, want 1", len(todo))
	}
	env, err := os.ReadFile(filepath.Join(q.Dir(), "todo", todo[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), "\x00Fsource@bench.test\x00Tbench@bench.test\x00") {
		t.Errorf("envelope %q", env)
	}
	if err := session(l.Addr().String(), "other@example.org", body); err == nil || !strings.Contains(err.Error(), "553") {
		t.Errorf("relay to example.org: %v, want a 553 refusal", err)
	}
}

// sendOne sends one message to bench@bench.test over a new connection.
func sendOne(addr string, body []byte) error { return session(addr, "bench@"+benchDomain, body) }

// session is one smtp-source session to rcpt.
func session(addr, rcpt string, body []byte) error {
	return smtpload.Send(addr, "source@bench.test", rcpt, body)
}
