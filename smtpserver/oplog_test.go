package smtpserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// logBuf is a goroutine-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// records parses the JSON lines, failing on a line that is not JSON or
// has a duplicate key.
func (l *logBuf) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	text := l.b.String()
	l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if line == "" {
			continue
		}
		if dups, err := dupKeys(line); err != nil || len(dups) > 0 {
			t.Errorf("log line %s: duplicate keys %v, %v", line, dups, err)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// find returns the records whose event is event.
func find(recs []map[string]any, event string) []map[string]any {
	var out []map[string]any
	for _, r := range recs {
		if r["event"] == event {
			out = append(out, r)
		}
	}
	return out
}

// dupKeys returns the keys that appear twice in one object of the JSON
// text line, or an error if it is not JSON.
func dupKeys(line string) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	type frame struct {
		obj, key bool
		seen     map[string]bool
	}
	var stack []*frame
	var dups []string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return dups, nil
		}
		if err != nil {
			return nil, err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				if top != nil && top.obj {
					top.key = true
				}
				stack = append(stack, &frame{obj: d == '{', key: d == '{', seen: map[string]bool{}})
			} else {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if k, ok := tok.(string); ok && top != nil && top.obj && top.key {
			if top.seen[k] {
				dups = append(dups, k)
			}
			top.seen[k], top.key = true, false
			continue
		}
		if top != nil && top.obj {
			top.key = true
		}
	}
}

// observed runs a session with srv, logging JSON into a buffer and
// recording Rejected: steps are sent one at a time, each followed by
// reading one reply; the script stops at the first read error.
func observed(t *testing.T, srv *Server, env map[string]string, steps []string, tlsAfter string) ([]map[string]any, []Rejection) {
	t.Helper()
	var buf logBuf
	srv.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	var mu sync.Mutex
	var rejs []Rejection
	srv.Rejected = func(r Rejection) {
		mu.Lock()
		rejs = append(rejs, r)
		mu.Unlock()
	}
	c := start(t, srv, env)
	c.line() // greeting
	for _, st := range steps {
		c.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c.c, st); err != nil {
			break
		}
		ok := true
		for {
			l, err := c.line()
			if err != nil {
				ok = false
				break
			}
			if len(l) < 4 || l[3] != '-' {
				break
			}
		}
		if !ok {
			break
		}
		if st == tlsAfter {
			c.c = tls.Client(c.c, &tls.Config{InsecureSkipVerify: true})
			c.r.Reset(c.c)
		}
	}
	c.c.Close()
	c.wait()
	mu.Lock()
	defer mu.Unlock()
	return buf.records(t), rejs
}

