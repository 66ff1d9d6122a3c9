package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/quotafs"
)

func setup(t *testing.T, qmail string) (home string, stdin *os.File) {
	t.Helper()
	home = filepath.Join(t.TempDir(), "joe")
	os.Mkdir(home, 0o755)
	if qmail != "" {
		os.WriteFile(filepath.Join(home, ".qmail-x"), []byte(qmail), 0o644)
	}
	path := filepath.Join(t.TempDir(), "msg")
	os.WriteFile(path, []byte("Subject: s\n\nhi\n"), 0o600)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return home, f
}

func runIt(t *testing.T, stdin *os.File, env []string, args ...string) (int, string, string) {
	t.Helper()
	var so, se bytes.Buffer
	code := dotqmail.QmailLocal(t.Context(), args, append([]string{"PATH=/usr/bin:/bin"}, env...), stdin, &so, &se)
	return code, so.String(), se.String()
}

func TestUsage(t *testing.T) {
	_, stdin := setup(t, "")
	for _, args := range [][]string{
		nil,
		{"joe", "/home/joe", "joe", "", "", "ex.com", "a@b"},
		{"joe", "home/joe", "joe", "", "", "ex.com", "a@b", "./Mailbox"},
		{"-x", "joe", "/home/joe", "joe", "", "", "ex.com", "a@b", "./Mailbox"},
	} {
		code, out, errOut := runIt(t, stdin, nil, args...)
		if code != 100 || out != "" || errOut != dotqmail.QmailLocalUsage {
			t.Errorf("%q: %d %q %q", args, code, out, errOut)
		}
	}
}

// TestPlan is qmail-local -n through the program: the deliveries it
// would make, one per line.
func TestPlan(t *testing.T) {
	home, stdin := setup(t, "./Maildir/\n|prog arg\n&a@b\n# c\n./Mailbox\n")
	code, out, errOut := runIt(t, stdin, nil, "-n", "joe", home, "joe-x", "-", "x", "ex.com", "a@b", "./Mailbox")
	if code != 0 || out != "maildir ./Maildir/\nprogram prog arg\nforward a@b\nmbox ./Mailbox\ndid 2+1+1\n" || errOut != "" {
		t.Errorf("-n: %d %q %q", code, out, errOut)
	}
	// -nN: the last one wins.
	code, out, _ = runIt(t, stdin, nil, "-nN", "--", "joe", home, "joe-x", "-", "x", "ex.com", "a@b", "./Mailbox")
	if code != 111 || out != "" {
		t.Errorf("-nN: %d %q", code, out) // ./Maildir/ does not exist: deferral
	}
}

func TestDeliver(t *testing.T) {
	home, stdin := setup(t, "./Mailbox\n|echo hello from $EXT; exit 0\n")
	code, out, errOut := runIt(t, stdin, nil, "joe", home, "joe-x", "-", "x", "ex.com", "a@b", "./Mailbox")
	if code != 0 || out != "hello from x\ndid 1+0+1\n" || errOut != "" {
		t.Errorf("deliver: %d %q %q", code, out, errOut)
	}
	b, _ := os.ReadFile(filepath.Join(home, "Mailbox"))
	if !strings.HasSuffix(string(b), "\nReturn-Path: <a@b>\nDelivered-To: joe-x@ex.com\nSubject: s\n\nhi\n\n") {
		t.Errorf("mbox %q", b)
	}
	// Failures: text on stderr, qmail-local's exit codes.
	for _, tt := range []struct {
		qmail, ext string
		code       int
		stderr     string
	}{
		{"|exit 100\n", "x", 100, ""},
		{"|echo busy >&2; exit 3\n", "x", 111, "busy\n"},
		{"", "nosuch", 100, "Sorry, no mailbox here by that name. (#5.1.1)\n"},
		{"\n./Mailbox\n", "x", 111, "Uh-oh: first line of .qmail file is blank. (#4.2.1)\n"},
	} {
		os.WriteFile(filepath.Join(home, ".qmail-x"), []byte(tt.qmail), 0o644)
		code, out, errOut := runIt(t, stdin, nil, "joe", home, "joe-"+tt.ext, "-", tt.ext, "ex.com", "a@b", "./Mailbox")
		if code != tt.code || errOut != tt.stderr || out != "" {
			t.Errorf("%q: %d %q %q, want %d %q", tt.qmail, code, out, errOut, tt.code, tt.stderr)
		}
	}
}

