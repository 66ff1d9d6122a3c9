package assign

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/internal/cdb"
	"github.com/qmailkit/qmailkit/internal/golden"
)

// memFile is an in-memory io.WriteSeeker.
type memFile struct {
	buf []byte
	off int
}

func (m *memFile) Write(p []byte) (int, error) {
	if n := m.off + len(p); n > len(m.buf) {
		m.buf = append(m.buf, make([]byte, n-len(m.buf))...)
	}
	copy(m.buf[m.off:], p)
	m.off += len(p)
	return len(p), nil
}

func (m *memFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		m.off = int(off)
	case io.SeekCurrent:
		m.off += int(off)
	case io.SeekEnd:
		m.off = len(m.buf) + int(off)
	}
	return int64(m.off), nil
}

// newuReference is qmail-newu.c's main loop transliterated as plainly as
// possible, over the whole input: the records it would add, or ok=false
// for any die_format.
func newuReference(in []byte) (recs [][2][]byte, ok bool) {
	var wildchars []byte
	for {
		// getln: the line up to and including '\n', or the rest at EOF.
		var line []byte
		match := false
		if i := bytes.IndexByte(in, '\n'); i >= 0 {
			line, in, match = in[:i+1], in[i+1:], true
		} else {
			line, in = in, nil
		}
		if len(line) > 0 && line[0] == '.' {
			break
		}
		if !match {
			return nil, false
		}
		if bytes.IndexByte(line, 0) >= 0 {
			return nil, false
		}
		i := bytes.IndexByte(line, ':')
		if i < 0 || i == 0 {
			return nil, false
		}
		key := []byte("!")
		if line[0] == '+' {
			key = append(key, line[1:i]...)
			for j := range key {
				if key[j] >= 'A' && key[j] <= 'Z' {
					key[j] += 32
				}
			}
			if i >= 2 && bytes.IndexByte(wildchars, line[i-1]) < 0 {
				wildchars = append(wildchars, line[i-1])
			}
		} else {
			key = append(key, line[1:i]...)
			key = append(key, 0)
			for j := range key {
				if key[j] >= 'A' && key[j] <= 'Z' {
					key[j] += 32
				}
			}
		}
		data := append([]byte(nil), line[i+1:]...)
		numcolons := 0
		j := 0
		for j = 0; j < len(data); j++ {
			if data[j] == ':' {
				data[j] = 0
				if numcolons++; numcolons == 6 {
					break
				}
			}
		}
		if numcolons < 6 {
			return nil, false
		}
		recs = append(recs, [2][]byte{key, data[:j]})
	}
	return append(recs, [2][]byte{{}, wildchars}), true
}

func fuzzSeeds(f *testing.F) {
	f.Add([]byte(specExample))
	f.Add([]byte(".\n"))
	f.Add([]byte("=a:u:1:2:/h::\n.\n"))
	f.Add([]byte("+baR:u:1:2:/h:-::\n.\n"))
	f.Add([]byte("=a:u:1:2:/h:::\r\n.anything\nmore"))
	f.Add([]byte(":a:u:1:2:/h:::\n.\n"))
	f.Add([]byte("=a:u\x00:1:2:/h:::\n.\n"))
	if g, err := golden.Path("assign"); err == nil {
		for _, n := range append(goldenAccepted, goldenRejected...) {
			if b, err := os.ReadFile(filepath.Join(g, n+".assign")); err == nil {
				f.Add(b)
			}
		}
	}
}

// FuzzScanner compares the parser and compiler with the transliteration of
// qmail-newu: same accept/reject, same records, same cdb bytes; and an
// accepted entry printed back parses to the same record.
func FuzzScanner(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		want, ok := newuReference(in)
		var got memFile
		err := compileTo(&got, bytes.NewReader(in))
		if ok != (err == nil) {
			t.Fatalf("reference ok=%v, compile err=%v", ok, err)
		}
		if !ok {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error is not ErrSyntax: %v", err)
			}
			return
		}
		var ref memFile
		w, err := cdb.NewWriter(&ref, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range want {
			w.Put(r[0], r[1])
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.buf, ref.buf) {
			t.Fatalf("cdb differs from the reference's")
		}
		s := NewScanner(bytes.NewReader(in))
		for i := 0; s.Scan(); i++ {
			e := s.Entry()
			if !bytes.Equal(e.Key(), want[i][0]) || !bytes.Equal(e.Value(), want[i][1]) {
				t.Fatalf("entry %d: %q %q, want %q %q", i, e.Key(), e.Value(), want[i][0], want[i][1])
			}
			s2 := NewScanner(bytes.NewReader([]byte(e.String() + "\n.\n")))
			if !s2.Scan() || !bytes.Equal(s2.Entry().Key(), e.Key()) || !bytes.Equal(s2.Entry().Value(), e.Value()) {
				t.Fatalf("entry %d printed as %q does not parse back", i, e.String())
			}
		}
		if s.Err() != nil {
			t.Fatal(s.Err())
		}
	})
}

