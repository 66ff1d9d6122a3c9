package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/assign"
	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/smtpserver/smtptest"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// build builds qmail-send, qmail-queue, qmail-local and forward into one
// directory.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "qmail-send-bin-")
		if buildErr != nil {
			return
		}
		os.Chmod(binDir, 0o755)
		for _, pkg := range []string{".", "../qmail-queue", "../qmail-local", "../forward"} {
			name := filepath.Base(pkg)
			if pkg == "." {
				name = "qmail-send"
			}
			out, err := exec.Command("go", append(append([]string{"build"}, buildFlags...), "-o", filepath.Join(binDir, name), pkg)...).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// asUser makes a command run as nobody when the test runs as root:
// local deliveries are in-process only for an ordinary user.
func asUser(cmd *exec.Cmd) {
	if os.Getuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	}
}

func uid() (int, int) {
	if os.Getuid() == 0 {
		return 65534, 65534
	}
	return os.Getuid(), os.Getgid()
}

// makeHome lays out a qmail home with control files, users/cdb with joe,
// and a catch-all alias user; remote mail for remote.test goes to relay.
func makeHome(t *testing.T, relay string) (home, joeMaildir string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "qmail-send-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	home = filepath.Join(dir, "qmail")
	joe := filepath.Join(dir, "joe")
	u, g := uid()
	for _, d := range []string{home + "/control", home + "/users", home + "/alias", joe} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	joeMaildir = filepath.Join(joe, "Maildir")
	if _, err := maildir.Create(joeMaildir); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"control/me":         "example.test\n",
		"control/smtproutes": "remote.test:" + relay + "\n",
		"users/assign": fmt.Sprintf("=joe:joe:%[1]d:%[2]d:%[3]s:::\n+joe-:joe:%[1]d:%[2]d:%[3]s:-::\n+:alias:%[1]d:%[2]d:%[4]s:-::\n.\n",
			u, g, joe, filepath.Join(home, "alias")),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(home, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := assign.CompileFile(filepath.Join(home, "users/assign"), filepath.Join(home, "users/cdb")); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() == 0 {
		filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
			if err == nil {
				err = os.Lchown(path, u, g)
			}
			return err
		})
	}
	return home, joeMaildir
}

// sender is a running qmail-send.
type sender struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{} // closed when the process has exited
}

func startSend(t *testing.T, home string, args ...string) *sender {
	t.Helper()
	return startSendAs(t, home, true, args...)
}

func startSendAs(t *testing.T, home string, user bool, args ...string) *sender {
	t.Helper()
	bin := build(t)
	cmd := exec.Command(filepath.Join(bin, "qmail-send"), append(args, "./Maildir/")...)
	cmd.Dir = home
	cmd.Env = []string{"PATH=/usr/bin:/bin", "QMAILHOME=" + home}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if user {
		asUser(cmd)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sender{cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
		cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
		}
		if t.Failed() {
			t.Logf("qmail-send log:\n%s\nstderr:\n%s", s.log(), stderr.String())
		}
	})
	return s
}

func (s *sender) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n") + "\n"
}

// waitLine waits for a log line starting with prefix.
func (s *sender) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.mu.Lock()
		for _, l := range s.lines {
			if strings.HasPrefix(l, prefix) {
				s.mu.Unlock()
				return l
			}
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q after 20 s", prefix)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *sender) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-s.done:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(60 * time.Second):
		t.Fatal("qmail-send did not exit")
		return -1
	}
}

// inject runs qmail-queue: the message on descriptor 0, the envelope on 1.
func inject(t *testing.T, home, msg, envelope string) {
	t.Helper()
	injectAs(t, home, true, msg, envelope)
}

func injectAs(t *testing.T, home string, user bool, msg, envelope string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(build(t), "qmail-queue"))
	cmd.Dir = home
	cmd.Env = []string{"QMAILHOME=" + home}
	if user {
		asUser(cmd)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = strings.NewReader(msg)
	cmd.Stdout = r
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.WriteString(envelope)
	w.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("qmail-queue: %v", err)
	}
}

func TestDeliveries(t *testing.T) {
	t.Run("qmail", func(t *testing.T) { testDeliveries(t) })
	t.Run("modern", func(t *testing.T) { testDeliveries(t, "-modern") })
}

