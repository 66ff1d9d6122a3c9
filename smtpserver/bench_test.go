package smtpserver

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/smtpload"
)

// nullEnqueuer reads each message and drops it.
type nullEnqueuer struct{ n atomic.Int64 }

func (e *nullEnqueuer) Enqueue(ctx context.Context, from string, to []string, r io.Reader) (string, error) {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return "", err
	}
	return strconv.FormatInt(e.n.Add(1), 10), nil
}

// unlimited lifts the modern limits a benchmark of capacity goes beyond:
// 1000 sessions from one address, a 50 MB message.
func unlimited(srv *Server) {
	srv.MaxConns, srv.MaxConnsPerIP, srv.MaxMessageBytes = -1, -1, -1
}

func benchServer(b *testing.B, e Enqueuer, opts ...func(*Server)) (*Server, string) {
	srv := &Server{Hostname: "bench.example", OpenRelay: true, Enqueuer: e, MaxErrors: -1}
	for _, o := range opts {
		o(srv)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	b.Cleanup(func() { srv.Close(); <-done })
	return srv, l.Addr().String()
}

// sendOne sends one message over a new connection, as smtp-source does.
func sendOne(addr string, body []byte) error {
	return smtpload.Send(addr, "source@bench.test", "bench@bench.test", body)
}

// BenchmarkIngest20: 1 KB messages over 20 concurrent sessions (one message
// per connection) into a null enqueuer; reports messages/s.
func BenchmarkIngest20(b *testing.B) {
	e := &nullEnqueuer{}
	_, addr := benchServer(b, e)
	body := []byte("Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 62)+"\r\n", 16))
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := sendOne(addr, body); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

func rssKB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkIdle1000: memory of 1000 concurrent idle sessions (after the
// greeting and EHLO). Reports heap and RSS growth per session and in all;
// the client sockets live in the same process and are counted too.
func BenchmarkIdle1000(b *testing.B) {
	const n = 1000
	for range b.N {
		b.StopTimer()
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		rss0 := rssKB()
		_, addr := benchServer(b, &nullEnqueuer{}, unlimited)
		conns := make([]net.Conn, 0, n)
		b.StartTimer()
		for range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
			r := bufio.NewReader(c)
			r.ReadString('\n')
			c.Write([]byte("EHLO idle\r\n"))
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					b.Fatal(err)
				}
				if l[3] == ' ' {
					break
				}
			}
		}
		b.StopTimer()
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		rss1 := rssKB()
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "heapB/session")
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "heapMB/1000")
		b.ReportMetric(float64(rss1-rss0)/1024, "rssMB/1000")
		b.ReportMetric(float64(after.StackInuse-before.StackInuse)/(1<<20), "stackMB/1000")
		for _, c := range conns {
			c.Close()
		}
	}
}

// BenchmarkLarge50MB: heap growth while one 50 MB message streams through
// (peak HeapInuse during the transfer minus before it).
func BenchmarkLarge50MB(b *testing.B) {
	line := strings.Repeat("y", 998) + "\r\n"
	chunk := []byte(strings.Repeat(line, 64)) // 64 KB
	const total = 50 << 20
	for range b.N {
		b.StopTimer()
		_, addr := benchServer(b, &nullEnqueuer{}, unlimited)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		r := bufio.NewReader(c)
		r.ReadString('\n')
		c.Write([]byte("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"))
		for range 3 {
			r.ReadString('\n')
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var peak atomic.Uint64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			var ms runtime.MemStats
			for {
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		b.StartTimer()
		for sent := 0; sent < total; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		c.Write([]byte(".\r\n"))
		l, _ := r.ReadString('\n')
		b.StopTimer()
		close(stop)
		<-sampled
		if !strings.HasPrefix(l, "250") {
			b.Fatalf("final reply %q", l)
		}
		c.Close()
		b.SetBytes(total)
		b.ReportMetric(float64(peak.Load()-min(peak.Load(), before.HeapInuse))/(1<<20), "heapGrowthMB")
	}
}
