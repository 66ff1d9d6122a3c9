package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/mailtest"
	"github.com/qmailkit/qmailkit/maildir"
)

// scratch returns a directory the program can write to: as root the
// program runs as nobody (a home for root is refused), so the directory
// is given to nobody.
func scratch(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mta-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Getuid() == 0 {
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// build builds the mta, and examples/forward, condredirect, qmail-inject
// and sendmail beside it, into a directory every user may run them from,
// and returns the mta's path.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mta-bin-")
		if err != nil {
			buildErr = err
			return
		}
		os.Chmod(dir, 0o755)
		binPath = filepath.Join(dir, "mta")
		// With the programs the tests run beside it (see tools).
		out, err := exec.Command("go", append(append([]string{"build"}, buildFlags...), "-o", dir+"/",
			".", "../forward", "../condredirect", "../qmail-inject", "../sendmail")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// proc is a running mta.
type proc struct {
	cmd                    *exec.Cmd
	stderr                 *syncBuffer
	smtp, submission, pop3 string
	metrics                string
	admin, adminPassword   string
	user, password         string
	maildir                string
	banner                 string
	done                   chan error
}

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

func startMTA(t *testing.T, home string, args ...string) *proc {
	t.Helper()
	return startMTAAs(t, home, os.Getuid() == 0, args...)
}

// startMTAAs starts the mta, as nobody when asNobody is set.
func startMTAAs(t *testing.T, home string, asNobody bool, args ...string) *proc {
	t.Helper()
	return startMTAFiles(t, home, asNobody, nil, args...)
}

// startMTAFiles is startMTAAs with extra descriptors (3, 4, ...) the mta
// inherits, as from a careless supervisor.
func startMTAFiles(t *testing.T, home string, asNobody bool, extra []*os.File, args ...string) *proc {
	t.Helper()
	return startMTAEnv(t, home, asNobody, extra, nil, args...)
}

// startMTAEnv is startMTAFiles with more environment variables.
func startMTAEnv(t *testing.T, home string, asNobody bool, extra []*os.File, env []string, args ...string) *proc {
	t.Helper()
	return startMTAWrapped(t, home, asNobody, nil, extra, env, args...)
}

// startMTAWrapped is startMTAEnv with the mta started by the program and
// arguments of wrapper (systemd-socket-activate ...).
func startMTAWrapped(t *testing.T, home string, nobody bool, wrapper []string, extra []*os.File, env []string, args ...string) *proc {
	t.Helper()
	bin := build(t)
	args = append([]string{bin, "-home", home, "-smtp", "127.0.0.1:0", "-submission", "127.0.0.1:0", "-submissions", "127.0.0.1:0", "-pop3", "127.0.0.1:0", "-pop3s", "127.0.0.1:0", "-admin", "127.0.0.1:0"}, args...)
	args = append(append([]string(nil), wrapper...), args...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + filepath.Dir(home)}, env...)
	cmd.ExtraFiles = extra
	if nobody {
		asNobody(cmd)
	}
	p := &proc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		p.done <- cmd.Wait()
		close(p.done)
	}()
	// A bound, not a measure: a start under -race on a loaded machine
	// (a new home's key, the virtual store's first migration) is slow.
	timeout := time.After(60 * time.Second)
	var banner strings.Builder
	for !strings.HasPrefix(p.banner, "Stop with") {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("mta exited before its banner:\n%s\nstderr:\n%s", banner.String(), p.stderr)
			}
			banner.WriteString(line + "\n")
			p.banner = line
			f := strings.Fields(line)
			switch {
			case len(f) >= 2 && f[0] == "SMTP":
				p.smtp = f[1]
			case len(f) >= 2 && f[0] == "submission":
				p.submission = f[1]
			case len(f) >= 2 && f[0] == "POP3":
				p.pop3 = f[1]
			case len(f) >= 2 && f[0] == "metrics":
				p.metrics = f[1]
			case len(f) >= 9 && f[0] == "web" && f[1] == "admin":
				p.admin = f[2]
				if f[8] != "(hashed" {
					p.adminPassword = f[8]
				}
			case len(f) >= 6 && f[0] == "mailbox":
				p.user, _, _ = strings.Cut(f[1], "@")
				p.password = f[3]
				p.maildir = strings.TrimSuffix(f[5], ")")
			}
		case <-timeout:
			t.Fatalf("no banner after 60 s:\n%s\nstderr:\n%s", banner.String(), p.stderr)
		}
	}
	p.banner = banner.String()
	go func() {
		for range lines {
		}
	}()
	return p
}

