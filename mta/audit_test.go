package mta

import (
	"bufio"
	"fmt"
	"net"
	"net/http/httptest"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/assign"
	"github.com/qmailkit/qmailkit/tcprules"
)

// The attacks of the security audit (issue 17) replayed against a whole
// system: each test fails without the defence it names.

// TestAuditPasswordGuessing: 300 clients guessing POP3 passwords in
// parallel from one address. The audit saw 135 checks a second; with the
// shared limiter only the free attempts and one delayed attempt at a time
// are checked.
func TestAuditPasswordGuessing(t *testing.T) {
	r := start(t, "example.test")
	var checked, throttled, refused atomic.Int64
	deadline := time.Now().Add(5 * time.Second)
	var wg sync.WaitGroup
	for g := range 300 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				c, err := net.DialTimeout("tcp", r.pop3, 5*time.Second)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				c.SetDeadline(time.Now().Add(90 * time.Second))
				br := bufio.NewReader(c)
				greet, _ := br.ReadString('\n')
				if !strings.HasPrefix(greet, "+OK") {
					refused.Add(1)
					c.Close()
					time.Sleep(50 * time.Millisecond)
					continue
				}
				fmt.Fprintf(c, "USER demo\r\nPASS guess-%d-%d\r\n", g, i)
				br.ReadString('\n') // USER's +OK
				reply, _ := br.ReadString('\n')
				switch {
				case strings.Contains(reply, "too many failed"):
					throttled.Add(1)
				case strings.HasPrefix(reply, "-ERR"):
					checked.Add(1)
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	t.Logf("in 5 s: %d passwords checked, %d attempts throttled, %d connections refused", checked.Load(), throttled.Load(), refused.Load())
	// 3 free attempts, then delays of 1, 2 and 4 s, one at a time.
	if n := checked.Load(); n > 10 {
		t.Errorf("%d passwords checked in 5 s from one address, want at most 10", n)
	}
	if throttled.Load() == 0 {
		t.Error("no attempt was throttled")
	}
	rec := httptest.NewRecorder()
	r.sys.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `qmailkit_auth_throttled_total{event="refuse"}`) ||
		strings.Contains(rec.Body.String(), `qmailkit_auth_throttled_total{event="refuse"} 0`+"\n") {
		t.Errorf("metrics do not count the refusals:\n%s", grepLines(rec.Body.String(), "qmailkit_auth"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// TestAuditIdleConnections: 2,000 idle connections from one address
// (not a relay client) do not keep another address from its greeting.
// The audit saw the SMTP port's 40 slots taken by one address.
func TestAuditIdleConnections(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	demo, _, err := Init(home, InitOptions{Domain: "example.test", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	// 127.0.0.1 is an ordinary client here, not a trusted relay.
	rules := filepath.Join(home, "control", "tcp.smtp")
	if err := os.WriteFile(rules, []byte(":allow\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(rules)
	if err != nil {
		t.Fatal(err)
	}
	err = tcprules.CompileFile(rules+".cdb", rules+".tmp", f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := startHome(t, home, demo)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 2000 {
		c, err := net.DialTimeout("tcp", r.smtp, 5*time.Second)
		if err != nil {
			t.Fatalf("after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", r.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	greet, err := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(greet, "220 ") {
		t.Fatalf("127.0.0.2 got %q, %v while 127.0.0.1 held 2,000 connections; want its 220", greet, err)
	}
	// The first address got a session for 20 of them and 421 for the rest.
	c0 := conns[len(conns)-1]
	c0.SetDeadline(time.Now().Add(5 * time.Second))
	if line, _ := bufio.NewReader(c0).ReadString('\n'); !strings.HasPrefix(line, "421 ") {
		t.Errorf("the 2,000th connection from 127.0.0.1 got %q, want 421", line)
	}
}

// TestAuditDuplicateRecipients: 1,000 RCPT of one address in one
// transaction deliver one copy.
func TestAuditDuplicateRecipients(t *testing.T) {
	r := start(t, "example.test")
	c, err := smtp.Dial(r.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("bob@example.org"); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		rcpt := "demo@example.test"
		if i%2 == 1 {
			rcpt = "demo@EXAMPLE.test"
		}
		if err := c.Rcpt(rcpt); err != nil {
			t.Fatalf("RCPT %d: %v", i+1, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "Subject: many\r\n\r\nonce\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	waitMaildir(t, r.demo.Maildir, 1)
	time.Sleep(500 * time.Millisecond)
	waitMaildir(t, r.demo.Maildir, 1) // still one
}

// TestAuditRCPTReadsOnlyOwnDotQmail: at RCPT the server looks at the
// .qmail files of its own uid's users only. Another user's are not read
// with its rights: a symlink there to a file of the server's (which that
// user cannot read) must not tell the client whether the file exists.
func TestAuditRCPTReadsOnlyOwnDotQmail(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	demo, _, err := Init(home, InitOptions{Domain: "example.test", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	// The server's own files, seen through the other user's home.
	os.Symlink(filepath.Join(home, "control", "me"), filepath.Join(other, ".qmail-yes"))
	os.Symlink(filepath.Join(home, "control", "nonexistent"), filepath.Join(other, ".qmail-no"))
	assignPath := filepath.Join(home, "users", "assign")
	data, err := os.ReadFile(assignPath)
	if err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("+other-:other:%d:%d:%s:-::\n", os.Geteuid()+1, os.Getegid()+1, other)
	data = []byte(line + string(data))
	if err := os.WriteFile(assignPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := assign.CompileFile(assignPath, filepath.Join(home, "users", "cdb")); err != nil {
		t.Fatal(err)
	}
	r := startHome(t, home, demo)
	for _, rcpt := range []string{"other-yes@example.test", "other-no@example.test"} {
		c, err := smtp.Dial(r.smtp)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Mail("bob@example.org"); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt(rcpt); err != nil {
			t.Errorf("RCPT %s: %v; want it accepted whatever the other user's .qmail files say", rcpt, err)
		}
		c.Close()
	}
}
