package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSdNotify: under systemd's Type=notify the mta says READY=1 once its
// listeners serve, RELOADING=1 then READY=1 around a SIGHUP, and
// STOPPING=1 at SIGTERM, on $NOTIFY_SOCKET.
func TestSdNotify(t *testing.T) {
	dir := scratch(t)
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	os.Chmod(sock, 0o777) // the mta may run as nobody
	states := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(states)
				return
			}
			states <- string(buf[:n])
		}
	}()
	next := func(want string) string {
		t.Helper()
		select {
		case s, ok := <-states:
			if !ok || !strings.Contains(s, want) {
				t.Fatalf("sd_notify got %q, want %q", s, want)
			}
			return s
		case <-time.After(20 * time.Second):
			t.Fatalf("no %q on NOTIFY_SOCKET in 20 s", want)
		}
		return ""
	}
	home := filepath.Join(dir, "home")
	p := startMTAEnv(t, home, os.Getuid() == 0, nil, []string{"NOTIFY_SOCKET=" + sock})
	ready := next("READY=1")
	// READY comes after the listeners are up: the SMTP port answers.
	if c, err := net.Dial("tcp", p.smtp); err != nil {
		t.Fatalf("READY=1 but SMTP does not answer: %v", err)
	} else {
		c.Close()
	}
	if !strings.Contains(ready, "STATUS=serving SMTP "+p.smtp) {
		t.Errorf("READY without the listeners' status: %q", ready)
	}
	p.signal(t, syscall.SIGHUP)
	next("RELOADING=1")
	next("READY=1")
	p.signal(t, syscall.SIGTERM)
	next("STOPPING=1")
	if err := p.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.stderr)
	}
}
