package smtpserver

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
	"time"
)

// blast is a byte-at-a-time transcription of qmail-smtpd's blast() and the
// state table behind it (CR LF "." CR LF ends the data, a leading dot is
// removed, and a bare LF is refused), used as the reference for the DATA
// reader.
func blast(in []byte, strictCR bool) (out []byte, end int, bareLF, bareCR bool) {
	state := stStart
	for i, ch := range in {
		switch state {
		case stMiddle:
			if ch == '\n' {
				return out, i, true, bareCR
			}
			if ch == '\r' {
				state = stCR
				continue
			}
		case stStart:
			if ch == '\n' {
				return out, i, true, bareCR
			}
			if ch == '.' {
				state = stDot
				continue
			}
			if ch == '\r' {
				state = stCR
				continue
			}
			state = stMiddle
		case stDot:
			if ch == '\n' {
				return out, i, true, bareCR
			}
			if ch == '\r' {
				state = stDotCR
				continue
			}
			state = stMiddle
		case stDotCR:
			if ch == '\n' {
				return out, i + 1, false, bareCR
			}
			bareCR = true
			out = append(out, '.', '\r')
			if ch == '\r' {
				state = stCR
				continue
			}
			state = stMiddle
		case stCR:
			if ch == '\n' {
				state = stStart
				break
			}
			bareCR = true
			if ch != '\r' {
				out = append(out, '\r')
				state = stMiddle
			}
		}
		out = append(out, ch)
	}
	return out, -1, false, bareCR
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

func readData(in []byte, strictCR bool, inSize, outSize int) (out []byte, rest []byte, err error) {
	br := bufio.NewReaderSize(chunkReader{bytes.NewReader(in), inSize}, 16)
	d := newDataReader(br, 0, strictCR, false)
	buf := make([]byte, outSize)
	for {
		n, e := d.Read(buf)
		out = append(out, buf[:n]...)
		if e != nil {
			err = e
			break
		}
	}
	if err == errRejected {
		d.drain()
		if d.fatal != nil {
			err = d.fatal
		}
	}
	rest, _ = io.ReadAll(br)
	return out, rest, err
}

func checkData(t *testing.T, in []byte, inSize, outSize int) {
	for _, strict := range []bool{false, true} {
		want, end, bareLF, bareCR := blast(in, strict)
		got, rest, err := readData(in, strict, inSize, outSize)
		switch {
		case bareLF:
			if err != errBareLF {
				t.Fatalf("%q strict=%v: err %v, want bare LF", in, strict, err)
			}
		case end < 0:
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("%q strict=%v: err %v, want unexpected EOF", in, strict, err)
			}
		case strict && bareCR:
			if err != errRejected {
				t.Fatalf("%q: err %v, want rejected (bare CR)", in, err)
			}
			if !bytes.Equal(rest, in[end:]) {
				t.Fatalf("%q: after drain left %q, want %q", in, rest, in[end:])
			}
		default:
			if err != io.EOF {
				t.Fatalf("%q strict=%v: err %v", in, strict, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%q strict=%v (in %d out %d): got %q want %q", in, strict, inSize, outSize, got, want)
			}
			if !bytes.Equal(rest, in[end:]) {
				t.Fatalf("%q: left %q, want %q", in, rest, in[end:])
			}
		}
	}
}

func TestDataReaderTable(t *testing.T) {
	seeds := []string{
		".\r\n", "..\r\n.\r\n", "x\r\n.\r\n", "x\n.\n", "x\r.\r\n", "x\r\n.\r\r\n.\r\n", "a\r\r\nb\r\n.\r\n",
		"Subject: hi\r\n\r\n..dot\r\n.x\r\nbody\rbare cr\r\n.\r\n", "x\r\n.\r\nMAIL FROM:<a@b>\r\n",
		"\r\n.\r.\r\n.\r\n", ".\r\r\n.\r\n", ".x\r\n.\r\n", "\r\r\r\n.\r\n", strings.Repeat("long", 5000) + "\r\n.\r\n",
	}
	for _, s := range seeds {
		for _, in := range []int{1, 2, 3, 7, 4096} {
			for _, out := range []int{1, 2, 3, 5, 4096} {
				checkData(t, []byte(s), in, out)
			}
		}
	}
}

func TestDataReaderLimits(t *testing.T) {
	d := newDataReader(bufio.NewReader(strings.NewReader(strings.Repeat("x", 50)+"\r\n.\r\nNEXT")), 10, true, false)
	_, err := io.ReadAll(d)
	if err != errRejected || !d.tooBig {
		t.Fatalf("err %v tooBig %v", err, d.tooBig)
	}
	d.drain()
	if !d.done || d.reply().Code != 552 || d.n != 51 {
		t.Fatalf("drain: done %v reply %v n %d", d.done, d.reply(), d.n)
	}
	rest, _ := io.ReadAll(d.src)
	if string(rest) != "NEXT" {
		t.Fatalf("rest %q", rest)
	}
}

func FuzzDataReader(f *testing.F) {
	for _, s := range []string{".\r\n", "x\n.\n", "x\r.\r\n", "a\r\r\nb\r\n.\r\n", "Received: x\r\n\r\n.\r\n", "x\r\n.\r\r\n.\r\n"} {
		f.Add([]byte(s), uint8(3), uint8(2))
	}
	f.Fuzz(func(t *testing.T, in []byte, inSize, outSize uint8) {
		checkData(t, in, int(inSize%64)+1, int(outSize%64)+1)
	})
}

// scriptConn is a net.Conn reading a fixed input and discarding output.
type scriptConn struct {
	r io.Reader
}

func (c *scriptConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *scriptConn) Close() error                { return nil }
func (c *scriptConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }
func (c *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1234}
}
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzSession feeds arbitrary client input to a whole session, in both
// modes: no panic, no goroutine left behind, at most one message queued per
// DATA/BDAT command.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"EHLO x\r\nMAIL FROM:<a@b> SIZE=10\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
		"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 3\r\nabcBDAT 2 LAST\r\nxy",
		"MAIL FROM:<\"a\\\"b\"@[127.0.0.1]>\r\nRCPT TO:<@x:c@d>\r\nDATA\r\nx\n.\n",
		"AUTH PLAIN\r\n*\r\nAUTH LOGIN\r\nam9l\r\nx\r\nRSET\r\n",
		"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 5\r\nab",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		before := runtime.NumGoroutine()
		for _, compat := range []bool{true, false} {
			k := &sink{}
			srv := &Server{Hostname: "mx.example", Compat: compat, OpenRelay: true, Enqueuer: k, MaxMessageBytes: 1000,
				AuthOnLoopback: true, AuthFailDelay: -1, IsLocalIP: func(ip netipAddr) bool { return false },
				Auth: Authenticator(func(ctx context.Context, u, p string) error { return ErrBadCredentials })}
			env := map[string]string{"TCPREMOTEIP": "127.0.0.1"}
			err := srv.ServeConn(context.Background(), &scriptConn{r: bytes.NewReader(in)}, env)
			if err != nil && !errors.Is(err, ErrClientGone) && !errors.Is(err, ErrProtocol) {
				t.Fatalf("ServeConn: %v", err)
			}
			cmds := bytes.Count(bytes.ToUpper(in), []byte("DATA")) + bytes.Count(bytes.ToUpper(in), []byte("BDAT"))
			if n := len(k.messages()); n > cmds {
				t.Fatalf("%d messages from %d DATA/BDAT", n, cmds)
			}
		}
		for i := 0; runtime.NumGoroutine() > before && i < 100; i++ {
			time.Sleep(time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Fatalf("goroutines: %d before, %d after", before, n)
		}
	})
}

