package assign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/qmailkit/qmailkit/internal/cdb"
)

const specExample = "=joe.shmoe:joe:503:78:/home/joe:::\n" +
	"+joe-:joe:503:78:/home/joe:-::\n" +
	"=joe:joe:503:78:/home/joe:::\n" +
	"+list-:joe:503:78:/home/joe:-:list-:\n" +
	"+:alias:7790:2108:/var/qmail/alias:-::\n" +
	".\n"

// compileString compiles src into a fresh users/cdb and returns its path.
func compileString(t testing.TB, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cdb")
	if err := Compile(path, strings.NewReader(src)); err != nil {
		t.Fatal(err)
	}
	return path
}

func records(t testing.TB, path string) [][2]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cdb.Bytes(b)
	if err != nil {
		t.Fatal(err)
	}
	var recs [][2]string
	it := c.Iter()
	for it.Next() {
		recs = append(recs, [2]string{string(it.Key()), string(it.Value())})
	}
	if it.Err() != nil {
		t.Fatal(it.Err())
	}
	return recs
}

// TestSpecExample compiles a small users/assign (exact and wildcard
// entries, the catch-all alias) and checks qmail-newu's exact bytes and
// records (see qmail-users(5)).
func TestSpecExample(t *testing.T) {
	path := compileString(t, specExample)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if len(b) != 2351 || hex.EncodeToString(sum[:]) != "4eadb9546b6a7ea28f6673120bc931a1c7864bb96376c20f4118dd7e3ef7a67c" {
		t.Fatalf("size %d sha256 %x", len(b), sum)
	}
	if !bytes.HasPrefix(b[2048:], []byte("\x0b\x00\x00\x00\x16\x00\x00\x00!joe.shmoe\x00")) {
		t.Errorf("first record: %q", b[2048:2048+19])
	}
	want := [][2]string{
		{"!joe.shmoe\x00", "joe\x00503\x0078\x00/home/joe\x00\x00"},
		{"!joe-", "joe\x00503\x0078\x00/home/joe\x00-\x00"},
		{"!joe\x00", "joe\x00503\x0078\x00/home/joe\x00\x00"},
		{"!list-", "joe\x00503\x0078\x00/home/joe\x00-\x00list-"},
		{"!", "alias\x007790\x002108\x00/var/qmail/alias\x00-\x00"},
		{"", "-"},
	}
	if got := records(t, path); !equalRecs(got, want) {
		t.Errorf("records\n got %q\nwant %q", got, want)
	}

	// Lookups in that database, as the spawner's six NUL-terminated fields.
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct{ local, want string }{
		{"Joe.Shmoe", "joe\x00503\x0078\x00/home/joe\x00\x00\x00"},
		{"JOE", "joe\x00503\x0078\x00/home/joe\x00\x00\x00"},
		{"joe-direct", "joe\x00503\x0078\x00/home/joe\x00-\x00direct\x00"},
		{"Joe-Direct", "joe\x00503\x0078\x00/home/joe\x00-\x00Direct\x00"},
		{"joe-", "joe\x00503\x0078\x00/home/joe\x00-\x00\x00"},
		{"list-foo-bar", "joe\x00503\x0078\x00/home/joe\x00-\x00list-foo-bar\x00"},
		{"bill", "alias\x007790\x002108\x00/var/qmail/alias\x00-\x00bill\x00"},
		{"joe.shmoe-x", "alias\x007790\x002108\x00/var/qmail/alias\x00-\x00joe.shmoe-x\x00"},
	} {
		u, err := db.Lookup(tc.local)
		if err != nil {
			t.Errorf("%s: %v", tc.local, err)
			continue
		}
		got := strings.Join([]string{u.Name, u.RawUID, u.RawGID, u.Home, u.Dash, u.Ext, ""}, "\x00")
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.local, got, tc.want)
		}
	}
}

