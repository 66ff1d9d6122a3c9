package assign

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// versionAssign is an assign file whose every field names version v, with
// a size that varies with v.
func versionAssign(v int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "=a:a:%d:%d:/v/%d:::\n", v, v, v)
	fmt.Fprintf(&b, "+w-:w:%d:%d:/v/%d:-:%d-:\n", v, v, v, v)
	for i := range v % 17 {
		fmt.Fprintf(&b, "=filler%d:f:%d:%d:/v/%d:::\n", i, v, v, v)
	}
	fmt.Fprintf(&b, "+:c:%d:%d:/v/%d:-:%d:\n.\n", v, v, v, v)
	return b.String()
}

// checkVersion verifies that every field of u comes from one version and
// returns it.
func checkVersion(u User, local string) (int, error) {
	v := u.UID
	want := strconv.Itoa(v)
	ok := u.GID == v && u.RawUID == want && u.Home == "/v/"+want
	switch local {
	case "a":
		ok = ok && u.Name == "a" && u.Ext == ""
	case "w-x":
		ok = ok && u.Name == "w" && u.Ext == want+"-x"
	default:
		ok = ok && u.Name == "c" && u.Ext == want+local
	}
	if !ok {
		return 0, fmt.Errorf("torn or wrong answer for %s: %+v", local, u)
	}
	return v, nil
}

// A users/cdb replaced (renamed over) again and again while lookups run:
// every lookup answers wholly from one version, versions never go back,
// and once the writer stops the last version is seen.
func TestReplacedWhileInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cdb")
	if err := Compile(path, strings.NewReader(versionAssign(1))); err != nil {
		t.Fatal(err)
	}
	u := &Users{CDB: path}
	defer u.Close()

	const versions = 150
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	wg.Go(func() {
		defer done.Store(true)
		for v := 2; v <= versions; v++ {
			if err := Compile(path, strings.NewReader(versionAssign(v))); err != nil {
				errs <- err
				return
			}
		}
	})
	var lookups atomic.Int64
	for r := range 3 {
		wg.Go(func() {
			last := 0
			locals := []string{"a", "w-x", "zz" + strconv.Itoa(r)}
			for i := 0; !done.Load() || i < 10; i++ {
				local := locals[i%len(locals)]
				res, err := u.Lookup(t.Context(), local)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", local, err)
					return
				}
				v, err := checkVersion(res, local)
				if err != nil {
					errs <- err
					return
				}
				if v < last {
					errs <- fmt.Errorf("version went back from %d to %d", last, v)
					return
				}
				last = v
				lookups.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	res, err := u.Lookup(t.Context(), "a")
	if err != nil || res.UID != versions {
		t.Errorf("after the last rebuild: %+v, %v", res, err)
	}
	t.Logf("%d lookups during %d rebuilds", lookups.Load(), versions-1)

	// A removed users/cdb sends lookups to the password database.
	os.Remove(path)
	if _, err := u.Lookup(t.Context(), "a"); !errors.Is(err, ErrNoAlias) {
		t.Errorf("removed: %v", err)
	}
	// And a new one is picked up again.
	if err := Compile(path, strings.NewReader(versionAssign(7))); err != nil {
		t.Fatal(err)
	}
	if res, err := u.Lookup(t.Context(), "a"); err != nil || res.UID != 7 {
		t.Errorf("recreated: %+v %v", res, err)
	}
}

// A DB keeps answering from the file it opened after a rename over it.
func TestDBSnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cdb")
	if err := Compile(path, strings.NewReader(versionAssign(3))); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := Compile(path, strings.NewReader(versionAssign(4))); err != nil {
		t.Fatal(err)
	}
	if res, err := db.Lookup("a"); err != nil || res.UID != 3 {
		t.Errorf("snapshot: %+v %v", res, err)
	}
}

// A users/cdb truncated in place under a mapping (cp over it instead of a
// rename) gives ErrCDB, not a crash of the process.
func TestTruncatedUnderMapping(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cdb")
	var b strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&b, "=user%d:u:%d:1:/h:::\n", i, i+1)
	}
	b.WriteString(".\n")
	if err := Compile(path, strings.NewReader(b.String())); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Lookup("user2999"); !errors.Is(err, ErrCDB) {
		t.Errorf("lookup in a truncated mapping: %v", err)
	}
}

// MaxAge: within it, the open file answers without a stat; after it, the
// replaced file is seen.
func TestMaxAge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cdb")
	if err := Compile(path, strings.NewReader(versionAssign(1))); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	u := &Users{CDB: path, MaxAge: time.Second, Now: func() time.Time { return now }}
	defer u.Close()
	look := func() int {
		t.Helper()
		res, err := u.Lookup(t.Context(), "a")
		if err != nil {
			t.Fatal(err)
		}
		return res.UID
	}
	if v := look(); v != 1 {
		t.Fatalf("first: %d", v)
	}
	if err := Compile(path, strings.NewReader(versionAssign(2))); err != nil {
		t.Fatal(err)
	}
	now = now.Add(999 * time.Millisecond)
	if v := look(); v != 1 {
		t.Errorf("within MaxAge: version %d, want the open 1", v)
	}
	now = now.Add(time.Millisecond)
	if v := look(); v != 2 {
		t.Errorf("after MaxAge: version %d, want 2", v)
	}
	// A clock that goes backwards forces a check.
	if err := Compile(path, strings.NewReader(versionAssign(3))); err != nil {
		t.Fatal(err)
	}
	now = now.Add(-time.Hour)
	if v := look(); v != 3 {
		t.Errorf("clock went back: version %d, want 3", v)
	}
}
