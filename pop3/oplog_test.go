package pop3

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// logRecorder is a goroutine-safe JSON log sink and Rejected hook.
type logRecorder struct {
	mu   sync.Mutex
	b    bytes.Buffer
	rejs []Rejection
}

func (l *logRecorder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logRecorder) reject(r Rejection) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rejs = append(l.rejs, r)
}

// attach makes srv log into l and tell it its rejections.
func (l *logRecorder) attach(srv *Server) {
	srv.Logger = slog.New(slog.NewJSONHandler(l, nil))
	srv.Rejected = l.reject
}

// events returns the records of the event, and the rejection reasons.
func (l *logRecorder) events(t *testing.T, event string) ([]map[string]any, []string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["event"] == event {
			out = append(out, rec)
		}
	}
	var reasons []string
	for _, r := range l.rejs {
		reasons = append(reasons, r.Reason)
	}
	return out, reasons
}

func TestLoginAndSessionLines(t *testing.T) {
	dir := vectorMaildir(t)
	srv := &Server{Auth: testAuth(dir), AuthFailDelay: -1}
	var rec logRecorder
	rec.attach(srv)
	c := startSession(t, srv, map[string]string{"TCPREMOTEIP": "127.0.0.1"})
	c.expect("+OK*")
	c.cmd("USER joe", "+OK*")
	c.cmd("PASS bad", "-ERR [AUTH]*")
	c.cmd("USER joe", "+OK*")
	c.cmd("PASS good", "+OK 3 messages")
	c.send("RETR 1\r\n")
	c.expect("+OK*")
	c.multi()
	c.cmd("TOP 2 0", "+OK*")
	c.multi()
	c.cmd("DELE 2", "+OK*")
	c.cmd("DELE 3", "+OK*")
	c.cmd("QUIT", "+OK bye")
	if err := c.result(); err != nil {
		t.Fatal(err)
	}
	logins, rejs := rec.events(t, "login")
	if len(logins) != 2 || logins[0]["result"] != "failed" || logins[1]["result"] != "ok" || len(rejs) != 1 || rejs[0] != "auth" {
		t.Fatalf("logins %v, rejections %v", logins, rejs)
	}
	for _, l := range logins {
		if l["user"] != "joe" || l["method"] != "USER" || l["ip"] != "127.0.0.1" || l["msg"] != "pop3: login" {
			t.Errorf("login line %v", l)
		}
	}
	ses, _ := rec.events(t, "session")
	if len(ses) != 1 {
		t.Fatalf("session lines %v", ses)
	}
	s := ses[0]
	b1, b2 := len(vectorMessages[0].body), len(vectorMessages[1].body)+len(vectorMessages[2].body)
	if s["user"] != "joe" || s["retrieved"] != float64(1) || s["retrieved_bytes"] != float64(b1) || s["deleted"] != float64(2) ||
		s["deleted_bytes"] != float64(b2) || s["end"] != "quit" || s["duration"] == nil || s["ip"] != "127.0.0.1" {
		t.Errorf("session line %v", s)
	}
}

// Each login method and result.
func TestLoginResults(t *testing.T) {
	tests := []struct {
		name, cmds     string
		user, method   string
		result, reason string
	}{
		{"apop", "APOP mrose " + APOPDigest("<ts>", "tanstaaf"), "mrose", "APOP", "failed", "auth"}, // the greeting's timestamp is not <ts>
		{"auth plain", "AUTH PLAIN AGpvZQBzM2NyZXQ=", "joe", "AUTH", "ok", ""},
		{"tempfail", "USER temp\r\nPASS x", "temp", "USER", "tempfail", "tempfail"},
		{"rate", "USER blocked\r\nPASS x", "blocked", "USER", "rate", "rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := vectorMaildir(t)
			srv := &Server{Auth: testAuth(dir), AuthFailDelay: -1, APOP: true, AuthLimiter: &fakeLimiter{block: map[string]bool{"blocked": true}}}
			var rec logRecorder
			rec.attach(srv)
			c := startSession(t, srv, map[string]string{"TCPREMOTEIP": "127.0.0.1"})
			c.expect("+OK*")
			for _, l := range strings.Split(tt.cmds, "\r\n") {
				c.send(l + "\r\n")
				c.line()
			}
			c.cmd("QUIT", "+OK*")
			c.result()
			logins, rejs := rec.events(t, "login")
			if len(logins) != 1 || logins[0]["user"] != tt.user || logins[0]["method"] != tt.method || logins[0]["result"] != tt.result {
				t.Errorf("login lines %v", logins)
			}
			if (tt.reason == "") != (len(rejs) == 0) || tt.reason != "" && rejs[0] != tt.reason {
				t.Errorf("rejections %v, want %q", rejs, tt.reason)
			}
		})
	}
}