func equalRecs(a, b [][2]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSpecRecords checks the records qmail-newu writes for accepted files.
func TestSpecRecords(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      [][2]string
	}{
		{"2 empty", ".\n", [][2]string{{"", ""}}},
		{"3 simple", "=Foo:u:1:2:/h:::\n.\n", [][2]string{{"!foo\x00", "u\x001\x002\x00/h\x00\x00"}, {"", ""}}},
		{"4 wildcard", "+Bar-:u:1:2:/h:-::\n.\n", [][2]string{{"!bar-", "u\x001\x002\x00/h\x00-\x00"}, {"", "-"}}},
		{"4 uppercase wildchar", "+baR:u:1:2:/h:-::\n.\n", [][2]string{{"!bar", "u\x001\x002\x00/h\x00-\x00"}, {"", "R"}}},
		{"6 trailing text", "=a:u:1:2:/h:::extra\n.\n", [][2]string{{"!a\x00", "u\x001\x002\x00/h\x00\x00"}, {"", ""}}},
		{"7 hash is not a comment", "#c:u:1:2:/h:::\n.\n", [][2]string{{"!c\x00", "u\x001\x002\x00/h\x00\x00"}, {"", ""}}},
		{"8 dot line with text", "=a:u:1:2:/h:::\n.anything\nmore\n", [][2]string{{"!a\x00", "u\x001\x002\x00/h\x00\x00"}, {"", ""}}},
		{"8 terminator without newline", "=a:u:1:2:/h:::\n.", [][2]string{{"!a\x00", "u\x001\x002\x00/h\x00\x00"}, {"", ""}}},
		{"9 duplicates", "=a:u1:1:2:/h:::\n=A:u2:1:2:/h:::\n.\n", [][2]string{{"!a\x00", "u1\x001\x002\x00/h\x00\x00"}, {"!a\x00", "u2\x001\x002\x00/h\x00\x00"}, {"", ""}}},
		{"empty wildcard prefix adds no wildchar", "+:u:1:2:/h:-::\n+a.:u:1:2:/h:-::\n+b.:u:1:2:/h:-::\n.\n", [][2]string{
			{"!", "u\x001\x002\x00/h\x00-\x00"}, {"!a.", "u\x001\x002\x00/h\x00-\x00"}, {"!b.", "u\x001\x002\x00/h\x00-\x00"}, {"", "."}}},
		{"CRLF", "=a:u:1:2:/h:::\r\n.\r\n", [][2]string{{"!a\x00", "u\x001\x002\x00/h\x00\x00"}, {"", ""}}},
		{"colon-free CR in home", "=a:u:1:2:/h\r:::\n.\n", [][2]string{{"!a\x00", "u\x001\x002\x00/h\r\x00\x00"}, {"", ""}}},
		{"high bytes kept, ASCII-only lowering", "=\xc3\x84B:u:1:2:/h:::\n.\n", [][2]string{{"!\xc3\x84b\x00", "u\x001\x002\x00/h\x00\x00"}, {"", ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := records(t, compileString(t, tc.src)); !equalRecs(got, tc.want) {
				t.Errorf("records\n got %q\nwant %q", got, tc.want)
			}
		})
	}
	// The empty assign: one record, 2048 + 8 + 2×8 bytes.
	if b, _ := os.ReadFile(compileString(t, ".\n")); len(b) != 2072 {
		t.Errorf("empty assign: %d bytes, want 2072", len(b))
	}
}

// Every format error: the line and field
// are named, and nothing is written.
func TestSpecRejected(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
		field     string
	}{
		{"5 five colons", "=a:u:1:2:/h::\n.\n", 1, "ext"},
		{"one field", "=ok:u:1:2:/h:::\n=a:u\n.\n", 2, "user"},
		{"two fields", "=a:u:1\n.\n", 1, "uid"},
		{"7 blank line", "\n.\n", 1, ""},
		{"7 colon first", ":a:u:1:2:/h:::\n.\n", 1, "type"},
		{"no colon", "=joe\n.\n", 1, ""},
		{"8 no terminator", "=a:u:1:2:/h:::\n", 2, ""},
		{"no newline", "=a:u:1:2:/h:::", 1, ""},
		{"empty file", "", 1, ""},
		{"NUL in user", "=a:u\x00:1:2:/h:::\n.\n", 1, "user"},
		{"NUL after the last colon", "=a:u:1:2:/h:::x\x00\n.\n", 1, "trailing text"},
		{"NUL in type", "\x00a:u:1:2:/h:::\n.\n", 1, "type"},
		{"NUL in local", "=\x00:u:1:2:/h:::\n.\n", 1, "local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "cdb")
			old := []byte("old")
			if err := os.WriteFile(path, old, 0o644); err != nil {
				t.Fatal(err)
			}
			err := Compile(path, strings.NewReader(tc.src))
			var se *SyntaxError
			if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) {
				t.Fatalf("err = %v, want a SyntaxError", err)
			}
			if se.Line != tc.line || se.Field != tc.field {
				t.Errorf("line %d field %q, want line %d field %q (%v)", se.Line, se.Field, tc.line, tc.field, err)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, old) {
				t.Errorf("users/cdb changed")
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("files left: %v", ents)
			}
		})
	}
}

