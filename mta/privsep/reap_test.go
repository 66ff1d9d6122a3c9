package privsep

import (
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestReapCountChild is the stand-in qmail-local child of
// TestReapCountsDeliveriesOfTheScan: run by it (with the variable set), it
// sleeps until killed or a minute has passed.
func TestReapCountChild(t *testing.T) {
	if os.Getenv("QMAILKIT_REAP_CHILD") == "" {
		t.Skip("run by TestReapCountsDeliveriesOfTheScan")
	}
	time.Sleep(time.Minute)
}

// TestReapCountsDeliveriesOfTheScan: two deliveries' qmail-local children
// are alive while the reaper reads /proc, and the older delivery ends
// before the reaper reads the count of deliveries in progress. The younger
// child is its delivery's, and must be spared: the reaper counts the
// deliveries in progress before its scan and those started during it, not
// only those still in progress after it.
func TestReapCountsDeliveriesOfTheScan(t *testing.T) {
	var children []*exec.Cmd
	for range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestReapCountChild$")
		cmd.Args[0] = "qmail-local" // as the helper runs this program
		cmd.Env = append(os.Environ(), "QMAILKIT_REAP_CHILD=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // as the qmail-local role does first
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children = append(children, cmd)
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		time.Sleep(20 * time.Millisecond) // distinct start times: the first is older
	}
	exe, err := os.Stat("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	r := &reaper{
		self: os.Getpid(), group: syscall.Getpgrp(), exe: exe,
		agent: func(int) bool { return false },
		// Two deliveries in progress and 10 ever started when asked before
		// the scan; then the older one has ended (its child not yet
		// reaped, as between Wait and the count's decrement).
		inflight: func() (int, int64) {
			calls++
			if calls == 1 {
				return 2, 10
			}
			return 1, 10
		},
		logger: slog.New(slog.DiscardHandler),
		dead:   map[int]time.Time{},
	}
	r.kill(false, time.Now())
	time.Sleep(100 * time.Millisecond)
	for i, c := range children {
		if err := c.Process.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("child %d (of a delivery in progress during the scan) was killed: %v", i, err)
		}
		var ws syscall.WaitStatus
		if pid, _ := syscall.Wait4(c.Process.Pid, &ws, syscall.WNOHANG, nil); pid == c.Process.Pid {
			t.Errorf("child %d exited: %v", i, ws)
		}
	}
}
