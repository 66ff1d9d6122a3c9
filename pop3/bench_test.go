package pop3

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/maildir"
)

var (
	benchMu   sync.Mutex
	benchDirs = map[[2]int]string{}
	benchRoot string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchRoot != "" {
		os.RemoveAll(benchRoot)
	}
	os.Exit(code)
}

// benchMaildir makes a Maildir of n messages of about size bytes in cur/,
// with distinct mtimes in the past, named as maildir.Deliverer names them,
// once per test binary (benchmarks only read it; QUIT is never sent).
func benchMaildir(b *testing.B, n, size int) string {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if dir, ok := benchDirs[[2]int{n, size}]; ok {
		return dir
	}
	if benchRoot == "" {
		var err error
		if benchRoot, err = os.MkdirTemp("", "pop3bench"); err != nil {
			b.Fatal(err)
		}
	}
	dir := filepath.Join(benchRoot, fmt.Sprintf("Maildir-%d-%d", n, size))
	for _, s := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(dir, s), 0o700)
	}
	line := strings.Repeat("x", 71) + "\n"
	var body strings.Builder
	body.WriteString("From: a@example.org\nTo: b@example.org\nSubject: bench\n\n")
	for body.Len() < size {
		body.WriteString(line)
	}
	msg := []byte(body.String())
	base := time.Now().Add(-48 * time.Hour)
	for i := range n {
		name := fmt.Sprintf("%d.M%dP1Q%dR0123456789abcdef.bench,S=%d:2,S", base.Unix()+int64(i), i%1000000, i, len(msg))
		p := filepath.Join(dir, "cur", name)
		if err := os.WriteFile(p, msg, 0o600); err != nil {
			b.Fatal(err)
		}
		mt := base.Add(time.Duration(i) * time.Millisecond)
		os.Chtimes(p, mt, mt)
	}
	benchDirs[[2]int{n, size}] = dir
	return dir
}

// benchSession logs in on a loopback connection to srv.
func benchSession(b *testing.B, srv *Server) (net.Conn, *bufio.Reader, chan error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			done <- err
			return
		}
		done <- srv.ServeConn(context.Background(), c, map[string]string{"TCPREMOTEIP": "127.0.0.1"})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	r := bufio.NewReaderSize(c, 64<<10)
	r.ReadString('\n')
	fmt.Fprintf(c, "USER joe\r\nPASS good\r\n")
	r.ReadString('\n')
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "+OK") {
		b.Fatalf("login: %q", l)
	}
	return c, r, done
}

