package main

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/qmailkit/qmailkit/mta"
	"golang.org/x/sys/unix"
)

// asUID runs f on a thread of its own whose effective ids are uid and
// gid, as a child process of the account's would; the thread is thrown
// away afterwards (it stays locked).
func asUID(t *testing.T, uid, gid int, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		// Raw system calls change this thread only (syscall.Setuid
		// would change every thread of the process).
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
			done <- e
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, ^uintptr(0), uintptr(gid), ^uintptr(0)); e != 0 {
			done <- e
			return
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
			done <- e
			return
		}
		done <- f()
	}()
	return <-done
}

// TestInitHomeIsRoots (the re-audit's finding): as root, the home
// mta.Init
// makes belongs to root, so that the account cannot rename control/ (or
// users/) away and make its own, with an open relay and its own key, in
// its place; what the account must write is its own.
func TestInitHomeIsRoots(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: a home for another account")
	}
	const uid, gid = 1651, 1651
	dir := scratch(t) // searchable by the account, unlike t.TempDir()
	home := filepath.Join(dir, "home")
	if _, _, err := mta.Init(home, mta.InitOptions{UID: uid, GID: gid}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name     string
		uid, gid uint32
		mode     os.FileMode
	}{
		{"", 0, 0, 0o755 | os.ModeDir},
		{"control", 0, 0, 0o755 | os.ModeDir},
		{"users", 0, 0, 0o755 | os.ModeDir},
		{"queue", uid, gid, 0o750 | os.ModeDir},
		{"run", uid, gid, 0o755 | os.ModeDir},
		{"mail", uid, gid, 0o755 | os.ModeDir},
		{"alias", uid, gid, 0o755 | os.ModeDir},
	} {
		fi, err := os.Lstat(filepath.Join(home, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != f.uid || st.Gid != f.gid || fi.Mode() != f.mode {
			t.Errorf("%s/%s: uid %d gid %d mode %v, want %d %d %v", home, f.name, st.Uid, st.Gid, fi.Mode(), f.uid, f.gid, f.mode)
		}
	}
	for _, d := range []string{"control", "users"} {
		err := asUID(t, uid, gid, func() error {
			return os.Rename(filepath.Join(home, d), filepath.Join(home, d+".orig"))
		})
		if !errors.Is(err, syscall.EACCES) {
			t.Errorf("the account renaming %s/: %v, want EACCES", d, err)
		}
	}
	err := asUID(t, uid, gid, func() error { return os.Mkdir(filepath.Join(home, "evil"), 0o755) })
	if !errors.Is(err, syscall.EACCES) {
		t.Errorf("the account making a directory in the home: %v, want EACCES", err)
	}
	// The account still writes its own parts.
	err = asUID(t, uid, gid, func() error {
		return os.WriteFile(filepath.Join(home, "run", "x"), nil, 0o600)
	})
	if err != nil {
		t.Errorf("the account writing run/: %v", err)
	}
	s, err := mta.Open(home, mta.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}
