package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/internal/mailtest"
)

// TestNoInheritedDescriptors (the audit's descriptor 251): descriptors the
// mta is started with, not close-on-exec, do not reach users' programs: a
// .qmail program listing its shell's descriptors sees 0, 1 and 2 only,
// in a delivery under a user's uid (through the helper and qmail-local),
// and neither the mta nor its helper holds them open across exec.
func TestNoInheritedDescriptors(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: a user with a uid of its own")
	}
	const uid = 1641
	leak, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer leak.Close()
	leak2, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer leak2.Close()
	acct := testAccount(t)
	dir := scratch(t)
	home := filepath.Join(dir, "home")
	p := startMTAFiles(t, home, false, []*os.File{leak, leak2}, "-user", acct.name)
	// exec redirects for good: a redirection of one command would make
	// the shell keep a copy of its standard output (dash's descriptor 10).
	const dot = "|exec > fds.tmp; ls /proc/$$/fd; mv fds.tmp fds\n"
	homes := addUsers(t, home, dir, localUser{name: "fiona", uid: uid, dotQmail: dot})
	if err := mailtest.Send(p.smtp, "bob@example.org", []string{"fiona@localhost"}, "Subject: x\r\n\r\nhello\r\n"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(homes["fiona"], "fds")
	waitFile(t, path, p)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(b)); strings.Join(got, " ") != "0 1 2" {
		t.Errorf("the program's descriptors: %q, want 0 1 2", got)
	}
	// Each process the mta runs, the helper included.
	for _, pid := range append([]int{p.cmd.Process.Pid}, children(t, p.cmd.Process.Pid)...) {
		if fds := leaked(t, pid); len(fds) > 0 {
			t.Errorf("process %d holds the inherited descriptors %v open without close-on-exec", pid, fds)
		}
	}
	p.stop(t)
}

// leaked returns the descriptors 3 and 4 of pid when they are open and
// not close-on-exec (/proc/pid/fdinfo's flags).
func leaked(t *testing.T, pid int) []string {
	t.Helper()
	var out []string
	for _, fd := range []string{"3", "4"} {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "fdinfo", fd))
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "flags:" {
				// octal; O_CLOEXEC is 02000000
				if v, err := strconv.ParseUint(f[1], 8, 64); err == nil && v&0o2000000 == 0 {
					out = append(out, fd)
				}
			}
		}
	}
	return out
}