// FuzzLookup: lookups in arbitrary bytes never panic, and in a valid
// database always give a result consistent with its value.
func FuzzLookup(f *testing.F) {
	var m memFile
	if err := compileTo(&m, bytes.NewReader([]byte(specExample))); err != nil {
		f.Fatal(err)
	}
	f.Add(m.buf, "joe-direct")
	f.Add(m.buf, "JOE")
	f.Add(m.buf[:2100], "bill")
	f.Add([]byte{}, "x")
	if g, err := golden.Path("assign"); err == nil {
		for _, n := range goldenAccepted {
			if b, err := os.ReadFile(filepath.Join(g, n+".cdb")); err == nil {
				f.Add(b, "x-y")
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, local string) {
		db, err := Bytes(data)
		if err != nil {
			if !errors.Is(err, ErrCDB) {
				t.Fatalf("open error is not ErrCDB: %v", err)
			}
			return
		}
		u, err := db.Lookup(local)
		switch {
		case err == nil:
			if u.Match != MatchExact && u.Match != MatchWildcard {
				t.Fatalf("match %v", u.Match)
			}
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrCDB), errors.Is(err, ErrShortValue):
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

// lspawnReference is qmail-lspawn's nughde_get and its field parsing,
// transliterated, over a record list: the six fields, or notFound, or
// short (an _exit(QLX_USAGE)).
func lspawnReference(recs [][2][]byte, local string) (f [6]string, notFound, short bool) {
	get := func(k []byte) ([]byte, bool) {
		for _, r := range recs { // first record wins
			if bytes.Equal(r[0], k) {
				return r[1], true
			}
		}
		return nil, false
	}
	if i := strings.IndexByte(local, 0); i >= 0 {
		local = local[:i]
	}
	lower := []byte("!" + local + "\x00")
	for j := range lower {
		if lower[j] >= 'A' && lower[j] <= 'Z' {
			lower[j] += 32
		}
	}
	wildchars, _ := get(nil)
	var nughde []byte
	found := false
	flagwild := false
	for i := len(lower); i > 0; i-- {
		if !flagwild || i == 1 || bytes.IndexByte(wildchars, lower[i-1]) >= 0 {
			if v, ok := get(lower[:i]); ok {
				nughde = append([]byte(nil), v...)
				if flagwild {
					nughde = append(nughde, local[i-1:]...)
				}
				nughde = append(nughde, 0)
				found = true
				break
			}
		}
		flagwild = true
	}
	if !found {
		return f, true, false
	}
	x := nughde
	for k := range 6 {
		n := bytes.IndexByte(x, 0)
		if n < 0 {
			return f, false, true
		}
		f[k] = string(x[:n])
		x = x[n+1:]
	}
	return f, false, false
}

// FuzzLookupSemantics compares DB.Lookup with the transliteration of
// qmail-lspawn over the records qmail-newu's transliteration makes.
func FuzzLookupSemantics(f *testing.F) {
	f.Add([]byte(specExample), "list-foo-bar")
	f.Add([]byte(specExample), "Joe.Shmoe-x")
	f.Add([]byte("+baR:u:1:2:/h:-::\n+:c:3:4:/c:-:p:\n.\n"), "bar")
	f.Add([]byte("=a:u:1:2:/h:-:e:x\n+a:v\x00:1:2:/h:-:pre:\n.\n"), "ab")
	f.Add([]byte("=a:u:1:2:/h:::\n.\n"), "A\x00b")
	f.Fuzz(func(t *testing.T, in []byte, local string) {
		recs, ok := newuReference(in)
		if !ok {
			return
		}
		var m memFile
		if err := compileTo(&m, bytes.NewReader(in)); err != nil {
			t.Fatal(err)
		}
		db, err := Bytes(m.buf)
		if err != nil {
			t.Fatal(err)
		}
		want, notFound, short := lspawnReference(recs, local)
		u, err := db.Lookup(local)
		switch {
		case notFound:
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("got %+v, %v; want no match", u, err)
			}
		case short:
			if !errors.Is(err, ErrShortValue) {
				t.Fatalf("got %+v, %v; want ErrShortValue", u, err)
			}
		default:
			got := [6]string{u.Name, u.RawUID, u.RawGID, u.Home, u.Dash, u.Ext}
			if err != nil || got != want {
				t.Fatalf("got %q, %v; want %q", got, err, want)
			}
			if u.UID != scanID(want[1]) || u.GID != scanID(want[2]) {
				t.Fatalf("ids %d %d for %q %q", u.UID, u.GID, want[1], want[2])
			}
		}
	})
}
