package smtpserver

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixedNow is 21 Nov 2026 22:27:55 UTC, the time of the recorded sessions.
var fixedNow = time.Unix(1795300075, 0)

// message is what the test enqueuer received.
type message struct {
	from string
	to   []string
	data string
}

// sink is an Enqueuer that keeps what it is given.
type sink struct {
	mu   sync.Mutex
	msgs []message
	id   string
	fail error // returned after reading the whole message
}

func (k *sink) Enqueue(ctx context.Context, from string, to []string, r io.Reader) (string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	if k.fail != nil {
		return "", k.fail
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.msgs = append(k.msgs, message{from, append([]string(nil), to...), string(b)})
	id := k.id
	if id == "" {
		id = strconv.Itoa(len(k.msgs))
	}
	return id, nil
}

func (k *sink) messages() []message {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]message(nil), k.msgs...)
}

// conn is a client connection to a session served by ServeConn.
type conn struct {
	t    *testing.T
	c    net.Conn
	r    *bufio.Reader
	done chan error
}

// start serves one loopback connection with env and returns the client side.
func start(t *testing.T, srv *Server, env map[string]string) *conn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		l.Close()
		if err != nil {
			done <- err
			return
		}
		done <- srv.ServeConn(context.Background(), c, env)
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cl := &conn{t: t, c: c, r: bufio.NewReader(c), done: done}
	t.Cleanup(func() { c.Close(); cl.wait() })
	return cl
}

func (c *conn) send(s string) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// line reads one reply line without its CRLF; "" and an error at EOF.
func (c *conn) line() (string, error) {
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil {
		return l, err
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("reply line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n"), nil
}

func (c *conn) expect(want string) {
	c.t.Helper()
	got, err := c.line()
	if err != nil {
		c.t.Fatalf("want %q, got %q, %v", want, got, err)
	}
	if strings.HasSuffix(want, "*") {
		if !strings.HasPrefix(got, strings.TrimSuffix(want, "*")) {
			c.t.Fatalf("want %q, got %q", want, got)
		}
		return
	}
	if got != want {
		c.t.Fatalf("want %q, got %q", want, got)
	}
}

// reply reads a whole (multi-line) reply and returns its lines.
func (c *conn) reply() []string {
	c.t.Helper()
	var out []string
	for {
		l, err := c.line()
		if err != nil {
			c.t.Fatalf("reading reply: %q %v", l, err)
		}
		out = append(out, l)
		if len(l) < 4 || l[3] != '-' {
			return out
		}
	}
}

// expectEOF checks that the server closed the connection.
func (c *conn) expectEOF() {
	c.t.Helper()
	l, err := c.line()
	if err == nil {
		c.t.Fatalf("want EOF, got %q", l)
	}
}

// wait returns ServeConn's result.
func (c *conn) wait() error {
	select {
	case err := <-c.done:
		c.done <- err
		return err
	case <-time.After(10 * time.Second):
		c.t.Fatal("session did not end")
		return nil
	}
}

// qmailEnv is the recorded sessions' environment.
func qmailEnv() map[string]string {
	return map[string]string{
		"TCPREMOTEIP":   "192.0.2.9",
		"TCPREMOTEHOST": "client.example",
		"TCPLOCALHOST":  "mx.example.org",
	}
}

func compatServer(k *sink) *Server {
	return &Server{
		Hostname:  "mx.example.org",
		Compat:    true,
		OpenRelay: true,
		Enqueuer:  k,
		Now:       func() time.Time { return fixedNow },
		IsLocalIP: func(ip netipAddr) bool { return ip.String() == "127.0.0.1" || ip.String() == "0.0.0.0" },
	}
}
