package main

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// closeOnExec marks every descriptor of the process above 2 close-on-exec,
// so that none that the mta was started with (a supervisor's, a shell's, a
// test harness's) reaches the programs it starts: the delivery helper,
// qmail-local and the users' programs under it, the mailbox agents. What a
// role is handed on purpose (the helper's and an agent's socket,
// descriptor 3) it takes as a close-on-exec copy (net.FileConn) and closes.
// It is the first thing every role does (main), before any descriptor of
// its own is opened; the descriptors Go opens are close-on-exec already.
func closeOnExec() error {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd <= 2 {
			continue
		}
		// The directory's own descriptor, closed meanwhile, gives EBADF.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && err != unix.EBADF {
			return err
		}
	}
	return nil
}