// Each reason token, from the refusal that gives it.
func TestRejectReasons(t *testing.T) {
	perm := errTest("no")
	tests := []struct {
		name   string
		setup  func(*Server)
		env    map[string]string
		steps  []string
		reason string
		cmd    string
		reply  string // prefix of the logged reply
	}{
		{"relay", nil, nil, []string{"MAIL FROM:<a@example.net>\r\n", "RCPT TO:<x@far.example>\r\n"}, "relay", "RCPT", "553 sorry, that domain"},
		{"badmailfrom", func(s *Server) { s.BadMailFrom = func(string) bool { return true } }, nil,
			[]string{"MAIL FROM:<spam@example.net>\r\n", "RCPT TO:<x@example.org>\r\n"}, "badmailfrom", "RCPT", "553 sorry, your envelope sender"},
		{"unknown-recipient", func(s *Server) {
			s.CheckRecipient = func(context.Context, *Session, string) error { return Reply{550, "5.1.1", "no mailbox"} }
		}, nil, []string{"EHLO c\r\n", "MAIL FROM:<a@example.net>\r\n", "RCPT TO:<x@example.org>\r\n"}, "unknown-recipient", "RCPT", "550 5.1.1 no mailbox"},
		{"policy", func(s *Server) {
			s.CheckSender = func(context.Context, *Session, string) error { return permError{perm} }
		}, nil, []string{"MAIL FROM:<a@example.net>\r\n"}, "policy", "MAIL", "553 sorry, that sender"},
		{"tempfail", func(s *Server) {
			s.CheckSender = func(context.Context, *Session, string) error { return errTest("db down") }
		}, nil, []string{"MAIL FROM:<a@example.net>\r\n"}, "tempfail", "MAIL", "451 temporary failure"},
		{"own reason", func(s *Server) {
			s.CheckSender = func(context.Context, *Session, string) error {
				return WithReason(Reply{452, "4.3.1", "insufficient system storage"}, "space")
			}
		}, nil, []string{"EHLO c\r\n", "MAIL FROM:<a@example.net>\r\n"}, "space", "MAIL", "452 4.3.1 insufficient"},
		{"dnsbl", nil, map[string]string{"TCPREMOTEIP": "192.0.2.9", "RBLSMTPD": "-listed at bl.example"},
			[]string{"QUIT\r\n"}, "dnsbl", "CONNECT", "553 5.7.1 listed at bl.example"},
		{"size at MAIL", nil, nil, []string{"EHLO c\r\n", "MAIL FROM:<a@example.net> SIZE=999999999999\r\n"}, "size", "MAIL", "552 5.3.4"},
		{"size at DATA", func(s *Server) { s.MaxMessageBytes = 10 }, nil,
			[]string{"MAIL FROM:<a@example.net>\r\n", "RCPT TO:<x@example.org>\r\n", "DATA\r\n", strings.Repeat("x", 100) + "\r\n.\r\n"}, "size", "DATA", "552 sorry, that message size"},
		{"loop", nil, nil,
			[]string{"MAIL FROM:<a@example.net>\r\n", "RCPT TO:<x@example.org>\r\n", "DATA\r\n", strings.Repeat("Received: x\r\n", 101) + "\r\nbody\r\n.\r\n"}, "loop", "DATA", "554 too many hops"},
		{"syntax", nil, nil, []string{"EHLO c\r\n", "MAIL <a@example.net>\r\n"}, "syntax", "MAIL", "501 5.5.4"},
		{"sequence", nil, nil, []string{"RCPT TO:<x@example.org>\r\n"}, "sequence", "RCPT", "503 MAIL first"},
		{"protocol", nil, nil,
			[]string{"MAIL FROM:<a@example.net>\r\n", "RCPT TO:<x@example.org>\r\n", "DATA\r\n", "a\rb\r\n.\r\n"}, "protocol", "DATA", "554 bare CR"},
		{"recipients", func(s *Server) { s.MaxRecipients = 1 }, nil,
			[]string{"MAIL FROM:<a@example.net>\r\n", "RCPT TO:<x@example.org>\r\n", "RCPT TO:<y@example.org>\r\n"}, "recipients", "RCPT", "452 too many recipients"},
		{"errors", func(s *Server) { s.MaxErrors = 2 }, nil, []string{"FOO\r\n", "BAR\r\n", "NOOP\r\n"}, "errors", "", "421 too many errors"},
		{"auth", func(s *Server) {
			s.AuthOnLoopback = true
			s.AuthFailDelay = -1
			s.Auth = Authenticator(func(context.Context, string, string) error { return ErrBadCredentials })
		}, nil, []string{"EHLO c\r\n", "AUTH PLAIN " + plain("joe", "bad") + "\r\n"}, "auth", "AUTH", "535 5.7.8"},
		{"rate", func(s *Server) {
			s.AuthOnLoopback = true
			s.Auth = Authenticator(func(context.Context, string, string) error { return nil })
			s.AuthLimiter = &fakeLimiter{}
		}, nil, []string{"EHLO c\r\n", "AUTH PLAIN " + plain("blocked", "x") + "\r\n"}, "rate", "AUTH", "454 4.7.0"},
		{"auth without TLS", func(s *Server) { s.Auth = Authenticator(func(context.Context, string, string) error { return nil }) },
			map[string]string{"TCPREMOTEIP": "192.0.2.9"}, []string{"EHLO c\r\n", "AUTH PLAIN " + plain("joe", "x") + "\r\n"}, "policy", "AUTH", "538 5.7.11"},
		{"queue", nil, nil,
			[]string{"MAIL FROM:<a@example.net>\r\n", "RCPT TO:<x@example.org>\r\n", "DATA\r\n", "hi\r\n.\r\n"}, "queue", "DATA", "554 mail server permanently rejected"},
		{"queue reason", nil, nil,
			[]string{"MAIL FROM:<a@example.net>\r\n", "RCPT TO:<x@example.org>\r\n", "DATA\r\n", "virus\r\n.\r\n"}, "content", "DATA", "554 infected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &sink{}
			srv := compatServer(k)
			srv.Compat = false
			srv.OpenRelay = false
			srv.RcptHosts = HostList([]string{"example.org"}, nil)
			switch tt.name {
			case "queue":
				k.fail = permError{perm}
			case "queue reason":
				k.fail = WithReason(Reply{554, "5.7.1", "infected"}, "content")
			}
			if tt.setup != nil {
				tt.setup(srv)
			}
			recs, rejs := observed(t, srv, tt.env, tt.steps, "")
			rej := find(recs, "reject")
			if len(rej) != 1 || len(rejs) != 1 {
				t.Fatalf("reject lines %v, hook %v", rej, rejs)
			}
			r := rej[0]
			if r["reason"] != tt.reason || rejs[0].Reason != tt.reason || (r["cmd"] != nil || tt.cmd != "") && r["cmd"] != tt.cmd ||
				!strings.HasPrefix(r["reply"].(string), tt.reply) || r["ip"] == nil || r["msg"] != "smtpserver: reject" {
				t.Errorf("reject line %v, hook %+v; want reason %s cmd %s reply %q", r, rejs[0], tt.reason, tt.cmd, tt.reply)
			}
			if rejs[0].Reply.Code == 0 || !rejs[0].IP.IsValid() {
				t.Errorf("hook %+v", rejs[0])
			}
			if s := find(recs, "session"); len(s) != 1 {
				t.Errorf("session lines %v", s)
			}
		})
	}
}

