package dotqmail

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestCandidates is qmail-local's search order (see dot-qmail(5)): the
// exact file, then a -default file at each hyphen from the longest
// prefix of the extension down to .qmail-default.
func TestCandidates(t *testing.T) {
	tests := []struct {
		dash, ext string
		want      []string
	}{
		{"", "", []string{".qmail", ".qmaildefault"}},
		{"-", "", []string{".qmail-", ".qmail-default"}},
		{"-", "a", []string{".qmail-a", ".qmail-default"}},
		{"-", "a-", []string{".qmail-a-", ".qmail-a-default", ".qmail-default"}},
		{"-", "a-b", []string{".qmail-a-b", ".qmail-a-default", ".qmail-default"}},
		{"-", "a-b-", []string{".qmail-a-b-", ".qmail-a-b-default", ".qmail-a-default", ".qmail-default"}},
		{"-", "a-b-c", []string{".qmail-a-b-c", ".qmail-a-b-default", ".qmail-a-default", ".qmail-default"}},
		{"-", "P.D.Q-Bach", []string{".qmail-p:d:q-bach", ".qmail-p:d:q-default", ".qmail-default"}},
		{"-", "a+b", []string{".qmail-a+b", ".qmail-default"}}, // only hyphens split
	}
	for _, tt := range tests {
		var got []string
		for _, c := range Candidates(tt.dash, tt.ext) {
			got = append(got, c.Name)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Candidates(%q, %q) = %q, want %q", tt.dash, tt.ext, got, tt.want)
		}
	}
}

func TestMapExt(t *testing.T) {
	for in, want := range map[string]string{
		"P.D.Q.Bach": "p:d:q:bach", "a/b": "a/b", "../../etc": "::/::/etc", "ÄB": "Äb", "": "",
	} {
		if got := MapExt(in); got != want {
			t.Errorf("MapExt(%q) = %q, want %q", in, got, want)
		}
	}
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestFind covers the file chosen and $DEFAULT: the longest -default,
// case folding and dots mapped to ':', and a directory taken for missing.
func TestFind(t *testing.T) {
	tests := []struct {
		name     string
		files    []string // created with content "x\n"
		dirs     []string
		ext      string
		wantFile string // "" for not found
		wantDef  string
		hasDef   bool
	}{
		{"vector 6", []string{".qmail-a-default"}, nil, "a-b-c", ".qmail-a-default", "b-c", true},
		{"vector 7", []string{".qmail-default"}, nil, "A-B-C", ".qmail-default", "A-B-C", true},
		{"vector 8", []string{".qmail-p:d:q:bach"}, nil, "P.D.Q.Bach", ".qmail-p:d:q:bach", "", false},
		{"vector 9", []string{".qmail-x-default"}, nil, "x-default", ".qmail-x-default", "default", true},
		{"vector 9 case kept", []string{".qmail-x-default"}, nil, "x-DEFAULT", ".qmail-x-default", "DEFAULT", true},
		{"default of original case", []string{".qmail-foo-default"}, nil, "Foo-Bar.Baz", ".qmail-foo-default", "Bar.Baz", true},
		{"vector 10", nil, nil, "foo", "", "", false},
		{"vector 12: a directory is missing", []string{".qmail-default"}, []string{".qmail-foo"}, "foo", ".qmail-default", "foo", true},
		{"exact before default", []string{".qmail-a-b", ".qmail-a-default"}, nil, "a-b", ".qmail-a-b", "", false},
		{"path through a file", []string{".qmail-a", ".qmail-default"}, nil, "a/b", ".qmail-default", "a/b", true},
		{"subdirectory", []string{".qmail-a/b"}, nil, "a/b", ".qmail-a/b", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			for _, f := range tt.files {
				writeFile(t, filepath.Join(home, f), "x\n", 0o644)
			}
			for _, d := range tt.dirs {
				os.MkdirAll(filepath.Join(home, d), 0o755)
			}
			got, err := Find(home, "-", tt.ext)
			if tt.wantFile == "" {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Find = %+v, %v; want not found", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tt.wantFile || got.Default != tt.wantDef || got.HasDefault != tt.hasDef ||
				string(got.Data) != "x\n" || got.Path != filepath.Join(home, tt.wantFile) {
				t.Errorf("Find = %+v, want %s DEFAULT=%q (%v)", got, tt.wantFile, tt.wantDef, tt.hasDef)
			}
		})
	}
}

// TestFindEscape tries to reach files outside the home directory through
// the extension (paths made from mail never escape their directory).
func TestFindEscape(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	os.Mkdir(home, 0o755)
	// Files an escaping search would find.
	writeFile(t, filepath.Join(root, "x"), "escaped\n", 0o644)
	writeFile(t, filepath.Join(root, ".qmail-x"), "escaped\n", 0o644)
	writeFile(t, filepath.Join(root, "etc", "passwd"), "escaped\n", 0o644)
	for _, ext := range []string{"../x", "/../x", "a/../../x", "../../etc/passwd", "/../../etc/passwd",
		"..", "../", "x/..", "a/../x-default"} {
		got, err := Find(home, "-", ext)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Find(ext %q) = %+v, %v; want not found", ext, got, err)
		}
	}
	// The mapped names are below home: a file there is what is found.
	writeFile(t, filepath.Join(home, ".qmail-::/x"), "inside\n", 0o644)
	got, err := Find(home, "-", "../x")
	if err != nil || string(got.Data) != "inside\n" {
		t.Errorf("Find(../x) = %+v, %v; want home/.qmail-::/x", got, err)
	}
	if _, err := Find(home, "-", "a\x00b"); err == nil || ExitCode(err) != 100 {
		t.Errorf("NUL in ext: %v", err)
	}
}

