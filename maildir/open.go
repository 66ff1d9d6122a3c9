package maildir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// A Maildir belongs to its user, who may put a FIFO, a socket or a device
// where a directory or the maildirsize file should be. Opening a FIFO
// blocks until the other end is opened, so every open of the delivery
// path is made so that it cannot block: directories with a trailing slash
// or O_DIRECTORY (open(2) then fails with ENOTDIR on anything else), files
// with O_NONBLOCK and an fstat check that they are regular files.

// errNotRegular is the cause of a refused maildirsize or message that is
// not a regular file.
var errNotRegular = errors.New("not a regular file")

// openRoot is os.OpenRoot for a directory a user controls: with a trailing
// slash, the open fails with ENOTDIR on a FIFO instead of blocking.
func openRoot(path string) (*os.Root, error) { return os.OpenRoot(path + "/") }

// openDir opens a directory a user controls, with O_DIRECTORY. It follows
// symbolic links in path: the readers use it only for the Maildir's own
// path, which their caller chose.
func openDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECTORY, 0)
}

// openRegular opens name in root, a file a user controls, with
// O_NONBLOCK, and checks that it is a regular file: anything else fails
// with an error wrapping errNotRegular. O_NONBLOCK changes nothing for a
// regular file.
func openRegular(root *os.Root, name string, flag int) (*os.File, error) {
	f, err := root.OpenFile(name, flag|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if errors.Is(err, syscall.ENXIO) { // a FIFO without a reader, a socket
		return nil, &fs.PathError{Op: "open", Path: name, Err: errNotRegular}
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &fs.PathError{Op: "open", Path: name, Err: errNotRegular}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// The readers of a Maildir ([Dir.List], [Dir.Scan], [Dir.OpenMessage],
// [Dir.Move], [Dir.SetFlags], [Dir.Remove], [Dir.Clean] and the quota
// count) often run with more rights than the Maildir's owner: a POP3
// server for virtual mailboxes reads them all as one account. The owner
// may make new/ a symbolic link to the server's control directory, or
// name a FIFO like a message, so the readers open the Maildir's directory
// once, following the path their caller gave, and reach everything inside
// it relative to that descriptor with O_NOFOLLOW: tmp/, new/, cur/ and
// folders as directories (a symbolic link there is refused), messages
// non-blocking and checked to be regular files, and every stat, rename and
// unlink with fstatat, renameat or unlinkat on a directory descriptor, so
// that no path is resolved twice.

// errSymlink is the cause of a refused directory inside a Maildir that is
// a symbolic link.
var errSymlink = errors.New("a symbolic link, not followed")

// openSub opens the directory name inside dir without following a
// symbolic link: a link fails with an error wrapping errSymlink, a FIFO or
// anything else that is not a directory with ENOTDIR, at once.
func openSub(dir *os.File, name string) (*os.File, error) {
	fd, err := openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
	if err == unix.ELOOP || err == unix.ENOTDIR {
		var st unix.Stat_t
		if fstatat(dir, name, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			err = errSymlink
		}
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(dir.Name(), name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir.Name(), name)), nil
}

// openMessage opens the file name inside dir for reading without
// following a symbolic link and without blocking, and checks that it is a
// regular file: anything else fails with an error wrapping errNotRegular.
func openMessage(dir *os.File, name string) (*os.File, error) {
	path := filepath.Join(dir.Name(), name)
	fd, err := openat(dir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC)
	if err == unix.ELOOP || err == unix.ENXIO { // a symbolic link; a FIFO without a writer, a socket
		err = errNotRegular
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err = unix.Fstat(fd, &st); err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
		err = errNotRegular
	}
	if err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	// O_NONBLOCK changes nothing for a regular file.
	return os.NewFile(uintptr(fd), path), nil
}

// openat is openat(2) relative to dir, retried on EINTR.
func openat(dir *os.File, name string, flag int) (int, error) {
	for {
		fd, err := unix.Openat(int(dir.Fd()), name, flag, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// fstatat is fstatat(2) of name in dir, not following a symbolic link.
func fstatat(dir *os.File, name string, st *unix.Stat_t) error {
	for {
		err := unix.Fstatat(int(dir.Fd()), name, st, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EINTR {
			return err
		}
	}
}

// unlinkat removes the file name (not a directory) from dir, retried on
// EINTR.
func unlinkat(dir *os.File, name string) error {
	for {
		err := unix.Unlinkat(int(dir.Fd()), name, 0)
		if err != unix.EINTR {
			return err
		}
	}
}

// entries returns the entries of dir whose names do not start with '.'
// and whose type passes keep (the directory entry's type, or fstatat's
// when the file system does not record it).
func entries(dir *os.File, keep func(fs.FileMode) bool) ([]fs.DirEntry, error) {
	ents, err := dir.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	out := ents[:0]
	for _, e := range ents {
		if e.Name()[0] != '.' && keep(e.Type()) {
			out = append(out, e)
		}
	}
	return out, nil
}