// permError is a permanent error.
type permError struct{ error }

func (permError) Permanent() bool { return true }

// A failed TLS handshake is a rejection (reason tls) and ends the
// session (end tls); a connection over MaxConnsPerIP is refused with
// reason connections.
func TestRejectTLSAndConnections(t *testing.T) {
	k := &sink{}
	srv := tlsServer(t, k)
	recs, rejs := observed(t, srv, nil, []string{"EHLO c\r\n", "STARTTLS\r\n", "\x16\x03\x01\x00\x05hello"}, "")
	rej, ses := find(recs, "reject"), find(recs, "session")
	if len(rej) != 1 || rej[0]["reason"] != "tls" || rej[0]["cmd"] != "STARTTLS" || rej[0]["err"] == nil || len(rejs) != 1 || rejs[0].Reason != "tls" {
		t.Errorf("reject %v, hook %v", rej, rejs)
	}
	if len(ses) != 1 || ses[0]["end"] != "tls" {
		t.Errorf("session %v", ses)
	}

	var buf logBuf
	srv = &Server{Hostname: "mx.example.org", MaxConnsPerIP: 1, Logger: slog.New(slog.NewJSONHandler(&buf, nil))}
	var mu sync.Mutex
	var hook []Rejection
	srv.Rejected = func(r Rejection) { mu.Lock(); hook = append(hook, r); mu.Unlock() }
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	deadline := time.Now().Add(5 * time.Second)
	for !srv.Serving() {
		if time.Now().After(deadline) {
			t.Fatal("Serving never true")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c1, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c1.SetReadDeadline(time.Now().Add(5 * time.Second))
	c1.Read(make([]byte, 100)) // the greeting: the first session holds the place
	c2, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c2)
	c2.Close()
	if !strings.HasPrefix(string(b), "421 4.7.0 too many connections") {
		t.Errorf("second connection got %q", b)
	}
	c1.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	if srv.Serving() {
		t.Error("Serving after Shutdown")
	}
	recs = buf.records(t)
	rej = find(recs, "reject")
	if len(rej) != 1 || rej[0]["reason"] != "connections" || rej[0]["cmd"] != "CONNECT" || rej[0]["ip"] != "127.0.0.1" ||
		!strings.HasPrefix(rej[0]["reply"].(string), "421 4.7.0 too many connections") {
		t.Errorf("reject lines %v", rej)
	}
	mu.Lock()
	if len(hook) != 1 || hook[0].Reason != "connections" {
		t.Errorf("hook %v", hook)
	}
	mu.Unlock()
}

// Two transactions, one with a refused recipient, under TLS and AUTH: the
// transaction lines carry every field, and the session line the counts.
func TestTransactionAndSessionLines(t *testing.T) {
	k := &sink{}
	srv := tlsServer(t, k)
	env := map[string]string{"TCPREMOTEIP": "127.0.0.1", "TCPREMOTEHOST": "client.example"}
	steps := []string{
		"EHLO c\r\n", "STARTTLS\r\n", "EHLO client.example\r\n",
		"AUTH PLAIN " + plain("joe", "s3cret") + "\r\n",
		"MAIL FROM:<joe@example.org>\r\n", "RCPT TO:<a@example.org>\r\n", "RCPT TO:<bad\x01@example.org>\r\n", "RCPT TO:<b@far.example>\r\n",
		"DATA\r\n", "Subject: one\r\n\r\nhello\r\n.\r\n",
		"MAIL FROM:<joe@example.org>\r\n", "RCPT TO:<c@example.org>\r\n", "BDAT 4 LAST\r\nhi\r\n",
		"QUIT\r\n",
	}
	recs, rejs := observed(t, srv, env, steps, "STARTTLS\r\n")
	tx := find(recs, "transaction")
	if len(tx) != 2 {
		t.Fatalf("transaction lines %v", tx)
	}
	for i, r := range tx {
		for _, key := range []string{"ip", "host", "helo", "tls", "cipher", "user", "from", "to", "size", "id", "reply"} {
			if r[key] == nil {
				t.Errorf("transaction %d lacks %s: %v", i, key, r)
			}
		}
		if r["ip"] != "127.0.0.1" || r["host"] != "client.example" || r["helo"] != "client.example" || r["user"] != "joe" ||
			!strings.HasPrefix(r["tls"].(string), "TLS1.") || r["from"] != "joe@example.org" || !strings.HasPrefix(r["reply"].(string), "250 2.0.0 ok ") {
			t.Errorf("transaction %d: %v", i, r)
		}
	}
	to, _ := json.Marshal(tx[0]["to"])
	if string(to) != `[{"addr":"a@example.org","code":250},{"addr":"\u003cbad\u0001@example.org\u003e","code":501},{"addr":"b@far.example","code":250}]` {
		t.Errorf("to %s", to)
	}
	if tx[0]["id"] != "1" || tx[1]["id"] != "2" || tx[0]["size"].(float64) < 20 || tx[1]["size"] != float64(3) {
		t.Errorf("ids and sizes: %v %v", tx[0], tx[1])
	}
	if rej := find(recs, "reject"); len(rej) != 1 || rej[0]["reason"] != "syntax" || len(rejs) != 1 {
		t.Errorf("rejects %v %v", rej, rejs)
	}
	ses := find(recs, "session")
	if len(ses) != 1 {
		t.Fatalf("session lines %v", ses)
	}
	s := ses[0]
	if s["end"] != "quit" || s["transactions"] != float64(2) || s["messages"] != float64(2) || s["user"] != "joe" || s["cipher"] == nil || s["duration"] == nil {
		t.Errorf("session %v", s)
	}
}

// How a session ended, in its line.
func TestSessionEnd(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*Server)
		steps []string
		end   string
	}{
		{"quit", nil, []string{"QUIT\r\n"}, "quit"},
		{"dropped", nil, []string{"NOOP\r\n"}, "dropped"},
		{"timeout", func(s *Server) { s.Timeout = 50 * time.Millisecond }, []string{"NOOP\r\n", ""}, "timeout"},
		{"errors", func(s *Server) { s.MaxErrors = 1 }, []string{"FOO\r\n", "NOOP\r\n"}, "errors"},
		{"protocol", nil, []string{"MAIL FROM:<a@example.net>\r\n", "RCPT TO:<x@example.org>\r\n", "DATA\r\n", "a\nb\r\n.\r\n"}, "protocol"},
		{"auth", func(s *Server) {
			s.AuthOnLoopback = true
			s.AuthFailDelay = -1
			s.Auth = Authenticator(func(context.Context, string, string) error { return ErrBadCredentials })
		}, []string{"AUTH PLAIN " + plain("a", "b") + "\r\n", "AUTH PLAIN " + plain("a", "b") + "\r\n", "AUTH PLAIN " + plain("a", "b") + "\r\n", "NOOP\r\n"}, "auth"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := compatServer(&sink{})
			srv.Compat = false
			srv.RcptHosts = HostList([]string{"example.org"}, nil)
			if tt.setup != nil {
				tt.setup(srv)
			}
			recs, _ := observed(t, srv, nil, tt.steps, "")
			ses := find(recs, "session")
			if len(ses) != 1 || ses[0]["end"] != tt.end {
				t.Errorf("session lines %v, want end %s", ses, tt.end)
			}
		})
	}
}

