package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/tcprules"
)

// chain builds qmail-popup, checkpassword and qmail-pop3d into one
// directory and makes a home directory holding the recorded session's
// Maildir
// and a password file for joe/good. Run as root, the user is uid and gid
// 65534 and the home belongs to it (qmail-pop3d refuses uid 0).
type chain struct {
	bin, home, maildir, passwd string
}

var vectorFiles = []struct{ path, body string }{
	{"cur/999.2.host:2,S", "Subject: two\nX: y\n\nbody2\n"},
	{"new/1000.1.host", "Subject: one\n\nline1\n.dotline\nline3\n"},
	{"new/1001.3.host", "Subject: three\n\nno newline at end"},
}

func newChain(t *testing.T) *chain {
	t.Helper()
	root, err := os.MkdirTemp("", "popchain")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755)
	c := &chain{bin: buildBinaries(t), home: filepath.Join(root, "home")}
	c.maildir = filepath.Join(c.home, "Maildir")
	mt := time.Now().Add(-time.Hour)
	for _, sub := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(c.maildir, sub), 0o700)
	}
	for i, f := range vectorFiles {
		p := filepath.Join(c.maildir, f.path)
		os.WriteFile(p, []byte(f.body), 0o600)
		at := mt.Add(time.Duration(i) * time.Second)
		os.Chtimes(p, at, at)
	}
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 65534, 65534
		filepath.Walk(c.home, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, uid, gid) })
	}
	c.passwd = filepath.Join(root, "poppasswd")
	line := fmt.Sprintf("joe:{PLAIN}good:%d:%d:Joe:%s:/bin/sh\n", uid, gid, c.home)
	if err := os.WriteFile(c.passwd, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *chain) env() []string {
	return append(os.Environ(), "PATH="+c.bin+":"+os.Getenv("PATH"), "POPPASSWD="+c.passwd)
}

func (c *chain) args() []string {
	return []string{"pop.example.org", "checkpassword", "qmail-pop3d", "Maildir"}
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// buildBinaries builds the three programs once for the test binary, into
// a directory anyone may read (the chain drops root).
func buildBinaries(t *testing.T) string {
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "popbin")
		if buildErr != nil {
			return
		}
		os.Chmod(binDir, 0o755)
		for _, p := range []string{"qmail-popup", "checkpassword", "qmail-pop3d"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, p), "../"+p).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", p, err, out)
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

// readScript reads the pop3 package's dialog script for the recorded
// session.
func readScript(t *testing.T, name string) []string {
	b, err := os.ReadFile(filepath.Join("..", "..", "pop3", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && l[0] != '#' && l[0] != '@' {
			lines = append(lines, l)
		}
	}
	return lines
}

var greetingRE = regexp.MustCompile(`^\+OK <(\d+)\.(\d+)@pop\.example\.org>$`)

// replay runs a dialog script over r and w; the greeting must have
// qmail-popup's form with pid (when not 0).
func replay(t *testing.T, lines []string, r *bufio.Reader, w io.Writer, pid int, maildir string) {
	t.Helper()
	for n, l := range lines {
		tag, arg, _ := strings.Cut(l, ": ")
		switch {
		case l == "EOF":
			if s, err := r.ReadString('\n'); err != io.EOF {
				t.Fatalf("want EOF, got %q, %v", s, err)
			}
		case tag == "C":
			fmt.Fprintf(w, "%s\r\n", arg)
		case tag == "S":
			got, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("line %d: %v", n+1, err)
			}
			got = strings.TrimSuffix(got, "\r\n")
			if n == 0 {
				m := greetingRE.FindStringSubmatch(got)
				if m == nil || pid != 0 && m[1] != strconv.Itoa(pid) {
					t.Fatalf("greeting %q (pid %d)", got, pid)
				}
				if ts, _ := strconv.ParseInt(m[2], 10, 64); time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
					t.Fatalf("greeting time %s", m[2])
				}
				continue
			}
			if got != arg {
				t.Fatalf("script line %d: got %q, want %q", n+1, got, arg)
			}
		case tag == "F":
			_, err := os.Lstat(filepath.Join(maildir, arg[1:]))
			if (err == nil) != (arg[0] == '+') {
				t.Fatalf("after the session: %s: %v", arg, err)
			}
		case tag == "X", l == "CLOSE":
		default:
			t.Fatalf("bad line %q", l)
		}
	}
}

// The recorded session through the whole chain on pipes, as
// tcpserver runs it: qmail-popup → checkpassword → qmail-pop3d.
func TestChainVectorSession(t *testing.T) {
	c := newChain(t)
	inR, inW, _ := os.Pipe()
	outR, outW, _ := os.Pipe()
	cmd := exec.Command(filepath.Join(c.bin, "qmail-popup"), c.args()...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = c.env(), inR, outW, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inR.Close()
	outW.Close()
	defer inW.Close()
	outR.SetDeadline(time.Now().Add(30 * time.Second))
	lines := readScript(t, "compat-vector-session.script")
	// F: lines are checked after the process has ended.
	var files []string
	for len(lines) > 0 && strings.HasPrefix(lines[len(lines)-1], "F: ") || lines[len(lines)-1] == "X: ok" {
		files = append([]string{lines[len(lines)-1]}, files...)
		lines = lines[:len(lines)-1]
	}
	replay(t, lines, bufio.NewReader(outR), inW, cmd.Process.Pid, c.maildir)
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("qmail-popup exit %d (%v), want 1", code, err)
	}
	replay(t, files, nil, nil, 0, c.maildir)
}

