package command

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/qmailkit/qmailkit/dotqmail"
)

// The interop tests run Debian's fastforward programs, whose paths are
// fixed (/etc/aliases, /var/lib/qmail), and ours in a private mount
// namespace: the test binary re-runs itself with $ALIASES_NS set, binds the
// test's directories over /etc and /var/lib/qmail, and then execs the
// program (or runs ours in-process), so the real /etc is never touched.

const nsEnv = "ALIASES_NS"

type nsSpec struct {
	Mounts [][2]string // source, target
	Argv   []string    // "batch" and a program, "ours:newaliases" or a program path
	Dir    string
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(nsEnv); spec != "" {
		os.Exit(nsChild(spec))
	}
	os.Exit(m.Run())
}

func nsChild(js string) int {
	var s nsSpec
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		fmt.Fprintln(os.Stderr, "nschild:", err)
		return 125
	}
	for _, m := range s.Mounts {
		if err := syscall.Mount(m[0], m[1], "", syscall.MS_BIND, ""); err != nil {
			fmt.Fprintln(os.Stderr, "nschild: mount", m, err)
			return 125
		}
	}
	if s.Dir != "" {
		if err := os.Chdir(s.Dir); err != nil {
			fmt.Fprintln(os.Stderr, "nschild:", err)
			return 125
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, nsEnv+"=") {
			env = append(env, kv)
		}
	}
	o := IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Env: env,
		Forwarder: &dotqmail.QueueProgram{Env: env, Stderr: os.Stderr}}
	switch s.Argv[0] {
	case "batch":
		return nsBatch(s.Argv[1:], s.Dir, env)
	case "ours:newaliases":
		syscall.Umask(0o033)
		return Newaliases("/etc/aliases", "/etc/aliases.tmp", "/etc/aliases.cdb", o)
	}
	err := syscall.Exec(s.Argv[0], s.Argv, env)
	fmt.Fprintln(os.Stderr, "nschild: exec", s.Argv[0], err)
	return 125
}

// nsBatch runs argv once for each file in dir/in, copied to /etc/aliases
// first, and keeps the results in dir/out: N.code, N.stdout, N.stderr and
// N.cdb (when /etc/aliases.cdb was written). One namespace serves a whole
// table, which keeps the test fast under the race detector.
func nsBatch(argv []string, dir string, env []string) int {
	ents, err := os.ReadDir(filepath.Join(dir, "in"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "nschild:", err)
		return 125
	}
	out := func(name, ext string, b []byte) {
		os.WriteFile(filepath.Join(dir, "out", name+ext), b, 0o644)
	}
	for _, e := range ents {
		src, _ := os.ReadFile(filepath.Join(dir, "in", e.Name()))
		os.Remove("/etc/aliases.cdb")
		os.Remove("/etc/aliases.tmp")
		if err := os.WriteFile("/etc/aliases", src, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "nschild:", err)
			return 125
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = env
		r, err := runCmd(cmd)
		if err != nil {
			fmt.Fprintln(os.Stderr, "nschild:", err)
			return 125
		}
		out(e.Name(), ".code", []byte(fmt.Sprint(r.code)))
		out(e.Name(), ".stdout", []byte(r.stdout))
		out(e.Name(), ".stderr", []byte(r.stderr))
		if b, err := os.ReadFile("/etc/aliases.cdb"); err == nil {
			out(e.Name(), ".cdb", b)
		}
	}
	return 0
}

// needNS skips unless the test can make a mount namespace and Debian's
// programs are installed.
func needNS(t *testing.T, progs ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("interop with Debian's fastforward needs root, for a private mount namespace over /etc and /var/lib/qmail")
	}
	needDebian(t, progs...)
	if _, err := os.Stat("/var/lib/qmail"); err != nil {
		t.Skip("interop: /var/lib/qmail (Debian's qmail home, a mount point here) is missing:", err)
	}
}

func needDebian(t *testing.T, progs ...string) {
	t.Helper()
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("interop: Debian's fastforward package is not installed (%s: %v); apt-get install fastforward", p, err)
		}
	}
}

// nsRun runs argv in a private mount namespace with etc over /etc and
// qmail over /var/lib/qmail.
func nsRun(t *testing.T, etc, qmail, dir string, env []string, stdin string, argv ...string) result {
	t.Helper()
	js, _ := json.Marshal(nsSpec{Mounts: [][2]string{{etc, "/etc"}, {qmail, "/var/lib/qmail"}}, Argv: argv, Dir: dir})
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append([]string{}, env...), nsEnv+"="+string(js))
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	if stdin != "" {
		cmd.Stdin = open(t, stdin)
	}
	r, err := runCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if r.code == 125 {
		t.Fatalf("namespace child: %s", r.stderr)
	}
	return r
}

// runCmd runs cmd and collects its exit code and output; err is for a
// program that could not be run.
func runCmd(cmd *exec.Cmd) (result, error) {
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return result{}, err
	}
	return result{code, so.String(), se.String()}, nil
}

// execRun runs a program outside any namespace.
func execRun(t *testing.T, dir string, env []string, stdin string, argv ...string) result {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	if stdin != "" {
		cmd.Stdin = open(t, stdin)
	}
	r, err := runCmd(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
