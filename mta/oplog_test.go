package mta

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/mailtest"
	"github.com/qmailkit/qmailkit/pop3"
	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/smtpserver"
	"github.com/qmailkit/qmailkit/tcprules"
	"golang.org/x/sys/unix"
)

// lockedBuffer is a log sink written by many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startWith is startHome with opts.
func startWith(t *testing.T, home string, demo Demo, opts Options) *running {
	t.Helper()
	sys, err := Open(home, opts)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := sys.TLSConfig()
	if err != nil || tc == nil {
		t.Fatalf("TLSConfig: %v %v", tc, err)
	}
	var srv Servers
	if srv.SMTP, err = sys.SMTP(false, tc, nil); err != nil {
		t.Fatal(err)
	}
	if srv.Submission, err = sys.SMTP(true, tc, sys.Auth()); err != nil {
		t.Fatal(err)
	}
	if srv.POP3, err = sys.POP3(tc); err != nil {
		t.Fatal(err)
	}
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	ls := Listeners{SMTP: listen(), Submission: listen(), POP3: listen()}
	r := &running{sys: sys, demo: demo, smtp: ls.SMTP.Addr().String(),
		submission: ls.Submission.Addr().String(), pop3: ls.POP3.Addr().String()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sys.Serve(ctx, srv, ls) }()
	var once sync.Once
	var runErr error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return")
			}
			runErr = errors.Join(runErr, sys.Close())
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// smtpSession runs one session with net/smtp: STARTTLS, AUTH when user
// is set, then each transaction (recipients, refused ones included).
func smtpSession(t *testing.T, addr, user string, txs [][]string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	if user != "" {
		if err := c.Auth(smtp.PlainAuth("", user, "secret", "127.0.0.1")); err != nil {
			t.Fatal(err)
		}
	}
	for i, rcpts := range txs {
		if err := c.Mail("bob@example.org"); err != nil {
			t.Fatal(err)
		}
		for _, r := range rcpts {
			c.Rcpt(r) // refused ones are part of the test
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "Subject: "+string(rune('a'+i))+"\r\n\r\nhello\r\n")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

// The acceptance test of the operator's log: an SMTP session with two
// transactions and a refused recipient, a submission with AUTH, and a
// POP3 login give JSON lines that each carry their fields, without a
// duplicate key, that jq reads.
func TestOperatorLog(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	demo, _, err := Init(home, InitOptions{Domain: "example.test", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	// The client's name, as tcpserver's rules can set it.
	if err := tcprules.CompileFile(filepath.Join(home, "control", "tcp.smtp.cdb"), filepath.Join(home, "control", "tcp.smtp.tmp"),
		strings.NewReader("127.0.0.1:allow,TCPREMOTEHOST=\"client.example\"\n")); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	r := startWith(t, home, demo, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	smtpSession(t, r.smtp, "", [][]string{{"demo@example.test", "nobody@far.example"}, {"demo@example.test"}})
	smtpSession(t, r.submission, "demo", [][]string{{"demo@example.test"}})
	waitMaildir(t, r.demo.Maildir, 3)
	time.Sleep(1100 * time.Millisecond) // listed from the second after delivery
	if got := mailtest.Fetch(t, r.pop3, "demo", "secret", true); len(got) != 3 {
		t.Fatalf("POP3 gave %d messages", len(got))
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	text := logs.String()
	lines := strings.Split(strings.TrimSpace(text), "\n")
	var recs []map[string]any
	for _, l := range lines {
		if dups, err := dupKeys(l); err != nil || len(dups) > 0 {
			t.Errorf("line %s: duplicate keys %v, %v", l, dups, err)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %s: %v", l, err)
		}
		recs = append(recs, rec)
	}
	pick := func(msg, event string) []map[string]any {
		var out []map[string]any
		for _, r := range recs {
			if r["msg"] == msg && (event == "" || r["event"] == event) {
				out = append(out, r)
			}
		}
		return out
	}
	has := func(what string, r map[string]any, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if v, ok := r[k]; !ok || v == "" {
				t.Errorf("%s lacks %s: %v", what, k, r)
			}
		}
	}
	client := []string{"ip", "helo", "tls", "cipher"}

	tx := pick("smtpserver: transaction", "transaction")
	if len(tx) != 3 {
		t.Fatalf("%d transaction lines:\n%s", len(tx), text)
	}
	ids := map[string]bool{}
	for i, l := range tx {
		has("transaction", l, append(client, "from", "to", "size", "id", "reply")...)
		if l["part"] == "smtp" {
			has("transaction", l, "host")
		} else {
			has("transaction", l, "user")
		}
		if !strings.HasPrefix(l["reply"].(string), "250 ") || l["from"] != "bob@example.org" || l["size"].(float64) < 10 {
			t.Errorf("transaction %d: %v", i, l)
		}
		ids[l["id"].(string)] = true
	}
	to, _ := json.Marshal(tx[0]["to"])
	if string(to) != `[{"addr":"demo@example.test","code":250},{"addr":"nobody@far.example","code":553}]` {
		t.Errorf("first transaction's recipients: %s", to)
	}
	// The queue id links a transaction to qmail-send's lines.
	linked := 0
	for _, l := range recs {
		if m, _ := l["msg"].(string); strings.HasPrefix(m, "new msg ") {
			if id, ok := l["id"].(float64); ok && ids[jsonNumber(id)] {
				linked++
			}
		}
	}
	if linked != 3 {
		t.Errorf("%d transactions found in qmail-send's lines (new msg, with id)", linked)
	}

	rej := pick("smtpserver: reject", "reject")
	if len(rej) != 1 || rej[0]["reason"] != "relay" || rej[0]["cmd"] != "RCPT" || rej[0]["rcpt"] != "nobody@far.example" ||
		!strings.HasPrefix(rej[0]["reply"].(string), "553 5.7.1 ") {
		t.Errorf("reject lines %v", rej)
	} else {
		has("reject", rej[0], append(client, "host", "from")...)
	}

	ses := pick("smtpserver: session", "session")
	if len(ses) != 2 {
		t.Fatalf("session lines %v", ses)
	}
	for _, s := range ses {
		has("session", s, append(client, "transactions", "messages", "duration", "end")...)
		if s["end"] != "quit" {
			t.Errorf("session %v", s)
		}
	}
	if ses[0]["transactions"] != float64(2) && ses[1]["transactions"] != float64(2) {
		t.Errorf("no session with two transactions: %v", ses)
	}

	login := pick("pop3: login", "login")
	if len(login) != 1 || login[0]["user"] != "demo" || login[0]["method"] != "USER" || login[0]["result"] != "ok" || login[0]["ip"] != "127.0.0.1" {
		t.Errorf("login lines %v", login)
	}
	pses := pick("pop3: session", "session")
	if len(pses) != 1 || pses[0]["user"] != "demo" || pses[0]["retrieved"] != float64(3) || pses[0]["deleted"] != float64(3) || pses[0]["end"] != "quit" {
		t.Errorf("pop3 session lines %v", pses)
	} else {
		has("pop3 session", pses[0], "retrieved_bytes", "deleted_bytes", "duration")
	}

	t.Run("jq", func(t *testing.T) {
		jq, err := exec.LookPath("jq")
		if err != nil {
			t.Skip("jq is not installed (.ci/run installs it): the lines were checked with encoding/json only")
		}
		cmd := exec.Command(jq, "-c", ".")
		cmd.Stdin = strings.NewReader(text)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("jq: %v", err)
		}
		if n := len(strings.Split(strings.TrimSpace(string(out)), "\n")); n != len(lines) {
			t.Errorf("jq gave %d lines for %d", n, len(lines))
		}
	})
}

func jsonNumber(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
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

// scrape returns the System's metrics in Prometheus's text format.
func scrape(t *testing.T, sys *System) string {
	t.Helper()
	rec := httptest.NewRecorder()
	sys.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// The operator's metrics: rejections by reason, TLS and AUTH failures by
// server, delivery latency, the queue's gauges.
func TestOperatorMetrics(t *testing.T) {
	r := start(t, "example.test")
	// An unknown recipient, a failed AUTH, a failed STARTTLS handshake.
	if err := mailtest.Send(r.smtp, "bob@example.org", []string{"nobody@example.test"}, "x\r\n"); err == nil {
		t.Fatal("unknown recipient accepted")
	}
	c, err := smtp.Dial(r.submission)
	if err != nil {
		t.Fatal(err)
	}
	c.StartTLS(&tls.Config{InsecureSkipVerify: true})
	if err := c.Auth(smtp.PlainAuth("", "demo", "wrong", "127.0.0.1")); err == nil {
		t.Fatal("wrong password accepted")
	}
	c.Close()
	nc, err := net.Dial("tcp", r.smtp)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(nc, "EHLO x\r\nSTARTTLS\r\n")
	buf := make([]byte, 4096)
	for got := ""; !strings.Contains(got, "220 2.0.0"); {
		n, err := nc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got += string(buf[:n])
	}
	io.WriteString(nc, "\x16\x03\x01\x00\x05hello")
	io.ReadAll(nc)
	nc.Close()
	if err := mailtest.Send(r.smtp, "bob@example.org", []string{"demo@example.test"}, "Subject: x\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	waitMaildir(t, r.demo.Maildir, 1)

	want := []string{
		`qmailkit_rejections_total{reason="unknown-recipient",server="smtp"} 1`,
		`qmailkit_rejections_total{reason="auth",server="submission"} 1`,
		`qmailkit_rejections_total{reason="tls",server="smtp"} 1`,
		`qmailkit_auth_failures_total{server="submission"} 1`,
		`qmailkit_auth_failures_total{server="pop3"} 0`,
		`qmailkit_tls_failures_total{server="smtp"} 1`,
		`qmailkit_delivery_latency_seconds_count{channel="local",outcome="success"} 1`,
		"qmailkit_queue_messages 0",
		"qmailkit_queue_unprocessed 0",
		"qmailkit_queue_oldest_age_seconds 0",
		"qmailkit_scheduler_up 1",
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		body := scrape(t, r.sys)
		var missing []string
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %q:\n%s", missing, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A failed POP3 login counts under pop3.
	if _, err := pop3Login(r.pop3, "demo", "wrong"); err == nil {
		t.Fatal("wrong POP3 password accepted")
	}
	if body := scrape(t, r.sys); !strings.Contains(body, `qmailkit_auth_failures_total{server="pop3"} 1`+"\n") ||
		!strings.Contains(body, `qmailkit_rejections_total{reason="auth",server="pop3"} 1`+"\n") {
		t.Errorf("POP3 failure not counted:\n%s", body)
	}
}

// pop3Login tries one USER/PASS login and quits.
func pop3Login(addr, user, pass string) (string, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(nc, "USER "+user+"\r\nPASS "+pass+"\r\nQUIT\r\n")
	b, _ := io.ReadAll(nc)
	if strings.Count(string(b), "+OK") < 4 {
		return string(b), errors.New("login refused")
	}
	return string(b), nil
}

// The oldest message's age and the queue's size come from the
// scheduler, with no scan at scrape time.
func TestQueueGaugesFromScheduler(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	demo, _, err := Init(home, InitOptions{Domain: "example.test", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	// The remote channel on hold (qmail's concurrencyremote 0): the
	// message waits.
	if err := os.WriteFile(filepath.Join(home, "control", "concurrencyremote"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startHome(t, home, demo)
	// A message for a remote domain that does not resolve waits in the
	// queue.
	c, err := smtp.Dial(r.submission)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.StartTLS(&tls.Config{InsecureSkipVerify: true})
	if err := c.Auth(smtp.PlainAuth("", "demo", "secret", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("demo@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("x@nonexistent.invalid"); err != nil {
		t.Fatal(err)
	}
	w, _ := c.Data()
	io.WriteString(w, "x\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := r.sys.Scheduler.Stats()
		if st.Messages == 1 && !st.Oldest.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scheduler stats %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.sys.Metrics.now = func() time.Time { return r.sys.Scheduler.Stats().Oldest.Add(90 * time.Second) }
	body := scrape(t, r.sys)
	for _, w := range []string{"qmailkit_queue_messages 1\n", "qmailkit_queue_oldest_age_seconds 90\n"} {
		if !strings.Contains(body, w) {
			t.Errorf("metrics lack %q:\n%s", w, body)
		}
	}
}

// health returns the health handler's status code and checks.
func health(t *testing.T, sys *System) (int, map[string]HealthCheck, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	sys.HealthHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	var body struct {
		Status string
		Checks []HealthCheck
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("health body %q: %v", rec.Body.String(), err)
	}
	m := map[string]HealthCheck{}
	for _, c := range body.Checks {
		m[c.Name] = c
	}
	return rec.Code, m, body.Status
}

// Each check of the health handler fails on its own: a stopped
// scheduler, a listener no longer served, a full disk.
func TestHealthChecks(t *testing.T) {
	r := start(t, "example.test")
	// Run has started the scheduler and the servers by now, or soon.
	code, checks, status := health(t, r.sys)
	for deadline := time.Now().Add(10 * time.Second); (code != 200 || len(checks) != 5) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		code, checks, status = health(t, r.sys)
	}
	if code != 200 || status != "ok" || len(checks) != 5 {
		t.Fatalf("healthy system: %d %s %v", code, status, checks)
	}
	for _, name := range []string{"scheduler", "listener:smtp", "listener:submission", "listener:pop3", "disk"} {
		if checks[name].Status != "ok" {
			t.Errorf("check %s: %+v", name, checks[name])
		}
	}

	tests := []struct {
		name    string
		breakIt func(t *testing.T, r *running) (restore func())
		check   string
	}{
		{"disk", func(t *testing.T, r *running) func() {
			sp := r.sys.space
			sp.mu.Lock()
			sp.statfs = func(_ string, st *unix.Statfs_t) error {
				st.Bavail, st.Bsize, st.Files, st.Ffree = 1, 4096, 1000, 1000
				return nil
			}
			sp.checked = time.Time{}
			sp.mu.Unlock()
			return func() {
				sp.mu.Lock()
				sp.statfs, sp.checked = nil, time.Time{}
				sp.mu.Unlock()
			}
		}, "disk"},
		{"listener", func(t *testing.T, r *running) func() {
			stopped := &smtpserver.Server{}
			r.sys.Metrics.watchServer("extra", stopped)
			return func() {
				r.sys.Metrics.mu.Lock()
				r.sys.Metrics.servers = r.sys.Metrics.servers[:len(r.sys.Metrics.servers)-1]
				r.sys.Metrics.mu.Unlock()
			}
		}, "listener:extra"},
		{"pop3 listener", func(t *testing.T, r *running) func() {
			r.sys.Metrics.watchServer("pop3s", &pop3.Server{})
			return func() {
				r.sys.Metrics.mu.Lock()
				r.sys.Metrics.servers = r.sys.Metrics.servers[:len(r.sys.Metrics.servers)-1]
				r.sys.Metrics.mu.Unlock()
			}
		}, "listener:pop3s"},
		{"scheduler", func(t *testing.T, r *running) func() {
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			return func() {}
		}, "scheduler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			restore := tt.breakIt(t, r)
			defer restore()
			code, checks, status := health(t, r.sys)
			if code != 503 || status != "fail" || checks[tt.check].Status != "fail" || checks[tt.check].Error == "" {
				t.Errorf("%s broken: %d %s %+v", tt.check, code, status, checks)
			}
			for name, c := range checks {
				if name != tt.check && c.Status != "ok" && tt.check != "scheduler" {
					t.Errorf("check %s failed too: %+v", name, c)
				}
			}
		})
	}
}

// qmail's log format, as examples/mta -log qmail sets it up: the
// scheduler's lines through queue.LogHandler with splogger's timestamps
// (what qmailanalog's matchup reads), the servers' as slog text, in one
// stream.
func TestQmailLogFormat(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	demo, _, err := Init(home, InitOptions{Domain: "example.test", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	r := startWith(t, home, demo, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), SendLogger: slog.New(queue.NewLogHandler(&logs, true))})
	if err := mailtest.Send(r.smtp, "bob@example.org", []string{"demo@example.test"}, "Subject: x\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	waitMaildir(t, r.demo.Maildir, 1)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	text := logs.String()
	qmailLine := regexp.MustCompile(`^[0-9]+\.[0-9]{6} (status: |new msg [0-9]+$|info msg [0-9]+: bytes [0-9]+ from <bob@example.org> qp [0-9]+ uid [0-9]+$|starting delivery 1: msg [0-9]+ to local demo@example.test$|delivery 1: success: |end msg [0-9]+$)`)
	var qmail, server int
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		switch {
		case qmailLine.MatchString(l):
			qmail++
		case strings.HasPrefix(l, "time="):
			server++
		default:
			t.Errorf("line %q is neither qmail-send's nor slog's", l)
		}
	}
	if qmail < 7 || !strings.Contains(text, `msg="smtpserver: transaction"`) {
		t.Errorf("%d qmail-send lines, %d others:\n%s", qmail, server, text)
	}
}
