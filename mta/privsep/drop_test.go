package privsep

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestDrop: a root process with supplementary groups drops to the account
// for good: every uid and gid is the account's, no group is left, and
// root cannot be regained (Drop checks it). uid or gid 0 is refused
// before anything changes.
func TestDrop(t *testing.T) {
	for _, ids := range [][2]int{{0, 0}, {0, 1681}, {1681, 0}, {-1, 1681}} {
		if err := Drop(ids[0], ids[1]); err == nil {
			t.Errorf("Drop(%d, %d) = nil, want a refusal", ids[0], ids[1])
		}
	}
	if os.Getuid() != 0 {
		t.Skip("needs root: dropping it")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), dropEnv+"=1681:1682")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{4, 27, 100}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "Uid: 1681 1681 1681 1681\nGid: 1682 1682 1682 1682\nGroups:\n"
	if string(out) != want {
		t.Errorf("after Drop:\n%s\nwant\n%s", out, want)
	}
	if strings.Contains(string(out), "error") {
		t.Errorf("%s", out)
	}
}