// TestForward injects through $QMAILQUEUE with qmail-queue's descriptors.
func TestForward(t *testing.T) {
	home, stdin := setup(t, "&a@b\nc@d\n")
	dir := t.TempDir()
	qq := filepath.Join(dir, "qq")
	os.WriteFile(qq, []byte("#!/bin/sh\ncat > "+dir+"/msg\ncat <&1 > "+dir+"/env\n"), 0o755)
	code, out, errOut := runIt(t, stdin, []string{"QMAILQUEUE=" + qq, "QMAILHOME=" + dir},
		"joe", home, "joe-x", "-", "x", "ex.com", "s@x", "./Mailbox")
	if code != 0 || !strings.HasPrefix(out, "did 0+2+0\nqp ") || errOut != "" {
		t.Fatalf("%d %q %q", code, out, errOut)
	}
	msg, _ := os.ReadFile(filepath.Join(dir, "msg"))
	env, _ := os.ReadFile(filepath.Join(dir, "env"))
	if string(msg) != "Delivered-To: joe-x@ex.com\nSubject: s\n\nhi\n" || string(env) != "Fs@x\x00Ta@b\x00Tc@d\x00\x00" {
		t.Errorf("message %q, envelope %q", msg, env)
	}
	// -home gives QMAILHOME/bin/qmail-queue.
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.Rename(qq, filepath.Join(dir, "bin", "qmail-queue"))
	code, out, errOut = runIt(t, stdin, nil, "-home", dir, "joe", home, "joe-x", "-", "x", "ex.com", "s@x", "./Mailbox")
	if code != 0 || !strings.HasPrefix(out, "did 0+2+0\nqp ") {
		t.Errorf("-home: %d %q %q", code, out, errOut)
	}
}

// TestHelpers runs the helper programs from .qmail lines, as built
// binaries on PATH, through a built qmail-local.
func TestHelpers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds six programs")
	}
	bin := t.TempDir()
	for _, p := range []string{"qmail-local", "preline", "forward", "condredirect", "bouncesaying", "except"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(bin, p), "github.com/qmailkit/qmailkit/examples/"+p).CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", p, err, out)
		}
	}
	qdir := t.TempDir()
	qq := filepath.Join(qdir, "qq")
	os.WriteFile(qq, []byte("#!/bin/sh\ncat >> "+qdir+"/msgs\ntr '\\0' ' ' <&1 >> "+qdir+"/envs\necho >> "+qdir+"/envs\n"), 0o755)
	env := []string{"PATH=" + bin + ":/usr/bin:/bin", "QMAILQUEUE=" + qq, "QMAILHOME=" + qdir}

	tests := []struct {
		name   string
		qmail  string
		code   int
		stdout string
		stderr string
		files  map[string]string // file in home → content
		envs   string
	}{
		{"preline", "|preline -f cat > out\n", 0, "did 0+0+1\n", "",
			map[string]string{"out": "Return-Path: <s@x>\nDelivered-To: joe-x@ex.com\nSubject: s\n\nhi\n"}, ""},
		{"bouncesaying", "|bouncesaying 'Gone.'\n./Mailbox\n", 100, "", "Gone.\n", nil, ""},
		{"bouncesaying if", "|bouncesaying 'No spam.' grep -q spam\n|echo kept > kept\n", 0, "did 0+0+2\n", "",
			map[string]string{"kept": "kept\n"}, ""},
		{"except", "|except grep -q hi\n|echo not reached > kept\n", 100, "", "", map[string]string{"kept": ""}, ""},
		{"condredirect", "|condredirect other@ex.com grep -q hi\n|echo not reached > kept\n", 0, "did 0+0+1\n",
			"condredirect: qp ", map[string]string{"kept": ""}, "Fs@x Tother@ex.com  \n"},
		{"forward", "|forward a@b c@d\n", 0, "did 0+0+1\n", "forward: qp ", nil, "Fs@x Ta@b Tc@d  \n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(filepath.Join(qdir, "envs"))
			home, stdin := setup(t, tt.qmail)
			cmd := exec.Command(filepath.Join(bin, "qmail-local"), "joe", home, "joe-x", "-", "x", "ex.com", "s@x", "./Mailbox")
			cmd.Env = env
			cmd.Stdin = stdin
			var so, se bytes.Buffer
			cmd.Stdout, cmd.Stderr = &so, &se
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || so.String() != tt.stdout || !strings.HasPrefix(se.String(), tt.stderr) {
				t.Errorf("exit %d stdout %q stderr %q; want %d %q %q...", code, so.String(), se.String(), tt.code, tt.stdout, tt.stderr)
			}
			for f, want := range tt.files {
				b, _ := os.ReadFile(filepath.Join(home, f))
				if string(b) != want {
					t.Errorf("%s = %q, want %q", f, b, want)
				}
			}
			envs, _ := os.ReadFile(filepath.Join(qdir, "envs"))
			if string(envs) != tt.envs {
				t.Errorf("injected envelopes %q, want %q", envs, tt.envs)
			}
		})
	}
}