func testDeliveries(t *testing.T, args ...string) {
	relay := smtptest.NewServer(t)
	home, joe := makeHome(t, relay.Addr)
	s := startSend(t, home, args...)
	s.waitLine(t, "status: local 0/10 remote 0/20")
	for _, d := range []string{"mess", "info", "local", "remote", "todo", "intd", "bounce", "pid", "lock"} {
		if st, err := os.Stat(filepath.Join(home, "queue", d)); err != nil || !st.IsDir() {
			t.Errorf("queue/%s not created: %v", d, err)
		}
	}
	if st, err := os.Stat(filepath.Join(home, "queue/lock/trigger")); err != nil || st.Mode().Type() != fs.ModeNamedPipe {
		t.Fatalf("lock/trigger: %v %v", st, err)
	}
	start := time.Now()
	inject(t, home, "Subject: hi\n\nhello joe\n",
		"Fbob@remote.test\x00Tjoe@example.test\x00Tsomeone@remote.test\x00Tnobody@example.test\x00\x00")
	// Picked up through the trigger: todo/ is rescanned only every 1500 s.
	s.waitLine(t, "new msg ")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("picked up after %v", d)
	}
	// joe's Maildir, the relay (the message, then the bounce for nobody).
	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs, _ := maildir.Dir(joe).List()
		if len(msgs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages for joe", len(msgs))
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := relay.WaitMessages(2, 20*time.Second)
	if len(got) != 2 {
		t.Fatalf("relay got %d messages", len(got))
	}
	var sawMsg, sawBounce bool
	for _, m := range got {
		switch {
		case m.From == "bob@remote.test" && len(m.To) == 1 && m.To[0] == "someone@remote.test":
			sawMsg = strings.Contains(string(m.Data), "hello joe")
		case m.From == "" && len(m.To) == 1 && m.To[0] == "bob@remote.test":
			sawBounce = strings.Contains(string(m.Data), "Hi. This is the qmail-send program at example.test.") &&
				strings.Contains(string(m.Data), "<nobody@example.test>:\nSorry, no mailbox here by that name. (#5.1.1)")
		}
		if !strings.HasPrefix(m.Helo, "example.test") {
			t.Errorf("HELO %q, want control/me", m.Helo)
		}
	}
	if !sawMsg || !sawBounce {
		t.Fatalf("relay messages: message %v, bounce %v: %+v", sawMsg, sawBounce, got)
	}
	s.waitLine(t, "bounce msg ")
	for _, prefix := range []string{"info msg ", "starting delivery 1: msg ", "end msg "} {
		s.waitLine(t, prefix)
	}
	log := s.log()
	for _, want := range []string{"success: did_1+0+0/", "failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/", "accepted_message./Remote_host_said:_250"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}

	// A second qmail-send on the same queue refuses to start.
	s2 := startSend(t, home)
	if code := s2.wait(t); code != 111 || !strings.Contains(s2.log(), "alert: cannot start: qmail-send is already running") {
		t.Errorf("second qmail-send: exit %d, log %q", code, s2.log())
	}

	s.cmd.Process.Signal(syscall.SIGTERM)
	if code := s.wait(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	if !strings.HasSuffix(s.log(), "status: exiting\n") {
		t.Errorf("log does not end with status: exiting:\n%s", s.log())
	}
}

func TestCannotStart(t *testing.T) {
	home, _ := makeHome(t, "127.0.0.1:1")
	os.Remove(filepath.Join(home, "control/me"))
	s := startSend(t, home)
	if code := s.wait(t); code != 111 || s.log() != "alert: cannot start: unable to read controls\n" {
		t.Errorf("exit %d, log %q", code, s.log())
	}
	var out, errb bytes.Buffer
	if code := run(t.Context(), nil, func(string) string { return home }, nil, nil, &out, &errb); code != 111 || !strings.Contains(errb.String(), "usage:") {
		t.Errorf("no argument: exit %d, %q", code, errb.String())
	}
}

// TestRootSpawnsQmailLocal: run as root, qmail-send delivers each local
// message in a QMAILHOME/bin/qmail-local child under the recipient's uid.
func TestRootSpawnsQmailLocal(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: the child changes uid")
	}
	home, joe := makeHome(t, "127.0.0.1:1")
	bin := filepath.Join(home, "bin")
	os.Mkdir(bin, 0o755)
	for _, name := range []string{"qmail-local", "qmail-queue"} {
		data, err := os.ReadFile(filepath.Join(build(t), name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := startSendAs(t, home, false)
	s.waitLine(t, "status: local 0/10 remote 0/20")
	injectAs(t, home, false, "Subject: hi\n\nas joe\n", "Fbob@remote.test\x00Tjoe@example.test\x00\x00")
	s.waitLine(t, "delivery 1: success: did_1+0+0/")
	msgs, err := maildir.Dir(joe).List()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("%d messages for joe: %v", len(msgs), err)
	}
	st, err := os.Stat(filepath.Join(joe, msgs[0].Path()))
	if err != nil {
		t.Fatal(err)
	}
	if owner := st.Sys().(*syscall.Stat_t).Uid; owner != 65534 {
		t.Errorf("delivered file owned by uid %d, want 65534", owner)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	if code := s.wait(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// waitMaildir waits until the Maildir dir holds n messages and returns
// their contents.
func waitMaildir(t *testing.T, dir string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		msgs, _ := maildir.Dir(dir).List()
		if len(msgs) >= n {
			var out []string
			for _, m := range msgs {
				b, err := os.ReadFile(filepath.Join(dir, m.Path()))
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, string(b))
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d messages after 30 s, want %d", dir, len(msgs), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRootForwards: run as root, qmail-send delivers joe's mail in
// qmail-local children under joe's uid (65534), which may not write the
// queue; the forwards of joe's .qmail files reach it through
// QMAILHOME/bin/qmail-queue and the queue socket: to a local user, to a
// remote address, through |forward, as a list with an owner (VERP), and a
// loop, which bounces with qmail-local's text.
func TestRootForwards(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: deliveries run under joe's uid")
	}
	relay := smtptest.NewServer(t)
	home, joeBox := makeHome(t, relay.Addr)
	joe := filepath.Dir(joeBox)
	bin := filepath.Join(home, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"qmail-local", "qmail-queue", "forward"} {
		data, err := os.ReadFile(filepath.Join(build(t), name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The home is root's, as qmail's installer leaves it (the socket's
	// directory is made there by qmail-send).
	for _, d := range []string{filepath.Dir(home), home, bin, filepath.Join(home, "control"), filepath.Join(home, "users")} {
		os.Chown(d, 0, 0)
		os.Chmod(d, 0o755)
	}
	dotqmail := map[string]string{
		".qmail-user":               "&joe-box\n",
		".qmail-remote":             "&bob@remote.test\n",
		".qmail-prog":               "|" + filepath.Join(bin, "forward") + " joe-box2@example.test\n",
		".qmail-list":               "&joe-member@example.test\n",
		".qmail-list-owner":         "./owner/\n",
		".qmail-list-owner-default": "./owner/\n",
		".qmail-loop":               "&joe-loop@example.test\n",
		".qmail-box":                "./box/\n",
		".qmail-box2":               "./box2/\n",
		".qmail-member":             "./member/\n",
		".qmail-bounces":            "./bounces/\n",
	}
	for name, data := range dotqmail {
		if err := os.WriteFile(filepath.Join(joe, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chown(filepath.Join(joe, name), 65534, 65534)
	}
	for _, d := range []string{"box", "box2", "member", "bounces", "owner"} {
		if _, err := maildir.Create(filepath.Join(joe, d)); err != nil {
			t.Fatal(err)
		}
		filepath.WalkDir(filepath.Join(joe, d), func(p string, _ fs.DirEntry, err error) error {
			if err == nil {
				err = os.Chown(p, 65534, 65534)
			}
			return err
		})
	}
	s := startSendAs(t, home, false)
	s.waitLine(t, "status: local 0/10 remote 0/20")
	if fi, err := os.Stat(filepath.Join(home, "run", "qmail-queue.sock")); err != nil || fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o666 {
		t.Fatalf("queue socket: %v, %v", fi, err)
	}
	for _, rcpt := range []string{"user", "remote", "prog", "list", "loop"} {
		injectAs(t, home, false, "Subject: "+rcpt+"\n\nto joe-"+rcpt+"\n",
			"Fjoe-bounces@example.test\x00Tjoe-"+rcpt+"@example.test\x00\x00")
	}
	check := func(dir string, wants ...string) {
		t.Helper()
		msgs := waitMaildir(t, filepath.Join(joe, dir), 1)
		for _, want := range wants {
			if !strings.Contains(msgs[0], want) {
				t.Errorf("%s: message lacks %q:\n%s", dir, want, msgs[0])
			}
		}
	}
	// &joe-box: a local forward, queued by joe's uid through the socket.
	check("box", "Subject: user\n", "Delivered-To: joe-user@example.test\n", "Return-Path: <joe-bounces@example.test>\n", "invoked by uid 65534")
	// |forward joe-box2@example.test, with the delivery's environment.
	check("box2", "Subject: prog\n", "Delivered-To: joe-prog@example.test\n", "Return-Path: <joe-bounces@example.test>\n")
	// The list's owner: VERP, as qmail-send expands joe-list-owner-@example.test-@[].
	check("member", "Subject: list\n", "Return-Path: <joe-list-owner-joe-member=example.test@example.test>\n")
	// The loop bounces to the sender, with qmail-local's text.
	check("bounces", "<joe-loop@example.test>:\nThis message is looping: it already has my Delivered-To line. (#5.4.6)\n")
	// &bob@remote.test: sent.
	got := relay.WaitMessages(1, 30*time.Second)
	if len(got) != 1 || got[0].From != "joe-bounces@example.test" || len(got[0].To) != 1 || got[0].To[0] != "bob@remote.test" ||
		!strings.Contains(string(got[0].Data), "Delivered-To: joe-remote@example.test") {
		t.Fatalf("relay: %+v", got)
	}
	if strings.Contains(s.log(), "qq_trouble") {
		t.Errorf("a forward failed:\n%s", s.log())
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	if code := s.wait(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, err := os.Lstat(filepath.Join(home, "run", "qmail-queue.sock")); !os.IsNotExist(err) {
		t.Errorf("the socket is left after the stop: %v", err)
	}
}