func (p *proc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// stop sends SIGTERM and fails the test unless the mta exits 0.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	if err := p.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.stderr)
	}
}

func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("mta did not exit:\n%s", p.stderr)
		return nil
	}
}

func countMaildir(t *testing.T, md string) int {
	t.Helper()
	msgs, err := maildir.Dir(md).List()
	if err != nil {
		t.Fatal(err)
	}
	return len(msgs)
}

func waitCount(t *testing.T, md string, n int, p *proc) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for countMaildir(t, md) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages in the Maildir after 60 s, want %d\nstderr:\n%s", countMaildir(t, md), n, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := countMaildir(t, md); got != n {
		t.Fatalf("%d messages in the Maildir, want %d", got, n)
	}
}

// TestFirstStart is what a newcomer does: start with no home, read the
// banner, send a message as it says, fetch it by POP3, reload, stop.
func TestFirstStart(t *testing.T) {
	home := filepath.Join(scratch(t), ".qmailkit")
	p := startMTA(t, home, "-metrics", "127.0.0.1:0")
	for _, want := range []string{"home " + home + " (created)", "mailbox     demo@localhost password ", "swaks --server 127.0.0.1 --port ", "poplib.POP3("} {
		if !strings.Contains(p.banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, p.banner)
		}
	}
	if p.smtp == "" || p.pop3 == "" || p.submission == "" || p.user != "demo" || len(p.password) != 12 {
		t.Fatalf("banner not understood: %+v\n%s", p, p.banner)
	}
	if err := mailtest.Send(p.smtp, "bob@example.org", []string{"demo@localhost"}, "Subject: first\r\n\r\nhello, qmailkit\r\n"); err != nil {
		t.Fatal(err)
	}
	waitCount(t, p.maildir, 1, p)
	time.Sleep(1100 * time.Millisecond) // POP3 lists messages older than the session's second
	got := mailtest.Fetch(t, p.pop3, p.user, p.password, false)
	if len(got) != 1 || !strings.Contains(got[0], "hello, qmailkit") || !strings.Contains(got[0], "Delivered-To: demo@localhost") {
		t.Fatalf("POP3 gave %q", got)
	}
	for path, want := range map[string]string{
		"/metrics": `qmailkit_deliveries_total{channel="local",outcome="success"} 1`,
		"/healthz": `{"status":"ok","checks":[{"name":"scheduler","status":"ok"}`,
	} {
		resp, err := http.Get(p.metrics[:strings.Index(p.metrics, "/metrics")] + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d\n%s", path, resp.StatusCode, body)
		}
	}
	p.signal(t, syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.stderr.String(), "mta: reloaded control files") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged:\n%s", p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.stop(t)
	for _, want := range []string{`msg="delivery 1: success: did_1+0+0/"`, `msg="end msg `, `id=`, `msg="status: exiting"`, `msg="mta: stopped"`} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, p.stderr)
		}
	}

	// A second start reuses the home and its mailbox.
	p2 := startMTA(t, home, "-log", "json")
	// The password is shown again only while users/poppasswd has it in
	// clear: once hashed, the banner says so.
	if !strings.Contains(p2.banner, "(reused)") || (p2.password != p.password && p2.password != "(hashed") {
		t.Fatalf("second start:\n%s", p2.banner)
	}
	p2.signal(t, syscall.SIGTERM)
	if err := p2.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, p2.stderr)
	}
	if !strings.Contains(p2.stderr.String(), `"msg":"status: exiting"`) {
		t.Errorf("JSON log lacks the exit line:\n%s", p2.stderr)
	}
}