// TestEnvironment is issue 17's finding 10: of the environment qmail-local
// is started with, programs get only the allow-list (dotqmail.AllowedEnv)
// and qmail-local's variables.
func TestEnvironment(t *testing.T) {
	home, stdin := setup(t, "|env\n")
	code, out, errOut := runIt(t, stdin, []string{"SECRET_TOKEN=hunter2", "QMAILHOME=/var/qmail", "LANG=C.UTF-8"},
		"joe", home, "joe-x", "-", "x", "ex.com", "a@b", "./Mailbox")
	if code != 0 || errOut != "" {
		t.Fatalf("%d %q %q", code, out, errOut)
	}
	if strings.Contains(out, "hunter2") {
		t.Errorf("the secret reached the program:\n%s", out)
	}
	for _, want := range []string{"\nQMAILHOME=/var/qmail\n", "\nLANG=C.UTF-8\n", "\nPATH=/usr/bin:/bin\n", "\nRECIPIENT=joe-x@ex.com\n"} {
		if !strings.Contains("\n"+out, want) {
			t.Errorf("the program's environment lacks %q:\n%s", want[1:], out)
		}
	}
}

// TestSIGTERM: SIGTERM (how dotqmail.Local stops a qmail-local child at
// its time limit, or when the server stops) makes qmail-local kill its
// program's whole process group, whatever the program does with SIGTERM,
// and exit 111 at once (issue 17, finding 3).
func TestSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds qmail-local")
	}
	bin := filepath.Join(t.TempDir(), "qmail-local")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/qmailkit/qmailkit/examples/qmail-local").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	home, stdin := setup(t, "|echo $$ > pgid; trap '' TERM; sleep 100 & sleep 100 | cat; wait\n")
	cmd := exec.Command(bin, "joe", home, "joe-x", "-", "x", "ex.com", "a@b", "./Mailbox")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdin = stdin
	var se bytes.Buffer
	cmd.Stderr = &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgidFile := filepath.Join(home, "pgid")
	var pgid int
	for i := 0; i < 250 && pgid == 0; i++ {
		time.Sleep(20 * time.Millisecond)
		b, _ := os.ReadFile(pgidFile)
		if strings.HasSuffix(string(b), "\n") {
			pgid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
	}
	if pgid <= 1 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("the program did not start")
	}
	time.Sleep(100 * time.Millisecond) // its children
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 111 {
			t.Errorf("qmail-local after SIGTERM: %v, %q; want exit 111", err, se.String())
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		syscall.Kill(-pgid, syscall.SIGKILL)
		t.Fatal("qmail-local still runs 5 s after SIGTERM")
	}
	for i := 0; ; i++ {
		err := syscall.Kill(-pgid, 0)
		if errors.Is(err, syscall.ESRCH) {
			break
		}
		if i == 200 {
			syscall.Kill(-pgid, syscall.SIGKILL)
			t.Fatalf("the program's process group %d survived: kill(-pgid, 0) = %v", pgid, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fdsProgram prints, for each descriptor the program has, its number, its
// access mode (O_ACCMODE of the flags fcntl(F_GETFL) gives, as the kernel
// shows them in /proc/self/fdinfo) and whether it is a pipe; then tries to
// write to its stdin.
const fdsProgram = `use POSIX; use Fcntl ':mode';
opendir(my $d, "/proc/self/fd") or die "fd: $!";
my @fds = sort { $a <=> $b } grep { /^\d+$/ && $_ != fileno($d) } readdir($d);
for my $fd (@fds) {
	open(my $i, "<", "/proc/self/fdinfo/$fd") or die "fdinfo: $!";
	my ($fl) = map { /^flags:\s*([0-7]+)/ ? oct($1) : () } <$i>;
	my @s = POSIX::fstat($fd);
	printf "fd %d mode %d %s\n", $fd, $fl & 3, S_ISFIFO($s[2]) ? "pipe" : "file";
}
print defined POSIX::write(0, "x", 1) ? "wrote stdin\n" : "stdin: " . ($!+0) . "\n";
`

// TestDescriptors is issue 17's re-audit in the qmail-local program:
// whatever its parent gave it (a stdin open read-write on a file of
// root's, a descriptor of such a file left open without close-on-exec,
// a stdout that is such a file), the recipient's program gets only its
// stdin, read-only, and pipes for stdout and stderr; its write to stdin
// fails with EBADF and the files do not change.
func TestDescriptors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds qmail-local")
	}
	if _, err := os.Stat("/usr/bin/perl"); err != nil {
		t.Skip("no /usr/bin/perl for the .qmail program")
	}
	base := t.TempDir()
	os.Chmod(filepath.Dir(base), 0o755)
	os.Chmod(base, 0o755)
	bin := filepath.Join(base, "qmail-local")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/qmailkit/qmailkit/examples/qmail-local").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	home := filepath.Join(base, "joe")
	os.Mkdir(home, 0o755)
	os.WriteFile(filepath.Join(home, "fds.pl"), []byte(fdsProgram), 0o644)
	os.WriteFile(filepath.Join(home, ".qmail-x"), []byte("|/usr/bin/perl ./fds.pl\n"), 0o644)
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}
		filepath.Walk(home, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, 65534, 65534) })
	} else {
		t.Log("not root: the files are the test's own, not another user's")
	}
	const body = "Subject: s\n\nhi\n"
	open := func(name, data string) *os.File {
		p := filepath.Join(base, name)
		os.WriteFile(p, []byte(data), 0o600)
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	stdin, leaked, stdout := open("mess", body), open("leaked", "secret\n"), open("out", "")
	cmd := exec.Command(bin, "joe", home, "joe-x", "-", "x", "ex.com", "a@b", "./Mailbox")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdin, cmd.Stdout = stdin, stdout
	var se bytes.Buffer
	cmd.Stderr = &se
	cmd.ExtraFiles = []*os.File{leaked} // fd 3, not close-on-exec
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := cmd.Run(); err != nil {
		t.Fatalf("qmail-local: %v %q", err, se.String())
	}
	out, _ := os.ReadFile(stdout.Name())
	want := "fd 0 mode 0 file\nfd 1 mode 1 pipe\nfd 2 mode 1 pipe\nstdin: " + strconv.Itoa(int(syscall.EBADF)) + "\ndid 0+0+1\n"
	if string(out) != want {
		t.Errorf("the program's descriptors and report:\n%s\nwant\n%s", out, want)
	}
	for f, data := range map[*os.File]string{stdin: body, leaked: "secret\n"} {
		if b, _ := os.ReadFile(f.Name()); string(b) != data {
			t.Errorf("%s: %q, want %q", f.Name(), b, data)
		}
	}
}

