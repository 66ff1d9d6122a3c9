package cdb

import (
	"os"
	"path/filepath"
	"testing"
)

// OpenFile reads the file it is given, which may be closed at once, even
// when another file has been renamed over its path.
func TestOpenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, value string) string {
		p := filepath.Join(dir, name)
		w, err := Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Put([]byte("k"), []byte(value)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	path := write("db", "old")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(write("new", "new"), path); err != nil {
		t.Fatal(err)
	}
	c, err := OpenFile(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v, err := c.Get([]byte("k")); err != nil || string(v) != "old" {
		t.Errorf("Get = %q, %v, want the opened file's \"old\"", v, err)
	}
}
