package dotqmail

import (
	"errors"
	"syscall"
)

// errNotRegular is the cause of a refusal to open a file a user controls
// that is not a regular file: a FIFO, a device or a socket would block the
// open or the read, or do something else than hold mail or lines.
var errNotRegular = errors.New("not a regular file")

// openRegular opens path, a file a user controls, so that nothing can
// block: with O_NONBLOCK (qmail's O_NDELAY), which makes opening a FIFO
// return at once (or fail with ENXIO), and O_NOCTTY, so that a terminal
// never becomes the process's. It then checks with fstat that the file
// is a regular file, and fails with errNotRegular (the descriptor closed)
// when it is not. The callers stat the path first, so that a FIFO or a
// device is not even opened in the ordinary case; this check catches one
// put in place in between.
//
// O_NONBLOCK changes nothing for the reads and writes of a regular file.
func openRegular(path string, flags int, perm uint32) (int, syscall.Stat_t, error) {
	var (
		fd  int
		st  syscall.Stat_t
		err error
	)
	err = ignoringEINTR(func() (err error) {
		fd, err = syscall.Open(path, flags|syscall.O_CLOEXEC|syscall.O_NONBLOCK|syscall.O_NOCTTY, perm)
		return err
	})
	if err == syscall.ENXIO { // a FIFO opened for writing without a reader, a socket
		return -1, st, errNotRegular
	}
	if err != nil {
		return -1, st, err
	}
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return -1, st, err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return -1, st, errNotRegular
	}
	return fd, st, nil
}

// ignoringEINTR calls f until it fails with something else than EINTR.
func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != syscall.EINTR {
			return err
		}
	}
}
