// Package dovecot holds the Dovecot configuration that serves the mta's
// virtual mailboxes over IMAP (dovecot.conf) and its test: Debian's Dovecot
// run from this file on a loopback port, logins through examples/vchkpw
// against the mta home's virtual mailboxes, Python's imaplib reading a
// message the mta's virtual delivery delivered, moving it to a folder our
// maildir package then reads, and filling the Maildir++ quota, over which
// our delivery then bounces.
package dovecot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/mta"
	"github.com/qmailkit/qmailkit/vmail"
)

// The test binary is also the delivery the test runs as the mailbox
// owner, as the mta runs it.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-deliver" {
		os.Exit(deliver(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// quiet drops the Manager's log lines.
var quiet = slog.New(slog.DiscardHandler)

// The mailbox owner (the virtual-mail account): nobody.
const owner = 65534

// deliver delivers standard input to a virtual address, "-deliver HOME
// RECIPIENT", as the mta does (package vmail's Deliverer over the home's
// mailboxes): exit 0, 100 for a bounce, 111 for a retry, the report on
// standard output.
func deliver(args []string) int {
	if len(args) != 2 {
		return 2
	}
	ctx := context.Background()
	m, err := mta.OpenVirtual(ctx, args[0], vmail.Options{Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return 111
	}
	defer m.Store().Close()
	msg, err := io.ReadAll(os.Stdin)
	if err != nil {
		return 111
	}
	d := vmail.Deliverer{Manager: m, Logger: quiet}
	_, err = d.Deliver(ctx, "ann@example.org", args[1], io.NewSectionReader(bytes.NewReader(msg), 0, int64(len(msg))))
	var de *vmail.DeliveryError
	switch {
	case errors.As(err, &de) && de.Perm:
		fmt.Println(de.Text)
		return 100
	case err != nil:
		fmt.Println(err)
		return 111
	}
	return 0
}

// helper copies the test binary to dir, where the mailbox owner can run
// it (go test's own directory is root's alone).
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

// deliverAs delivers msg to rcpt as the owner, as the mta does, running
// exe; it returns the helper's exit status and output.
func deliverAs(t *testing.T, exe, home, rcpt, msg string) (int, string) {
	t.Helper()
	cmd := exec.Command(exe, "-deliver", home, rcpt)
	cmd.Stdin = strings.NewReader(msg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: owner, Gid: owner}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
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

	// The mta's home: its queue's owner is the virtual-mail account,
	// who owns the mailboxes, and whom Dovecot runs as.
	home := filepath.Join(dir, "home")
	for _, d := range []string{home, filepath.Join(home, "queue")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(home, "queue"), owner, owner); err != nil {
		t.Fatal(err)
	}
	m, err := mta.OpenVirtual(ctx, home, vmail.Options{Logger: quiet, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Store().Close()
	if _, err := m.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	const addr, password = "joe@example.test", "correct horse battery"
	mb, err := m.AddMailbox(ctx, addr, password)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetQuota(ctx, addr, vmail.Quota{Count: 3}); err != nil {
		t.Fatal(err)
	}
	// A mailbox whose flags refuse IMAP.
	if _, err := m.AddMailbox(ctx, "ann@example.test", password); err != nil {
		t.Fatal(err)
	}
	if err := m.SetFlags(ctx, "ann@example.test", vmail.NoIMAP); err != nil {
		t.Fatal(err)
	}
	exe := helper(t, dir)
	const first = "From: ann@example.org\r\nTo: joe@example.test\r\nSubject: delivered by us\r\n\r\nHello Joe.\r\n"
	if status, out := deliverAs(t, exe, home, addr, first); status != 0 {
		t.Fatalf("delivery: exit %d: %s", status, out)
	}

	port := freePort(t)
	vchkpw := filepath.Join(dir, "vchkpw")
	if out, err := exec.Command("go", "build", "-o", vchkpw, "github.com/qmailkit/qmailkit/examples/vchkpw").CombinedOutput(); err != nil {
		t.Fatalf("go build vchkpw: %v\n%s", err, out)
	}
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
	archive, err := maildir.Open(filepath.Join(mb.Maildir(), ".Archive"))
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
	if !strings.HasSuffix(string(body), first) {
		t.Errorf(".Archive's message = %q, want it to end with %q", body, first)
	}

	// Dovecot's accounting and ours agree: 3 messages, so our delivery
	// bounces, as vdelivermail's did.
	q, usage, err := maildir.Dir(mb.Maildir()).ReadQuota()
	if err != nil {
		t.Fatal(err)
	}
	if q.Count != 3 || usage.Count != 3 {
		t.Errorf("our maildirsize reading: quota %+v, usage %+v; want 3 of 3 messages", q, usage)
	}
	status, dout := deliverAs(t, exe, home, addr, "Subject: one too many\r\n\r\nx\r\n")
	if status != 100 || !strings.Contains(dout, "over quota") {
		t.Errorf("delivery over Dovecot's quota: exit %d %q, want 100 (user is over quota)", status, dout)
	}
}
