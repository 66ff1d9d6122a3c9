// Package dovecot holds the Dovecot configuration that serves the mta's
// virtual mailboxes over IMAP (dovecot.conf) and its test: the mta run as
// its account with a domain and mailboxes made by its own commands,
// Debian's Dovecot run from this file on a loopback port, logins through
// examples/vchkpw against the home's virtual mailboxes, Python's imaplib
// reading a message the mta received over SMTP and delivered, moving it to
// a folder our maildir package then reads, and filling the Maildir++
// quota, over which the mta then bounces a message it accepted.
package dovecot

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/mta"
	"github.com/qmailkit/qmailkit/vmail"
)

// The test binary is also a helper the test runs as the mta's account,
// who owns the virtual-mail store: "-noimap HOME ADDRESS" sets a flag the
// mta's commands do not set.
func TestMain(m *testing.M) {
	if len(os.Args) == 4 && os.Args[1] == "-noimap" {
		os.Exit(noIMAP(os.Args[2], os.Args[3]))
	}
	os.Exit(m.Run())
}

// noIMAP gives the mailbox addr of home the NoIMAP flag: exit 0, else 1
// with the error on standard output.
func noIMAP(home, addr string) int {
	ctx := context.Background()
	m, err := mta.OpenVirtual(ctx, home, vmail.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer m.Store().Close()
	if err := m.SetFlags(ctx, addr, vmail.NoIMAP); err != nil {
		fmt.Println(err)
		return 1
	}
	return 0
}

// account is the unprivileged account the mta runs as, who owns the
// virtual Maildirs and whom Dovecot runs as.
type account struct {
	name     string
	uid, gid int
}

// testAccount returns the account qmailkittest (the one examples/mta's
// root tests use), made with useradd if it does not exist: the mta
// refuses nobody.
func testAccount(t *testing.T) account {
	t.Helper()
	const name = "qmailkittest"
	if _, err := user.Lookup(name); err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", "--user-group", name).CombinedOutput(); err != nil {
			if _, lerr := user.Lookup(name); lerr != nil {
				t.Skipf("no account %s and useradd failed: %v: %s", name, err, out)
			}
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		t.Fatalf("account %s: uid %q gid %q", name, u.Uid, u.Gid)
	}
	return account{name, uid, gid}
}

// helper copies the test binary to dir, where the account can run it (go
// test's own directory is root's alone).
func helper(t *testing.T, dir string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "helper")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// goBuild builds the package pkg of the module into dir/name.
func goBuild(t *testing.T, dir, name, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// syncBuffer is a bytes.Buffer safe for a process's writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startMTA runs the mta on home as acct, with its SMTP listener on a
// loopback port and no other, until the test ends; it returns the SMTP
// address from the banner and the mta's standard error.
func startMTA(t *testing.T, bin, home string, acct account) (string, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(bin, "-home", home, "-user", acct.name, "-smtp", "127.0.0.1:0",
		"-submission", "", "-submissions", "", "-pop3", "", "-pop3s", "", "-admin", "")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + filepath.Dir(home)}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("mta stderr:\n%s", stderr)
		}
	})
	// A bound, not a measure: a first start under -race on a loaded
	// machine is slow.
	timeout := time.After(60 * time.Second)
	var banner strings.Builder
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("mta exited before its banner:\n%s\nstderr:\n%s", banner.String(), stderr)
			}
			banner.WriteString(line + "\n")
			// The banner prints the listeners once they are bound; with
			// no POP3 listener it has no "Stop with" line to wait for.
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "SMTP" {
				if f[1] == "off" {
					t.Fatalf("SMTP off in the banner:\n%s", banner.String())
				}
				go func() {
					for range lines {
					}
				}()
				return f[1], stderr
			}
		case <-timeout:
			t.Fatalf("no banner after 60 s:\n%s\nstderr:\n%s", banner.String(), stderr)
		}
	}
}

