package smtpclient

import (
	"bufio"
	"bytes"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// benchSink is a minimal SMTP sink for benchmarks: it accepts everything,
// offers PIPELINING and 8BITMIME, and discards messages.
func benchSink(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { sinkConn(c) })
		}
	})
	b.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

func sinkConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	bw := bufio.NewWriter(c)
	bw.WriteString("220 sink ESMTP\r\n")
	bw.Flush()
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		switch strings.ToUpper(string(line[:min(4, len(line))])) {
		case "EHLO":
			bw.WriteString("250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
		case "DATA":
			bw.WriteString("354 go\r\n")
			bw.Flush()
			for {
				l, err := br.ReadSlice('\n')
				if err != nil && err != bufio.ErrBufferFull {
					return
				}
				if string(l) == ".\r\n" {
					break
				}
			}
			bw.WriteString("250 ok\r\n")
		case "QUIT":
			bw.WriteString("221 bye\r\n")
			bw.Flush()
			return
		default:
			bw.WriteString("250 ok\r\n")
		}
		if br.Buffered() == 0 {
			bw.Flush()
		}
	}
}

func benchMessage(size int) []byte {
	var m bytes.Buffer
	m.WriteString("From: a@example.org\nTo: b@example.net\nSubject: bench\n\n")
	line := strings.Repeat("x", 75) + "\n"
	for m.Len() < size {
		m.WriteString(line)
	}
	return m.Bytes()[: size-1 : size-1]
}

// BenchmarkDeliver measures messages/s to a sink on loopback: a Go sink in
// the test and, when found, Postfix's smtp-sink; one connection per message
// and with reuse (Pool); 1 KB and 100 KB; one sender, and 20 in parallel.
func BenchmarkDeliver(b *testing.B) {
	sinks := []struct {
		name string
		port func(b *testing.B) int
	}{
		{"go-sink", benchSink},
		{"smtp-sink", func(b *testing.B) int { p, _ := startSinkNoDump(b); return p }},
	}
	for _, sink := range sinks {
		for _, size := range []int{1 << 10, 100 << 10} {
			msg := append(benchMessage(size), '\n')
			for _, reuse := range []bool{false, true} {
				for _, par := range []int{1, 20} {
					name := sink.name + "/" + strconv.Itoa(size>>10) + "KB/" + map[bool]string{false: "conn-per-msg", true: "reuse"}[reuse] + "/senders=" + strconv.Itoa(par)
					b.Run(name, func(b *testing.B) {
						port := sink.port(b)
						c := &Client{Hostname: "bench.example", Routes: mustRoutes(b, ":127.0.0.1:"+strconv.Itoa(port))}
						if reuse {
							c.Pool = &Pool{MaxIdlePerHost: par}
							defer c.Pool.Close()
						}
						b.SetBytes(int64(len(msg)))
						b.ReportAllocs()
						b.ResetTimer()
						if par == 1 {
							for b.Loop() {
								if _, err := c.Deliver(b.Context(), "example.net", "s@example.org", []string{"r@example.net"}, bytes.NewReader(msg)); err != nil {
									b.Fatal(err)
								}
							}
						} else {
							b.SetParallelism((par + 1) / 2)
							b.RunParallel(func(pb *testing.PB) {
								for pb.Next() {
									if _, err := c.Deliver(b.Context(), "example.net", "s@example.org", []string{"r@example.net"}, bytes.NewReader(msg)); err != nil {
										b.Error(err)
										return
									}
								}
							})
						}
						b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
					})
				}
			}
		}
	}
}

// startSinkNoDump runs smtp-sink without dumping messages (skips when absent).
func startSinkNoDump(b *testing.B) (int, string) {
	return startSinkFlags(b, false)
}
