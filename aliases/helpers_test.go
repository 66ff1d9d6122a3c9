package aliases

import (
	"os"
	"path/filepath"
	"testing"
)

// writeDB writes records as a database file and returns its bytes.
func writeDB(t *testing.T, recs []Record) []byte {
	t.Helper()
	path := writeDBFile(t, recs)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeDBFile(t *testing.T, recs []Record) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "data.cdb")
	w, err := Create(path, filepath.Join(dir, "data.tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
