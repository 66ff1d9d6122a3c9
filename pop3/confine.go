package pop3

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/qmailkit/qmailkit"
	"golang.org/x/sys/unix"
)

// ErrUnsafeMaildir is the condition of a Maildir the server refuses to
// read: one reached through a symbolic link (the Maildir itself, a
// directory between the user's home and it, or its tmp/, new/ or cur/), or
// not owned by the user's uid. It is permanent: an error wrapping it has a
// Permanent method returning true, and a modern session answers "-ERR
// [SYS/PERM] ...".
var ErrUnsafeMaildir = errors.New("pop3: unsafe maildir")

func unsafeMaildir(format string, a ...any) error {
	return qmailkit.Permanent(fmt.Errorf("%w: "+format, append([]any{ErrUnsafeMaildir}, a...)...))
}

// dirFlags open a directory handle without following a symbolic link in
// the last component.
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// openMaildirDir opens the Maildir directory at path, following no
// symbolic link in the components the user controls: the last one always,
// and every one below home when path lies below home (the home directory
// itself and the components above it are the administrator's). It uses
// openat2(2) with RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS where the kernel
// has it (Linux 5.6), else one openat(2) with O_NOFOLLOW per component.
func openMaildirDir(path, home string) (int, error) {
	rel := ""
	if home != "" {
		if r, err := filepath.Rel(filepath.Clean(home), filepath.Clean(path)); err == nil && r != "." && r != ".." && !strings.HasPrefix(r, "../") && !filepath.IsAbs(r) {
			rel = r
		}
	}
	if rel == "" {
		fd, err := openDirNoFollow(unix.AT_FDCWD, path)
		return fd, linkError(path, err)
	}
	hfd, err := openRetry(unix.AT_FDCWD, home, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return -1, &fsError{op: "open", path: home, err: err}
	}
	defer unix.Close(hfd)
	fd, err := openBelow(hfd, rel, true)
	return fd, linkError(path, err)
}

// openBelow opens the directory rel below the directory hfd, following no
// symbolic link: with openat2(2) when useOpenat2 and the kernel has it,
// else one component at a time.
func openBelow(hfd int, rel string, useOpenat2 bool) (int, error) {
	for useOpenat2 {
		fd, err := unix.Openat2(hfd, rel, &unix.OpenHow{
			Flags:   uint64(dirFlags),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		switch err {
		case unix.EINTR, unix.EAGAIN:
			continue // EAGAIN: a concurrent rename; try again
		case unix.ENOSYS, unix.EPERM:
			// No openat2 (or a seccomp filter refusing it): walk.
			useOpenat2 = false
			continue
		case unix.ENOTDIR:
			// O_DIRECTORY|O_NOFOLLOW on a last component that is a
			// symbolic link (the ones before it gave ELOOP).
			var st unix.Stat_t
			if fstatat(hfd, rel, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
		}
		return fd, err
	}
	fd, err := unix.Dup(hfd)
	if err != nil {
		return -1, err
	}
	for _, c := range strings.Split(rel, "/") {
		next, err := openDirNoFollow(fd, c)
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// openDirNoFollow opens the directory name in dirfd, failing with ELOOP
// when it is a symbolic link (whatever it points to).
func openDirNoFollow(dirfd int, name string) (int, error) {
	fd, err := openRetry(dirfd, name, dirFlags)
	if err == unix.ENOTDIR {
		var st unix.Stat_t
		if fstatat(dirfd, name, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			err = unix.ELOOP
		}
	}
	return fd, err
}

// linkError turns the error of an open that met a symbolic link (ELOOP
// from O_NOFOLLOW or RESOLVE_NO_SYMLINKS, ENOTDIR for a link to a file
// under O_DIRECTORY|O_NOFOLLOW, EXDEV from RESOLVE_BENEATH) into one
// wrapping ErrUnsafeMaildir.
func linkError(path string, err error) error {
	switch err {
	case nil:
		return nil
	case unix.ELOOP, unix.EXDEV:
		return unsafeMaildir("%s: a symbolic link on the way", path)
	}
	return &fsError{op: "open", path: path, err: err}
}

// fsError is an error of a system call on a path, as os.PathError but
// without importing its formatting quirks.
type fsError struct {
	op, path string
	err      error
}

func (e *fsError) Error() string { return e.op + " " + e.path + ": " + e.err.Error() }
func (e *fsError) Unwrap() error { return e.err }

// openRetry is openat(2) restarted on EINTR.
func openRetry(dirfd int, name string, flags int) (int, error) {
	for {
		// 0600 for what O_CREAT makes (pop3.lock, pop3sizes): the
		// mailbox owner's alone, and readable and writable by them.
		fd, err := unix.Openat(dirfd, name, flags, 0o600)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// openSubdir opens tmp/, new/ or cur/ in the Maildir handle dirfd,
// refusing a symbolic link.
func openSubdir(dirfd int, path, name string) (int, error) {
	fd, err := openDirNoFollow(dirfd, name)
	if err == unix.ELOOP {
		return -1, unsafeMaildir("%s/%s is a symbolic link", path, name)
	}
	if err != nil {
		return -1, &fsError{op: "open", path: path + "/" + name, err: err}
	}
	return fd, nil
}

// openFile opens name in dirfd for reading, refusing anything but a
// regular file (owned by uid, when uid >= 0) without blocking: a FIFO or a
// device opened with O_NONBLOCK returns at once, and is then refused by
// fstat. Regular files ignore O_NONBLOCK, so it is left set.
func openFile(dirfd int, name string, flags, uid int) (int, error) {
	fd, err := openRetry(dirfd, name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY)
	if err != nil {
		return -1, err
	}
	// st stays on the stack: this runs for every RETR.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: not a regular file", name)
	}
	if uid >= 0 && int(st.Uid) != uid {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: owned by uid %d, not %d", name, st.Uid, uid)
	}
	return fd, nil
}

func unlinkat(dirfd int, name string) error {
	for {
		err := unix.Unlinkat(dirfd, name, 0)
		if err != unix.EINTR {
			return err
		}
	}
}

func renameat(olddirfd int, oldname string, newdirfd int, newname string) error {
	for {
		err := unix.Renameat(olddirfd, oldname, newdirfd, newname)
		if err != unix.EINTR {
			return err
		}
	}
}
