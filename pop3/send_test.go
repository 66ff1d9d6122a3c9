package pop3

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"testing/iotest"
)

func runBlast(t testing.TB, msg string, limit uint64, compat bool, bufSize int) string {
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if err := blast(w, strings.NewReader(msg), make([]byte, bufSize), limit, compat); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	return out.String()
}

func TestBlast(t *testing.T) {
	tests := []struct {
		name   string
		msg    string
		limit  uint64
		compat string
		modern string
	}{
		{"empty", "", 0, "\r\n.\r\n", ".\r\n"},
		{"one line", "a\n", 0, "a\r\n\r\n.\r\n", "a\r\n.\r\n"},
		{"no final LF", "a\nb", 0, "a\r\nb\r\n\r\n.\r\n", "a\r\nb\r\n.\r\n"},
		{"dots", ".\n..x\n.", 0, "..\r\n...x\r\n..\r\n\r\n.\r\n", "..\r\n...x\r\n..\r\n.\r\n"},
		{"stored CRLF", "a\r\nb\r\n", 0, "a\r\r\nb\r\r\n\r\n.\r\n", "a\r\nb\r\n.\r\n"},
		{"bare CR kept", "a\rb\n", 0, "a\rb\r\n\r\n.\r\n", "a\rb\r\n.\r\n"},
		{"final CR", "a\r", 0, "a\r\r\n\r\n.\r\n", "a\r\n.\r\n"},
		{"top 0", "H: 1\nH: 2\n\nb1\nb2\n", 1, "H: 1\r\nH: 2\r\n\r\n\r\n.\r\n", "H: 1\r\nH: 2\r\n\r\n.\r\n"},
		{"top 1", "H: 1\n\nb1\nb2\n", 2, "H: 1\r\n\r\nb1\r\n\r\n.\r\n", "H: 1\r\n\r\nb1\r\n.\r\n"},
		{"top 1 blank body lines count", "H: 1\n\n\nb2\n", 2, "H: 1\r\n\r\n\r\n\r\n.\r\n", "H: 1\r\n\r\n\r\n.\r\n"},
		{"top beyond end", "H: 1\n\nb1\n", 10, "H: 1\r\n\r\nb1\r\n\r\n.\r\n", "H: 1\r\n\r\nb1\r\n.\r\n"},
		{"top no blank line", "H: 1\nH: 2", 1, "H: 1\r\nH: 2\r\n\r\n.\r\n", "H: 1\r\nH: 2\r\n.\r\n"},
		{"top CRLF header end (modern)", "H: 1\r\n\r\nb1\r\nb2\r\n", 2, "H: 1\r\r\n\r\r\nb1\r\r\nb2\r\r\n\r\n.\r\n", "H: 1\r\n\r\nb1\r\n.\r\n"},
		{"top dot body", "H\n\n.x\n.y\n", 2, "H\r\n\r\n..x\r\n\r\n.\r\n", "H\r\n\r\n..x\r\n.\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{1, 2, 3, 7, 4096} {
				if got := runBlast(t, tt.msg, tt.limit, true, size); got != tt.compat {
					t.Errorf("compat, buf %d: got %q, want %q", size, got, tt.compat)
				}
				if got := runBlast(t, tt.msg, tt.limit, false, size); got != tt.modern {
					t.Errorf("modern, buf %d: got %q, want %q", size, got, tt.modern)
				}
			}
		})
	}
}

func TestBlastReadError(t *testing.T) {
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	r := iotest.TimeoutReader(iotest.OneByteReader(strings.NewReader("ab\ncd\n")))
	err := blast(w, r, make([]byte, 16), 0, true)
	if err == nil {
		t.Fatal("no error")
	}
	w.Flush()
	if strings.HasSuffix(out.String(), ".\r\n") {
		t.Fatalf("terminated despite the read error: %q", out.String())
	}
}

// unstuff undoes a modern multi-line body: the terminator and the
// dot-stuffing, giving what RFC 1939's sizes count.
func unstuff(s string) string {
	s = strings.TrimSuffix(s, ".\r\n")
	lines := strings.SplitAfter(s, "\r\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, ".")
	}
	return strings.Join(lines, "")
}

func TestWireSize(t *testing.T) {
	for _, m := range []string{"", "a", "a\n", "\n", "\r", "\r\n", "a\r\nb\n", ".x\n..\n", "x\r", "\n\n\n", "Subject: one\n\nline1\n.dotline\nline3\n"} {
		for _, size := range []int{1, 2, 5, 4096} {
			n, err := WireSize(strings.NewReader(m), make([]byte, size))
			if err != nil {
				t.Fatal(err)
			}
			want := len(unstuff(runBlast(t, m, 0, false, 4096)))
			if n != int64(want) {
				t.Errorf("WireSize(%q), buf %d = %d, want %d", m, size, n, want)
			}
		}
	}
}

func FuzzBlast(f *testing.F) {
	for _, m := range vectorMessages {
		f.Add([]byte(m.body), uint8(0), uint8(7))
	}
	f.Add([]byte(".\r\n\r\n.\n"), uint8(2), uint8(1))
	f.Add([]byte("a\rb\r"), uint8(1), uint8(3))
	f.Fuzz(func(t *testing.T, msg []byte, limit, bufSize uint8) {
		for _, compat := range []bool{true, false} {
			want := runBlast(t, string(msg), uint64(limit), compat, 1<<16)
			if got := runBlast(t, string(msg), uint64(limit), compat, int(bufSize)+1); got != want {
				t.Fatalf("compat %v: buffer size changes the output: %q vs %q", compat, got, want)
			}
			// Every line ends in CRLF and the body is terminated.
			term := ".\r\n"
			if compat {
				term = "\r\n.\r\n"
			}
			if !strings.HasSuffix(want, term) {
				t.Fatalf("not terminated: %q", want)
			}
			body := strings.TrimSuffix(want, term)
			for _, l := range strings.SplitAfter(body, "\r\n") {
				if l == "" {
					continue
				}
				if !strings.HasSuffix(l, "\r\n") || strings.Contains(strings.TrimSuffix(l, "\r\n"), "\n") {
					t.Fatalf("bad line %q in %q", l, want)
				}
				if l == ".\r\n" {
					t.Fatalf("unstuffed terminator inside the body: %q", want)
				}
			}
			if !compat && limit == 0 {
				n, _ := WireSize(strings.NewReader(string(msg)), make([]byte, 64))
				if int(n) != len(unstuff(want)) {
					t.Fatalf("WireSize %d, sent %d", n, len(unstuff(want)))
				}
			}
		}
	})
}
