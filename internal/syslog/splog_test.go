package syslog

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

type msg struct {
	sev  int
	text string
}

// recorder is a Sender that keeps what it is given.
type recorder struct{ msgs []msg }

func (r *recorder) Log(sev int, text string) error {
	r.msgs = append(r.msgs, msg{sev, text})
	return nil
}

// clock returns a time 1700000000.123456 that advances by 1 µs a call.
func clock() func() time.Time {
	t := time.Unix(1700000000, 123456000)
	return func() time.Time {
		defer func() { t = t.Add(time.Microsecond) }()
		return t
	}
}

func TestSplog(t *testing.T) {
	a799, a1000 := strings.Repeat("A", 799), strings.Repeat("A", 1000)
	for _, tc := range []struct {
		name, in string
		want     []msg
	}{
		// A line starting "warning:" is logged at priority warning, after the
		// time stamp.
		{"warning", "warning: x\n", []msg{{Warning, "1700000000.123456 warning: x"}}},
		{"1000-byte line", a1000 + "\n", []msg{{Info, "1700000000.123456 " + a799}, {Info, "1700000000.123456+" + a1000[:201]}}},
		{"unterminated last line dropped", "abc", nil},
		{"alert", "alert: y\nwarningx\n", []msg{{Alert, "1700000000.123456 alert: y"}, {Info, "1700000000.123457 warningx"}}},
		{"empty lines", "\n\n\nz\n", []msg{{Info, "1700000000.123456 z"}}},
		{"799 bytes: one message", a799 + "\n", []msg{{Info, "1700000000.123456 " + a799}}},
		{"800 bytes: two", a799 + "B\n", []msg{{Info, "1700000000.123456 " + a799}, {Info, "1700000000.123456+B"}}},
		{"1598 bytes: two, none empty", a799 + a799 + "\n", []msg{{Info, "1700000000.123456 " + a799}, {Info, "1700000000.123456+" + a799}}},
		// A long line's chunks keep the first one's severity; the stamp is
		// taken at its first chunk; an unterminated rest is dropped.
		{"warning chunks", "warning: " + a1000 + "\nx\n", []msg{
			{Warning, "1700000000.123456 warning: " + a1000[:790]}, {Warning, "1700000000.123456+" + a1000[790:]},
			{Info, "1700000000.123457 x"}}},
		{"long unterminated", a1000, []msg{{Info, "1700000000.123456 " + a799}}},
		{"control and 8-bit bytes", "a\x00b\tc\x7f\xff\r\n", []msg{{Info, "1700000000.123456 a?b?c???"}}},
		{"a chunk starting warning: is not a warning", a799 + "warning: w\n", []msg{{Info, "1700000000.123456 " + a799}, {Info, "1700000000.123456+warning: w"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r recorder
			if err := Splog(strings.NewReader(tc.in), &r, clock()); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(r.msgs) != fmt.Sprint(tc.want) {
				t.Errorf("got %+v\nwant %+v", r.msgs, tc.want)
			}
		})
	}
}

type failReader struct{ n int }

func (f *failReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		f.n++
		return copy(p, "line\npartial"), nil
	}
	return 0, errors.New("read error")
}

// A read error ends the copy as the end of input does.
func TestSplogReadError(t *testing.T) {
	var r recorder
	err := Splog(&failReader{}, &r, clock())
	if err == nil || len(r.msgs) != 1 || r.msgs[0].text != "1700000000.123456 line" {
		t.Errorf("%v %+v", err, r.msgs)
	}
}

func TestFacility(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		want int
	}{
		{"2", Mail}, {"0", Kern}, {"x", 0}, {"", 0}, {"3junk", 24}, {"23", 184},
		{"536870912", 0},                    // 2^29 × 8 wraps to 0 in a C int
		{"18446744073709551617", 8},         // scan_ulong wraps at 2^64
		{"268435456", int(int32(-1 << 31))}, // 2^28 × 8: negative
	} {
		if got := Facility(tc.arg); got != tc.want {
			t.Errorf("%q: %d, want %d", tc.arg, got, tc.want)
		}
	}
}

// FuzzSplog checks splogger's invariants on any input: messages are
// stamp, ' ' or '+', then 1 to 799 bytes in 32-126; joined per line they
// give back the input's complete lines with bytes outside 32-126 as '?'.
func FuzzSplog(f *testing.F) {
	for _, s := range []string{"warning: x\n", strings.Repeat("A", 1000) + "\n", "abc", "\n\n", "alert: \x00\xff\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var r recorder
		if err := Splog(strings.NewReader(string(in)), &r, func() time.Time { return time.Unix(1, 0) }); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, m := range r.msgs {
			text, ok := strings.CutPrefix(m.text, "1.000000")
			if !ok || len(text) < 2 || len(text) > 800 {
				t.Fatalf("bad message %q", m.text)
			}
			for _, c := range []byte(text[1:]) {
				if c < 32 || c > 126 {
					t.Fatalf("byte %#x in %q", c, m.text)
				}
			}
			switch text[0] {
			case ' ':
				lines = append(lines, text[1:])
			case '+':
				if len(lines) == 0 {
					t.Fatalf("continuation first: %q", m.text)
				}
				lines[len(lines)-1] += text[1:]
			default:
				t.Fatalf("bad separator in %q", m.text)
			}
		}
		var want []string
		complete := string(in)
		if i := strings.LastIndexByte(complete, '\n'); i >= 0 {
			complete = complete[:i]
		} else {
			complete = ""
		}
		rest := string(in[len(complete):]) // the unterminated tail, with its LF
		for _, l := range strings.Split(complete, "\n") {
			if l != "" {
				want = append(want, safe(l))
			}
		}
		// Of the unterminated tail, the chunks that filled up were sent.
		if tail := strings.TrimPrefix(rest, "\n"); len(tail) > ChunkSize {
			want = append(want, safe(tail[:len(tail)-1-(len(tail)-1)%ChunkSize]))
		}
		if fmt.Sprintf("%q", lines) != fmt.Sprintf("%q", want) {
			t.Errorf("lines %q, want %q", lines, want)
		}
	})
}

func safe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 32 || c > 126 {
			b[i] = '?'
		}
	}
	return string(b)
}
