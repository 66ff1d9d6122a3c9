package maildir

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Maildir")
	d, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(d) != path {
		t.Errorf("Create returned %q", d)
	}
	for _, p := range []string{"", "tmp", "new", "cur"} {
		fi, err := os.Stat(filepath.Join(path, p))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s/%s: mode %v, want a 0700 directory", path, p, fi.Mode())
		}
	}
	if _, err := Open(path); err != nil {
		t.Errorf("Open: %v", err)
	}

	// A complete Maildir: the error wraps fs.ErrExist, the Dir is usable.
	d2, err := Create(path)
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Create: err = %v, want fs.ErrExist", err)
	}
	if d2 != d {
		t.Errorf("second Create returned %q", d2)
	}
}

func TestCreateHalfExisting(t *testing.T) {
	for _, tt := range []struct {
		name   string
		exists []string
		file   string
	}{
		{"empty directory", nil, ""},
		{"no cur", []string{"tmp", "new"}, ""},
		{"no tmp", []string{"new", "cur"}, ""},
		{"new is a file", []string{"tmp", "cur"}, "new"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "Maildir")
			os.Mkdir(path, 0o755)
			for _, s := range tt.exists {
				os.Mkdir(filepath.Join(path, s), 0o755)
			}
			if tt.file != "" {
				os.WriteFile(filepath.Join(path, tt.file), nil, 0o600)
			}
			before, _ := os.ReadDir(path)
			_, err := Create(path)
			if err == nil || errors.Is(err, fs.ErrExist) {
				t.Fatalf("err = %v, want a not-a-maildir error not wrapping fs.ErrExist", err)
			}
			t.Log(err)
			after, _ := os.ReadDir(path)
			if len(after) != len(before) {
				t.Errorf("Create changed the directory: %v -> %v", before, after)
			}
			if _, err := Open(path); err == nil {
				t.Error("Open accepted a half-made maildir")
			}
		})
	}
}

func TestCreateFails(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "file")
	os.WriteFile(parent, nil, 0o600)
	if _, err := Create(filepath.Join(parent, "Maildir")); err == nil {
		t.Fatal("Create under a file succeeded")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) && err == nil {
		t.Fatal("Open of a missing directory succeeded")
	}
}

