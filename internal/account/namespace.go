package account

import (
	"fmt"
	"os"
	"os/exec"
)

// Command returns a command running name with args in a mount namespace
// of its own where the files passwd and group are bind-mounted over
// /etc/passwd and /etc/group, so that a test can give a program qmail's
// accounts without adding them to the system. It needs root and the
// util-linux unshare(1) and mount(1); [CanIsolate] says whether they are
// there.
func Command(passwd, group, name string, args ...string) *exec.Cmd {
	script := `mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && shift 2 && exec "$@"`
	return exec.Command("unshare", append([]string{"--mount", "--propagation", "private",
		"/bin/sh", "-c", script, "sh", passwd, group, name}, args...)...)
}

// CanIsolate reports why [Command] cannot work here ("" when it can).
func CanIsolate() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	for _, p := range []string{"unshare", "mount"} {
		if _, err := exec.LookPath(p); err != nil {
			return p + " not found"
		}
	}
	// A container may deny mount namespaces even to root.
	if out, err := exec.Command("unshare", "--mount", "--propagation", "private", "true").CombinedOutput(); err != nil {
		return fmt.Sprintf("no mount namespace: %v %s", err, out)
	}
	return ""
}