// Wrong password, QUIT, usage: qmail-popup's replies and exit 1.
func TestChainFailures(t *testing.T) {
	c := newChain(t)
	tests := []struct {
		args   []string
		input  string
		output string
	}{
		{c.args(), "USER joe\r\nPASS bad\r\n", "+OK \r\n-ERR authorization failed\r\n"},
		{c.args(), "USER nobody\r\nPASS good\r\n", "+OK \r\n-ERR authorization failed\r\n"},
		{c.args(), "QUIT\r\n", "+OK \r\n"},
		{c.args(), "CAPA\r\n", "-ERR authorization first\r\n"},
		{[]string{"pop.example.org"}, "", "-ERR usage: popup hostname subprogram\r\n"},
		{[]string{"pop.example.org", "checkpassword", "nonexistent-pop3d"}, "USER joe\r\nPASS good\r\n", "+OK \r\n-ERR authorization failed\r\n"},
	}
	for _, tt := range tests {
		cmd := exec.Command(filepath.Join(c.bin, "qmail-popup"), tt.args...)
		cmd.Env = c.env()
		cmd.Stdin = strings.NewReader(tt.input)
		out, _ := cmd.Output()
		got := string(out)
		if len(tt.args) > 1 {
			if !strings.HasPrefix(got, "+OK <") {
				t.Fatalf("%q: no greeting: %q", tt.input, got)
			}
			got = got[strings.Index(got, "\r\n")+2:]
		}
		if got != tt.output || cmd.ProcessState.ExitCode() != 1 {
			t.Errorf("%v %q: %q, exit %d; want %q, exit 1", tt.args, tt.input, got, cmd.ProcessState.ExitCode(), tt.output)
		}
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

const poplibChain = `
import poplib, sys
p = poplib.POP3(sys.argv[1], int(sys.argv[2]), timeout=10)
print(p.getwelcome().decode().split()[0])
p.user('joe')
p.pass_('good')
n, size = p.stat()
print('STAT', n, size)
print('UIDL', [x.decode() for x in p.uidl()[1]])
for i in range(1, n + 1):
    resp, lines, octets = p.retr(i)
    print('RETR', i, repr(b'\n'.join(lines).decode()))
p.dele(1)
p.dele(3)
p.quit()
`

func dial(t *testing.T, addr string) net.Conn {
	for range 100 {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			return c
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
	return nil
}

func runPoplib(t *testing.T, addr string) string {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(py, "-c", poplibChain, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("poplib: %v\n%s", err, out)
	}
	return string(out)
}

const poplibWant = `+OK
STAT 3 93
UIDL ['1 999.2.host', '2 1000.1.host', '3 1001.3.host']
RETR 1 'Subject: two\nX: y\n\nbody2\n'
RETR 2 'Subject: one\n\nline1\n.dotline\nline3\n'
RETR 3 'Subject: three\n\nno newline at end\n'
`

func (c *chain) checkAfterPoplib(t *testing.T) {
	t.Helper()
	for _, f := range []string{"cur/1000.1.host:2,"} {
		if _, err := os.Lstat(filepath.Join(c.maildir, f)); err != nil {
			t.Errorf("after QUIT: %v", err)
		}
	}
	for _, f := range []string{"cur/999.2.host:2,S", "new/1001.3.host", "new/1000.1.host"} {
		if _, err := os.Lstat(filepath.Join(c.maildir, f)); err == nil {
			t.Errorf("after QUIT: %s still there", f)
		}
	}
}

// The chain under Debian's tcpserver, fetched with Python's poplib. Note
// qmail-pop3d's extra empty line before the dot: poplib keeps it.
func TestChainTcpserver(t *testing.T) {
	tcpserver, err := exec.LookPath("tcpserver")
	if err != nil {
		t.Skip("tcpserver not installed (Debian package ucspi-tcp)")
	}
	c := newChain(t)
	port := freePort(t)
	cmd := exec.Command(tcpserver, append([]string{"-R", "-H", "-l", "0", "127.0.0.1", port, filepath.Join(c.bin, "qmail-popup")}, c.args()...)...)
	cmd.Env, cmd.Stderr = c.env(), os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	dial(t, "127.0.0.1:"+port).Close()
	if got := runPoplib(t, "127.0.0.1:"+port); got != poplibWant {
		t.Fatalf("poplib:\n%s\nwant:\n%s", got, poplibWant)
	}
	c.checkAfterPoplib(t)
}

// -listen serves the same chain itself; -x applies tcprules.
func TestChainListen(t *testing.T) {
	c := newChain(t)
	rules := filepath.Join(t.TempDir(), "rules.cdb")
	if err := tcprules.CompileFile(rules, rules+".tmp", strings.NewReader("127.0.0.2:deny\n:allow,POPFLAG=\"x\"\n")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(c.bin, "qmail-popup"), append([]string{"-listen", "127.0.0.1:0", "-x", rules, "-c", "5"}, c.args()...)...)
	cmd.Env = c.env()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	br := bufio.NewReader(stderr)
	first, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(first, "qmail-popup: listening on ") {
		t.Fatalf("stderr: %q, %v", first, err)
	}
	go io.Copy(io.Discard, br)
	addr := strings.TrimSpace(strings.TrimPrefix(first, "qmail-popup: listening on "))
	if got := runPoplib(t, addr); got != poplibWant {
		t.Fatalf("poplib:\n%s\nwant:\n%s", got, poplibWant)
	}
	c.checkAfterPoplib(t)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
}