// put writes a file into d/sub with the given mtime.
func put(t *testing.T, d Dir, sub, name, content string, mtime time.Time) {
	t.Helper()
	p := filepath.Join(string(d), sub, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func paths(msgs []Message) []string {
	var p []string
	for _, m := range msgs {
		p = append(p, m.Path())
	}
	return p
}

// The listing (pop3 applies the "before T" filter on
// ModTime): mtimes 998, 999, 1000 listed in that order, .hidden skipped.
func TestList(t *testing.T) {
	d := newDir(t)
	put(t, d, "cur", "b:2,S", "bb", time.Unix(999, 0))
	put(t, d, "new", "c", "ccc", time.Unix(1000, 0))
	put(t, d, "new", "a", "a", time.Unix(998, 0))
	put(t, d, "new", ".hidden", "h", time.Unix(1, 0))
	put(t, d, "cur", ".hidden2:2,S", "h", time.Unix(1, 0))
	put(t, d, "tmp", "t", "t", time.Unix(1, 0))
	os.Mkdir(filepath.Join(string(d), "new", "subdir"), 0o700)
	msgs, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	want := []Message{
		{Name: "a", Subdir: "new", Size: 1, ModTime: time.Unix(998, 0)},
		{Name: "b:2,S", Subdir: "cur", Size: 2, ModTime: time.Unix(999, 0)},
		{Name: "c", Subdir: "new", Size: 3, ModTime: time.Unix(1000, 0)},
	}
	if !slices.EqualFunc(msgs, want, func(a, b Message) bool {
		return a.Name == b.Name && a.Subdir == b.Subdir && a.Size == b.Size && a.ModTime.Equal(b.ModTime)
	}) {
		t.Errorf("List = %+v\nwant %+v", msgs, want)
	}
	T := time.Unix(1000, 0)
	var before []string
	for _, m := range msgs {
		if m.ModTime.Before(T) {
			before = append(before, m.Path())
		}
	}
	if !slices.Equal(before, []string{"new/a", "cur/b:2,S"}) {
		t.Errorf("before T: %q", before)
	}
	if msgs[1].Flags() != Seen || msgs[1].Unique() != "b" {
		t.Errorf("flags %q unique %q", msgs[1].Flags(), msgs[1].Unique())
	}
}

func TestScan(t *testing.T) {
	d := newDir(t)
	put(t, d, "new", "2.M1P1Q1R00.h,S=999", "not 999 bytes", time.Unix(5, 0))
	put(t, d, "new", "1.M1P1Q1R00.h", "12345", time.Unix(5, 0))
	put(t, d, "cur", "0.M1P1Q1R00.h,S=7:2,S", "1234567", time.Unix(5, 0))
	put(t, d, "cur", ".x", "", time.Unix(5, 0))
	msgs, err := d.Scan()
	if err != nil {
		t.Fatal(err)
	}
	want := []Message{
		{Name: "1.M1P1Q1R00.h", Subdir: "new", Size: 5},
		{Name: "2.M1P1Q1R00.h,S=999", Subdir: "new", Size: 999}, // the tag wins: no stat
		{Name: "0.M1P1Q1R00.h,S=7:2,S", Subdir: "cur", Size: 7},
	}
	if !slices.Equal(msgs, want) {
		t.Errorf("Scan = %+v\nwant %+v", msgs, want)
	}
}

func TestListMissing(t *testing.T) {
	d := Dir(filepath.Join(t.TempDir(), "none"))
	if _, err := d.List(); err == nil {
		t.Error("List of a missing maildir succeeded")
	}
	if _, err := d.Scan(); err == nil {
		t.Error("Scan of a missing maildir succeeded")
	}
}

func TestMoveSetFlagsRemove(t *testing.T) {
	d := newDir(t)
	put(t, d, "new", "A", "a", time.Unix(1, 0))
	put(t, d, "new", "B", "b", time.Unix(2, 0))
	msgs, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	a, err := d.Move(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	if a.Path() != "cur/A:2," {
		t.Errorf("moved to %s", a.Path())
	}
	if again, err := d.Move(a); err != nil || again != a {
		t.Errorf("Move of a cur message: %+v, %v", again, err)
	}
	a, err = d.SetFlags(a, a.Flags().Add(Seen+Replied))
	if err != nil {
		t.Fatal(err)
	}
	if a.Path() != "cur/A:2,RS" {
		t.Errorf("flagged: %s", a.Path())
	}
	b, err := d.SetFlags(msgs[1], Flagged) // from new/ directly
	if err != nil {
		t.Fatal(err)
	}
	if b.Path() != "cur/B:2,F" {
		t.Errorf("flagged from new: %s", b.Path())
	}
	wantFiles(t, d, "cur", map[string]string{"A:2,RS": "a", "B:2,F": "b"})
	wantFiles(t, d, "new", nil)

	f, err := d.OpenMessage(a)
	if err != nil {
		t.Fatal(err)
	}
	content, _ := io.ReadAll(f)
	f.Close()
	if string(content) != "a" {
		t.Errorf("OpenMessage read %q", content)
	}

	if err := d.Remove(b); err != nil {
		t.Fatal(err)
	}
	wantFiles(t, d, "cur", map[string]string{"A:2,RS": "a"})
	if err := d.Remove(b); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("second Remove: %v", err)
	}
	// A message in new/ that already has an info keeps it when moved.
	put(t, d, "new", "C:2,F", "c", time.Unix(3, 0))
	c, err := d.Move(Message{Subdir: "new", Name: "C:2,F"})
	if err != nil || c.Path() != "cur/C:2,F" {
		t.Errorf("Move of new/C:2,F: %s, %v", c.Path(), err)
	}
	// A stale Message (renamed meanwhile) fails cleanly.
	if _, err := d.SetFlags(msgs[0], Seen); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SetFlags on a stale message: %v", err)
	}
}

// Message names and subdirectories from outside are checked before use.
func TestBadMessage(t *testing.T) {
	d := newDir(t)
	for _, m := range []Message{
		{Subdir: "tmp", Name: "x"},
		{Subdir: "new", Name: "../cur/x"},
		{Subdir: "new/..", Name: "x"},
		{Subdir: "cur", Name: ".."},
		{Subdir: "cur", Name: ""},
	} {
		if _, err := d.OpenMessage(m); err == nil {
			t.Errorf("OpenMessage(%+v) succeeded", m)
		}
		if err := d.Remove(m); err == nil {
			t.Errorf("Remove(%+v) succeeded", m)
		}
		if _, err := d.SetFlags(m, Seen); err == nil {
			t.Errorf("SetFlags(%+v) succeeded", m)
		}
		if _, err := d.Move(m); err == nil {
			t.Errorf("Move(%+v) succeeded", m)
		}
	}
}

// As pop3 does it with this package: QUIT removes the
// deleted messages and moves the rest of new/ to cur/ with ":2,".
func TestQuitSequence(t *testing.T) {
	d := newDir(t)
	put(t, d, "new", "A", "a", time.Unix(1, 0))
	put(t, d, "cur", "B:2,S", "b", time.Unix(2, 0))
	put(t, d, "new", "C", "c", time.Unix(3, 0))
	msgs, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	deleted := map[string]bool{"C": true}
	for _, m := range msgs {
		if deleted[m.Unique()] {
			if err := d.Remove(m); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := d.Move(m); err != nil {
			t.Fatal(err)
		}
	}
	wantFiles(t, d, "new", nil)
	wantFiles(t, d, "cur", map[string]string{"A:2,": "a", "B:2,S": "b"})
}

// Cleaning tmp/: an entry not accessed for more than 36 hours (129600
// s) goes; one exactly that old, and names starting with '.', stay.
func TestClean(t *testing.T) {
	d := newDir(t)
	put(t, d, "tmp", "old", "", time.Unix(70399, 0))
	put(t, d, "tmp", "exact", "", time.Unix(70400, 0))
	put(t, d, "tmp", ".keep", "", time.Unix(1, 0))
	put(t, d, "new", "msg", "", time.Unix(1, 0))
	os.Mkdir(filepath.Join(string(d), "tmp", "adir"), 0o700)
	n, err := d.Clean(time.Unix(200000, 0))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("removed %d, want 1", n)
	}
	wantTmp := []string{".keep", "adir", "exact"}
	ents, _ := os.ReadDir(filepath.Join(string(d), "tmp"))
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, wantTmp) {
		t.Errorf("tmp/ = %q, want %q", got, wantTmp)
	}
	wantFiles(t, d, "new", map[string]string{"msg": ""})
	// One second later the 129600-second-old file goes too.
	if n, err := d.Clean(time.Unix(200001, 0)); err != nil || n != 1 {
		t.Errorf("Clean a second later: %d, %v", n, err)
	}
}
