package pop3

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzPasswdFile reads arbitrary password files: readPasswd must not
// panic, every entry it returns must parse again from its own line, and
// the cdb made by CompilePasswd must give the same entries.
func FuzzPasswdFile(f *testing.F) {
	f.Add([]byte(testPasswd))
	f.Add([]byte("joe:{PLAIN}good:1000:1000:Joe:/home/joe:/bin/sh:extra:fields\n"))
	f.Add([]byte("a:b:-1:0:::\n"))
	f.Add([]byte("a:b:+1:0x1:::\r\n#x\n\n:::::::\n"))
	f.Add([]byte("joe:$6$rounds=5000$salt$hash:1:1::/h:/bin/false"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := readPasswd(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		if len(entries) > 64 {
			return // the cdb round trip below is for small files
		}
		for name, e := range entries {
			if name != e.Name || name == "" || strings.ContainsAny(name, ":\n") {
				t.Fatalf("entry %q: %+v", name, e)
			}
		}
		db := filepath.Join(t.TempDir(), "passwd.cdb")
		if err := CompilePasswd(db, bytes.NewReader(data)); err != nil {
			t.Fatalf("CompilePasswd: %v", err)
		}
		p := &PasswdFile{Path: db}
		defer func() {
			if p.db != nil {
				p.db.Close()
			}
		}()
		for name, e := range entries {
			got, err := p.Lookup(name)
			if err != nil || got != e {
				t.Fatalf("cdb %q: %+v, %v; text %+v", name, got, err, e)
			}
		}
	})
}

// FuzzParsePasswdLine: a line that parses gives the fields it holds.
func FuzzParsePasswdLine(f *testing.F) {
	f.Add("joe:{PLAIN}good:1000:1000:Joe:/home/joe:/bin/sh")
	f.Add("x::0:0:::")
	f.Add("x:y:99999999999999999999:0:::")
	f.Fuzz(func(t *testing.T, line string) {
		e, err := ParsePasswdLine(line)
		if err != nil {
			return
		}
		if !strings.HasPrefix(line, e.Name+":"+e.Password+":") || e.UID < 0 || e.GID < 0 || strings.Contains(e.Shell, ":") {
			t.Fatalf("%q: %+v", line, e)
		}
	})
}
