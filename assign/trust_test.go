package assign

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// Users.Trust vets users/cdb at every lookup, also a file that has not
// changed but for its owner or mode (a chmod leaves the inode, size and
// mtime that tell Users to reopen), and the file it opens; a refused file
// fails the lookup with ErrCDB and the refusal, temporarily.
func TestTrust(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cdb")
	if err := Compile(path, strings.NewReader("=joe:joe:1001:1001:/home/joe:::\n.\n")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	errWritable := errors.New("writable by others")
	var calls atomic.Int32
	u := &Users{CDB: path, Trust: func(p string, fi fs.FileInfo) error {
		calls.Add(1)
		if p != path {
			t.Errorf("Trust given %q, want %q", p, path)
		}
		if fi.Mode().Perm()&0o002 != 0 {
			return errWritable
		}
		return nil
	}}
	defer u.Close()

	lookup := func(wantErr bool, wantCalls int32) {
		t.Helper()
		calls.Store(0)
		res, err := u.Lookup(t.Context(), "joe")
		switch {
		case wantErr && (!errors.Is(err, ErrCDB) || !errors.Is(err, errWritable) || ExitCode(err) != 117):
			t.Errorf("Lookup = %+v, %v; want ErrCDB and the refusal", res, err)
		case !wantErr && (err != nil || res.UID != 1001):
			t.Errorf("Lookup = %+v, %v; want uid 1001", res, err)
		}
		if n := calls.Load(); n != wantCalls {
			t.Errorf("Trust called %d times, want %d", n, wantCalls)
		}
	}
	lookup(false, 2) // the stat, then the file opened
	lookup(false, 1) // the stat: the same file
	if err := os.Chmod(path, 0o646); err != nil {
		t.Fatal(err)
	}
	lookup(true, 1) // the same file, open already: refused all the same
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	lookup(false, 1)

	// A file refused when it is opened: the stat Trust saw was of
	// another (here: Trust refuses the second call).
	u.Close()
	calls.Store(0)
	u.Trust = func(string, fs.FileInfo) error {
		if calls.Add(1) == 2 {
			return errWritable
		}
		return nil
	}
	if _, err := u.Lookup(t.Context(), "joe"); !errors.Is(err, errWritable) {
		t.Errorf("open file refused: Lookup error %v", err)
	}

	// No users/cdb: nothing to vet, the password database answers.
	os.Remove(path)
	calls.Store(0)
	if _, err := u.Lookup(t.Context(), "joe"); !errors.Is(err, ErrNoAlias) || calls.Load() != 0 {
		t.Errorf("no users/cdb: %v, %d calls to Trust", err, calls.Load())
	}
}
