package pop3

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// vectorNow is the session start of the recorded session.
var vectorNow = time.Unix(1795300720, 0)

// vectorMessages are the recorded session's Maildir, in mtime order.
var vectorMessages = []struct{ path, body string }{
	{"cur/999.2.host:2,S", "Subject: two\nX: y\n\nbody2\n"},
	{"new/1000.1.host", "Subject: one\n\nline1\n.dotline\nline3\n"},
	{"new/1001.3.host", "Subject: three\n\nno newline at end"},
}

// makeMaildir creates a Maildir holding files (path relative to the
// Maildir, content), with mtimes one second apart ending a minute before
// vectorNow.
func makeMaildir(t testing.TB, files ...[2]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "Maildir")
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	mt := vectorNow.Add(-time.Minute - time.Duration(len(files))*time.Second)
	for i, f := range files {
		p := filepath.Join(dir, f[0])
		if err := os.WriteFile(p, []byte(f[1]), 0o600); err != nil {
			t.Fatal(err)
		}
		at := mt.Add(time.Duration(i) * time.Second)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func vectorMaildir(t testing.TB) string {
	var files [][2]string
	for _, m := range vectorMessages {
		files = append(files, [2]string{m.path, m.body})
	}
	return makeMaildir(t, files...)
}

// testAuth accepts joe (passwords "good" and "s3cret") and mrose (APOP
// secret "tanstaaf"), all with the Maildir dir; "temp" fails temporarily.
func testAuth(dir string) Authenticator {
	return AuthenticatorFunc(func(ctx context.Context, c Credentials) (*User, error) {
		switch {
		case c.User == "temp":
			return nil, os.ErrDeadlineExceeded
		case c.User == "joe" && (CheckSecret(c, "good") || CheckSecret(c, "s3cret")):
		case c.User == "mrose" && CheckSecret(c, "tanstaaf"):
		default:
			return nil, ErrAuthFailed
		}
		return &User{Name: c.User, UID: -1, GID: -1, Maildir: dir}, nil
	})
}

// client is the test side of a session.
type client struct {
	t    testing.TB
	c    net.Conn
	r    *bufio.Reader
	done chan error
}

// startSession serves one connection on a loopback socket.
func startSession(t testing.TB, srv *Server, env map[string]string) *client {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			done <- err
			return
		}
		done <- srv.ServeConn(context.Background(), c, env)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, c: c, r: bufio.NewReader(c), done: done}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := c.c.Write([]byte(s)); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// line reads one reply line, CRLF removed; it fails on a bare LF.
func (c *client) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (partial %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line without CRLF: %q", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *client) expect(want string) {
	c.t.Helper()
	got := c.line()
	if strings.HasSuffix(want, "*") && strings.HasPrefix(got, strings.TrimSuffix(want, "*")) {
		return
	}
	if got != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
}

func (c *client) cmd(cmd, want string) {
	c.t.Helper()
	c.send(cmd + "\r\n")
	c.expect(want)
}

// multi reads a multi-line response body up to its "." line.
func (c *client) multi() []string {
	c.t.Helper()
	var lines []string
	for {
		l := c.line()
		if l == "." {
			return lines
		}
		lines = append(lines, l)
	}
}

func (c *client) expectEOF() {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err == nil || l != "" {
		c.t.Fatalf("want EOF, got %q, %v", l, err)
	}
}

// result waits for ServeConn's result.
func (c *client) result() error {
	c.t.Helper()
	select {
	case err := <-c.done:
		return err
	case <-time.After(20 * time.Second):
		c.t.Fatal("session did not end")
		return nil
	}
}

// login logs joe in with USER/PASS.
func (c *client) login() {
	c.t.Helper()
	c.expect("+OK*")
	c.cmd("USER joe", "+OK*")
	c.cmd("PASS good", "+OK*")
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
