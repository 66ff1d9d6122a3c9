package cdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

type record struct{ k, v string }

func build(t testing.TB, recs []record) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db.cdb")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Put([]byte(r.k), []byte(r.v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHashVectors(t *testing.T) {
	// The cdb hash (h = 5381, then h = ((h << 5) + h) ^ c) of known keys.
	for _, tc := range []struct {
		key   string
		want  uint32
		table uint32
	}{
		{"", 5381, 5},
		{"a", 177604, 196},
		{"ab", 5860902, 38},
		{"=", 177560, 152},
		{"127.0.0.1", 0x5478120e, 14},
		{"127.", 0x7c5406df, 223},
		{"example.com", 0xe8b78f82, 130},
		{"!joe\x00", 0x05e43c84, 132},
	} {
		h := Hash([]byte(tc.key))
		if h != tc.want || h&0xff != tc.table {
			t.Errorf("Hash(%q) = %#x (table %d), want %#x (table %d)", tc.key, h, h&0xff, tc.want, tc.table)
		}
	}
}

func TestOneRecordBytes(t *testing.T) {
	// A database of one record: 2048 bytes of table pointers, the record, one
	// hash table of two slots.
	b := build(t, []record{{"a", "1"}})
	if len(b) != 2074 {
		t.Fatalf("size %d, want 2074", len(b))
	}
	pair := func(i int) (uint32, uint32) {
		return binary.LittleEndian.Uint32(b[8*i:]), binary.LittleEndian.Uint32(b[8*i+4:])
	}
	for i := range 256 {
		pos, slots := pair(i)
		want := [2]uint32{2058, 0}
		switch {
		case i == 196:
			want = [2]uint32{2058, 2}
		case i > 196:
			want = [2]uint32{2074, 0}
		}
		if pos != want[0] || slots != want[1] {
			t.Errorf("header pair %d = (%d,%d), want %v", i, pos, slots, want)
		}
	}
	if got, want := b[2048:2058], []byte{1, 0, 0, 0, 1, 0, 0, 0, 'a', '1'}; !bytes.Equal(got, want) {
		t.Errorf("record = % x, want % x", got, want)
	}
	if got, want := b[2058:], []byte{0, 0, 0, 0, 0, 0, 0, 0, 0xc4, 0xb5, 0x02, 0, 0, 8, 0, 0}; !bytes.Equal(got, want) {
		t.Errorf("table = % x, want % x", got, want)
	}
}

func TestEmptyDatabase(t *testing.T) {
	b := build(t, nil)
	if len(b) != 2048 {
		t.Fatalf("size %d, want 2048", len(b))
	}
	for i := range 256 {
		if !bytes.Equal(b[8*i:8*i+8], []byte{0, 8, 0, 0, 0, 0, 0, 0}) {
			t.Fatalf("pair %d = % x", i, b[8*i:8*i+8])
		}
	}
	c, err := Bytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(nil); v != nil || err != nil {
		t.Errorf("Get on empty db = %q, %v", v, err)
	}
	if c.Iter().Next() {
		t.Error("iteration over empty db found a record")
	}
}

func TestLookups(t *testing.T) {
	recs := []record{
		{"k", "1"}, {"k", "2"}, {"", "empty key"}, {"nul\x00key", "v\x00v"},
		{"novalue", ""}, {"K", "upper"}, {"k", "3"},
	}
	path := filepath.Join(t.TempDir(), "db")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		w.Put([]byte(r.k), []byte(r.v))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
	raw, _ := os.ReadFile(path)
	mm, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer mm.Close()
	ra, err := New(bytes.NewReader(raw), nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*CDB{"mmap": mm, "readerat": ra} {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				key  string
				want []string
			}{
				{"k", []string{"1", "2", "3"}},
				{"", []string{"empty key"}},
				{"nul\x00key", []string{"v\x00v"}},
				{"novalue", []string{""}},
				{"K", []string{"upper"}},
				{"missing", nil},
				{"nul", nil},
			} {
				v, err := c.Get([]byte(tc.key))
				if err != nil {
					t.Fatal(err)
				}
				if tc.want == nil {
					if v != nil {
						t.Errorf("Get(%q) = %q, want absent", tc.key, v)
					}
				} else if v == nil || string(v) != tc.want[0] {
					t.Errorf("Get(%q) = %q, want %q", tc.key, v, tc.want[0])
				}
				if ok, _ := c.Has([]byte(tc.key)); ok != (tc.want != nil) {
					t.Errorf("Has(%q) = %v", tc.key, ok)
				}
				all, err := c.GetAll([]byte(tc.key))
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, v := range all {
					got = append(got, string(v))
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("GetAll(%q) = %q, want %q", tc.key, got, tc.want)
				}
			}
			it := c.Iter()
			var i int
			for it.Next() {
				if i >= len(recs) || string(it.Key()) != recs[i].k || string(it.Value()) != recs[i].v {
					t.Errorf("record %d = %q->%q", i, it.Key(), it.Value())
				}
				i++
			}
			if it.Err() != nil || i != len(recs) {
				t.Errorf("iterated %d records, err %v", i, it.Err())
			}
		})
	}
}

// TestZeroHashKey checks that a key whose hash is 0 is stored and found: the
// empty-slot test is on the record offset, not the hash.
func TestZeroHashKey(t *testing.T) {
	zero := func([]byte) uint32 { return 0 }
	var buf seekBuffer
	w, err := NewWriter(&buf, zero)
	if err != nil {
		t.Fatal(err)
	}
	w.Put([]byte("x"), []byte("1"))
	w.Put([]byte("y"), []byte("2"))
	c, err := w.Freeze()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"x": "1", "y": "2"} {
		if v, err := c.Get([]byte(k)); string(v) != want || err != nil {
			t.Errorf("Get(%q) = %q, %v", k, v, err)
		}
	}
}

