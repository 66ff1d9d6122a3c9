package dotqmail

import (
	"os"
	"strconv"
	"syscall"
)

// closeOnExec marks every descriptor above 2 of the process close-on-exec,
// so that what a parent left open by mistake (a file of root's opened for
// writing, a socket) does not reach the programs a delivery runs, as the
// recipient, with their own rights. Go opens its own descriptors
// close-on-exec already; programs get stdin, stdout and stderr only.
func closeOnExec() {
	for _, dir := range []string{"/proc/self/fd", "/dev/fd"} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
				syscall.CloseOnExec(fd)
			}
		}
		return
	}
	n := uint64(4096)
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < n {
		n = rl.Cur
	}
	for fd := 3; fd < int(n); fd++ {
		syscall.CloseOnExec(fd) // EBADF for a descriptor not open
	}
}
