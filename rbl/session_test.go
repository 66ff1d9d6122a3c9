package rbl

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"testing/synctest"
	"time"
)

const (
	s220 = "220 rblsmtpd.local\r\n"
	s250 = "250 rblsmtpd.local\r\n"
	s221 = "221 rblsmtpd.local\r\n"
)

// The whole dialog, as rblsmtpd answers it.
func TestSessionR1(t *testing.T) {
	msg := Override("blocked because é\nx").Message()
	in := "HELO x\r\nEHLO y\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nrset\r\nnoop\r\nVRFY x\r\n\r\nquit\r\nNOOP\r\n"
	no := "451 blocked because ???x\r\n"
	want := s220 + s250 + s250 + s250 + no + no + s250 + s250 + no + no + s221
	for name, r := range map[string]io.Reader{
		"whole":    strings.NewReader(in),
		"one byte": iotest.OneByteReader(strings.NewReader(in)),
		"half":     iotest.HalfReader(strings.NewReader(in)),
	} {
		var out bytes.Buffer
		s := &Session{Message: msg}
		if err := s.Serve(t.Context(), r, &out); err != nil {
			t.Errorf("%s: Serve: %v", name, err)
		}
		if out.String() != want {
			t.Errorf("%s: got\n%q\nwant\n%q", name, out.String(), want)
		}
	}
}

func TestSessionLines(t *testing.T) {
	const no = "553 no\r\n"
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"QUIT", ""}, // no LF: not answered
		{"QUIT\r\n", s221},
		{"QUIT\n", s221},
		{"qUiT\r\n", s221},
		{"QUIT \r\n", s221},
		{"QUIT  now\r\n", s221},
		{"QUIT\r\r\n", no},
		{"QUIT\x00x\r\n", no}, // NUL is not a separator (rblsmtpd makes it LF)
		{"quit\x00\r\n", no},
		{"QUIT\t\r\n", no},
		{" QUIT\r\n", no},
		{"QUITS\r\n", no},
		{"QUI\r\n", no},
		{"QUIT\rX\r\n", no},
		{"Q\x00IT\r\n", no},
		{"QU\u0130T\r\n", no},  // no Unicode folding
		{"R\u017fET\r\n", no},  // long s is not s
		{"\r\n\n", no + no},    // empty lines are commands too
		{"HELO\r\nHELO", s250}, // the last, unended line is dropped
		{"EHLO\r\nMAIL\r\nRSET\r\nNOOP\r\nHELO\r\n", s250 + s250 + s250 + s250 + s250},
		{"RCPT TO:<a@b>\r\nDATA\r\nVRFY\r\nEXPN\r\nAUTH\r\nSTARTTLS\r\n", no + no + no + no + no + no},
		{"QUIT\r\nHELO\r\n", s221},
		{strings.Repeat("x", 100000) + "\r\nNOOP\r\n", no + s250},
		{"HELO" + strings.Repeat(" ", 10000) + "x\r\n", s250},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		s := &Session{Message: "553 no"}
		if err := s.Serve(t.Context(), strings.NewReader(tt.in), &out); err != nil {
			t.Errorf("%.40q: %v", tt.in, err)
		}
		if got := out.String(); got != s220+tt.want {
			t.Errorf("%.40q: got %q, want %q", tt.in, got, s220+tt.want)
		}
	}
}

// errReader fails the test when read.
type errReader struct{ t *testing.T }

func (r errReader) Read([]byte) (int, error) {
	r.t.Error("read")
	return 0, io.EOF
}

// -t 0 writes the refusal once and reads nothing.
func TestSessionNoSession(t *testing.T) {
	var out bytes.Buffer
	s := &Session{Message: Override("-perm").Message(), Timeout: -1}
	if err := s.Serve(t.Context(), errReader{t}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "553 perm\r\n" {
		t.Errorf("got %q", out.String())
	}
	out.Reset()
	s.Message = Override("-").Message()
	s.Serve(t.Context(), errReader{t}, &out)
	if out.String() != "553 \r\n" {
		t.Errorf("RBLSMTPD=-: got %q", out.String())
	}
}

// serveOnPipe runs a session over net.Pipe and returns the client's end,
// a channel with Serve's result, and when Serve started.
func serveOnPipe(ctx context.Context, s *Session) (net.Conn, <-chan error) {
	server, client := net.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- s.Serve(ctx, server, server)
		server.Close()
	}()
	return client, done
}

