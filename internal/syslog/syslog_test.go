package syslog

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen stands for the syslog daemon: a unixgram socket in a temporary
// directory; recv returns the next datagram.
func listen(t *testing.T) (path string, recv func() string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "log")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return path, func() string {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64<<10)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
}

var at = time.Date(2026, 12, 7, 9, 5, 1, 0, time.UTC)

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		fac, sev int
		want     string
	}{
		{Mail, Info, "<22>Dec  7 09:05:01 qmail: hello"},
		{Mail, Warning, "<20>Dec  7 09:05:01 qmail: hello"},
		{Mail, Alert, "<17>Dec  7 09:05:01 qmail: hello"},
		{Kern, Info, "<14>Dec  7 09:05:01 qmail: hello"}, // glibc: 0 keeps user
		{23 << 3, Info, "<190>Dec  7 09:05:01 qmail: hello"},
		{127 << 3, Info, "<1022>Dec  7 09:05:01 qmail: hello"},
		{128 << 3, Info, "<14>Dec  7 09:05:01 qmail: hello"}, // outside LOG_FACMASK
		{-8, Info, "<14>Dec  7 09:05:01 qmail: hello"},
	} {
		l := &Logger{Ident: "qmail", Facility: tc.fac}
		if got := string(l.Format(tc.sev, "hello", at)); got != tc.want {
			t.Errorf("facility %d severity %d: %q, want %q", tc.fac, tc.sev, got, tc.want)
		}
	}
	l := &Logger{Ident: "x", Facility: Mail}
	if got := string(l.Format(Info, "m", time.Date(2026, 1, 17, 23, 0, 9, 0, time.UTC))); got != "<22>Jan 17 23:00:09 x: m" {
		t.Errorf("two-digit day: %q", got)
	}
}

func TestLogDatagram(t *testing.T) {
	path, recv := listen(t)
	l := &Logger{Path: path, Ident: "splogger", Facility: Mail, Now: func() time.Time { return at }}
	defer l.Close()
	for _, m := range []string{"one", "two", strings.Repeat("x", 5000)} {
		if err := l.Log(Info, m); err != nil {
			t.Fatal(err)
		}
		if got := recv(); got != "<22>Dec  7 09:05:01 splogger: "+m {
			t.Errorf("got %q", got)
		}
	}
}

// The daemon restarted: its socket is new; Log reconnects.
func TestReconnect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	old, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	l := &Logger{Path: path, Ident: "x", Facility: Mail, Now: func() time.Time { return at }}
	defer l.Close()
	if err := l.Log(Info, "before"); err != nil {
		t.Fatal(err)
	}
	old.Close()
	os.Remove(path)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := l.Log(Info, "after"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "<22>Dec  7 09:05:01 x: after" {
		t.Errorf("%q %v", buf[:n], err)
	}
}

// No daemon: the message is dropped with an error, nothing blocks.
func TestNoDaemon(t *testing.T) {
	l := &Logger{Path: filepath.Join(t.TempDir(), "none")}
	if err := l.Log(Info, "lost"); err == nil {
		t.Error("no error without a daemon")
	}
}

// A daemon on a stream socket gets each message ended by a NUL.
func TestLogStream(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var all []byte
		buf := make([]byte, 100)
		for len(all) < 2*len("<22>Dec  7 09:05:01 x: m\x00") {
			n, err := c.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				break
			}
		}
		got <- string(all)
	}()
	l := &Logger{Path: path, Ident: "x", Facility: Mail, Now: func() time.Time { return at }}
	defer l.Close()
	l.Log(Info, "m")
	l.Log(Info, "m")
	if s := <-got; s != "<22>Dec  7 09:05:01 x: m\x00<22>Dec  7 09:05:01 x: m\x00" {
		t.Errorf("%q", s)
	}
}
