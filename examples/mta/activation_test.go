package main

import (
	"fmt"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSocketActivation: systemd-socket-activate (Debian's systemd) binds
// the SMTP port and hands it to the mta under the name smtp: the mta serves
// SMTP there, without its own listener for that role (its -smtp flag is
// not used), and binds the roles not handed over from their flags.
func TestSocketActivation(t *testing.T) {
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("no systemd-socket-activate (Debian's systemd)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	home := filepath.Join(scratch(t), "home")
	// The socket is handed over at the first connection: make it while
	// the mta is not yet running.
	greeting := make(chan string, 1)
	go func() {
		var c *textproto.Conn
		var err error
		for range 200 {
			if c, err = textproto.Dial("tcp", addr); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			greeting <- err.Error()
			return
		}
		defer c.Close()
		_, msg, err := c.ReadResponse(220)
		greeting <- fmt.Sprint(msg, err)
	}()
	p := startMTAWrapped(t, home, os.Getuid() == 0, []string{activate, "-l", addr, "--fdname=smtp"}, nil, nil)
	if p.smtp != addr {
		t.Errorf("the banner says SMTP on %q, want the handed socket %s\n%s", p.smtp, addr, p.banner)
	}
	if p.pop3 == "" || p.pop3 == addr {
		t.Errorf("POP3 on %q: the roles not handed over listen where their flags say", p.pop3)
	}
	select {
	case g := <-greeting:
		if !strings.Contains(g, "ESMTP") || strings.Contains(g, "rror") {
			t.Errorf("the first connection got %q", g)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no greeting on the handed socket")
	}
	if !strings.Contains(p.stderr.String(), "listening on a socket from systemd") {
		t.Errorf("no log line for the handed socket:\n%s", p.stderr)
	}
	p.stop(t)
}

// TestSocketActivationUnknownName: a socket whose name is no role stops
// the mta with an error naming it.
func TestSocketActivationUnknownName(t *testing.T) {
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("no systemd-socket-activate (Debian's systemd)")
	}
	bin := build(t)
	home := filepath.Join(scratch(t), "home")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(activate, "-l", addr, "--fdname=smpt", bin, "-home", home, "-smtp", "127.0.0.1:0", "-submission", "", "-pop3", "")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + filepath.Dir(home)}
	if os.Getuid() == 0 {
		asNobody(cmd)
	}
	var out strings.Builder
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	for range 200 {
		if c, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c != nil {
		defer c.Close()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(out.String(), `a socket named \"smpt\": no such role`) && !strings.Contains(out.String(), `a socket named "smpt": no such role`) {
			t.Errorf("exit %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the mta did not stop on a socket named smpt")
	}
}
