package privsep

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// The root helper believes users/cdb: it says under which uid, and with
// which home and .qmail files, each address is delivered. A users/cdb that
// the mta's account could write would let that account run programs under
// any other uid, so the helper reads users/cdb only when it and users/
// belong to root (or to the helper's own uid) and no one else may write
// them, as qmail's users/, which qmail-newu run by root writes. The check
// is made at every lookup (assign.Users.Trust), so that a chown or a
// replaced file counts at once; a refusal defers the delivery.

// UntrustedError is a file or directory of the home that the helper
// refuses to believe (CheckUsers), or that the account could write
// (CheckControl, CheckHome).
type UntrustedError struct {
	// Path is the file or directory refused.
	Path string
	// Reason says why: its owner, its mode, or why it could not be
	// examined.
	Reason string
}

// Error is "refusing PATH: REASON".
func (e *UntrustedError) Error() string { return "refusing " + e.Path + ": " + e.Reason }

// report is the delivery's report text: it names the file, the reason and
// the fix (RFC 3463: 4.3.5, system incorrectly configured).
func (e *UntrustedError) report() string {
	return fmt.Sprintf("Refusing %s: %s; it must belong to root and be writable by root alone. (#4.3.5)\n", e.Path, e.Reason)
}

// vetOwner refuses fi, of path, unless it belongs to root or to uid euid
// and neither its group nor others may write it.
func vetOwner(path string, fi fs.FileInfo, euid int) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return &UntrustedError{path, "no owner known"}
	}
	if st.Uid != 0 && int(st.Uid) != euid {
		return &UntrustedError{path, fmt.Sprintf("owned by uid %d, not root", st.Uid)}
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return &UntrustedError{path, fmt.Sprintf("writable by group or others (mode %#o)", fi.Mode().Perm())}
	}
	return nil
}

// trustUsersCDB is assign.Users.Trust for the helper: fi is users/cdb's
// (at path); users/, the directory holding it, is checked too, and must
// be a directory, not a symbolic link.
func trustUsersCDB(path string, fi fs.FileInfo) error {
	euid := os.Geteuid()
	dir := filepath.Dir(path)
	dfi, err := os.Lstat(dir)
	if err != nil {
		return &UntrustedError{dir, err.Error()}
	}
	if !dfi.IsDir() {
		return &UntrustedError{dir, "not a directory"}
	}
	if err := vetOwner(dir, dfi, euid); err != nil {
		return err
	}
	return vetOwner(path, fi, euid)
}

// CheckUsers reports whether the helper will believe home's users/cdb: nil
// when it and users/ belong to root and only root may write them (as
// mta.Init, run as root, makes them), or when there is none; else an
// *UntrustedError, and the helper defers deliveries to other uids until
// UsersFix is run. The helper makes the same check at every lookup, and
// the same for users/poppasswd before it starts a mailbox agent.
func CheckUsers(home string) error {
	path := filepath.Join(home, "users", "cdb")
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &UntrustedError{path, err.Error()}
	}
	return trustUsersCDB(path, fi)
}

// UsersFix is the shell command that gives home's users/ to root as
// mta.Init makes it, users/poppasswd readable by the account's group gid.
func UsersFix(home string, gid int) string {
	u := filepath.Join(home, "users")
	return fmt.Sprintf("chown -R root:root %[1]s && chmod go-w %[1]s %[1]s/assign %[1]s/cdb && chgrp %[2]d %[1]s/poppasswd && chmod 640 %[1]s/poppasswd", u, gid)
}

// CheckControl reports, for a program started as root, whether the
// account it runs as (uid, gid) could write home's control/ or a file in
// it: the control files decide who may relay and hold the TLS key, so, as
// mta.Init makes them, they belong to root and only the key is readable
// by the account's group. nil when the account can write none of them;
// else an *UntrustedError naming the first it could, fixed by ControlFix.
func CheckControl(home string, uid, gid int) error {
	dir := filepath.Join(home, "control")
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &UntrustedError{dir, err.Error()}
	}
	if why := writableBy(fi, uid, gid); why != "" {
		return &UntrustedError{dir, why}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return &UntrustedError{dir, err.Error()}
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			continue // gone meanwhile
		}
		if why := writableBy(fi, uid, gid); why != "" {
			return &UntrustedError{p, why}
		}
	}
	return nil
}

// writableBy says why the account uid, gid may write (or chmod) fi, or ""
// when it may not.
func writableBy(fi fs.FileInfo, uid, gid int) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "no owner known"
	}
	perm := fi.Mode().Perm()
	switch {
	case int(st.Uid) == uid:
		return fmt.Sprintf("owned by the account (uid %d)", uid)
	case int(st.Gid) == gid && perm&0o020 != 0:
		return fmt.Sprintf("writable by the account's group (mode %#o)", perm)
	case perm&0o002 != 0 && fi.Mode()&fs.ModeSymlink == 0:
		return fmt.Sprintf("writable by others (mode %#o)", perm)
	}
	return ""
}

// ControlFix is the shell command that gives home's control/ to root as
// mta.Init makes it, the key readable by the account's group gid.
func ControlFix(home string, gid int) string {
	c := filepath.Join(home, "control")
	return fmt.Sprintf("chown -R root:root %[1]s && chmod -R go-w %[1]s && chgrp %[2]d %[1]s/servercert.pem && chmod 640 %[1]s/servercert.pem", c, gid)
}

// CheckHome reports, for a program started as root, whether the account
// it runs as (uid, gid) could write the home directory itself: then it
// could rename control/ or users/ away and put its own, with an open
// relay and its own key, in their place, whoever owns them. As mta.Init
// makes it, the home is root's, mode 755. nil when the account cannot
// write it; else an *UntrustedError, fixed by HomeFix.
func CheckHome(home string, uid, gid int) error {
	fi, err := os.Lstat(home)
	if err != nil {
		return &UntrustedError{home, err.Error()}
	}
	if why := writableBy(fi, uid, gid); why != "" {
		return &UntrustedError{home, why}
	}
	return nil
}

// HomeFix is the shell command that gives the home directory to root as
// mta.Init makes it (what is inside keeps its owners).
func HomeFix(home string) string {
	return fmt.Sprintf("chown root:root %[1]s && chmod 755 %[1]s", home)
}

// MakeRunDir makes home's run/ for the account uid, gid (mode 755), as
// root, when it is missing (homes made before run/ existed): the account
// makes its queue socket there once it has dropped root
// (mta.System.ServeQueueSocket at run/qmail-queue.sock). An existing
// run/ must be a directory, not a symbolic link; it is left as it is.
func MakeRunDir(home string, uid, gid int) error {
	dir := filepath.Join(home, "run")
	fi, err := os.Lstat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		return err
	}
	return os.Lchown(dir, uid, gid)
}

// OthersCanRun reports whether a user other than the owner can execute
// program: every directory on its path searchable, and the file
// executable, by others. The helper's qmail-local children run it under
// the recipients' uids, so deliveries to other uids fail when they
// cannot (go run's build directory, for one, is root's alone).
// Otherwise it returns the first path that is not.
func OthersCanRun(program string) (string, bool) {
	for p := program; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return p, false
		}
		if p == filepath.Dir(p) {
			return "", true
		}
	}
}
