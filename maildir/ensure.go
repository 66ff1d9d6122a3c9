package maildir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/qmailkit/qmailkit/internal/durable"
)

// Ensure makes path a Maildir ready for delivery and returns it, whatever
// is there already: it makes the missing parent directories, the Maildir
// and whichever of tmp/, new/ and cur/ are missing, each new directory
// mode 0700 (less what the umask removes), and leaves everything that
// exists as it is, mail included. Calling it again, or from several
// processes at once, is harmless. What it made is fsynced into its parent
// directory before it returns.
//
// Ensure fails, making nothing inside path, when path itself or one of
// tmp/, new/ and cur/ is a symbolic link (a dangling one included) or
// something other than a directory: it never follows a link planted in
// the Maildir's place, so a program running with more rights than the
// Maildir's owner cannot be made to create directories elsewhere. (The
// parents of path are followed as given: a caller whose Maildir is
// reached through a link it trusts passes the link's parent, or uses
// [Open].)
//
// Unlike [Create], which keeps maildirmake's contract and fails on a
// Maildir that exists, Ensure is what a program receiving mail calls before
// its first delivery.
func Ensure(path string) (Dir, error) {
	if path == "" {
		return "", errors.New("maildir: ensure: empty path")
	}
	fail := func(err error) (Dir, error) { return "", fmt.Errorf("maildir: ensure %s: %w", path, err) }
	clean := filepath.Clean(path)
	parent, base := filepath.Dir(clean), filepath.Base(clean)
	if err := mkdirParents(parent); err != nil {
		return fail(err)
	}
	pfd, err := durable.Openat(unix.AT_FDCWD, parent, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fail(&fs.PathError{Op: "open", Path: parent, Err: err})
	}
	pdir := os.NewFile(uintptr(pfd), parent)
	defer pdir.Close()

	// The Maildir: made without following a link (mkdir(2) never does),
	// then opened with O_NOFOLLOW, so that a link there, made before or
	// meanwhile, is refused.
	madeTop := false
	if err := mkdirat(pdir, base); err == nil {
		madeTop = true
	} else if err != unix.EEXIST {
		return fail(&fs.PathError{Op: "mkdir", Path: clean, Err: err})
	}
	dir, err := openSub(pdir, base)
	if err != nil {
		return fail(err)
	}
	defer dir.Close()

	// Check all three before making any, so that a refusal changes nothing.
	var missing []string
	for _, s := range subdirs {
		var st unix.Stat_t
		err := fstatat(dir, s, &st)
		switch {
		case err == unix.ENOENT:
			missing = append(missing, s)
		case err != nil:
			return fail(&fs.PathError{Op: "lstat", Path: filepath.Join(clean, s), Err: err})
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			return fail(&fs.PathError{Op: "open", Path: filepath.Join(clean, s), Err: errSymlink})
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			return fail(&fs.PathError{Op: "open", Path: filepath.Join(clean, s), Err: unix.ENOTDIR})
		}
	}
	for _, s := range missing {
		if err := mkdirat(dir, s); err != nil && err != unix.EEXIST {
			return fail(&fs.PathError{Op: "mkdir", Path: filepath.Join(clean, s), Err: err})
		}
	}
	// Whatever made them (we or a concurrent caller), they must now be
	// directories and not links.
	for _, s := range subdirs {
		f, err := openSub(dir, s)
		if err != nil {
			return fail(err)
		}
		f.Close()
	}
	if len(missing) > 0 {
		if err := durable.Fsync(int(dir.Fd())); err != nil {
			return fail(&fs.PathError{Op: "fsync", Path: clean, Err: err})
		}
	}
	if madeTop {
		if err := durable.Fsync(int(pdir.Fd())); err != nil {
			return fail(&fs.PathError{Op: "fsync", Path: parent, Err: err})
		}
	}
	return Dir(path), nil
}

// mkdirParents makes dir and its missing parents, mode 0700, as
// os.MkdirAll does, and fsyncs the parent of each directory it made.
func mkdirParents(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			break // there, or an error os.MkdirAll reports
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := durable.SyncDir(filepath.Dir(missing[i])); err != nil {
			return err
		}
	}
	return nil
}

// mkdirat is mkdirat(2) of name in dir with mode 0700, retried on EINTR.
func mkdirat(dir *os.File, name string) error {
	for {
		err := unix.Mkdirat(int(dir.Fd()), name, 0o700)
		if err != unix.EINTR {
			return err
		}
	}
}
