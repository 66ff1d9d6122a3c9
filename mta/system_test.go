package mta

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/assign"
	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/mailtest"
	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/smtpserver"
)

var _ smtpserver.Enqueuer = (*queue.Queue)(nil)

// running is a System serving on 127.0.0.1 ports.
type running struct {
	sys                    *System
	demo                   Demo
	smtp, submission, pop3 string
	stop                   func() error
}

func start(t *testing.T, domain string) *running {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	demo, created, err := Init(home, InitOptions{Domain: domain, Password: "secret"})
	if err != nil || !created {
		t.Fatalf("Init: %v, created %v", err, created)
	}
	return startHome(t, home, demo)
}

func startHome(t testing.TB, home string, demo Demo) *running {
	t.Helper()
	sys, err := Open(home, Options{})
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
	var ls Listeners
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	ls.SMTP, ls.Submission, ls.POP3 = listen(), listen(), listen()
	r := &running{sys: sys, demo: demo, smtp: ls.SMTP.Addr().String(),
		submission: ls.Submission.Addr().String(), pop3: ls.POP3.Addr().String()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sys.Serve(ctx, srv, ls) }()
	var stopped bool
	var runErr error
	r.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return")
			}
			if err := sys.Close(); err != nil && runErr == nil {
				runErr = err
			}
		}
		return runErr
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// waitMaildir waits until the Maildir holds n messages and returns them.
func waitMaildir(t *testing.T, md string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs, err := maildir.Dir(md).List()
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) >= n {
			var out []string
			for _, m := range msgs {
				f, err := maildir.Dir(md).OpenMessage(m)
				if err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(f.Name())
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, string(b))
			}
			if len(msgs) > n {
				t.Fatalf("%d messages in %s, want %d:\n%s", len(msgs), md, n, strings.Join(out, "\n----\n"))
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages in %s after 20 s, want %d", len(msgs), md, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSMTPToMaildirToPOP3(t *testing.T) {
	r := start(t, "example.test")
	msg := "Subject: hello\r\n\r\nfirst message\r\n"
	if err := mailtest.Send(r.smtp, "bob@example.org", []string{"demo@example.test"}, msg); err != nil {
		t.Fatal(err)
	}
	got := waitMaildir(t, r.demo.Maildir, 1)
	for _, want := range []string{"Return-Path: <bob@example.org>\n", "Delivered-To: demo@example.test\n", "Received: (qmail ", "invoked from network", "Subject: hello\n\nfirst message\n"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("delivered message lacks %q:\n%s", want, got[0])
		}
	}
	// The message is listed only from the second after its delivery.
	time.Sleep(1100 * time.Millisecond)
	fetched := mailtest.Fetch(t, r.pop3, "demo", "secret", true)
	if len(fetched) != 1 || !strings.Contains(fetched[0], "first message") {
		t.Fatalf("POP3 gave %q", fetched)
	}
	if msgs, _ := maildir.Dir(r.demo.Maildir).List(); len(msgs) != 0 {
		t.Errorf("%d messages left after DELE and QUIT", len(msgs))
	}

	rec := httptest.NewRecorder()
	r.sys.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		"# TYPE qmailkit_queue_messages gauge\nqmailkit_queue_messages 0\n",
		`qmailkit_deliveries_total{channel="local",outcome="success"} 1` + "\n",
		`qmailkit_deliveries_total{channel="remote",outcome="failure"} 0` + "\n",
		`qmailkit_connections_total{server="smtp"} 1` + "\n",
		`qmailkit_connections_total{server="pop3"} 1` + "\n",
		`qmailkit_connections_total{server="submission"} 0` + "\n",
		"# TYPE process_resident_memory_bytes gauge\n",
		"# TYPE go_goroutines gauge\n",
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, rec.Body.String())
		}
	}
	rec = httptest.NewRecorder()
	r.sys.HealthHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), `{"status":"ok",`) {
		t.Errorf("health: %d %q", rec.Code, rec.Body.String())
	}
}