func TestTooMuchData(t *testing.T) {
	var buf seekBuffer
	w, err := NewWriter(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Put([]byte("a"), []byte("b")); err != nil {
		t.Fatal(err)
	}
	// Pretend 4 GiB minus a little has been written already: writing that
	// much for real would take minutes.
	w.pos = maxSize - 64
	if err := w.Put([]byte("key"), make([]byte, 40)); !errors.Is(err, ErrTooMuchData) {
		t.Fatalf("Put near 4 GiB: %v, want ErrTooMuchData", err)
	}
	if err := w.Put([]byte("k"), nil); !errors.Is(err, ErrTooMuchData) {
		t.Fatalf("Put after the limit: %v, want the same error again", err)
	}
}

func TestCreateLeavesTargetOnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w.Put([]byte("k"), []byte("v"))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("target changed to %q", b)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Error("Abort left the temporary file")
	}
	// A temporary file that cannot be created leaves the target alone too.
	if _, err := CreateTemp(path, filepath.Join(dir, "no", "such", "dir")); err == nil {
		t.Error("CreateTemp in a missing directory succeeded")
	}
}

func TestCorrupt(t *testing.T) {
	good := build(t, []record{{"a", "1"}, {"bb", "22"}, {"a", "3"}})
	cases := map[string][]byte{
		"short header": good[:100],
		"truncated":    good[:len(good)-5],
		"records end inside header": func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint32(b[0:], 10)
			return b
		}(),
		"table past end": func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint32(b[8*196+4:], 1<<30)
			return b
		}(),
		"record offset past end": func() []byte {
			b := bytes.Clone(good)
			for i := len(b) - 4; i >= len(b)-48; i -= 8 {
				if binary.LittleEndian.Uint32(b[i:]) != 0 {
					binary.LittleEndian.PutUint32(b[i:], 0xfffffff0)
				}
			}
			return b
		}(),
		"huge key length": func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint32(b[2048:], 0xffffff00)
			return b
		}(),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := Bytes(b)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("open error %v does not wrap ErrCorrupt", err)
				}
				return
			}
			var sawErr bool
			for _, k := range []string{"a", "bb", "zz"} {
				if _, err := c.GetAll([]byte(k)); err != nil {
					sawErr = true
					if !errors.Is(err, ErrCorrupt) {
						t.Errorf("GetAll(%q): %v does not wrap ErrCorrupt", k, err)
					}
				}
			}
			it := c.Iter()
			for it.Next() {
			}
			if it.Err() != nil {
				sawErr = true
			}
			if !sawErr {
				t.Error("corruption went unnoticed")
			}
		})
	}
}

// TestTinycdbCompatible writes the same records with our writer and with
// Debian's tinycdb (cdb -c) and compares the files byte for byte.
func TestTinycdbCompatible(t *testing.T) {
	tool, err := exec.LookPath("cdb")
	if err != nil {
		t.Skip("tinycdb's cdb is not installed (apt-get install tinycdb); .ci/run installs it")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	randBytes := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return string(b)
	}
	sets := map[string][]record{
		"empty":      nil,
		"one":        {{"a", "1"}},
		"duplicates": {{"k", "1"}, {"k", "2"}, {"", ""}, {"", "x"}, {"k", "3"}},
		"binary": func() (r []record) {
			for i := range 500 {
				r = append(r, record{randBytes(rng.IntN(40)), randBytes(rng.IntN(300))})
				if i%7 == 0 {
					r = append(r, record{r[i/2].k, randBytes(3)})
				}
			}
			return r
		}(),
		"100k": func() (r []record) {
			for i := range 100_000 {
				r = append(r, record{fmt.Sprintf("key-%d", i), strings.Repeat("v", i%17)})
			}
			return r
		}(),
	}
	for name, recs := range sets {
		t.Run(name, func(t *testing.T) {
			ours := build(t, recs)
			var in bytes.Buffer
			for _, r := range recs {
				fmt.Fprintf(&in, "+%d,%d:%s->%s\n", len(r.k), len(r.v), r.k, r.v)
			}
			in.WriteString("\n")
			theirs := filepath.Join(t.TempDir(), "tiny.cdb")
			cmd := exec.Command(tool, "-c", theirs)
			cmd.Stdin = bytes.NewReader(in.Bytes())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("cdb -c: %v: %s", err, out)
			}
			want, err := os.ReadFile(theirs)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ours, want) {
				t.Fatalf("our file (%d bytes) differs from tinycdb's (%d bytes)", len(ours), len(want))
			}
			// And tinycdb reads ours: its dump is our input.
			path := filepath.Join(t.TempDir(), "ours.cdb")
			os.WriteFile(path, ours, 0o644)
			out, err := exec.Command(tool, "-d", path).Output()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, in.Bytes()) {
				t.Error("tinycdb's dump of our file differs from the records written")
			}
		})
	}
}

// seekBuffer is an in-memory io.WriteSeeker and io.ReaderAt.
type seekBuffer struct {
	b   []byte
	off int
}

func (s *seekBuffer) Write(p []byte) (int, error) {
	if need := s.off + len(p); need > len(s.b) {
		s.b = append(s.b, make([]byte, need-len(s.b))...)
	}
	copy(s.b[s.off:], p)
	s.off += len(p)
	return len(p), nil
}

func (s *seekBuffer) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case 0:
		s.off = int(off)
	case 1:
		s.off += int(off)
	case 2:
		s.off = len(s.b) + int(off)
	}
	return int64(s.off), nil
}

func (s *seekBuffer) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(s.b).ReadAt(p, off)
}

func (s *seekBuffer) Size() int64 { return int64(len(s.b)) }