func TestSyntaxErrorText(t *testing.T) {
	err := (&SyntaxError{File: "users/assign", Line: 2, Field: "ext", Msg: "missing"}).Error()
	if err != "assign: users/assign:2: field ext: missing" {
		t.Error(err)
	}
	err = (&SyntaxError{Line: 3, Msg: "blank"}).Error()
	if err != "assign: line 3: blank" {
		t.Error(err)
	}
}

func TestCompileErrors(t *testing.T) {
	dir := t.TempDir()
	// The temporary file cannot be created: Op "create".
	err := Compile(filepath.Join(dir, "missing", "cdb"), strings.NewReader(".\n"))
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "create" {
		t.Errorf("missing dir: %v", err)
	}
	// A read error: Op "read", nothing installed.
	path := filepath.Join(dir, "cdb")
	src := io.MultiReader(strings.NewReader("=a:u:1:2:/h:::\n"), iotest.ErrReader(syscall.EIO))
	err = Compile(path, src)
	if !errors.As(err, &pe) || pe.Op != "read" || !errors.Is(err, syscall.EIO) {
		t.Errorf("read error: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("cdb installed after a read error")
	}
	// The assign file cannot be opened: Op "open", no .tmp made.
	err = CompileFile(filepath.Join(dir, "nosuch"), path)
	if !errors.As(err, &pe) || pe.Op != "open" {
		t.Errorf("open: %v", err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("tmp made before the assign file was opened")
	}
	// Rename onto a directory fails: Op "rename".
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err = Compile(path, strings.NewReader(".\n"))
	if !errors.As(err, &pe) || pe.Op != "rename" {
		t.Errorf("rename: %v", err)
	}
}

// A prefix recorded with an upper-case last byte is never tried.
func TestLookupUppercaseWildchar(t *testing.T) {
	db := openString(t, "+baR:u:1:2:/h:-::\n.\n")
	if u, err := db.Lookup("bar"); !errors.Is(err, ErrNotFound) {
		t.Errorf("bar: %+v, %v; want no match", u, err)
	}
	db = openString(t, "+Bar-:u:1:2:/h:-::\n.\n")
	if u, err := db.Lookup("BAR-x"); err != nil || u.Ext != "x" || u.Prefix != "BAR-" {
		t.Errorf("BAR-x: %+v, %v", u, err)
	}
}

func openString(t testing.TB, src string) *DB {
	t.Helper()
	db, err := Open(compileString(t, src))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Lookup order: exact beats wildcard, longest wildcard wins, only prefixes
// ending in a wildchar are tried, "!" last; duplicates: first wins.
func TestLookupOrder(t *testing.T) {
	db := openString(t, ""+
		"+a-:short:1:1:/s:-:s-:\n"+
		"+a-b-:long:2:2:/l:-:l-:\n"+
		"=a-b-c:exact:3:3:/e:::\n"+
		"+a-b-c:wild:4:4:/w:-::\n"+
		"=dup:first:5:5:/f:::\n"+
		"=dup:second:6:6:/f:::\n"+
		"+dupw-:firstw:5:5:/f:-::\n"+
		"+dupw-:secondw:6:6:/f:-::\n"+
		"+x.:dot:7:7:/d:-::\n"+
		"+:catch:8:8:/c:-:c-:\n"+
		".\n")
	for _, tc := range []struct {
		local, user, ext string
		match            Match
	}{
		{"a-b-c", "exact", "", MatchExact},
		{"A-B-C", "exact", "", MatchExact},
		{"a-b-cd", "wild", "d", MatchWildcard}, // 'c' is a wildchar
		{"a-b-x", "long", "l-x", MatchWildcard},
		{"a-b-", "long", "l-", MatchWildcard},
		{"a-x-y", "short", "s-x-y", MatchWildcard},
		{"a-", "short", "s-", MatchWildcard},
		{"a", "catch", "c-a", MatchWildcard},
		{"dup", "first", "", MatchExact},
		{"dupw-z", "firstw", "z", MatchWildcard},
		{"x.Y", "dot", "Y", MatchWildcard},
		{"zzz", "catch", "c-zzz", MatchWildcard},
		{"", "catch", "c-", MatchWildcard},
	} {
		u, err := db.Lookup(tc.local)
		if err != nil || u.Name != tc.user || u.Ext != tc.ext || u.Match != tc.match {
			t.Errorf("%q: %+v, %v; want %s ext %q %v", tc.local, u, err, tc.user, tc.ext, tc.match)
		}
	}

	// With wildchars "-", for a-b-c: !a-b- beats !a-.
	db = openString(t, "+a-:short:1:1:/s:-:p-:\n+a-b-:long:1:1:/l:-:p-:\n.\n")
	if u, err := db.Lookup("a-b-c"); err != nil || u.Name != "long" || u.Ext != "p-c" {
		t.Errorf("vector 10: %+v, %v", u, err)
	}
	// Prefixes not ending in a wildchar are never probed, even if a record
	// exists (it can, via an upper-case last byte elsewhere).
	db = openString(t, "+ab:u:1:1:/h:-::\n+cD:v:1:1:/h:-::\n.\n")
	if _, err := db.Lookup("cdx"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cdx: %v", err)
	}
	if u, _ := db.Lookup("abx"); u.Name != "u" {
		t.Errorf("abx: %+v", u)
	}
}

// Values as qmail-lspawn splits them.
func TestLookupValues(t *testing.T) {
	for _, tc := range []struct {
		name, value, rest string
		want              User
		err               error
	}{
		{"plain", "u\x001\x002\x00/h\x00-\x00e", "", User{Name: "u", UID: 1, GID: 2, RawUID: "1", RawGID: "2", Home: "/h", Dash: "-", Ext: "e"}, nil},
		{"leading digits", "u\x0012abc\x00 7\x00/h\x00\x00", "", User{Name: "u", UID: 12, GID: 0, RawUID: "12abc", RawGID: " 7", Home: "/h"}, nil},
		{"uid wraps to 32 bits", "u\x004294967297\x002\x00/h\x00\x00", "", User{Name: "u", UID: 1, GID: 2, RawUID: "4294967297", RawGID: "2", Home: "/h"}, nil},
		{"sixth NUL cuts the rest", "u\x001\x002\x00/h\x00-\x00pre\x00junk", "rest", User{Name: "u", UID: 1, GID: 2, RawUID: "1", RawGID: "2", Home: "/h", Dash: "-", Ext: "pre"}, nil},
		{"rest appended", "u\x001\x002\x00/h\x00-\x00pre-", "Rest", User{Name: "u", UID: 1, GID: 2, RawUID: "1", RawGID: "2", Home: "/h", Dash: "-", Ext: "pre-Rest"}, nil},
		{"five fields", "u\x001\x002\x00/h\x00-", "", User{}, ErrShortValue},
		{"empty", "", "", User{}, ErrShortValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseValue([]byte(tc.value), tc.rest, "", 0)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if got != tc.want {
				t.Errorf("%+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// Missing users/cdb, a cdb without the empty key,
// a corrupt file.
func TestLookupFiles(t *testing.T) {
	dir := t.TempDir()
	pw := writePasswd(t, "alias:x:7790:2108::/var/qmail/alias:/bin/sh\n")
	path := filepath.Join(dir, "cdb")
	u := &Users{CDB: path, Passwd: pw, HomeOwner: owners(nil)}
	defer u.Close()
	if res, err := u.Lookup(t.Context(), "joe"); err != nil || res.Match != MatchAlias || res.Ext != "joe" {
		t.Errorf("no users/cdb: %+v, %v", res, err)
	}

	// A cdb without the empty key: temporary trouble (117).
	w, err := cdb.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w.Put([]byte("!joe\x00"), []byte("joe\x001\x001\x00/h\x00\x00"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Lookup(t.Context(), "joe"); !errors.Is(err, ErrCDB) || ExitCode(err) != 117 {
		t.Errorf("no empty key: %v", err)
	}
	// Corrupt (short) file.
	if err := os.WriteFile(path, []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Lookup(t.Context(), "joe"); !errors.Is(err, ErrCDB) {
		t.Errorf("corrupt: %v", err)
	}
	// Unreadable (a directory): not ENOENT, so trouble, not fallback.
	os.Remove(path)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Lookup(t.Context(), "joe"); !errors.Is(err, ErrCDB) {
		t.Errorf("directory: %v", err)
	}
	// A value too short: 112.
	os.Remove(path)
	w, _ = cdb.Create(path)
	w.Put([]byte("!joe\x00"), []byte("joe\x001\x001\x00/h"))
	w.Put(nil, nil)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Lookup(t.Context(), "joe"); !errors.Is(err, ErrShortValue) || ExitCode(err) != 112 {
		t.Errorf("short value: %v", err)
	}
	// A non-numeric uid reads as 0 and is refused: 113, the user still given.
	if err := Compile(path, strings.NewReader("=numeric:nu:abc:xyz:/home/nu:::\n=zero:z:0:1:/z:::\n.\n")); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"numeric", "zero"} {
		res, err := u.Lookup(t.Context(), l)
		if !errors.Is(err, ErrRoot) || ExitCode(err) != 113 || res.UID != 0 || res.Home == "" {
			t.Errorf("%s: %+v, %v", l, res, err)
		}
	}
	// A cancelled context.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := u.Lookup(ctx, "numeric"); err == nil || ExitCode(err) != 118 {
		t.Errorf("cancelled: %v", err)
	}
}

// Lines longer than the reader's buffer are read whole.
func TestLongLine(t *testing.T) {
	home := "/" + strings.Repeat("h", 200_000)
	src := "=short:u:1:2:/h:::\n=Long:u:1:2:" + home + ":-:e:\n+x-:u:1:2:" + home + ":-::\n.\n"
	s := NewScanner(strings.NewReader(src))
	var got []Entry
	for s.Scan() {
		got = append(got, s.Entry())
	}
	if s.Err() != nil || len(got) != 3 {
		t.Fatalf("%d entries, %v", len(got), s.Err())
	}
	if got[1].Home != home || got[1].Local != "Long" || got[1].Ext != "e" || got[1].Line != 2 || !got[2].Wildcard {
		t.Errorf("long line: %+v", got[1].Line)
	}
	if got[1].String() != "=Long:u:1:2:"+home+":-:e:" {
		t.Errorf("String")
	}
	db := openString(t, src)
	if u, err := db.Lookup("LONG"); err != nil || u.Home != home {
		t.Errorf("lookup: %v", err)
	}
}
