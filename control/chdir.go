package control

import (
	"io/fs"

	"golang.org/x/sys/unix"
)

// CanChdir reports whether chdir(2) to dir would succeed, with the errno
// chdir would give (ENOENT, ENOTDIR, EACCES, ...) wrapped in an
// *fs.PathError, without changing the process's working directory: the
// drop-in programs check their "chdir QMAILHOME" step with it and then use
// paths under dir, so that their tests can run side by side in one process.
func CanChdir(dir string) error {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
		err = unix.Access(dir, unix.X_OK)
	}
	if err != nil {
		return &fs.PathError{Op: "chdir", Path: dir, Err: err}
	}
	return nil
}
