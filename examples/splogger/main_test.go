package main

import (
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// daemon stands for syslogd: a unixgram socket in a temporary directory,
// read as datagrams come (the kernel queues only a few); got returns those
// that came until none has for 200 ms.
func daemon(t *testing.T) (path string, got func() []string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "log")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 1000)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			ch <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close() })
	return path, func() []string {
		var msgs []string
		for {
			select {
			case m := <-ch:
				msgs = append(msgs, m)
			case <-time.After(200 * time.Millisecond):
				return msgs
			}
		}
	}
}

// header is syslog(3)'s "<PRI>Mmm dd hh:mm:ss IDENT: " and splogger's
// stamp.
const header = `^<(\d+)>[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d ([^:]*): (\d+\.\d{6})([ +])`

func TestSplogger(t *testing.T) {
	a1000 := strings.Repeat("A", 1000)
	type want struct{ pri, ident, sep, text string }
	for _, tc := range []struct {
		name string
		args []string
		in   string
		want []want
	}{
		// A warning line, through the socket.
		{"Q4 warning", nil, "warning: x\n", []want{{"20", "splogger", " ", "warning: x"}}},
		{"Q4 1000 bytes", nil, a1000 + "\n", []want{{"22", "splogger", " ", a1000[:799]}, {"22", "splogger", "+", a1000[799:]}}},
		{"Q4 unterminated", nil, "abc", nil},
		{"tag", []string{"qmail"}, "alert: a\nb\n", []want{{"17", "qmail", " ", "alert: a"}, {"22", "qmail", " ", "b"}}},
		{"facility 3 (daemon)", []string{"q", "3"}, "m\n", []want{{"30", "q", " ", "m"}}},
		{"facility 2x", []string{"q", "2x"}, "m\n", []want{{"22", "q", " ", "m"}}},
		{"facility 0: user, as glibc", []string{"q", "kern"}, "m\n", []want{{"14", "q", " ", "m"}}},
		{"further arguments ignored", []string{"q", "2", "x"}, "m\n", []want{{"22", "q", " ", "m"}}},
		{"NUL and 8-bit", nil, "\x00\xe9t\xe9\n", []want{{"22", "splogger", " ", "??t?"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, got := daemon(t)
			if code := run(tc.args, strings.NewReader(tc.in), path); code != 0 {
				t.Fatalf("exit %d", code)
			}
			msgs := got()
			if len(msgs) != len(tc.want) {
				t.Fatalf("%d messages %q, want %d", len(msgs), msgs, len(tc.want))
			}
			re := regexp.MustCompile(header + `(.*)$`)
			var stamp string
			for i, m := range msgs {
				f := re.FindStringSubmatch(m)
				if f == nil {
					t.Fatalf("message %q is not syslog(3)'s format", m)
				}
				w := tc.want[i]
				if f[1] != w.pri || f[2] != w.ident || f[4] != w.sep || f[5] != w.text {
					t.Errorf("message %d: pri %s ident %s sep %q text %q; want %+v", i, f[1], f[2], f[4], f[5], w)
				}
				if i > 0 && w.sep == "+" && f[3] != stamp {
					t.Errorf("continuation stamp %s, first %s", f[3], stamp)
				}
				stamp = f[3]
				if s := f[3]; s[:strings.IndexByte(s, '.')] < "1700000000" {
					t.Errorf("stamp %s", s)
				}
			}
		})
	}
}

// No syslog daemon: splogger reads all and exits 0, as syslog(3) drops
// what it cannot send. A huge input without a newline is consumed in
// 799-byte pieces and does not grow memory.
func TestAbuse(t *testing.T) {
	if code := run(nil, strings.NewReader("x\ny\n"), filepath.Join(t.TempDir(), "none")); code != 0 {
		t.Errorf("no daemon: exit %d", code)
	}
	path, got := daemon(t)
	big := strings.Repeat("B", 799*50+3)
	if code := run(nil, strings.NewReader(big), path); code != 0 {
		t.Errorf("exit %d", code)
	}
	if msgs := got(); len(msgs) != 50 {
		t.Errorf("%d messages", len(msgs))
	}
}
