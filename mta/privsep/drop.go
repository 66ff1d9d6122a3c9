package privsep

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Drop makes every thread of the process run as uid and gid, with no
// supplementary groups (setgroups, setgid, setuid, which Go applies to
// all threads), and checks that it took: real, effective and saved ids
// are uid and gid, and root cannot be regained. uid and gid 0 are
// refused. Call it once the ports are bound and the helper started
// (Start): nothing else needs root.
func Drop(uid, gid int) error {
	if uid <= 0 || gid <= 0 {
		return fmt.Errorf("privsep: drop to uid %d gid %d: not an unprivileged account", uid, gid)
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("privsep: setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("privsep: setgid: %w", err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("privsep: setuid: %w", err)
	}
	if os.Getuid() != uid || os.Geteuid() != uid || os.Getgid() != gid || os.Getegid() != gid {
		return errors.New("privsep: setuid did not take")
	}
	if groups, err := os.Getgroups(); err != nil || len(groups) > 0 {
		return fmt.Errorf("privsep: supplementary groups left: %v %v", groups, err)
	}
	if syscall.Setuid(0) == nil {
		return errors.New("privsep: root can be regained after setuid")
	}
	return nil
}