// How a session ended.
func TestSessionEndLines(t *testing.T) {
	tests := []struct {
		name  string
		srv   func(*Server)
		cmds  []string
		close bool
		end   string
	}{
		{"dropped", nil, []string{"NOOP"}, true, "dropped"},
		{"timeout", func(s *Server) { s.Timeout = 50 * time.Millisecond }, []string{""}, false, "timeout"},
		{"auth", nil, []string{"USER joe", "PASS x", "USER joe", "PASS x", "USER joe", "PASS x"}, false, "auth"},
		{"compat auth", func(s *Server) { s.Compat = true }, []string{"USER joe", "PASS x"}, false, "auth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &Server{Auth: testAuth(vectorMaildir(t)), AuthFailDelay: -1}
			if tt.srv != nil {
				tt.srv(srv)
			}
			var rec logRecorder
			rec.attach(srv)
			c := startSession(t, srv, map[string]string{"TCPREMOTEIP": "127.0.0.1"})
			c.expect("+OK*")
			for _, l := range tt.cmds {
				if l != "" {
					c.send(l + "\r\n")
				}
				c.r.ReadString('\n')
			}
			if tt.close {
				c.c.Close()
			}
			c.result()
			ses, _ := rec.events(t, "session")
			if len(ses) != 1 || ses[0]["end"] != tt.end {
				t.Errorf("session lines %v, want end %s", ses, tt.end)
			}
		})
	}
}

// A failed handshake, after STLS or on an implicit TLS port, is a
// rejection (tls) and the session's end; a connection over the limit is
// refused with reason connections; Serving follows Serve.
func TestTLSFailureAndConnections(t *testing.T) {
	dir := vectorMaildir(t)
	cert, pool := testCert(t)
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	srv := &Server{Auth: testAuth(dir), TLSConfig: cfg}
	var rec logRecorder
	rec.attach(srv)
	c := startSession(t, srv, map[string]string{"TCPREMOTEIP": "192.0.2.1"})
	c.expect("+OK*")
	c.cmd("STLS", "+OK Begin TLS negotiation")
	c.send("\x16\x03\x01\x00\x05hello")
	c.result()
	ses, rejs := rec.events(t, "session")
	if len(ses) != 1 || ses[0]["end"] != "tls" || ses[0]["err"] == nil || len(rejs) != 1 || rejs[0] != "tls" {
		t.Errorf("session %v, rejections %v", ses, rejs)
	}

	srv = &Server{Auth: testAuth(dir), MaxConnsPerIP: 1}
	var rec2 logRecorder
	rec2.attach(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(tls.NewListener(ln, cfg)) }()
	deadline := time.Now().Add(5 * time.Second)
	for !srv.Serving() {
		if time.Now().After(deadline) {
			t.Fatal("Serving never true")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A client that speaks no TLS to the implicit TLS port.
	plain, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	plain.SetDeadline(time.Now().Add(5 * time.Second))
	plain.Write([]byte("USER joe\r\n"))
	io.ReadAll(plain)
	plain.Close()
	// The TLS client and the one refused beside it come from 127.0.0.2:
	// the plain one, from 127.0.0.1, may still hold its address's one
	// connection while the server sees it end.
	from2 := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	tc, err := tls.DialWithDialer(from2, "tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	tr := bufio.NewReader(tc)
	if l, err := tr.ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
		t.Fatalf("greeting %q %v", l, err)
	}
	second, err := from2.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	second.SetDeadline(time.Now().Add(5 * time.Second))
	io.ReadAll(second)
	second.Close()
	tc.Write([]byte("QUIT\r\n"))
	tr.ReadString('\n')
	tc.Close()
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) || srv.Serving() {
		t.Fatalf("Serve = %v, Serving %v", err, srv.Serving())
	}
	ses, rejs = rec2.events(t, "session")
	refused, _ := rec2.events(t, "reject")
	var ends []string
	for _, s := range ses {
		ends = append(ends, s["end"].(string))
	}
	if strings.Join(ends, " ") != "tls quit" || strings.Join(rejs, " ") != "tls connections" || len(refused) != 1 || refused[0]["reason"] != "connections" {
		t.Errorf("session ends %v, rejections %v, refused %v", ends, rejs, refused)
	}
}

// A huge user name (compat mode has no line limit) is cut in the log
// line.
func TestLoginLineBounded(t *testing.T) {
	srv := &Server{Compat: true, Auth: testAuth(vectorMaildir(t))}
	var rec logRecorder
	rec.attach(srv)
	c := startSession(t, srv, map[string]string{"TCPREMOTEIP": "127.0.0.1"})
	c.expect("+OK*")
	c.cmd("USER "+strings.Repeat("a", 100000), "+OK*")
	c.cmd("PASS x", "-ERR authorization failed")
	c.result()
	logins, _ := rec.events(t, "login")
	if len(logins) != 1 || len(logins[0]["user"].(string)) != maxLogUser {
		t.Errorf("login lines %d, user of %d bytes", len(logins), len(logins[0]["user"].(string)))
	}
}