// A client cannot make a line unbounded: addresses are cut, and only the
// first recipients of a huge transaction are listed.
func TestLogLinesBounded(t *testing.T) {
	srv := compatServer(&sink{})
	srv.Compat = false
	srv.MaxRecipients = -1
	steps := []string{"MAIL FROM:<a@example.net>\r\n", "RCPT TO:<" + strings.Repeat("a", 3000) + "@example.org>\r\n"}
	for i := range maxLogRcpts + 10 {
		steps = append(steps, fmt.Sprintf("RCPT TO:<r%d@example.org>\r\n", i))
	}
	steps = append(steps, "DATA\r\n", "x\r\n.\r\n")
	recs, _ := observed(t, srv, nil, steps, "")
	tx := find(recs, "transaction")
	if len(tx) != 1 {
		t.Fatalf("transaction lines %d", len(tx))
	}
	to := tx[0]["to"].([]any)
	first := to[0].(map[string]any)
	if len(to) != maxLogRcpts || len(first["addr"].(string)) != maxLogAddr || first["code"] != float64(501) {
		t.Errorf("%d recipients listed, the first %v", len(to), first["code"])
	}
	if rej := find(recs, "reject"); len(rej) != 1 || len(rej[0]["rcpt"].(string)) != maxLogAddr {
		t.Errorf("reject lines %v", len(rej))
	}
}

