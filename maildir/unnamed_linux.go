//go:build linux

package maildir

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/qmailkit/qmailkit/internal/durable"
)

// deliverUnnamed is Deliver with Unnamed set: it writes the message into an
// O_TMPFILE file in tmp/, fsyncs it, checks the quota, links it into new/
// through /proc/self/fd, fsyncs new/ and closes it. done is false, with
// nothing written, when the kernel, the file system or /proc cannot do it;
// the caller then delivers by the tmp/ protocol. Every path is opened
// relative to the Maildir's descriptor with O_NOFOLLOW, so that, as with
// os.Root, a symbolic link tmp or new cannot take the delivery elsewhere.
func (dl *Deliverer) deliverUnnamed(ctx context.Context, dir Dir, r io.Reader) (name string, done bool, err error) {
	fail := func(step string, err error) (string, bool, error) {
		return "", true, &DeliveryError{Step: step, Err: err}
	}
	dfd, err := durable.Openat(unix.AT_FDCWD, string(dir), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fail("open", &os.PathError{Op: "open", Path: string(dir), Err: err})
	}
	defer unix.Close(dfd)
	tmp := filepath.Join(string(dir), "tmp")
	fd, err := durable.Openat(dfd, "tmp", unix.O_TMPFILE|unix.O_WRONLY|unix.O_NOFOLLOW, 0o600)
	switch {
	case err == unix.EOPNOTSUPP || err == unix.EISDIR || err == unix.EINVAL:
		// No O_TMPFILE here (EISDIR: a kernel that does not know it).
		dl.noUnnamed.Store(true)
		return "", false, nil
	case err != nil:
		return fail("create", &os.PathError{Op: "open", Path: tmp, Err: err})
	}
	self := "/proc/self/fd/" + strconv.Itoa(fd)
	if !dl.procFD.Load() {
		// Once per Deliverer: is there a /proc to link the file through?
		if err := unix.Faccessat(unix.AT_FDCWD, self, unix.F_OK, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			unix.Close(fd)
			dl.noUnnamed.Store(true)
			return "", false, nil
		}
		dl.procFD.Store(true)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(tmp, "(unnamed)"))
	defer f.Close()

	size, step, err := dl.copyMessage(ctx, f, r)
	if err != nil {
		return fail(step, err)
	}
	if err := dl.sync(f); err != nil {
		return fail("sync", err)
	}
	if err := ctx.Err(); err != nil {
		return fail("sync", err)
	}

	// A Maildir++ quota needs the Maildir as an os.Root; most Maildirs
	// have none, which two fstatat calls show.
	var qroot *os.Root
	if dl.Quota != (Quota{}) || exists(dfd, quotaFile) || exists(dfd, folderFile) {
		root, err := openRoot(string(dir))
		if err != nil {
			return fail("quota", err)
		}
		defer root.Close()
		if qroot, err = dl.checkQuota(root, dir, size); err != nil {
			return fail("quota", err)
		}
		if qroot != nil && qroot != root {
			defer qroot.Close()
		}
	}

	if name, err = dl.uniqueName(); err != nil {
		return fail("create", err)
	}
	if dl.SizeTag {
		name += ",S=" + strconv.FormatInt(size, 10)
	}
	nfd, err := durable.Openat(dfd, "new", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fail("link", &os.PathError{Op: "open", Path: filepath.Join(string(dir), "new"), Err: err})
	}
	defer unix.Close(nfd)
	if err := linkat(self, nfd, name); err != nil {
		return fail("link", &os.LinkError{Op: "link", Old: filepath.Join(tmp, "(unnamed)"), New: filepath.Join(string(dir), "new", name), Err: err})
	}
	// Delivered. Make the new entry durable before saying so, with one
	// fsync for the deliveries into this Maildir that are this far.
	if err := dl.syncNew(string(dir)); err != nil {
		return fail("sync", err)
	}
	if err := f.Close(); err != nil {
		// Not seen on a local file system after a good fsync; but a
		// delivery that reports failure must not leave its file.
		unix.Unlinkat(nfd, name, 0)
		return fail("sync", err)
	}
	addDelta(qroot, size)
	return name, true, nil
}

// linkat gives the file behind the /proc/self/fd link self the name name
// in the directory dirfd.
func linkat(self string, dirfd int, name string) error {
	for {
		err := unix.Linkat(unix.AT_FDCWD, self, dirfd, name, unix.AT_SYMLINK_FOLLOW)
		if err != unix.EINTR {
			return err
		}
	}
}

// exists reports whether name exists in the directory dirfd; an error
// other than ENOENT counts as existing, so that the caller looks closer.
func exists(dirfd int, name string) bool {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	return !errors.Is(err, unix.ENOENT)
}
