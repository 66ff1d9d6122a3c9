// Package durable holds the one place where qmailkit makes a file change
// durable on Linux: write, fsync the file, close (checking the error, which
// NFS reports late), link or rename, and fsync the directory that changed.
//
// qmail relied on BSD's synchronous directory updates; Linux file systems do
// not promise them, so every package that acknowledges data (a Maildir
// delivery, a queue injection, a rebuilt cdb) calls these helpers instead of
// repeating the sequence.
package durable

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Openat is openat(2) with O_CLOEXEC added, retried on EINTR. It returns a
// bare descriptor: an os.File of a regular file or directory would cost the
// runtime poller's four fcntl calls and an epoll_ctl, and the queue and
// Maildir deliveries open several per message.
func Openat(dirfd int, path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, path, flags|unix.O_CLOEXEC, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// SyncDir fsyncs the directory dir so that entries created, linked, renamed or
// removed in it survive a crash. It uses the bare system calls (open, fsync,
// close): an os.File would add four fcntl calls and an epoll_ctl to every
// directory fsync, and a queue does several per message.
func SyncDir(dir string) error { return SyncDirWith(dir, Fsync) }

// Fsync is fsync(2) of fd, retried on EINTR.
func Fsync(fd int) error {
	for {
		if err := syscall.Fsync(fd); err != syscall.EINTR {
			return err
		}
	}
}

// SyncFileWith is f.Sync with fsync run by fsync (for instance through an
// io_uring) on f's descriptor, which stays open meanwhile; a nil fsync is
// Fsync.
func SyncFileWith(f *os.File, fsync func(fd int) error) error {
	if fsync == nil {
		fsync = Fsync
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = fsync(int(fd)) }); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: serr}
	}
	return nil
}

// SyncDirWith is SyncDir with fsync run by fsync (for instance through an
// io_uring) on the directory's open descriptor; a nil fsync is Fsync.
func SyncDirWith(dir string, fsync func(fd int) error) error {
	if fsync == nil {
		fsync = Fsync
	}
	fd, err := Openat(unix.AT_FDCWD, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	err = fsync(fd)
	if cerr := syscall.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// SyncClose fsyncs f and closes it. It reports the first error of the two and
// always closes f.
func SyncClose(f *os.File) error {
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Rename renames oldpath to newpath and fsyncs the directory of newpath (and of
// oldpath when it is another directory). It never fails after the rename
// without saying so: an error from the directory fsync is returned, and the
// caller must treat the change as possibly not durable.
func Rename(oldpath, newpath string) error {
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	return syncDirs(oldpath, newpath)
}

// Link hard-links oldpath to newpath and fsyncs newpath's directory. It fails
// with an error satisfying errors.Is(err, fs.ErrExist) when newpath exists.
func Link(oldpath, newpath string) error {
	if err := os.Link(oldpath, newpath); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(newpath))
}

func syncDirs(oldpath, newpath string) error {
	nd, od := filepath.Dir(newpath), filepath.Dir(oldpath)
	err := SyncDir(nd)
	if od != nd {
		err = errors.Join(err, SyncDir(od))
	}
	return err
}
