package aliases

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func FuzzAliases(f *testing.F) {
	for _, s := range []string{
		"postmaster: root\n", "root: Joe@Example.COM, bob\n  , \"quoted name\"@example.org\n",
		"owner-list: Listmaster\nlist: :include:/lists/x\n", "prog: |/usr/bin/vacation joe,\n\t\"|cat > /dev/null\"\n",
		"mix: joe+, <a@b>, Some Name <c@d.e>, (comment) f@g\n", "a: b\n\n c\n#x\n d\n", "foo: <bar\n",
		"a: <@route,@r2:x@y>, [1.2.3.4]\n", "a: \"b\x00c\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ar := NewAliasReader(bytes.NewReader(in), specControls)
		ar.MaxLineBytes = 1 << 16
		for {
			a, err := ar.Next()
			if err != nil {
				var e *Error
				if err != io.EOF && !errors.As(err, &e) {
					t.Fatalf("error of type %T: %v", err, err)
				}
				return
			}
			if a.Name == "" || len(a.Instructions) == 0 || !strings.Contains(a.Name, "@") {
				t.Fatalf("bad alias %+v", a)
			}
			for _, r := range a.Records() {
				if r.Key[0] != ':' && r.Key[0] != '?' || r.Key != lower(r.Key) {
					t.Fatalf("bad key %q", r.Key)
				}
				if r.Key[0] == ':' && !strings.HasSuffix(r.Data, "\x00") {
					t.Fatalf("instructions %q not NUL-terminated", r.Data)
				}
			}
			for _, in := range a.Instructions {
				if in[0] == '&' && len(in) > MaxAddressBytes+1 {
					t.Fatalf("address over 800 bytes: %q", in)
				}
			}
		}
	})
}

// FuzzSetforward checks that setforward's records print and read back the
// same (addresses of 800 bytes aside: "&" makes them 801 on the way back).
func FuzzSetforward(f *testing.F) {
	for _, s := range []string{
		`Foo@Ex: bar@x.y, |prog a, !pl, /lists/f, ?own@x, b\,c\ d, \#x;`, "a: b;;", "a:: b;", "a: ?s; b: ?t, &u;\n# c\nc:d,e,f;",
		"\xe9: \xfc\x01\x7f;", "\\: \\::;",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		recs, err := readForward(string(in))
		if err != nil {
			return
		}
		var db bytes.Buffer
		w, err := NewWriter(&seekBuffer{b: &db})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			w.Put(r)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := PrintForward(&out, bytes.NewReader(db.Bytes())); err != nil {
			t.Fatalf("printforward of setforward's output: %v", err)
		}
		again, err := readForward(out.String())
		if err != nil {
			if e := (*Error)(nil); errors.As(err, &e) && e.Text == "addresses over 800 bytes are not permitted" {
				return
			}
			t.Fatalf("setforward of %q: %v", out.String(), err)
		}
		// records come back grouped: "?" ones where printed
		if len(again) != len(recs) {
			t.Fatalf("round trip: %q -> %q", recs, again)
		}
	})
}

func FuzzPrintForward(f *testing.F) {
	f.Add(writeDBBytes([]Record{{"?foo@ex", "own@x"}, {":foo@ex", "&bar@x.y\x00|proga\x00"}}))
	f.Add(make([]byte, 2048))
	f.Add([]byte{0x10, 0x08, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		err := PrintForward(io.Discard, bytes.NewReader(in))
		if err != nil && err != ErrBadDatabase {
			t.Fatalf("error %v", err)
		}
	})
}

func FuzzPrintMaillist(f *testing.F) {
	for _, s := range []string{"&joe\x00/lists/sub\x00&bob@x.y\x00", "a\x00", "&a\nb\x00", "&a", "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		err := PrintMaillist(&out, bytes.NewReader(in), 1<<16)
		if err != nil && err != ErrBadList {
			t.Fatalf("error %v", err)
		}
		if err == nil && bytes.Count(out.Bytes(), []byte{'\n'}) != bytes.Count(in, []byte{0}) {
			t.Fatalf("%q printed as %q", in, out.Bytes())
		}
	})
}

// seekBuffer is an io.WriteSeeker in memory.
type seekBuffer struct {
	b   *bytes.Buffer
	pos int
}

func (s *seekBuffer) Write(p []byte) (int, error) {
	buf := s.b.Bytes()
	if s.pos+len(p) > len(buf) {
		s.b.Write(make([]byte, s.pos+len(p)-len(buf)))
		buf = s.b.Bytes()
	}
	copy(buf[s.pos:], p)
	s.pos += len(p)
	return len(p), nil
}

func (s *seekBuffer) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		s.pos = int(off)
	case io.SeekCurrent:
		s.pos += int(off)
	case io.SeekEnd:
		s.pos = s.b.Len() + int(off)
	}
	return int64(s.pos), nil
}

func writeDBBytes(recs []Record) []byte {
	var db bytes.Buffer
	w, _ := NewWriter(&seekBuffer{b: &db})
	for _, r := range recs {
		w.Put(r)
	}
	w.Close()
	return db.Bytes()
}
