package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/account"
	"github.com/qmailkit/qmailkit/internal/progtest"
)

// TestMain makes the test binary stand for qmail-send and for the logger
// when it is run under those names: each reports its ids, arguments,
// directory, umask, environment and descriptors to $QMAILSTART_REPORT/NAME;
// qmail-send then logs a line on its standard output, and the logger
// copies its input to $QMAILSTART_REPORT/log and says "logger done" on its
// standard output.
func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case "qmail-send", "fake-logger":
		fake(filepath.Base(os.Args[0]))
		return
	}
	os.Exit(m.Run())
}

func fake(name string) {
	var fds []string
	for fd := range 7 { // before anything opens a file
		l, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		if err != nil {
			l = "closed"
		}
		fds = append(fds, fmt.Sprintf("%d=%s", fd, l))
	}
	groups, _ := syscall.Getgroups()
	wd, _ := os.Getwd()
	umask := syscall.Umask(0)
	report := fmt.Sprintf("uid=%d gid=%d groups=%v\nargv=%q\ncwd=%s\numask=%03o\nenv=%s\nfds= %s\n",
		os.Getuid(), os.Getgid(), groups, os.Args, wd, umask, os.Getenv("QMAILSTART_MARK"), strings.Join(fds, " "))
	dir := os.Getenv("QMAILSTART_REPORT")
	if name == "qmail-send" {
		os.WriteFile(filepath.Join(dir, "send"), []byte(report), 0o644)
		os.Stdout.WriteString("status: local 0/10 remote 0/20\n")
		os.Exit(0)
	}
	in, _ := io.ReadAll(os.Stdin)
	os.WriteFile(filepath.Join(dir, "log"), in, 0o644)
	os.Stdout.WriteString("logger done\n")
	os.WriteFile(filepath.Join(dir, "logger.tmp"), []byte(report), 0o644)
	os.Rename(filepath.Join(dir, "logger.tmp"), filepath.Join(dir, "logger"))
	os.Exit(0)
}

const passwd = "root:x:0:0::/root:/bin/sh\n" +
	"qmaill:x:7792:2107::/var/qmail:/bin/true\n" +
	"qmailq:x:7794:2108::/var/qmail:/bin/true\n" +
	"qmailr:x:7795:2108::/var/qmail:/bin/true\n" +
	"qmails:x:7796:2108::/var/qmail:/bin/true\n"

const group = "root:x:0:\nnofiles:x:2107:\nqmail:x:2108:\n"

type setup struct {
	dir, bin, home, report, passwd, group, start string
}

func newSetup(t *testing.T) *setup {
	t.Helper()
	if why := account.CanIsolate(); why != "" {
		t.Skip(why)
	}
	s := &setup{dir: t.TempDir(), start: progtest.Build(t, "qmail-start")}
	// The logger runs as qmaill: it must reach its script and the report
	// directory.
	for d := s.dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	s.bin = filepath.Join(s.dir, "bin")
	s.home = filepath.Join(s.dir, "home")
	s.report = filepath.Join(s.dir, "report")
	for _, d := range []string{s.bin, s.home, s.report} {
		os.Mkdir(d, 0o755)
	}
	os.Chmod(s.report, 0o777)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Copies, not links: the logger, as qmaill, may not reach the test
	// binary's own directory.
	exe, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"qmail-send", "fake-logger"} {
		if err := os.WriteFile(filepath.Join(s.bin, name), exe, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.passwd, s.group = filepath.Join(s.dir, "passwd"), filepath.Join(s.dir, "group")
	os.WriteFile(s.passwd, []byte(passwd), 0o644)
	os.WriteFile(s.group, []byte(group), 0o644)
	return s
}

// run runs qmail-start with args; its standard output is the file out.
func (s *setup) run(t *testing.T, args ...string) (code int, stderr string, out string) {
	t.Helper()
	outPath := filepath.Join(s.dir, "stdout")
	f, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := account.Command(s.passwd, s.group, s.start, args...)
	cmd.Env = []string{"PATH=" + s.bin + ":/usr/bin:/bin", "QMAILHOME=" + s.home, "QMAILSTART_REPORT=" + s.report, "QMAILSTART_MARK=kept",
		// No cgroup files opened by the fakes' runtime at start.
		"GODEBUG=containermaxprocs=0,updatemaxprocs=0"}
	cmd.Stdout = f
	var eb bytes.Buffer
	cmd.Stderr = &eb
	code = progtest.Run(t, cmd)
	b, _ := os.ReadFile(outPath)
	return code, eb.String(), string(b)
}

// waitFile waits for a report file.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil {
			return string(b)
		}
	}
	t.Fatalf("no %s", path)
	return ""
}

