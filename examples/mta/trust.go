package main

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

// untrustedError is a users/ file or directory the helper refuses.
type untrustedError struct {
	path, reason string
}

func (e *untrustedError) Error() string { return "refusing " + e.path + ": " + e.reason }

// report is the delivery's report text: it names the file, the reason and
// the fix (RFC 3463: 4.3.5, system incorrectly configured).
func (e *untrustedError) report() string {
	return fmt.Sprintf("Refusing %s: %s; it must belong to root and be writable by root alone. (#4.3.5)\n", e.path, e.reason)
}

// vetOwner refuses fi, of path, unless it belongs to root or to uid euid
// and neither its group nor others may write it.
func vetOwner(path string, fi fs.FileInfo, euid int) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return &untrustedError{path, "no owner known"}
	}
	if st.Uid != 0 && int(st.Uid) != euid {
		return &untrustedError{path, fmt.Sprintf("owned by uid %d, not root", st.Uid)}
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return &untrustedError{path, fmt.Sprintf("writable by group or others (mode %#o)", fi.Mode().Perm())}
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
		return &untrustedError{dir, err.Error()}
	}
	if !dfi.IsDir() {
		return &untrustedError{dir, "not a directory"}
	}
	if err := vetOwner(dir, dfi, euid); err != nil {
		return err
	}
	return vetOwner(path, fi, euid)
}

// checkUsers is trustUsersCDB for home's users/cdb, at the mta's start as
// root: nil when the helper will use it, or when there is none.
func checkUsers(home string) error {
	path := filepath.Join(home, "users", "cdb")
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &untrustedError{path, err.Error()}
	}
	return trustUsersCDB(path, fi)
}

// usersFix is the shell command that gives home's users/ to root as Init
// makes it, users/poppasswd readable by the account's group gid.
func usersFix(home string, gid int) string {
	u := filepath.Join(home, "users")
	return fmt.Sprintf("chown -R root:root %[1]s && chmod go-w %[1]s %[1]s/assign %[1]s/cdb && chgrp %[2]d %[1]s/poppasswd && chmod 640 %[1]s/poppasswd", u, gid)
}

// checkControl reports, for a root-started mta, whether the account (uid,
// gid) could write home's control/ or a file in it: the control files
// decide who may relay and hold the TLS key, so, as Init makes them,
// they belong to root and only the key is readable by the account's
// group. nil when the account can write none of them.
func checkControl(home string, uid, gid int) error {
	dir := filepath.Join(home, "control")
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &untrustedError{dir, err.Error()}
	}
	if why := writableBy(fi, uid, gid); why != "" {
		return &untrustedError{dir, why}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return &untrustedError{dir, err.Error()}
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			continue // gone meanwhile
		}
		if why := writableBy(fi, uid, gid); why != "" {
			return &untrustedError{p, why}
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

// controlFix is the shell command that gives home's control/ to root as
// Init makes it, the key readable by the account's group gid.
func controlFix(home string, gid int) string {
	c := filepath.Join(home, "control")
	return fmt.Sprintf("chown -R root:root %[1]s && chmod -R go-w %[1]s && chgrp %[2]d %[1]s/servercert.pem && chmod 640 %[1]s/servercert.pem", c, gid)
}

// checkHome reports, for a root-started mta, whether the account (uid,
// gid) could write the home directory itself: then it could rename
// control/ or users/ away and put its own, with an open relay and its own
// key, in their place, whoever owns them. As Init makes it, the home is
// root's, mode 755. nil when the account cannot write it.
func checkHome(home string, uid, gid int) error {
	fi, err := os.Lstat(home)
	if err != nil {
		return &untrustedError{home, err.Error()}
	}
	if why := writableBy(fi, uid, gid); why != "" {
		return &untrustedError{home, why}
	}
	return nil
}

// homeFix is the shell command that gives the home directory to root as
// Init makes it (what is inside keeps its owners).
func homeFix(home string) string {
	return fmt.Sprintf("chown root:root %[1]s && chmod 755 %[1]s", home)
}
