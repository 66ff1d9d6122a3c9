package maildir

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// A Maildir belongs to its user, who may put a FIFO, a socket or a device
// where a directory or the maildirsize file should be. Opening a FIFO
// blocks until the other end is opened, so every open of the delivery
// path is made so that it cannot block: directories with a trailing slash
// or O_DIRECTORY (open(2) then fails with ENOTDIR on anything else), files
// with O_NONBLOCK and an fstat check that they are regular files.

// errNotRegular is the cause of a refused maildirsize that is not a
// regular file.
var errNotRegular = errors.New("not a regular file")

// openRoot is os.OpenRoot for a directory a user controls: with a trailing
// slash, the open fails with ENOTDIR on a FIFO instead of blocking.
func openRoot(path string) (*os.Root, error) { return os.OpenRoot(path + "/") }

// openDir opens a directory a user controls, with O_DIRECTORY.
func openDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECTORY, 0)
}

// readDir is os.ReadDir of a directory a user controls (see openDir).
func readDir(path string) ([]os.DirEntry, error) {
	f, err := openDir(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
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