func TestUnknownRecipientRefusedAtRCPT(t *testing.T) {
	r := start(t, "example.test")
	if err := os.WriteFile(filepath.Join(r.demo.Maildir, "..", ".qmail-list"), []byte("./Maildir/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rcpt string
		code int // 0: accepted
	}{
		{"nobody@example.test", 550},
		{"demo-nope@example.test", 550},
		{"demo@example.test", 0},
		{"DEMO@EXAMPLE.TEST", 0},
		{"demo-list@example.test", 0},
		{"postmaster@example.test", 0},
		{"someone@elsewhere.test", 0}, // 127.0.0.1 has RELAYCLIENT (control/tcp.smtp)
	}
	for _, tt := range tests {
		t.Run(tt.rcpt, func(t *testing.T) {
			c, err := smtp.Dial(r.smtp)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Mail("bob@example.org"); err != nil {
				t.Fatal(err)
			}
			err = c.Rcpt(tt.rcpt)
			var te *textproto.Error
			switch {
			case tt.code == 0 && err != nil:
				t.Fatalf("RCPT %s: %v", tt.rcpt, err)
			case tt.code != 0 && (!errors.As(err, &te) || te.Code != tt.code):
				t.Fatalf("RCPT %s: %v, want %d", tt.rcpt, err, tt.code)
			}
		})
	}
}

func TestBounceToLocalSender(t *testing.T) {
	r := start(t, "example.test")
	// Injected straight into the queue, as qmail-inject would: the
	// recipient check at RCPT is not in the way.
	_, err := r.sys.Queue.Inject(t.Context(), queue.Envelope{Sender: "demo@example.test", Recipients: []string{"nobody@example.test"}},
		strings.NewReader("Subject: lost\n\nto nobody\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := waitMaildir(t, r.demo.Maildir, 1)
	for _, want := range []string{"Return-Path: <>\n", "From: MAILER-DAEMON@example.test\n", "Hi. This is the qmail-send program at example.test.",
		"<nobody@example.test>:\nSorry, no mailbox here by that name. (#5.1.1)", "Subject: lost\n"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("bounce lacks %q:\n%s", want, got[0])
		}
	}
}

func TestAliasAndExtension(t *testing.T) {
	r := start(t, "example.test")
	userHome := filepath.Dir(r.demo.Maildir)
	if err := os.MkdirAll(filepath.Join(userHome, "lists"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := maildir.Create(filepath.Join(userHome, "lists", "Maildir")); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		filepath.Join(r.sys.Home.Home, "alias", ".qmail-info"): "demo\n",             // an alias forwarding to demo
		filepath.Join(userHome, ".qmail-list-default"):         "./lists/Maildir/\n", // demo-list-* to another Maildir
	}
	for path, data := range files {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := mailtest.Send(r.smtp, "bob@example.org", []string{"info@example.test"}, "Subject: alias\r\n\r\nvia alias\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := mailtest.Send(r.smtp, "bob@example.org", []string{"demo-list-go@example.test"}, "Subject: ext\r\n\r\nvia extension\r\n"); err != nil {
		t.Fatal(err)
	}
	got := waitMaildir(t, r.demo.Maildir, 1)
	for _, want := range []string{"Delivered-To: info@example.test\n", "Delivered-To: demo@example.test\n", "via alias"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("aliased message lacks %q:\n%s", want, got[0])
		}
	}
	got = waitMaildir(t, filepath.Join(userHome, "lists", "Maildir"), 1)
	for _, want := range []string{"Delivered-To: demo-list-go@example.test\n", "via extension"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("extension message lacks %q:\n%s", want, got[0])
		}
	}
}

func TestSubmissionToSecondSystem(t *testing.T) {
	there := start(t, "there.test")
	here := start(t, "here.test")
	host, port, _ := net.SplitHostPort(there.smtp)
	if err := os.WriteFile(here.sys.Home.Path("smtproutes"), []byte("there.test:"+host+":"+port+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// smtproutes is reread by Reload, on the running system.
	if err := here.sys.ReloadHome(); err != nil {
		t.Fatal(err)
	}

	c, err := smtp.Dial(here.submission)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("demo@here.test"); err == nil {
		t.Fatal("MAIL before AUTH accepted on submission")
	}
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(smtp.PlainAuth("", "demo", "wrong", "127.0.0.1")); err == nil {
		t.Fatal("wrong password accepted")
	}
	c.Close()
	c, err = smtp.Dial(here.submission)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(smtp.PlainAuth("", "demo", "secret", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("demo@here.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("demo@there.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "Subject: across\r\n\r\nfrom here to there\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	got := waitMaildir(t, there.demo.Maildir, 1)
	if !strings.Contains(got[0], "from here to there") || !strings.Contains(got[0], "Return-Path: <demo@here.test>") {
		t.Fatalf("message at the second system:\n%s", got[0])
	}
	time.Sleep(1100 * time.Millisecond)
	if f := mailtest.Fetch(t, there.pop3, "demo", "secret", true); len(f) != 1 {
		t.Fatalf("POP3 at the second system gave %d messages", len(f))
	}
}

func TestReloadRcpthosts(t *testing.T) {
	r := start(t, "example.test")
	// Without RELAYCLIENT: drop the tcp.smtp rules (a missing file allows
	// everyone with no variables).
	if err := os.Remove(r.sys.Home.Path("tcp.smtp.cdb")); err != nil {
		t.Fatal(err)
	}
	rcpt := func() error {
		c, err := smtp.Dial(r.smtp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Mail("bob@example.org"); err != nil {
			t.Fatal(err)
		}
		return c.Rcpt("demo@other.test")
	}
	if err := rcpt(); err == nil {
		t.Fatal("other.test accepted before it is in rcpthosts")
	}
	for name, data := range map[string]string{"rcpthosts": "example.test\nother.test\n", "locals": "example.test\nother.test\n"} {
		if err := os.WriteFile(r.sys.Home.Path(name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.sys.ReloadHome(); err != nil {
		t.Fatal(err)
	}
	if err := rcpt(); err != nil {
		t.Fatalf("other.test refused after Reload: %v", err)
	}
	if err := mailtest.Send(r.smtp, "bob@example.org", []string{"demo@other.test"}, "Subject: x\r\n\r\nnew local domain\r\n"); err != nil {
		t.Fatal(err)
	}
	got := waitMaildir(t, r.demo.Maildir, 1)
	if !strings.Contains(got[0], "Delivered-To: demo@other.test") {
		t.Fatalf("message:\n%s", got[0])
	}
}

// Reload gives SMTP sessions that start later the new databytes and
// smtpgreeting; a session opened before keeps the old ones and is not
// dropped; a Reload that cannot read a control file changes nothing.
func TestReloadSMTPSettings(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	demo, _, err := Init(home, InitOptions{Domain: "example.test", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	d := control.Dir{Home: home}
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(d.Path(name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("databytes", "1000\n")
	write("smtpgreeting", "old.test OLD\n")
	r := startHome(t, home, demo)
	dial := func() (*textproto.Conn, string) {
		t.Helper()
		c, err := textproto.Dial("tcp", r.smtp)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_, greeting, err := c.ReadResponse(220)
		if err != nil {
			t.Fatal(err)
		}
		return c, greeting
	}
	// cmd sends a command and returns the reply's code and text.
	cmd := func(c *textproto.Conn, line string) (int, string) {
		t.Helper()
		if err := c.PrintfLine("%s", line); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		code, msg, err := c.ReadResponse(0)
		if err != nil && code == 0 {
			t.Fatalf("%s: %v", line, err)
		}
		return code, msg
	}
	// send sends a message of size bytes and returns the final reply code.
	send := func(c *textproto.Conn, size int) int {
		t.Helper()
		for _, l := range []string{"MAIL FROM:<bob@example.org>", "RCPT TO:<demo@example.test>", "DATA"} {
			if code, msg := cmd(c, l); code >= 400 {
				t.Fatalf("%s: %d %s", l, code, msg)
			}
		}
		w := c.DotWriter()
		fmt.Fprintf(w, "%s\r\n", strings.Repeat("x", size-1))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		code, _, err := c.ReadResponse(0)
		if code == 0 {
			t.Fatal(err)
		}
		return code
	}

	old, greeting := dial()
	if greeting != "old.test OLD ESMTP" {
		t.Fatalf("greeting before Reload %q", greeting)
	}
	write("databytes", "100\n")
	write("smtpgreeting", "new.test NEW\n")
	if err := r.sys.ReloadHome(); err != nil {
		t.Fatal(err)
	}
	fresh, greeting := dial()
	if greeting != "new.test NEW ESMTP" {
		t.Fatalf("greeting after Reload %q", greeting)
	}
	for _, tt := range []struct {
		name     string
		c        *textproto.Conn
		greeting string
		size     int
		want     int
	}{
		{"new session under the new limit", fresh, "new.test NEW", 50, 250},
		{"new session over the new limit", fresh, "new.test NEW", 500, 552},
		{"old session over the new limit", old, "old.test OLD", 500, 250},
		{"old session over the old limit", old, "old.test OLD", 2000, 552},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if code, msg := cmd(tt.c, "HELO client.example"); code != 250 || msg != tt.greeting {
				t.Fatalf("HELO: %d %q, want 250 %q", code, msg, tt.greeting)
			}
			if got := send(tt.c, tt.size); got != tt.want {
				t.Fatalf("%d-byte message: %d, want %d", tt.size, got, tt.want)
			}
		})
	}
	if code, msg := cmd(old, "QUIT"); code != 221 || msg != "old.test OLD" {
		t.Fatalf("old session QUIT: %d %q", code, msg)
	}

	// A control file that cannot be read: Reload fails and the servers keep
	// the values they had.
	if err := os.Remove(d.Path("smtpgreeting")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(d.Path("smtpgreeting"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("databytes", "0\n")
	if err := r.sys.ReloadHome(); err == nil {
		t.Fatal("Reload with an unreadable smtpgreeting: no error")
	}
	after, greeting := dial()
	if greeting != "new.test NEW ESMTP" {
		t.Fatalf("greeting after a failed Reload %q", greeting)
	}
	if got := send(after, 500); got != 552 {
		t.Fatalf("500-byte message after a failed Reload: %d, want 552", got)
	}
}

func TestInitReusesHome(t *testing.T) {
	home := filepath.Join(t.TempDir(), "a", "home")
	d1, created, err := Init(home, InitOptions{})
	if err != nil || !created {
		t.Fatalf("Init: %v %v", err, created)
	}
	if d1.Domain != "localhost" || d1.User != "demo" || len(d1.Password) != 12 {
		t.Fatalf("demo %+v", d1)
	}
	d2, created, err := Init(home, InitOptions{Password: "other"})
	if err != nil || created {
		t.Fatalf("second Init: %v %v", err, created)
	}
	// The password is stored hashed: a second start cannot show it.
	want := d1
	want.Password = ""
	if d2 != want {
		t.Fatalf("second Init read %+v, want %+v", d2, want)
	}
	data, err := os.ReadFile(filepath.Join(home, "users", "poppasswd"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), ":{SHA512-CRYPT}$6$") || strings.Contains(string(data), d1.Password) {
		t.Fatalf("users/poppasswd does not hold the password hashed: %q", data)
	}
	// An empty directory is made a home; one with files but no
	// control/me is left alone.
	empty := t.TempDir()
	if _, created, err := Init(empty, InitOptions{}); err != nil || !created {
		t.Fatalf("Init of an empty directory: %v %v", err, created)
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "precious"), []byte("x"), 0o644)
	if _, _, err := Init(other, InitOptions{}); err == nil {
		t.Fatal("Init took a non-empty directory")
	}
	if entries, _ := os.ReadDir(other); len(entries) != 1 {
		t.Fatalf("Init changed a non-empty directory: %v", entries)
	}
}

func TestRoutingAndBounceControls(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "control")
	os.MkdirAll(dir, 0o755)
	sys := func() (*System, error) { return Open(home, Options{}) }
	if _, err := sys(); !errors.Is(err, ErrNoControls) {
		t.Fatalf("Open without me and locals: %v, want ErrNoControls", err)
	}
	for name, data := range map[string]string{
		"me":             "mx.example.test\n",
		"virtualdomains": "# comment\nvirt.test:joe\nnocolon\n",
		"doublebounceto": "\n",
		"bouncefrom":     "bounces\n",
	} {
		os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644)
	}
	cd := control.Dir{Home: home}
	r, err := Routing(cd)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Locals) != 1 || r.Locals[0] != "mx.example.test" || r.EnvNoAtHost != "mx.example.test" ||
		len(r.VirtualDomains) != 1 || r.VirtualDomains[0] != (queue.VirtualDomain{Key: "virt.test", Prepend: "joe"}) {
		t.Fatalf("routing %+v", r)
	}
	b, err := Bounce(cd)
	if err != nil {
		t.Fatal(err)
	}
	if b.From != "bounces" || b.Host != "mx.example.test" || !b.DoubleToEmpty || b.DoubleHost != "mx.example.test" {
		t.Fatalf("bounce %+v", b)
	}
	s, err := ReadScheduling(cd)
	if err != nil || s.ConcurrencyLocal != 10 || s.ConcurrencyRemote != 20 || s.Lifetime != queue.DefaultLifetime {
		t.Fatalf("scheduling %+v %v", s, err)
	}
	os.WriteFile(filepath.Join(dir, "concurrencyremote"), []byte("0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "concurrencylocal"), []byte("500\n"), 0o644)
	if s, _ := ReadScheduling(cd); s.ConcurrencyRemote != -1 || s.ConcurrencyLocal != queue.MaxConcurrency {
		t.Fatalf("scheduling %+v", s)
	}
}

// fakeLocal is a LocalDeliverer that records what it is given.
type fakeLocal struct {
	mu   sync.Mutex
	got  []string
	fail bool
}

func (f *fakeLocal) Deliver(ctx context.Context, sender, recipient string, msg io.Reader) (dotqmail.Result, error) {
	b, err := io.ReadAll(msg)
	if err != nil {
		return dotqmail.Result{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, sender+" "+recipient+" "+string(b))
	if f.fail {
		return dotqmail.Result{Report: "Sorry, no mailbox here by that name. (#5.1.1)\n"},
			&dotqmail.Error{Text: "Sorry, no mailbox here by that name. (#5.1.1)", Perm: true}
	}
	return dotqmail.Result{Report: "did 0+0+1\n"}, nil
}

// TestLocalDeliverer: Options.LocalDeliverer makes the local deliveries
// instead of System.Local, and its report and error class are the queue's.
func TestLocalDeliverer(t *testing.T) {
	for _, tt := range []struct {
		name string
		fail bool
		own  bool // the demo user has this process's uid and gid
		log  string
	}{
		{"other uid", false, false, "delivery 1: success: did_0+0+1/"},
		{"other uid, failing", true, false, "delivery 1: failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/"},
		{"own uid: in-process", true, true, "delivery 1: success: did_1+0+0/"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "home")
			demo, _, err := Init(home, InitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !tt.own {
				// The demo user under another uid.
				assignFile := filepath.Join(home, "users", "assign")
				b, err := os.ReadFile(assignFile)
				if err != nil {
					t.Fatal(err)
				}
				own := fmt.Sprintf(":%d:%d:", os.Getuid(), os.Getgid())
				other := fmt.Sprintf(":%d:%d:", os.Getuid()+1, os.Getgid())
				if err := os.WriteFile(assignFile, []byte(strings.ReplaceAll(string(b), own, other)), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := assign.CompileFile(assignFile, filepath.Join(home, "users", "cdb")); err != nil {
					t.Fatal(err)
				}
			}
			fake := &fakeLocal{fail: tt.fail}
			var log syncBuilder
			sys, err := Open(home, Options{LocalDeliverer: fake, SendLogger: slog.New(queue.NewLogHandler(&log, false))})
			if err != nil {
				t.Fatal(err)
			}
			defer sys.Close()
			if _, err := sys.Queue.Inject(t.Context(), queue.Envelope{Sender: "bob@example.org", Recipients: []string{demo.Address()}}, strings.NewReader("Subject: x\n\nhi\n")); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- sys.Scheduler.Run(ctx) }()
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(log.String(), "delivery 1: ") {
				if time.Now().After(deadline) {
					t.Fatalf("no delivery logged:\n%s", log.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(log.String(), tt.log) {
				t.Errorf("log lacks %q:\n%s", tt.log, log.String())
			}
			fake.mu.Lock()
			defer fake.mu.Unlock()
			n, _ := maildir.Dir(demo.Maildir).List()
			if tt.own {
				if len(fake.got) != 0 || len(n) != 1 {
					t.Errorf("LocalDeliverer got %q, System.Local delivered %d: want 0 and 1", fake.got, len(n))
				}
				return
			}
			if len(fake.got) < 1 || !strings.HasPrefix(fake.got[0], "bob@example.org "+demo.Address()+" Received: ") || !strings.HasSuffix(fake.got[0], "\nSubject: x\n\nhi\n") {
				t.Errorf("LocalDeliverer got %q", fake.got)
			}
			if len(n) != 0 {
				t.Errorf("System.Local delivered too")
			}
		})
	}
}

type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