// TestErrorTexts: qmail-local's error lines word a system error as qmail's
// error_str does (issue 18): file not found, permission denied (as
// nobody, whom permissions bind) and a full quota (a btrfs file system
// with a qgroup limit, see internal/quotafs).
func TestErrorTexts(t *testing.T) {
	t.Run("not found", func(t *testing.T) {
		home, stdin := setup(t, "./nodir/mbox\n")
		code, out, errOut := runIt(t, stdin, nil, "joe", home, "joe-x", "-", "x", "ex.com", "a@b", "./Mailbox")
		if want := "Unable to open ./nodir/mbox: file does not exist. (#4.2.1)\n"; code != 111 || out != "" || errOut != want {
			t.Errorf("%d %q %q, want 111 %q", code, out, errOut, want)
		}
		code, out, errOut = runIt(t, stdin, nil, "joe", home+"/x", "joe-x", "-", "x", "ex.com", "a@b", "./Mailbox")
		if want := "Unable to switch to " + home + "/x: file does not exist. (#4.3.0)\n"; code != 111 || out != "" || errOut != want {
			t.Errorf("%d %q %q, want 111 %q", code, out, errOut, want)
		}
	})
	t.Run("access denied", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("not root: cannot run qmail-local as nobody, and the test's own files are always readable to it")
		}
		if testing.Short() {
			t.Skip("builds qmail-local")
		}
		base := t.TempDir()
		os.Chmod(filepath.Dir(base), 0o755)
		os.Chmod(base, 0o755)
		bin := filepath.Join(base, "qmail-local")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/qmailkit/qmailkit/examples/qmail-local").CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
		home, stdin := setup(t, "")
		os.Chmod(filepath.Dir(home), 0o755)
		os.WriteFile(filepath.Join(home, ".qmail-x"), []byte("./Mailbox\n"), 0o644)
		os.WriteFile(filepath.Join(home, "Mailbox"), nil, 0o444)
		os.WriteFile(filepath.Join(home, ".qmail-y"), []byte("./Mailbox\n"), 0)
		filepath.Walk(home, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, 65534, 65534) })
		for _, tt := range []struct{ ext, want string }{
			{"x", "Unable to open ./Mailbox: access denied. (#4.2.1)\n"},
			{"y", "Unable to open .qmail-y: access denied. (#4.3.0)\n"},
		} {
			cmd := exec.Command(bin, "joe", home, "joe-"+tt.ext, "-", tt.ext, "ex.com", "a@b", "./Mailbox")
			cmd.Env = []string{"PATH=/usr/bin:/bin"}
			cmd.Stdin = stdin
			var so, se bytes.Buffer
			cmd.Stdout, cmd.Stderr = &so, &se
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 111 || so.String() != "" || se.String() != tt.want {
				t.Errorf(".qmail-%s: %v %q %q, want exit 111 %q", tt.ext, err, so.String(), se.String(), tt.want)
			}
		}
	})
	t.Run("over quota", func(t *testing.T) {
		home := quotafs.Dir(t, 1<<20)
		os.WriteFile(filepath.Join(home, ".qmail-x"), []byte("./Mailbox\n"), 0o644)
		os.WriteFile(filepath.Join(home, ".qmail-y"), []byte("./New\n"), 0o644)
		os.WriteFile(filepath.Join(home, "Mailbox"), nil, 0o600)
		quotafs.Fill(t, home, "fill")
		_, stdin := setup(t, "")
		for _, tt := range []struct{ ext, want string }{
			{"x", "Unable to write ./Mailbox: disk quota exceeded. (#4.3.0)\n"},
			{"y", "Unable to open ./New: disk quota exceeded. (#4.2.1)\n"},
		} {
			code, out, errOut := runIt(t, stdin, nil, "joe", home, "joe-"+tt.ext, "-", tt.ext, "ex.com", "a@b", "./Mailbox")
			if code != 111 || out != "" || errOut != tt.want {
				t.Errorf(".qmail-%s: %d %q %q, want 111 %q", tt.ext, code, out, errOut, tt.want)
			}
		}
		if fi, err := os.Stat(filepath.Join(home, "Mailbox")); err != nil || fi.Size() != 0 {
			t.Errorf("Mailbox after the failed delivery: %v %v, want empty", fi, err)
		}
	})
}