// TestSIGTERMDuringBurst: messages are sent over 20 sessions while the
// mta is stopped; every message that got 250 is delivered, after a restart
// if it was still queued.
func TestSIGTERMDuringBurst(t *testing.T) {
	const total, sessions = 200, 20
	home := filepath.Join(scratch(t), "home")
	p := startMTA(t, home)
	var acked, sent atomic.Int64
	var wg sync.WaitGroup
	next := make(chan int)
	for range sessions {
		wg.Go(func() {
			for i := range next {
				sent.Add(1)
				if mailtest.Send(p.smtp, "bob@example.org", []string{"demo@localhost"}, fmt.Sprintf("Subject: burst %d\r\n\r\nmessage %d\r\n", i, i)) == nil {
					acked.Add(1)
				}
			}
		})
	}
	for i := range total {
		if i == total/3 {
			p.signal(t, syscall.SIGTERM)
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := p.wait(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr)
	}
	n := acked.Load()
	t.Logf("%d of %d messages acknowledged before the stop; %d delivered before it", n, sent.Load(), countMaildir(t, p.maildir))
	if n < total/3-sessions {
		t.Fatalf("only %d messages acknowledged", n)
	}
	p2 := startMTA(t, home)
	deadline := time.Now().Add(60 * time.Second)
	for countMaildir(t, p.maildir) < int(n) {
		if time.Now().After(deadline) {
			t.Fatalf("%d delivered after restart, %d acknowledged\n%s", countMaildir(t, p.maildir), n, p2.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let a duplicate, if any, show
	p2.signal(t, syscall.SIGTERM)
	if err := p2.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, p2.stderr)
	}
	// Nothing acknowledged is lost; a message whose 250 the client did not
	// see may have been queued too (qmail's accepted duplicate risk).
	if c := countMaildir(t, p.maildir); c < int(n) || c > int(sent.Load()) {
		t.Fatalf("%d delivered, %d acknowledged, %d sent", c, n, sent.Load())
	}
}

func TestBadFlags(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"-log", "xml"}, {"-nosuchflag"}, {"extra"}} {
		out.Reset()
		errb.Reset()
		if code := run(t.Context(), args, func(string) string { return "" }, nil, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
	// In-process, never as root: that run would make /var/lib/qmailkit
	// and drop the test's own privileges.
	if os.Getuid() != 0 {
		if code := run(t.Context(), nil, func(string) string { return "" }, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no -home") {
			t.Errorf("no home: exit %d: %s", code, errb.String())
		}
	}
	if os.Getuid() != 0 {
		if code := run(t.Context(), []string{"-user", "nobody", "-home", t.TempDir()}, func(string) string { return "" }, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "-user needs root") {
			t.Errorf("-user as non-root: exit %d: %s", code, errb.String())
		}
	}
}

// TestSIGHUPRcpthosts: a domain added to rcpthosts and locals is taken
// after SIGHUP, on the running process, and so is a new smtpgreeting, by
// the sessions that start after it; an older session keeps its greeting
// and is not dropped.
func TestSIGHUPRcpthosts(t *testing.T) {
	home := filepath.Join(scratch(t), "home")
	p := startMTA(t, home)
	// Without the rules cdb the client has no RELAYCLIENT.
	if err := os.Remove(filepath.Join(home, "control", "tcp.smtp.cdb")); err != nil {
		t.Fatal(err)
	}
	if err := mailtest.Send(p.smtp, "bob@example.org", []string{"demo@other.test"}, "Subject: x\r\n\r\nrefused\r\n"); err == nil {
		t.Fatal("other.test accepted before SIGHUP")
	}
	greet := func() (*textproto.Conn, string) {
		t.Helper()
		c, err := textproto.Dial("tcp", p.smtp)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_, msg, err := c.ReadResponse(220)
		if err != nil {
			t.Fatal(err)
		}
		return c, msg
	}
	old, oldGreeting := greet()
	for _, name := range []string{"rcpthosts", "locals"} {
		if err := os.WriteFile(filepath.Join(home, "control", name), []byte("localhost\nother.test\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(home, "control", "smtpgreeting"), []byte("other.test HUP\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(t, syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.stderr.String(), "mta: reloaded control files") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged:\n%s", p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := mailtest.Send(p.smtp, "bob@example.org", []string{"demo@other.test"}, "Subject: x\r\n\r\naccepted\r\n"); err != nil {
		t.Fatalf("other.test after SIGHUP: %v", err)
	}
	if _, msg := greet(); msg != "other.test HUP ESMTP" {
		t.Errorf("greeting after SIGHUP %q", msg)
	}
	// The session opened before SIGHUP is still served, with its greeting.
	if err := old.PrintfLine("QUIT"); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := old.ReadResponse(221); err != nil || msg+" ESMTP" != oldGreeting {
		t.Errorf("session opened before SIGHUP: QUIT %q %v, greeting %q", msg, err, oldGreeting)
	}
	waitCount(t, p.maildir, 1, p)
	p.stop(t)
}

// TestRootDropsPrivileges: started as root, the mta makes the home for the
// account, binds its ports, and runs as that account: the process's uids
// and the delivered files are the account's.
func TestRootDropsPrivileges(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	acct := testAccount(t)
	id := strconv.Itoa(acct.uid)
	home := filepath.Join(scratch(t), "home")
	p := startMTAAs(t, home, false, "-user", acct.name)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		f := strings.Fields(line)
		if len(f) == 5 && f[0] == "Uid:" && (f[1] != id || f[2] != id || f[3] != id || f[4] != id) {
			t.Errorf("after start: %s", strings.TrimSpace(line))
		}
		if len(f) >= 1 && f[0] == "Groups:" && len(f) > 1 {
			t.Errorf("after start: %s", strings.TrimSpace(line))
		}
	}
	if err := mailtest.Send(p.smtp, "bob@example.org", []string{"demo@localhost"}, "Subject: x\r\n\r\nas nobody\r\n"); err != nil {
		t.Fatal(err)
	}
	waitCount(t, p.maildir, 1, p)
	msgs, _ := maildir.Dir(p.maildir).List()
	st, err := os.Stat(filepath.Join(p.maildir, msgs[0].Path()))
	if err != nil {
		t.Fatal(err)
	}
	if owner := st.Sys().(*syscall.Stat_t).Uid; owner != uint32(acct.uid) {
		t.Errorf("delivered file owned by uid %d", owner)
	}
	// users/poppasswd is root's, readable by the account's group: POP3
	// authenticates against it.
	time.Sleep(1100 * time.Millisecond) // POP3 lists messages older than the session's second
	if got := mailtest.Fetch(t, p.pop3, p.user, p.password, false); len(got) != 1 || !strings.Contains(got[0], "as nobody") {
		t.Errorf("POP3 as the account: %q", got)
	}
	if st, _ := os.Stat(filepath.Join(home, "queue")); st.Sys().(*syscall.Stat_t).Uid != uint32(acct.uid) {
		t.Errorf("queue not given to the account")
	}
	// control/ is root's (the account cannot rewrite who may relay), the
	// key root's and readable by the account's group alone.
	for _, f := range []struct {
		name     string
		uid, gid uint32
		mode     os.FileMode
	}{
		{"control", 0, 0, 0o755 | os.ModeDir},
		{"control/me", 0, 0, 0o644},
		{"control/rcpthosts", 0, 0, 0o644},
		{"control/tcp.smtp.cdb", 0, 0, 0o644},
		{"control/servercert.pem", 0, uint32(acct.gid), 0o640},
	} {
		fi, err := os.Lstat(filepath.Join(home, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != f.uid || st.Gid != f.gid || fi.Mode() != f.mode {
			t.Errorf("%s: uid %d gid %d mode %v, want %d %d %v", f.name, st.Uid, st.Gid, fi.Mode(), f.uid, f.gid, f.mode)
		}
	}
	if strings.Contains(p.stderr.String(), "could rewrite the control files") {
		t.Errorf("warned about control/ on a new home:\n%s", p.stderr)
	}
	p.stop(t)
}

// TestBannerCommands runs the banner's commands as printed (Python, and
// swaks when installed): the newcomer's first message, sent and fetched.
func TestBannerCommands(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	p := startMTA(t, filepath.Join(scratch(t), "home"))
	var sendCmd, fetchCmd, swaksCmd string
	for line := range strings.Lines(p.banner) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "swaks "):
			swaksCmd = line
		case strings.HasPrefix(line, "python3 -c 'import smtplib"):
			sendCmd = line
		case strings.HasPrefix(line, "python3 -c 'import poplib"):
			fetchCmd = line
		}
	}
	if sendCmd == "" || fetchCmd == "" {
		t.Fatalf("banner lacks the Python commands:\n%s", p.banner)
	}
	if out, err := exec.Command("sh", "-c", sendCmd).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", sendCmd, err, out)
	}
	want := 1
	if _, err := exec.LookPath("swaks"); err == nil && swaksCmd != "" {
		if out, err := exec.Command("sh", "-c", swaksCmd).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", swaksCmd, err, out)
		}
		want++
	}
	waitCount(t, p.maildir, want, p)
	time.Sleep(1100 * time.Millisecond)
	out, err := exec.Command("sh", "-c", fetchCmd).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", fetchCmd, err, out)
	}
	if !strings.Contains(string(out), "Subject: hi") || !strings.Contains(string(out), "hello") ||
		(want == 2 && !strings.Contains(string(out), "X-Mailer: swaks")) {
		t.Fatalf("fetched:\n%s", out)
	}
	p.stop(t)
}

// asNobody makes cmd run as nobody, with no supplementary groups.
func asNobody(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
}
