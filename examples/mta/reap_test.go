package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/mailtest"
)

// escape is a delivery program that tries to outlive its delivery, as the
// re-audit did: it finds the root helper (its first root ancestor), moves
// a child into the helper's process group (setpgid), and that child
// double-forks a sleeper, adopted by the helper when its parent exits.
const escape = `import os, time
def stat(pid):
    b = open("/proc/%d/stat" % pid).read()
    return b[b.rindex(")") + 2:].split()
def uid(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("Uid:"):
            return int(line.split()[1])
helper = os.getppid()
while uid(helper) != 0:
    helper = int(stat(helper)[1])
pgid = int(stat(helper)[2])
pid = os.fork()
if pid == 0:
    try:
        os.setpgid(0, pgid)
        r = "joined"
    except OSError as e:
        r = "errno %d" % e.errno
    open("setpgid", "w").write(r)
    if os.fork() == 0:
        open("sleeper", "w").write(str(os.getpid()))
        time.sleep(300)
    os._exit(0)
os.waitpid(pid, 0)
while not os.path.exists("sleeper"):
    time.sleep(0.01)
`

// zombiesOf returns the dead, unreaped processes of uid.
func zombiesOf(uid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, p := range stats {
		st, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(st[strings.LastIndexByte(string(st), ')')+1:]), " Z ") {
			continue
		}
		fi, err := os.Stat(filepath.Dir(p))
		if err != nil {
			continue
		}
		if s, ok := fi.Sys().(interface{ Uid() uint32 }); ok && int(s.Uid()) != uid {
			continue
		}
		status, err := os.ReadFile(filepath.Join(filepath.Dir(p), "status"))
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(status)) {
			if f := strings.Fields(line); len(f) == 5 && f[0] == "Uid:" && f[1] == strconv.Itoa(uid) {
				n, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				out = append(out, n)
			}
		}
	}
	return out
}

// TestNoEscapeIntoHelperGroup (the re-audit's finding): a delivery program
// cannot outlive its delivery by joining the helper's process group
// (setpgid fails: the qmail-local child leads a session of its own) and
// double-forking; the sleeper it leaves is killed and reaped within a few
// seconds: no process of the user's uid, not even a zombie, remains.
func TestNoEscapeIntoHelperGroup(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: a user with a uid of its own")
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("needs /usr/bin/python3 for the escaping program")
	}
	const uid = 1661
	acct := testAccount(t)
	dir := scratch(t)
	home := filepath.Join(dir, "home")
	p := startMTAAs(t, home, false, "-user", acct.name)
	homes := addUsers(t, home, dir, localUser{name: "eve", uid: uid, dotQmail: "|/usr/bin/python3 escape.py\n"})
	script := filepath.Join(homes["eve"], "escape.py")
	if err := os.WriteFile(script, []byte(escape), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := mailtest.Send(p.smtp, "bob@example.org", []string{"eve@localhost"}, "Subject: x\r\n\r\nhello\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(homes["eve"], "sleeper"), p)
	b, _ := os.ReadFile(filepath.Join(homes["eve"], "setpgid"))
	if string(b) != "errno 1" {
		t.Errorf("setpgid into the helper's group: %q, want errno 1 (EPERM)", b)
	}
	waitNoProcesses(t, uid, p)
	deadline := time.Now().Add(10 * time.Second)
	for len(zombiesOf(uid)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("zombies of uid %d left: %v\n%s", uid, zombiesOf(uid), p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The delivery itself succeeded.
	if !strings.Contains(p.stderr.String(), "success") {
		t.Logf("log:\n%s", p.stderr)
	}
	p.stop(t)
}

// TestQmailLocalOnlyFromHelper: this program run as qmail-local by
// anything but the helper (a program passing for a qmail-local child, which
// the helper would spare) refuses to run.
func TestQmailLocalOnlyFromHelper(t *testing.T) {
	bin := build(t)
	cmd := exec.Command(bin, "--", "u", "/nonexistent", "u", "", "", "localhost", "s@x", "./Maildir/")
	cmd.Args[0] = "qmail-local"
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 111 || !strings.Contains(string(out), "started by the delivery helper only") {
		t.Errorf("qmail-local from the test: %v %q, want exit 111", err, out)
	}
}
