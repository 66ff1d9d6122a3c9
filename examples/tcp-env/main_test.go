package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tcp-env")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// accepted returns the server end of a new loopback TCP connection, as a
// file (inetd's descriptor 0), and the client end.
func accepted(t *testing.T) (*os.File, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	srv, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	f, err := srv.(*net.TCPConn).File()
	srv.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, client
}

// TestEnvOfTheConnection: tcp-env -R env, with the connection on
// descriptors 0 and 1, prints the connection's variables to the client.
func TestEnvOfTheConnection(t *testing.T) {
	bin := build(t)
	f, client := accepted(t)
	cmd := exec.Command(bin, "-R", "env")
	cmd.Stdin, cmd.Stdout = f, f
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TCPREMOTEINFO=stale", "TCPREMOTEHOST=stale.example", "KEEP=1"}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	got := map[string]string{}
	sc := bufio.NewScanner(client)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		got[k] = v
	}
	caddr := client.LocalAddr().(*net.TCPAddr)
	saddr := client.RemoteAddr().(*net.TCPAddr)
	want := map[string]string{
		"PROTO": "TCP", "KEEP": "1",
		"TCPLOCALIP": saddr.IP.String(), "TCPLOCALPORT": strconv.Itoa(saddr.Port),
		"TCPREMOTEIP": caddr.IP.String(), "TCPREMOTEPORT": strconv.Itoa(caddr.Port),
	}
	// The names are what the system's resolver says for 127.0.0.1
	// (/etc/hosts), or nothing.
	if names, err := net.DefaultResolver.LookupAddr(context.Background(), "127.0.0.1"); err == nil && len(names) > 0 {
		name := strings.ToLower(strings.TrimSuffix(names[0], "."))
		want["TCPLOCALHOST"], want["TCPREMOTEHOST"] = name, name
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s=%q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["TCPREMOTEINFO"]; ok {
		t.Errorf("TCPREMOTEINFO set with -R: %q", got["TCPREMOTEINFO"])
	}
	if _, ok := want["TCPREMOTEHOST"]; !ok && got["TCPREMOTEHOST"] != "" {
		t.Errorf("a stale TCPREMOTEHOST kept: %q", got["TCPREMOTEHOST"])
	}
}

func TestFailures(t *testing.T) {
	bin := build(t)
	f, _ := accepted(t)
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	for _, tc := range []struct {
		name  string
		args  []string
		stdin *os.File
		env   []string
		code  int
	}{
		{"not a socket", []string{"-R", "true"}, devnull, nil, 111},
		{"no program", []string{"-R"}, f, nil, 111},
		{"no such program", []string{"-R", "/nonexistent/program"}, f, nil, 111},
		{"unknown option ignored", []string{"-x", "-R", "true"}, f, nil, 0},
		// Under tcpserver ($PROTO=TCP) nothing is looked at: not even
		// whether descriptor 0 is a socket.
		{"PROTO already TCP", []string{"true"}, devnull, []string{"PROTO=TCP"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Stdin = tc.stdin
			cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, tc.env...)
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
		})
	}
}