func TestWithLogger(t *testing.T) {
	s := newSetup(t)
	code, stderr, _ := s.run(t, "./Maildir/", "fake-logger", "qmail", "x")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d stderr %q", code, stderr)
	}
	send := waitFile(t, filepath.Join(s.report, "send"))
	for _, want := range []string{
		"uid=0 gid=2108 groups=[2108]\n",
		`argv=["qmail-send" "./Maildir/"]` + "\n",
		"cwd=" + s.home + "\n",
		"umask=077\n",
		"env=kept\n",
		// Standard input and error as given (unshare's), output a pipe,
		// nothing on 3-6.
		"3=closed 4=closed 5=closed 6=closed\n",
	} {
		if !strings.Contains(send, want) {
			t.Errorf("qmail-send: no %q in\n%s", want, send)
		}
	}
	if !strings.Contains(send, " 1=pipe:") {
		t.Errorf("qmail-send's standard output is not a pipe:\n%s", send)
	}
	lg := waitFile(t, filepath.Join(s.report, "logger"))
	for _, want := range []string{
		"uid=7792 gid=2107 groups=[2107]\n",
		`argv=["fake-logger" "qmail" "x"]` + "\n",
		"cwd=/\n",
		"umask=077\n",
		"env=kept\n",
		" 1=" + filepath.Join(s.dir, "stdout") + " ",
		// Standard error closed (Go's runtime opens /dev/null there).
		" 2=/dev/null 3=closed 4=closed 5=closed 6=closed\n",
	} {
		if !strings.Contains(lg, want) {
			t.Errorf("logger: no %q in\n%s", want, lg)
		}
	}
	pipe := func(report, fd string) string {
		_, after, _ := strings.Cut(report, " "+fd+"=")
		p, _, _ := strings.Cut(after, " ")
		return p
	}
	if p := pipe(lg, "0"); !strings.HasPrefix(p, "pipe:") || p != pipe(send, "1") {
		t.Errorf("logger's input %s is not qmail-send's output %s", p, pipe(send, "1"))
	}
	if log := waitFile(t, filepath.Join(s.report, "log")); log != "status: local 0/10 remote 0/20\n" {
		t.Errorf("logger got %q", log)
	}
	// The logger's standard output is qmail-start's.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(filepath.Join(s.dir, "stdout")); string(b) == "logger done\n" {
			return
		}
	}
	b, _ := os.ReadFile(filepath.Join(s.dir, "stdout"))
	t.Errorf("qmail-start's output: %q", b)
}

// Without a logger, qmail-send logs on qmail-start's standard output; the
// default delivery is ./Mailbox.
func TestWithoutLogger(t *testing.T) {
	s := newSetup(t)
	code, stderr, out := s.run(t)
	if code != 0 || stderr != "" || out != "status: local 0/10 remote 0/20\n" {
		t.Fatalf("exit %d stderr %q stdout %q", code, stderr, out)
	}
	send := waitFile(t, filepath.Join(s.report, "send"))
	if !strings.Contains(send, `argv=["qmail-send" "./Mailbox"]`) || !strings.Contains(send, " 1="+filepath.Join(s.dir, "stdout")+" ") {
		t.Errorf("qmail-send:\n%s", send)
	}
}

func TestFailures(t *testing.T) {
	s := newSetup(t)
	for _, tc := range []struct {
		name, passwd, group string
		setup               func()
		args                []string
		stderr              string
	}{
		{"no qmailr", strings.Replace(passwd, "qmailr:", "qmailR:", 1), group, nil, nil, "fatal: unable to find user qmailr\n"},
		{"no qmaill", strings.Replace(passwd, "qmaill:", "qmailL:", 1), group, nil, nil, "fatal: unable to find user qmaill\n"},
		{"no nofiles", passwd, strings.Replace(group, "nofiles:", "nofile:", 1), nil, nil, "fatal: unable to find group nofiles\n"},
		{"no qmail group", passwd, strings.Replace(group, "qmail:", "qmai:", 1), nil, nil, "fatal: unable to find group qmail\n"},
		{"no logger", passwd, group, nil, []string{"./Maildir/", "no-such-logger"}, ""},
		{"no qmail-send", passwd, group, func() { os.Remove(filepath.Join(s.bin, "qmail-send")) }, []string{"./Maildir/"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(s.passwd, []byte(tc.passwd), 0o644)
			os.WriteFile(s.group, []byte(tc.group), 0o644)
			if tc.setup != nil {
				tc.setup()
			}
			os.Remove(filepath.Join(s.report, "send"))
			code, stderr, out := s.run(t, tc.args...)
			if code != 111 || stderr != tc.stderr || out != "" {
				t.Errorf("exit %d stderr %q stdout %q", code, stderr, out)
			}
			if _, err := os.Stat(filepath.Join(s.report, "send")); err == nil {
				t.Error("qmail-send ran")
			}
		})
	}
}