// The text handler writes "to" as addr:code pairs.
func TestRcptListText(t *testing.T) {
	var b bytes.Buffer
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "to", rcptList{{"a@b", 250}, {"c d@e", 553}})
	if !strings.Contains(b.String(), `to="a@b:250,c d@e:553"`) {
		t.Errorf("%s", b.String())
	}
}

// A message sent below MinDataRate: reason slow, and the session's end.
func TestRejectSlowSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := compatServer(&sink{})
		srv.Compat = false
		var buf logBuf
		srv.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
		var reasons []string
		srv.Rejected = func(r Rejection) { reasons = append(reasons, r.Reason) }
		client, server := net.Pipe()
		defer client.Close()
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(context.Background(), server, qmailEnv()) }()
		lines := make(chan string, 10)
		go func() {
			r := bufio.NewReader(client)
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					close(lines)
					return
				}
				lines <- l
			}
		}()
		for _, c := range []string{"MAIL FROM:<a@example.net>\r\n", "RCPT TO:<x@example.org>\r\n", "DATA\r\n", "Subject: x\r\n"} {
			io.WriteString(client, c)
			synctest.Wait()
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if err := <-done; err != ErrTooSlow {
			t.Fatalf("ServeConn = %v", err)
		}
		recs := buf.records(t)
		rej, ses := find(recs, "reject"), find(recs, "session")
		if len(rej) != 1 || rej[0]["reason"] != "slow" || len(reasons) != 1 || reasons[0] != "slow" {
			t.Errorf("reject lines %v, hook %v", rej, reasons)
		}
		if len(ses) != 1 || ses[0]["end"] != "slow" {
			t.Errorf("session lines %v", ses)
		}
		if tx := find(recs, "transaction"); len(tx) != 1 || !strings.HasPrefix(tx[0]["reply"].(string), "451 ") {
			t.Errorf("transaction lines %v", tx)
		}
	})
}

// TestLogLinesCostNothingUnlogged: with no Logger, or one that drops Info,
// the lines of a transaction, a session's end and a rejection are not
// built (they cost allocations on every message), and Rejected is still
// told.
func TestLogLinesCostNothingUnlogged(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.1")
	for _, tc := range []struct {
		name   string
		logger *slog.Logger
	}{
		{"nil", nil},
		{"discard", slog.New(slog.DiscardHandler)},
		{"warn", slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rejected := 0
			srv := &Server{Logger: tc.logger, Rejected: func(Rejection) { rejected++ }}
			s := &session{srv: srv, ctx: t.Context(), ehlo: true, start: time.Now()}
			s.info.RemoteIP = ip
			s.info.Helo = "client.example"
			s.from = "a@example.org"
			s.noteRcpt("b@example.com", 250)
			tx := s.takeTx()
			allocs := testing.AllocsPerRun(100, func() {
				s.logTx(tx, 1024, "12345", Reply{250, "2.0.0", "ok"}, nil)
				s.logEnd(t.Context(), nil)
				s.rejectText(ReasonRelay, "RCPT", replyNoGateway, "553 sorry")
			})
			if allocs != 0 {
				t.Errorf("%v allocations per transaction, session end and rejection, want 0", allocs)
			}
			if rejected == 0 {
				t.Error("Rejected not called")
			}
		})
	}
}
