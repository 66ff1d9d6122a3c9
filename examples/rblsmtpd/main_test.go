package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/rbl"
)

func TestParse(t *testing.T) {
	r := func(base string, b, c bool) rbl.Source { return rbl.Source{Base: base, Permanent: b, FailClosed: c} }
	a := func(base string, c bool) rbl.Source { return rbl.Source{Base: base, Allow: true, FailClosed: c} }
	tests := []struct {
		args    string
		sources []rbl.Source
		timeout uint64
		prog    string
		stderr  string // before the usage line; "-" for no error
	}{
		{"rblsmtpd prog", nil, 60, "prog", "-"},
		{"rblsmtpd -r a -b -r b -B -r c prog x", []rbl.Source{r("a", false, false), r("b", true, false), r("c", false, false)}, 60, "prog x", "-"},
		{"rblsmtpd -c -a a -r b -C -a c -r d prog", []rbl.Source{a("a", true), r("b", false, true), a("c", false), r("d", false, false)}, 60, "prog", "-"},
		{"rblsmtpd -bcra -tx5 -aB prog", []rbl.Source{r("a", true, true), a("B", true)}, 0, "prog", "-"},
		{"rblsmtpd -t 5x prog", nil, 5, "prog", "-"},
		{"rblsmtpd -t 18446744073709551617 prog", nil, 1, "prog", "-"},
		{"rblsmtpd -b -- -r x", nil, 60, "-r x", "-"},
		{"rblsmtpd --whatever prog", nil, 60, "prog", "-"},
		{"rblsmtpd - -b", nil, 60, "- -b", "-"},
		{"rblsmtpd prog -b", nil, 60, "prog -b", "-"},
		{"rblsmtpd -r -b prog", []rbl.Source{r("-b", false, false)}, 60, "prog", "-"},
		// An unknown option and getopt's other complaints: usage, exit 100.
		{"rblsmtpd -x foo", nil, 0, "", "rblsmtpd: illegal option -- x\n"},
		{"rblsmtpd -x", nil, 0, "", "rblsmtpd: illegal option -- x\n"},
		{"rblsmtpd -bx prog", nil, 0, "", "rblsmtpd: illegal option -- x\n"},
		{"rblsmtpd -R prog", nil, 0, "", "rblsmtpd: illegal option -- R\n"},
		{"rblsmtpd -: prog", nil, 0, "", "rblsmtpd: illegal option -- :\n"},
		{"rblsmtpd", nil, 0, "", ""},
		{"rblsmtpd -b", nil, 0, "", ""},
		{"rblsmtpd --", nil, 0, "", ""},
		{"rblsmtpd -t", nil, 0, "", "rblsmtpd: option requires an argument -- t\n"},
		{"rblsmtpd -bt", nil, 0, "", "rblsmtpd: option requires an argument -- t\n"},
		{"rblsmtpd -r", nil, 0, "", "rblsmtpd: option requires an argument -- r\n"},
		{"rblsmtpd -a", nil, 0, "", "rblsmtpd: option requires an argument -- a\n"},
		{"/usr/local/bin/rbl -x foo", nil, 0, "", "rbl: illegal option -- x\n"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		o, ok := parse(strings.Fields(tt.args), &stderr)
		if tt.stderr == "-" {
			if !ok || stderr.Len() != 0 {
				t.Errorf("%s: usage error %q", tt.args, stderr.String())
				continue
			}
			if !slices.Equal(o.sources, tt.sources) || o.timeout != tt.timeout || strings.Join(o.prog, " ") != tt.prog {
				t.Errorf("%s: %+v", tt.args, o)
			}
			continue
		}
		if ok || stderr.String() != tt.stderr+usage {
			t.Errorf("%s: ok %v, stderr %q, want %q", tt.args, ok, stderr.String(), tt.stderr+usage)
		}
	}
	var stderr bytes.Buffer
	if _, ok := parse(nil, &stderr); ok || stderr.String() != usage {
		t.Errorf("no argv[0]: %q", stderr.String())
	}
}

// fakeDNS is the DNS of the block-list tests for 127.0.0.2.
type fakeDNS struct{}

func (fakeDNS) LookupTXT(ctx context.Context, name string) ([]string, error) {
	switch name {
	case "2.0.0.127.rbl.test":
		return []string{"listed see http://x/?ip=127.0.0.2", "\tsec\x01"}, nil
	case "2.0.0.127.empty.test":
		return []string{""}, nil
	case "2.0.0.127.long.test":
		return []string{strings.Repeat("y", 250)}, nil
	case "2.0.0.127.fail.test":
		return nil, errors.New("SERVFAIL")
	}
	return nil, nil
}

func (fakeDNS) LookupNetIP(ctx context.Context, network, name string) ([]netip.Addr, error) {
	if network != "ip4" {
		return nil, errors.New("rblsmtpd asked for " + network + " addresses, want ip4")
	}
	switch name {
	case "2.0.0.127.anti.test":
		return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil
	case "2.0.0.127.fail.test":
		return nil, errors.New("SERVFAIL")
	}
	return nil, nil
}

// runFake runs rblsmtpd in the test's process, with prog never really run.
func runFake(t *testing.T, args string, env map[string]string, input string) (code int, stdout, stderr string, ran []string) {
	t.Helper()
	var out, errb bytes.Buffer
	p := &proc{
		args: strings.Fields(args),
		lookupEnv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
		environ:  func() []string { return []string{"A=b"} },
		stdin:    strings.NewReader(input),
		stdout:   &out,
		stderr:   &errb,
		pid:      4242,
		resolver: fakeDNS{},
		exec: func(path string, argv, env []string) error {
			ran = append([]string{path}, argv...)
			return syscall.ENOEXEC
		},
	}
	code = run(p)
	return code, out.String(), errb.String(), ran
}

func TestRun(t *testing.T) {
	const listed = "listed see http://x/?ip=127.0.0.2?sec?"
	ip := map[string]string{"TCPREMOTEIP": "127.0.0.2", "PATH": "/x"}
	tests := []struct {
		name   string
		args   string
		env    map[string]string
		stdout string // "" when prog runs
	}{
		{"R2 -perm", "rblsmtpd -t 0 prog", map[string]string{"RBLSMTPD": "-perm"}, "553 perm\r\n"},
		{"R2 -", "rblsmtpd -t 0 prog", map[string]string{"RBLSMTPD": "-"}, "553 \r\n"},
		{"R2 empty", "rblsmtpd -t 0 -r rbl.test prog", map[string]string{"RBLSMTPD": "", "TCPREMOTEIP": "127.0.0.2"}, ""},
		{"RBLSMTPD before lists", "rblsmtpd -t 0 -a anti.test prog", map[string]string{"RBLSMTPD": "go", "TCPREMOTEIP": "127.0.0.2"}, "451 go\r\n"},
		{"R3", "rblsmtpd -t 0 -r rbl.test prog", ip, "451 " + listed + "\r\n"},
		{"R3 -b -r", "rblsmtpd -t 0 -b -r rbl.test prog", ip, "553 " + listed + "\r\n"},
		{"R3 -r -b", "rblsmtpd -t 0 -r rbl.test -b prog", ip, "451 " + listed + "\r\n"},
		{"-b -B -r", "rblsmtpd -t 0 -b -B -r rbl.test prog", ip, "451 " + listed + "\r\n"},
		{"R3 -a -r", "rblsmtpd -t 0 -a anti.test -r rbl.test prog", ip, ""},
		{"-r -a", "rblsmtpd -t 0 -r rbl.test -a anti.test prog", ip, "451 " + listed + "\r\n"},
		{"R3 fail open", "rblsmtpd -t 0 -r fail.test prog", ip, ""},
		{"R3 -c", "rblsmtpd -t 0 -c -r fail.test prog", ip, "451 temporary RBL lookup error\r\n"},
		{"-c -C", "rblsmtpd -t 0 -c -C -r fail.test prog", ip, ""},
		{"-r fail -c", "rblsmtpd -t 0 -r fail.test -c prog", ip, ""},
		{"R3 -b failure first", "rblsmtpd -t 0 -b -r fail.test -r rbl.test prog", ip, "451 " + listed + "\r\n"},
		{"-a fail open", "rblsmtpd -t 0 -a fail.test -r rbl.test prog", ip, ""},
		{"-c -a fail closed", "rblsmtpd -t 0 -b -c -a fail.test -r rbl.test prog", ip, "451 " + listed + "\r\n"},
		{"R3 empty TXT", "rblsmtpd -t 0 -r empty.test prog", ip, ""},
		{"R3 long", "rblsmtpd -t 0 -r long.test prog", ip, "451 " + strings.Repeat("y", 200) + "\r\n"},
		{"no lists", "rblsmtpd -t 0 prog", ip, ""},
		{"no TCPREMOTEIP", "rblsmtpd -t 0 -r rbl.test prog", map[string]string{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr, ran := runFake(t, tt.args, tt.env, "")
			if tt.stdout == "" {
				if code != 111 || ran == nil || stdout != "" {
					t.Errorf("prog not run: exit %d, stdout %q, ran %q", code, stdout, ran)
				}
				return
			}
			if code != 0 || ran != nil || stdout != tt.stdout {
				t.Errorf("exit %d, ran %q, stdout %q, want %q", code, ran, stdout, tt.stdout)
			}
			want := fmt.Sprintf("rblsmtpd: %s pid 4242: %s\n", tt.env["TCPREMOTEIP"], strings.TrimSuffix(tt.stdout, "\r\n"))
			if stderr != want {
				t.Errorf("stderr %q, want %q", stderr, want)
			}
		})
	}
}

// A blocked client through run: the log line and the whole session.
func TestRunR1(t *testing.T) {
	in := "HELO x\r\nEHLO y\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nrset\r\nnoop\r\nVRFY x\r\n\r\nquit\r\n"
	env := map[string]string{"TCPREMOTEIP": "192.0.2.7", "RBLSMTPD": "blocked because é\nx"}
	code, stdout, stderr, _ := runFake(t, "rblsmtpd prog", env, in)
	s220, s250, s221, no := "220 rblsmtpd.local\r\n", "250 rblsmtpd.local\r\n", "221 rblsmtpd.local\r\n", "451 blocked because ???x\r\n"
	if want := s220 + s250 + s250 + s250 + no + no + s250 + s250 + no + no + s221; stdout != want {
		t.Errorf("stdout\n%q\nwant\n%q", stdout, want)
	}
	if code != 0 || stderr != "rblsmtpd: 192.0.2.7 pid 4242: 451 blocked because ???x\n" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestPathexec(t *testing.T) {
	tests := []struct {
		name  string
		path  *string
		prog  string
		errs  map[string]error // by path; ENOENT when absent
		tried string
		err   error
	}{
		{"slash", nil, "./x", nil, "./x", syscall.ENOENT},
		{"default path", nil, "x", nil, "/bin/x /usr/bin/x", syscall.ENOENT},
		{"empty dir is .", new(":/a:"), "x", nil, "./x /a/x ./x", syscall.ENOENT},
		{"access denied kept", new("/a:/b"), "x", map[string]error{"/a/x": syscall.EACCES}, "/a/x /b/x", syscall.EACCES},
		{"last of several kept", new("/a:/b:/c"), "x", map[string]error{"/a/x": syscall.EACCES, "/b/x": syscall.EISDIR}, "/a/x /b/x /c/x", syscall.EISDIR},
		{"other error stops", new("/a:/b"), "x", map[string]error{"/a/x": syscall.ENOEXEC}, "/a/x", syscall.ENOEXEC},
		{"empty PATH", new(""), "x", nil, "./x", syscall.ENOENT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tried []string
			p := &proc{
				lookupEnv: func(k string) (string, bool) {
					if k != "PATH" || tt.path == nil {
						return "", false
					}
					return *tt.path, true
				},
				environ: func() []string { return nil },
				exec: func(path string, argv, env []string) error {
					tried = append(tried, path)
					if argv[0] != tt.prog {
						t.Errorf("argv[0] %q", argv[0])
					}
					if err, ok := tt.errs[path]; ok {
						return err
					}
					return syscall.ENOENT
				},
			}
			err := pathexec(p, []string{tt.prog, "arg"})
			if strings.Join(tried, " ") != tt.tried || !errors.Is(err, tt.err) {
				t.Errorf("tried %q, err %v; want %q, %v", tried, err, tt.tried, tt.err)
			}
		})
	}
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// ours builds this program once.
func ours(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "rblsmtpd-test")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(buildDir, "rblsmtpd"), ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "rblsmtpd")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// The real exec: prog replaces rblsmtpd with its arguments and environment;
// a program that cannot be run gets djb's error text.
func TestExec(t *testing.T) {
	bin := ours(t)
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	script := filepath.Join(dir, "smtpd")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$0|$*|$RBLSMTPD|$X\"\n"), 0o755)
	tests := []struct {
		args   []string
		path   string
		stdout string
		stderr string
		code   int
	}{
		{[]string{"-r", "x.invalid", script, "a b", "c"}, "/bin", script + "|a b c||y\n", "", 0},
		{[]string{"smtpd", "-b"}, "/nonexistent:" + dir, script[:len(dir)] + "/smtpd|-b||y\n", "", 0},
		{[]string{"nosuch"}, dir, "", "rblsmtpd: fatal: unable to run nosuch: file does not exist\n", 111},
		{[]string{noexec}, dir, "", "rblsmtpd: fatal: unable to run " + noexec + ": access denied\n", 111},
		{[]string{"noexec"}, dir + ":/nonexistent", "", "rblsmtpd: fatal: unable to run noexec: access denied\n", 111},
		{[]string{dir}, dir, "", "rblsmtpd: fatal: unable to run " + dir + ": access denied\n", 111},
	}
	for _, tt := range tests {
		cmd := exec.Command(bin, tt.args...)
		cmd.Env = []string{"RBLSMTPD=", "X=y", "PATH=" + tt.path}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Run()
		if out.String() != tt.stdout || errb.String() != tt.stderr || cmd.ProcessState.ExitCode() != tt.code {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tt.args, cmd.ProcessState.ExitCode(), out.String(), errb.String(), tt.code, tt.stdout, tt.stderr)
		}
	}
}