// FuzzCandidates fuzzes the extension search: the candidate names and
// their DEFAULT values, and Find in a home directory holding a few .qmail
// files, which must never return a file outside it.
func FuzzCandidates(f *testing.F) {
	for _, s := range []string{"", "a", "a-b-c", "P.D.Q-Bach", "-", "--", "a-default", "../../x", "a/b-c", "x-DEFAULT"} {
		f.Add("-", s)
	}
	f.Add("", "")
	root := f.TempDir()
	home := filepath.Join(root, "home")
	for _, name := range []string{"home/.qmail-default", "home/.qmail-a-default", "home/.qmail-::/x", ".qmail-x", "x"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(name+"\n"), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(home, ".qmail-dir"), 0o755)
	f.Fuzz(func(t *testing.T, dash, ext string) {
		if len(ext) > 1024 || len(dash) > 16 {
			return
		}
		cs := Candidates(dash, ext)
		m := MapExt(ext)
		if len(m) != len(ext) || strings.Contains(m, ".") {
			t.Fatalf("MapExt(%q) = %q", ext, m)
		}
		if cs[0].Name != ".qmail"+dash+m {
			t.Fatalf("first candidate %q", cs[0].Name)
		}
		if last := cs[len(cs)-1]; last.Name != ".qmail"+dash+"default" || last.Default != ext || !last.HasDefault {
			t.Fatalf("last candidate %+v", last)
		}
		if want := strings.Count(m, "-") + 2; len(cs) != want {
			t.Fatalf("%d candidates for %q, want %d", len(cs), ext, want)
		}
		for _, c := range cs[1:] {
			prefix := strings.TrimSuffix(strings.TrimPrefix(c.Name, ".qmail"+dash), "default")
			if MapExt(ext[:len(prefix)]) != prefix || ext[len(prefix):] != c.Default {
				t.Fatalf("candidate %q with DEFAULT %q does not rebuild %q", c.Name, c.Default, ext)
			}
		}
		if dash != "-" {
			return
		}
		got, err := Find(home, dash, ext)
		if err != nil {
			return
		}
		rel, rerr := filepath.Rel(home, got.Path)
		if rerr != nil || strings.HasPrefix(rel, "..") || !strings.HasPrefix(string(got.Data), "home/") {
			t.Fatalf("Find(%q) = %s (%q): outside the home directory", ext, got.Path, got.Data)
		}
	})
}
