package qq

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestOpenError: when the pipes to the program cannot be made (here no
// descriptor is left: RLIMIT_NOFILE is lowered in a child process running
// this test), Run's *Error says "unable to exec qq" as before and wraps an
// *OpenError with the errno, so that qmail-local can say "Unable to fork".
func TestOpenError(t *testing.T) {
	if os.Getenv("QQ_OPEN_ERROR_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestOpenError$", "-test.v")
		cmd.Env = append(os.Environ(), "QQ_OPEN_ERROR_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestOpenError") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	// The runtime's poller first, which needs descriptors of its own.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	fds, err := os.ReadDir("/proc/self/fd") // its own descriptor included
	if err != nil {
		t.Skip(err)
	}
	// One descriptor free: pipe2 needs two.
	lim := syscall.Rlimit{Cur: uint64(len(fds)), Max: uint64(len(fds))}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip(err)
	}
	p := Program{Path: "/bin/true"}
	_, err = p.Run(t.Context(), "a@b", []string{"c@d"}, strings.NewReader("m\n"))
	var qe *Error
	var oe *OpenError
	if !errors.As(err, &qe) || qe.Result != "Zunable to exec qq (#4.3.0)" || !errors.As(err, &oe) || !errors.Is(err, syscall.EMFILE) {
		t.Fatalf("Run with no descriptors left: %v", err)
	}
}