// procStatus reads a field (in kB) of /proc/PID/status.
func procStatus(t *testing.T, pid int, field string) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			var kb int
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// Abuse: a client that sends 256 MiB in one line, or 16 MiB of commands,
// leaves the process's memory flat; the -t alarm ends the session whether
// the client sends without end or stops reading.
func TestAbuse(t *testing.T) {
	bin := ours(t)
	for _, tt := range []struct {
		name  string
		chunk string
		size  int
	}{
		{"endless line", strings.Repeat("x", 1<<16), 256 << 20},
		{"commands", strings.Repeat("NOOP\r\nRCPT TO:<a@b>\r\n", 3000), 16 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, "-t", "30", "prog")
			cmd.Env = []string{"RBLSMTPD=-go away", "TCPREMOTEIP=192.0.2.7"}
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			drained := make(chan int64)
			go func() {
				var n int64
				buf := make([]byte, 1<<16)
				for {
					k, err := stdout.Read(buf)
					n += int64(k)
					if err != nil {
						drained <- n
						return
					}
				}
			}()
			chunk := []byte(tt.chunk)
			for sent := 0; sent < tt.size; sent += len(chunk) {
				if _, err := stdin.Write(chunk); err != nil {
					t.Fatal(err)
				}
			}
			hwm := procStatus(t, cmd.Process.Pid, "VmHWM")
			stdin.Close()
			cmd.Wait()
			n := <-drained
			t.Logf("peak RSS %d kB, %d bytes of replies", hwm, n)
			if hwm > 40<<10 {
				t.Errorf("peak RSS %d kB after %d MiB of input", hwm, tt.size>>20)
			}
			if cmd.ProcessState.ExitCode() != 0 {
				t.Errorf("exit %d", cmd.ProcessState.ExitCode())
			}
		})
	}

	for _, tt := range []struct {
		name   string
		client func(stdin interface{ Write([]byte) (int, error) })
		read   bool
	}{
		{"sends without end", func(w interface{ Write([]byte) (int, error) }) {
			b := bytes.Repeat([]byte("NOOP\r\n"), 1000)
			for {
				if _, err := w.Write(b); err != nil {
					return
				}
			}
		}, true},
		{"never reads", func(w interface{ Write([]byte) (int, error) }) {
			b := bytes.Repeat([]byte("RCPT TO:<a@b>\r\n"), 1000)
			for {
				if _, err := w.Write(b); err != nil {
					return
				}
			}
		}, false},
		{"silent", func(w interface{ Write([]byte) (int, error) }) {}, true},
	} {
		t.Run("timeout "+tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, "-t", "1", "prog")
			cmd.Env = []string{"RBLSMTPD=x"}
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if tt.read {
				go func() {
					buf := make([]byte, 1<<16)
					for {
						if _, err := stdout.Read(buf); err != nil {
							return
						}
					}
				}()
			}
			go tt.client(stdin)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatal("still running 20 s after a 1 s limit")
			}
			d := time.Since(start)
			stdin.Close()
			if d < time.Second || d > 10*time.Second {
				t.Errorf("session lasted %v with -t 1", d)
			}
			if cmd.ProcessState.ExitCode() != 0 {
				t.Errorf("exit %v", cmd.ProcessState)
			}
		})
	}
}