// BenchmarkSTAT100k is a whole session's start on a 100,000-message
// Maildir: login (which lists the Maildir), STAT, and the end without
// QUIT. heap-MB is the live heap after STAT.
func BenchmarkSTAT100k(b *testing.B) {
	dir := benchMaildir(b, 100000, 1024)
	for _, compat := range []bool{true, false} {
		name := "modern"
		if compat {
			name = "compat"
		}
		b.Run(name, func(b *testing.B) {
			srv := &Server{Compat: compat, Auth: testAuth(dir)}
			if !compat {
				c, r, done := benchSession(b, srv) // fills pop3sizes
				fmt.Fprintf(c, "STAT\r\n")
				r.ReadString('\n')
				c.Close()
				<-done
			}
			var heap uint64
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				c, r, done := benchSession(b, srv)
				fmt.Fprintf(c, "STAT\r\n")
				l, _ := r.ReadString('\n')
				if !strings.HasPrefix(l, "+OK 100000 ") {
					b.Fatalf("STAT: %q", l)
				}
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				heap = max(heap, ms.HeapAlloc)
				c.Close()
				<-done
			}
			b.ReportMetric(float64(heap)/(1<<20), "heap-MB")
			b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

// BenchmarkRETR10k retrieves every message of a 10,000-message Maildir
// (1 KiB each) in one session, one RETR at a time or pipelined in batches
// of 64, reading each reply to its end.
func BenchmarkRETR10k(b *testing.B) {
	const n = 10000
	dir := benchMaildir(b, n, 1024)
	for _, mode := range []string{"compat", "modern", "modern-pipelined"} {
		b.Run(mode, func(b *testing.B) {
			srv := &Server{Compat: mode == "compat", Auth: testAuth(dir)}
			b.ReportAllocs()
			var bytes int64
			cpu0 := cpuTime()
			for b.Loop() {
				c, r, done := benchSession(b, srv)
				batch := 1
				if strings.HasSuffix(mode, "pipelined") {
					batch = 64
				}
				w := bufio.NewWriter(c)
				for i := 1; i <= n; i += batch {
					for j := i; j < i+batch && j <= n; j++ {
						w.WriteString("RETR " + strconv.Itoa(j) + "\r\n")
					}
					w.Flush()
					for j := i; j < i+batch && j <= n; j++ {
						k, err := readMulti(r)
						if err != nil {
							b.Fatal(err)
						}
						bytes += k
					}
				}
				c.Close()
				<-done
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "RETR/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n*b.N), "cpu-µs/RETR")
			b.SetBytes(bytes / int64(b.N))
		})
	}
}

// readMulti reads one multi-line reply to its terminating dot.
func readMulti(r *bufio.Reader) (int64, error) {
	l, err := r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if l[0] != '+' {
		return 0, fmt.Errorf("reply %q", l)
	}
	var n int64
	for {
		l, err := r.ReadSlice('\n')
		if err != nil {
			return n, err
		}
		if len(l) == 3 && l[0] == '.' {
			return n, nil
		}
		n += int64(len(l))
	}
}

// TestServeForBench is not a test: with POP3_BENCH_LISTEN=ADDR and
// POP3_BENCH_USERS=user:pass:maildir,... it serves those Maildirs with a
// modern Server (POP3_BENCH_COMPAT=1: compat) for POP3_BENCH_SECONDS
// (default 600), so that a POP3 load generator (the benchmark scripts
// beside the repository have one, pop3load) can measure it side by side
// with other servers:
//
//	POP3_BENCH_LISTEN=127.0.0.1:1111 POP3_BENCH_USERS=bench:benchpass:/home/bench/Maildir \
//	  go test -run TestServeForBench -timeout 0 ./pop3
func TestServeForBench(t *testing.T) {
	addr := os.Getenv("POP3_BENCH_LISTEN")
	if addr == "" {
		t.Skip("set POP3_BENCH_LISTEN to serve for ../shared/bench/pop3load")
	}
	users := map[string][2]string{}
	for _, u := range strings.Split(os.Getenv("POP3_BENCH_USERS"), ",") {
		f := strings.SplitN(u, ":", 3)
		if len(f) != 3 {
			t.Fatalf("POP3_BENCH_USERS: bad entry %q", u)
		}
		users[f[0]] = [2]string{f[1], f[2]}
	}
	srv := &Server{
		Compat: os.Getenv("POP3_BENCH_COMPAT") == "1",
		Auth: AuthenticatorFunc(func(ctx context.Context, c Credentials) (*User, error) {
			u, ok := users[c.User]
			if !ok || !CheckSecret(c, u[0]) {
				return nil, ErrAuthFailed
			}
			return &User{Name: c.User, Maildir: u[1], UID: -1, GID: -1}, nil
		}),
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	secs, _ := strconv.Atoi(os.Getenv("POP3_BENCH_SECONDS"))
	if secs == 0 {
		secs = 600
	}
	time.AfterFunc(time.Duration(secs)*time.Second, func() { srv.Close() })
	t.Logf("serving on %s", ln.Addr())
	srv.Serve(ln)
}

// cpuTime is the process's user and system CPU time (server and client
// together: the machine is shared, so CPU time is steadier than wall time).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScan100k compares the listing OpenMaildir does (getdents and
// fstatat, no allocation beyond names) with maildir.Dir.List on a
// 100,000-message Maildir.
func BenchmarkScan100k(b *testing.B) {
	dir := benchMaildir(b, 100000, 1024)
	b.Run("OpenMaildir", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			mb, err := OpenMaildir(dir, MaildirOptions{})
			if err != nil {
				b.Fatal(err)
			}
			mb.Close()
		}
	})
	b.Run("maildir.List", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := maildir.Dir(dir).List(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