// FuzzAddress runs MAIL/RCPT argument parsing in both modes: no panic, the
// address is never longer than the argument (plus a localiphost rewrite),
// compat addresses are under 900 bytes, and modern ones within RFC 5321's
// limits and valid UTF-8.
func FuzzAddress(f *testing.F) {
	for _, s := range []string{"FROM:<a@b>", "FROM:<\"a\rb\"@c>", `TO:<"a b"@[127.0.0.1]>`, "FROM:<@x,@y:z@w> SIZE=1", "TO:joe", `TO:<a\>b@c`, "FROM:<jöe@x> SMTPUTF8"} {
		f.Add(s)
	}
	srv := &Server{Hostname: "mx.example", IsLocalIP: func(ip netipAddr) bool { return ip.IsLoopback() }}
	f.Fuzz(func(t *testing.T, arg string) {
		for _, compat := range []bool{true, false} {
			srv.Compat = compat
			s := &session{srv: srv, compat: compat}
			addr, rest, bad := s.address(arg, "FROM:", true)
			if bad != nil {
				continue
			}
			if len(addr) > len(arg)+len("mx.example") {
				t.Fatalf("address %q longer than %q", addr, arg)
			}
			if compat && len(addr) >= 900 {
				t.Fatalf("compat accepted %d bytes", len(addr))
			}
			if strings.ContainsAny(addr, "\r\n\x00") || !compat && hasControl(addr) {
				t.Fatalf("compat=%v accepted the control characters of %q", compat, addr)
			}
			if !compat {
				if checkModernAddr(addr, true) != nil && !strings.Contains(addr, "mx.example") {
					t.Fatalf("modern accepted %q", addr)
				}
				parseMailParams(rest, true, true, true)
			}
		}
	})
}