// admin runs "mta -home home ARGS..." with stdin, failing the test unless
// it exits 0.
func admin(t *testing.T, bin, home, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-home", home}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mta %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// send sends msg from from to to over SMTP (no STARTTLS) to addr.
func send(t *testing.T, addr, from, to, msg string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail(from); err != nil {
		t.Fatalf("MAIL FROM:<%s>: %v", from, err)
	}
	if err := c.Rcpt(to); err != nil {
		t.Fatalf("RCPT TO:<%s>: %v", to, err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if _, err := io.WriteString(w, msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

// waitMessages waits (up to 60 s) until the Maildir dir holds n messages
// and returns them, oldest first as package maildir lists them.
func waitMessages(t *testing.T, dir string, n int, mtaErr *syncBuffer) []string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		msgs, _ := maildir.Dir(dir).List()
		if len(msgs) >= n {
			var bodies []string
			for _, m := range msgs {
				b, err := os.ReadFile(filepath.Join(dir, m.Path()))
				if err != nil {
					t.Fatal(err)
				}
				bodies = append(bodies, string(b))
			}
			return bodies
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d messages after 60 s, want %d; mta stderr:\n%s", dir, len(msgs), n, mtaErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// need skips the test when a program is missing.
func need(t *testing.T, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s missing (install Debian's %s)", path, pkg)
	}
}

// freePort returns a loopback port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// config returns dovecot.conf made to run in dir: the checkpassword
// command, plain text on a loopback port, its own base_dir and log.
func config(t *testing.T, dir string, port int, chkpw string) string {
	t.Helper()
	b, err := os.ReadFile("dovecot.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	replace := []struct{ old, new string }{
		{"args = /usr/local/bin/vchkpw -home /var/lib/qmailkit", "args = " + chkpw},
		{"listen = *, ::", "listen = 127.0.0.1"},
		{"ssl = required", "ssl = no"},
		{"ssl_cert = </var/lib/qmailkit/control/servercert.pem\n", ""},
		{"ssl_key = </var/lib/qmailkit/control/servercert.pem\n", ""},
		{"disable_plaintext_auth = yes", "disable_plaintext_auth = no"},
		{"log_path = syslog", "log_path = " + filepath.Join(dir, "dovecot.log")},
	}
	for _, r := range replace {
		if !strings.Contains(conf, r.old) {
			t.Fatalf("dovecot.conf has no %q", r.old)
		}
		conf = strings.Replace(conf, r.old, r.new, 1)
	}
	conf += fmt.Sprintf(`
base_dir = %s/run
state_dir = %s/state
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %d
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
}
`, dir, dir, port)
	return conf
}

// startDovecot runs dovecot -F with conf until the test ends.
func startDovecot(t *testing.T, dir, conf string, port int) {
	t.Helper()
	path := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command("/usr/sbin/dovecot", "-F", "-c", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Logf("dovecot output: %s\ndovecot.log:\n%s", out.String(), log)
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Fatalf("dovecot exited: %v: %s%s", err, out.String(), log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecot not listening on %s after 20s: %s", addr, out.String())
		}
	}
}

func TestDovecotIMAP(t *testing.T) {
	need(t, "/usr/sbin/dovecot", "dovecot-imapd")
	need(t, "/usr/lib/dovecot/imap", "dovecot-imapd")
	need(t, "/usr/lib/dovecot/checkpassword-reply", "dovecot-core")
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 missing (install Debian's python3)")
	}
	if os.Geteuid() != 0 {
		t.Skip("Dovecot's master runs as root: run the test as root")
	}
	// Not t.TempDir: Dovecot's processes, some of them unprivileged,
	// need to reach the directory.
	dir, err := os.MkdirTemp("", "dovecot-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	// The mta, run as its account, who owns the queue and the virtual
	// mailboxes, and whom Dovecot runs as (vchkpw passes the queue's
	// owner as userdb_uid).
	acct := testAccount(t)
	mtaBin := goBuild(t, dir, "mta", "github.com/qmailkit/qmailkit/examples/mta")
	home := filepath.Join(dir, "home")
	smtpAddr, mtaErr := startMTA(t, mtaBin, home, acct)

	// The domain and mailboxes, made with the mta's own commands while it
	// runs.
	const addr, password = "joe@example.test", "correct horse battery"
	admin(t, mtaBin, home, "", "domain", "add", "example.test")
	admin(t, mtaBin, home, password+"\n", "user", "add", addr)
	admin(t, mtaBin, home, "", "user", "quota", addr, "3C")
	// A mailbox whose flags refuse IMAP.
	admin(t, mtaBin, home, password+"\n", "user", "add", "ann@example.test")
	exe := helper(t, dir)
	noimap := exec.Command(exe, "-noimap", home, "ann@example.test")
	noimap.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(acct.uid), Gid: uint32(acct.gid), Groups: []uint32{}}}
	if out, err := noimap.CombinedOutput(); err != nil {
		t.Fatalf("NoIMAP for ann: %v: %s", err, out)
	}
	// The sender of the mail that bounces: its bounce lands here.
	const sender = "sam@example.test"
	admin(t, mtaBin, home, password+"\n", "user", "add", sender)
	var mb, sam struct{ Dir string }
	if err := json.Unmarshal([]byte(admin(t, mtaBin, home, "", "user", "list", addr, "-json")), &mb); err != nil || mb.Dir == "" {
		t.Fatalf("user list %s: %v %+v", addr, err, mb)
	}
	if err := json.Unmarshal([]byte(admin(t, mtaBin, home, "", "user", "list", sender, "-json")), &sam); err != nil || sam.Dir == "" {
		t.Fatalf("user list %s: %v %+v", sender, err, sam)
	}
	joeMaildir, samMaildir := filepath.Join(mb.Dir, "Maildir"), filepath.Join(sam.Dir, "Maildir")

	const first = "From: ann@example.org\r\nTo: joe@example.test\r\nSubject: delivered by us\r\n\r\nHello Joe.\r\n"
	send(t, smtpAddr, "ann@example.org", addr, first)
	// In the Maildir, as qmail stores it, lines end in LF; Dovecot serves
	// them with CRLF.
	firstLF := strings.ReplaceAll(first, "\r\n", "\n")
	if got := waitMessages(t, joeMaildir, 1, mtaErr); !strings.HasSuffix(got[0], firstLF) {
		t.Fatalf("the mta delivered %q, want it to end with %q", got[0], firstLF)
	}

	port := freePort(t)
	vchkpw := goBuild(t, dir, "vchkpw", "github.com/qmailkit/qmailkit/examples/vchkpw")
	chkpw := vchkpw + " -home " + home
	startDovecot(t, dir, config(t, dir, port, chkpw), port)

	imap := func(args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(ctx, python, append([]string{"testdata/imap.py", "127.0.0.1", strconv.Itoa(port)}, args...)...)
		cmd.WaitDelay = 10 * time.Second
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("imap.py: %v: %s%s", err, out, stderr.String())
		}
		return out
	}
	var ann struct{ Login string }
	if out := imap("ann@example.test", password, "login"); json.Unmarshal(out, &ann) != nil || !strings.HasPrefix(ann.Login, "refused") {
		t.Errorf("a mailbox with NoIMAP logs in to Dovecot: %s", out)
	}
	out := imap(addr, password)
	var got struct {
		WrongPassword string `json:"wrong_password"`
		Login         string
		InboxCount    int    `json:"inbox_count"`
		FirstMessage  string `json:"first_message"`
		Create, Move  string
		Append0       string
		Append1       string
		Append2       string
		Quota         []string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("imap.py: %v: %s", err, out)
	}
	t.Logf("imap.py: %+v", got)

	checks := []struct {
		name string
		ok   bool
	}{
		{"a wrong password is refused", strings.HasPrefix(got.WrongPassword, "refused")},
		{"the password logs in", got.Login == "OK"},
		{"INBOX holds the message we delivered", got.InboxCount == 1 && strings.HasSuffix(got.FirstMessage, first) &&
			strings.Contains(got.FirstMessage, "Delivered-To: joe@example.test\r\n")},
		{"IMAP makes a folder and moves the message there", got.Create == "OK" && got.Move == "OK"},
		{"Dovecot appends within the quota", strings.HasPrefix(got.Append0, "OK") && strings.HasPrefix(got.Append1, "OK")},
		{"Dovecot refuses an append over the quota we set", strings.Contains(got.Append2, "OVERQUOTA")},
		{"Dovecot counts 3 messages of 3", len(got.Quota) == 1 && strings.Contains(got.Quota[0], "MESSAGE 3 3")},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: no", c.name)
		}
	}

	// The folder Dovecot made is a Maildir++ folder our maildir package
	// reads, holding the message moved there.
	archive, err := maildir.Open(filepath.Join(joeMaildir, ".Archive"))
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := archive.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf(".Archive holds %d messages, want 1", len(msgs))
	}
	f, err := archive.OpenMessage(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(f)
	f.Close()
	if !strings.HasSuffix(string(body), firstLF) {
		t.Errorf(".Archive's message = %q, want it to end with %q", body, firstLF)
	}

	// Dovecot's accounting and ours agree: 3 messages, so our delivery
	// bounces, as vdelivermail's did.
	q, usage, err := maildir.Dir(joeMaildir).ReadQuota()
	if err != nil {
		t.Fatal(err)
	}
	if q.Count != 3 || usage.Count != 3 {
		t.Errorf("our maildirsize reading: quota %+v, usage %+v; want 3 of 3 messages", q, usage)
	}
	// Over the quota Dovecot filled, the mta accepts the message over
	// SMTP and then bounces it to its sender, another mailbox here.
	send(t, smtpAddr, sender, addr, "From: sam@example.test\r\nSubject: one too many\r\n\r\nx\r\n")
	bounce := waitMessages(t, samMaildir, 1, mtaErr)[0]
	if !strings.Contains(bounce, "<joe@example.test>:\nuser is over quota") || !strings.Contains(bounce, "one too many") {
		t.Errorf("the bounce of the delivery over Dovecot's quota says no \"user is over quota\":\n%s", bounce)
	}
	if msgs, _ := maildir.Dir(joeMaildir).List(); len(msgs) != 2 {
		t.Errorf("joe's INBOX holds %d messages after the bounce, want 2 (the third is in .Archive)", len(msgs))
	}
}