// The time limit runs from the start, whatever the client
// sends.
func TestSessionR4Timeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		client, done := serveOnPipe(t.Context(), &Session{Message: "451 x", Timeout: 2 * time.Second})
		defer client.Close()
		br := bufio.NewReader(client)
		var replies []string
		readerDone, writerDone := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(readerDone)
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				replies = append(replies, l)
			}
		}()
		go func() {
			defer close(writerDone)
			io.WriteString(client, "HELO x\r\n")
			time.Sleep(time.Second / 2)
			for {
				if _, err := io.WriteString(client, "NOOP\r\n"); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
		}()
		err := <-done
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("Serve = %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("session lasted %v, want 2s", d)
		}
		client.Close()
		<-readerDone
		<-writerDone
		// HELO at 0, NOOP at 0.5 and 1.5 s; the one at 2.5 s is too late.
		if got := strings.Join(replies, ""); got != s220+s250+s250+s250 {
			t.Errorf("replies %q", got)
		}
	})
}

// The limit holds against a client that never reads (Serve blocked in a
// write), one that sends a line without end, and one that says nothing; 0
// is 60 s.
func TestSessionTimeoutAbuse(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		want    time.Duration
		client  func(c net.Conn)
	}{
		{"never reads", 3 * time.Second, 3 * time.Second, func(c net.Conn) {
			for {
				if _, err := io.WriteString(c, "RCPT TO:<a@b>\r\n"); err != nil {
					return
				}
			}
		}},
		{"endless line", 3 * time.Second, 3 * time.Second, func(c net.Conn) {
			go io.Copy(io.Discard, c)
			b := bytes.Repeat([]byte("x"), 4096)
			for {
				if _, err := c.Write(b); err != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}},
		{"silent", 5 * time.Second, 5 * time.Second, func(c net.Conn) { io.Copy(io.Discard, c) }},
		{"default", 0, 60 * time.Second, func(c net.Conn) { io.Copy(io.Discard, c) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				client, done := serveOnPipe(t.Context(), &Session{Message: "451 x", Timeout: tt.timeout})
				clientDone := make(chan struct{})
				go func() {
					tt.client(client)
					close(clientDone)
				}()
				if err := <-done; !errors.Is(err, ErrTimeout) {
					t.Errorf("Serve = %v, want ErrTimeout", err)
				}
				if d := time.Since(start); d != tt.want {
					t.Errorf("session lasted %v, want %v", d, tt.want)
				}
				client.Close()
				<-clientDone
			})
		})
	}
}

// The end of the parent context ends the session with its error.
func TestSessionCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		client, done := serveOnPipe(ctx, &Session{Message: "451 x", Timeout: time.Hour})
		go io.Copy(io.Discard, client)
		time.Sleep(time.Second)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Serve = %v, want context.Canceled", err)
		}
		client.Close()
		synctest.Wait()
	})
}

// A client that goes away: Serve ends with EOF (nil) or the write's error.
func TestSessionClientGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, done := serveOnPipe(t.Context(), &Session{Message: "451 x"})
		client.Close()
		err := <-done
		if err != nil && !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("Serve = %v", err)
		}
	})
}

// patternReader yields n bytes of a repeated pattern without allocating.
type patternReader struct {
	pattern []byte
	n, off  int
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	i := 0
	for i < len(p) && r.n > 0 {
		k := copy(p[i:min(len(p), i+r.n)], r.pattern[r.off:])
		r.off = (r.off + k) % len(r.pattern)
		i += k
		r.n -= k
	}
	return i, nil
}

// Megabytes of commands or one endless line cost no memory: lines are
// parsed as they come and never kept.
func TestSessionMemory(t *testing.T) {
	const size = 4 << 20
	for _, tt := range []struct {
		name    string
		pattern string
	}{
		{"endless line", "x"},
		{"endless line of spaces", "HELO "},
		{"commands", "NOOP\r\nRCPT TO:<a@b>\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.pattern
			lines := size/len(p)*strings.Count(p, "\n") + strings.Count(p[:size%len(p)], "\n")
			r := &patternReader{pattern: []byte(tt.pattern), n: size}
			var w countWriter
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := (&Session{Message: "451 x", Timeout: time.Hour}).Serve(t.Context(), r, &w)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if w.n != 1+lines {
				t.Errorf("%d replies, want %d", w.n, 1+lines)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
				t.Errorf("allocated %d bytes for %d bytes of input", d, size)
			}
		})
	}
}

type countWriter struct{ n int }

func (w *countWriter) Write(p []byte) (int, error)       { w.n++; return len(p), nil }
func (w *countWriter) WriteString(s string) (int, error) { w.n++; return len(s), nil }
