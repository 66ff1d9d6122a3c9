package aliases

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func openDB(t *testing.T, recs []Record) *DB {
	t.Helper()
	db, err := Open(writeDBFile(t, recs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func aliasRecords(t *testing.T, c Controls, src string) []Record {
	t.Helper()
	recs, err := compileAliases(t, c, src)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// F1 to F5 at the library level, and the seen-set and stack rules.
func TestExpand(t *testing.T) {
	me := Controls{DefaultHost: "example.net", DefaultDomain: "example.net", PlusDomain: "example.net"}
	recs := aliasRecords(t, me, "owner-list: listowner\nlist: :include:LIST, root\nroot: admin@example.org\n"+
		"prog: \"|echo hi\", ext@other.org\nloop1: loop2\n")
	recs = append(recs,
		Record{":@wild.net", "&catchall@example.org\x00"},
		Record{":x@", "&local@wild\x00"},
		Record{":c1@x", "&c2@x\x00&dup@y\x00"},
		Record{":c2@x", "&c1@x\x00&out@y\x00&out@y\x00&dup@y\x00|echo c2\x00"},
		Record{"?own@x", "s2"},
		Record{":own@x", "&d@e\x00"},
		Record{":exp@x", "&own@x\x00"},
		Record{"?nul@x", "a\x00b"},
		Record{":nul@x", "&t@x\x00&u\x00\x01@x\x00|\x00&" + strings.Repeat("l", 899) + "\x00&" + strings.Repeat("m", 898) + "\x00&trailing"},
	)
	db := openDB(t, recs)
	db.Dir = t.TempDir()
	os.WriteFile(filepath.Join(db.Dir, "LIST.bin"), []byte("&joe\x00&bob@x.y\x00|echo never\x00"), 0o644)

	tests := []struct {
		rcpt, sender string
		want         Plan
		err          error
	}{
		{"list@example.net", "b@s.t", Plan{Sender: "owner-list@example.net", Targets: []string{"joe", "bob@x.y", "root@example.net"}}, nil},
		{"LIST@Example.NET", "#@[]", Plan{Sender: "#@[]", Targets: []string{"joe", "bob@x.y", "root@example.net"}}, nil},
		{"list@example.net", "", Plan{Sender: "", Targets: []string{"joe", "bob@x.y", "root@example.net"}}, nil},
		{"prog@example.net", "a@b", Plan{Sender: "a@b", Programs: []string{"!echo hi"}, Targets: []string{"ext@other.org"}}, nil},
		{"loop1@example.net", "a@b", Plan{Sender: "a@b", Targets: []string{"loop2@example.net"}}, nil},
		{"any@wild.net", "a@b", Plan{Sender: "a@b", Targets: []string{"catchall@example.org"}}, nil},
		{"x@other", "a@b", Plan{Sender: "a@b", Targets: []string{"local@wild"}}, nil},
		{"c1@x", "a@b", Plan{Sender: "a@b", Programs: []string{"|echo c2"}, Targets: []string{"out@y", "dup@y"}}, nil},
		// the recipient itself is in the seen set only without its "&"
		{"c2@x", "a@b", Plan{Sender: "a@b", Programs: []string{"|echo c2", "|echo c2"}, Targets: []string{"out@y", "dup@y"}}, nil},
		{"exp@x", "a@b", Plan{Sender: "a@b", Targets: []string{"own@x"}}, nil},
		{"nul@x", "a@b", Plan{Sender: "a", Programs: []string{"|"}, Targets: []string{"t@x", "u", strings.Repeat("m", 898)}}, nil},
		{"nobody@other.net", "a@b", Plan{Sender: "a@b"}, ErrNoMailbox},
	}
	for _, tt := range tests {
		p, err := db.Expand(tt.rcpt, tt.sender)
		if err != tt.err {
			t.Errorf("%s: err %v, want %v", tt.rcpt, err, tt.err)
		}
		if !reflect.DeepEqual(*p, tt.want) {
			t.Errorf("%s: got %+v\nwant %+v", tt.rcpt, *p, tt.want)
		}
	}
}

// List files: missing, not world-readable, a FIFO, a symbolic link to a
// private file, a deep chain and a cycle of lists.
func TestExpandListFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	write("secret.bin", "&s@x\x00", 0o640)
	write("private", "&p@x\x00", 0o600)
	os.Symlink("private", filepath.Join(dir, "link.bin"))
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.bin"), 0o644); err != nil {
		t.Fatal(err)
	}
	write("a.bin", "&a@x\x00./b.bin\x00", 0o644)
	write("b.bin", "&b@x\x00./a.bin\x00/nonexistent/never-read-twice\x00", 0o644)
	const depth = 2000
	for i := range depth {
		write("d"+itoa(i), "./d"+itoa(i+1)+"\x00&m"+itoa(i)+"@x\x00", 0o644)
	}
	write("d"+itoa(depth), "&last@x\x00", 0o644)
	db := openDB(t, []Record{
		{":missing@x", "./missing.bin\x00|echo first\x00"},
		{":secret@x", "./secret.bin\x00"},
		{":link@x", "./link.bin\x00"},
		{":fifo@x", "./fifo.bin\x00&after@x\x00"},
		{":cycle@x", "./a.bin\x00"},
		{":deep@x", "./d" + itoa(0) + "\x00"},
	})
	db.Dir = dir
	for _, tt := range []struct {
		rcpt, text string
		targets    int
		programs   int
	}{
		{"missing@x", "unable to read ./missing.bin: file does not exist", 0, 1},
		{"secret@x", "./secret.bin is not world-readable", 0, 0},
		{"link@x", "./link.bin is not world-readable", 0, 0},
		{"fifo@x", "", 1, 0},
		{"cycle@x", "unable to read /nonexistent/never-read-twice: file does not exist", 0, 0},
		{"deep@x", "", depth + 1, 0},
	} {
		p, err := db.Expand(tt.rcpt, "s@t")
		var e *Error
		switch {
		case tt.text == "" && err != nil:
			t.Errorf("%s: %v", tt.rcpt, err)
		case tt.text != "" && (!errors.As(err, &e) || e.Text+errSuffix(e) != tt.text || e.Permanent()):
			t.Errorf("%s: got %v, want %q", tt.rcpt, err, tt.text)
		}
		if len(p.Programs) != tt.programs || (err == nil && len(p.Targets) != tt.targets) {
			t.Errorf("%s: plan %d programs, %d targets", tt.rcpt, len(p.Programs), len(p.Targets))
		}
	}
	db.MaxListBytes = 4
	if _, err := db.Expand("cycle@x", "s@t"); err == nil || !errors.Is(err, syscall.ENOMEM) {
		t.Errorf("MaxListBytes: got %v", err)
	}
}

func errSuffix(e *Error) string {
	if e.Err == nil {
		return ""
	}
	if errors.Is(e.Err, syscall.ENOENT) {
		return ": file does not exist"
	}
	return ": " + e.Err.Error()
}

func itoa(i int) string { return strconv.Itoa(i) }

// Corrupt databases: lying lengths and offsets give an *Error with EIO,
// never a panic or an allocation beyond the file.
func TestCorruptDB(t *testing.T) {
	good := writeDB(t, []Record{{":a@x", "&b@y\x00"}})
	le := func(b []byte, off int, v uint32) []byte {
		c := append([]byte{}, b...)
		c[off], c[off+1], c[off+2], c[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		return c
	}
	h := Hash(":a@x")
	table := int(8 * (h & 255))
	for name, b := range map[string][]byte{
		"empty":       {},
		"short":       good[:100],
		"header only": good[:2048],
		"table past":  le(good, table, 0xfffffff0),
		"slots past":  le(good, table+4, 0x7fffffff),
		"data length": le(good, 2048+4, 0xfffffff0),
		"key length":  le(good, 2048, 0xfffffff0),
	} {
		p := filepath.Join(t.TempDir(), "x.cdb")
		os.WriteFile(p, b, 0o644)
		db, err := Open(p)
		if err == nil {
			_, err = db.Expand("a@x", "s@t")
			db.Close()
		}
		var e *Error
		if name == "key length" && err == ErrNoMailbox {
			continue // the key no longer matches: not found, as in fastforward
		}
		if !errors.As(err, &e) || !errors.Is(err, syscall.EIO) || e.Text != "unable to read "+p {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

// Hash is the cdb hash, for tests that corrupt a table.
func Hash(s string) uint32 {
	h := uint32(5381)
	for i := 0; i < len(s); i++ {
		h = ((h << 5) + h) ^ uint32(s[i])
	}
	return h
}
