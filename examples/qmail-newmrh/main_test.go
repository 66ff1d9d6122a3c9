package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/internal/cdb"
	"github.com/qmailkit/qmailkit/internal/progtest"
)

// newHome makes a home whose control/morercpthosts holds content.
func newHome(t *testing.T, content string) string {
	return progtest.Home(t, map[string]string{"control/morercpthosts": content})
}

func runIn(home string) (int, string) {
	var stderr bytes.Buffer
	code := run(progtest.Env(home), &stderr)
	return code, stderr.String()
}

// records lists a cdb's records in file order.
func records(t *testing.T, path string) []string {
	t.Helper()
	db, err := cdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var recs []string
	for it := db.Iter(); it.Next(); {
		recs = append(recs, fmt.Sprintf("%q=%q", it.Key(), it.Value()))
	}
	return recs
}

func TestNewmrh(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		// Names lowercased, blanks cut, comments and empty lines skipped; a CR
		// is kept.
		{"Q3", "Example.COM \n#c\n\nb.org\r\n", []string{`"example.com"=""`, `"b.org\r"=""`}},
		{"last line without LF, duplicates, leading blanks", "a.org\n a.org\t \nA.ORG\nlast.org", []string{`"a.org"=""`, `" a.org"=""`, `"a.org"=""`, `"last.org"=""`}},
		{"only bytes A-Z lowered", "\xc3\x84X.org\n", []string{`"Äx.org"=""`}},
		{"NUL kept", "a\x00b\n", []string{`"a\x00b"=""`}},
		{"empty", "", nil},
		{"blank lines and comments", "\n \n\t\n# x\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := newHome(t, tc.in)
			code, stderr := runIn(home)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d stderr %q", code, stderr)
			}
			got := records(t, filepath.Join(home, "control", "morercpthosts.cdb"))
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("records %v, want %v", got, tc.want)
			}
			if _, err := os.Stat(filepath.Join(home, "control", "morercpthosts.tmp")); err == nil {
				t.Error("morercpthosts.tmp left behind")
			}
		})
	}
}

// The bytes are those of tinycdb's "cdb -c" (which writes what cdbmake
// and qmail's cdbmss write) for the same records.
func TestTinycdb(t *testing.T) {
	tool, err := exec.LookPath("cdb")
	if err != nil {
		t.Skip("tinycdb's cdb not installed (apt-get install tinycdb)")
	}
	in := "Example.COM \n#c\n\nb.org\r\nx.net\nx.net\n" + strings.Repeat("host.example\n", 3)
	var src strings.Builder
	for i := range 300 {
		fmt.Fprintf(&src, "H%d.example.org\n", i)
		in += fmt.Sprintf("H%d.example.org\n", i)
	}
	home := newHome(t, in)
	if code, stderr := runIn(home); code != 0 {
		t.Fatalf("exit %d %s", code, stderr)
	}
	var cdbmake bytes.Buffer
	for _, k := range []string{"example.com", "b.org\r", "x.net", "x.net", "host.example", "host.example", "host.example"} {
		fmt.Fprintf(&cdbmake, "+%d,0:%s->\n", len(k), k)
	}
	for i := range 300 {
		k := fmt.Sprintf("h%d.example.org", i)
		fmt.Fprintf(&cdbmake, "+%d,0:%s->\n", len(k), k)
	}
	cdbmake.WriteString("\n")
	want := filepath.Join(t.TempDir(), "want.cdb")
	cmd := exec.Command(tool, "-c", want)
	cmd.Stdin = &cdbmake
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cdb -c: %v %s", err, out)
	}
	got, _ := os.ReadFile(filepath.Join(home, "control", "morercpthosts.cdb"))
	wantB, _ := os.ReadFile(want)
	if !bytes.Equal(got, wantB) {
		t.Errorf("morercpthosts.cdb (%d bytes) differs from cdb -c's (%d bytes)", len(got), len(wantB))
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) string
		want  string
	}{
		{"no home", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none") },
			"qmail-newmrh: fatal: unable to chdir to HOME: file does not exist\n"},
		{"no morercpthosts", func(t *testing.T) string { return progtest.Home(t, map[string]string{"control/": ""}) },
			"qmail-newmrh: fatal: unable to read control/morercpthosts: file does not exist\n"},
		{"morercpthosts a directory", func(t *testing.T) string {
			return progtest.Home(t, map[string]string{"control/morercpthosts/": ""})
		}, "qmail-newmrh: fatal: unable to read control/morercpthosts: is a directory\n"},
		{"tmp a directory", func(t *testing.T) string {
			return progtest.Home(t, map[string]string{"control/morercpthosts": "a\n", "control/morercpthosts.tmp/": ""})
		}, "qmail-newmrh: fatal: unable to write to control/morercpthosts.tmp: is a directory\n"},
		// The move's error text is glued on without ": ", as qmail's is.
		{"cdb a directory", func(t *testing.T) string {
			return progtest.Home(t, map[string]string{"control/morercpthosts": "a\n", "control/morercpthosts.cdb/x/": ""})
		}, "qmail-newmrh: fatal: unable to move control/morercpthosts.tmp to control/morercpthosts.cdbis a directory\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := tc.setup(t)
			cdbPath := filepath.Join(home, "control", "morercpthosts.cdb")
			before, _ := os.ReadFile(cdbPath)
			code, stderr := runIn(home)
			if want := strings.ReplaceAll(tc.want, "HOME", home); code != 111 || stderr != want {
				t.Errorf("exit %d stderr %q, want %q", code, stderr, want)
			}
			if after, _ := os.ReadFile(cdbPath); !bytes.Equal(before, after) {
				t.Error("morercpthosts.cdb changed")
			}
		})
	}
}

// A failed run leaves the old database in place.
func TestOldCDBKept(t *testing.T) {
	home := newHome(t, "old.example\n")
	if code, _ := runIn(home); code != 0 {
		t.Fatal(code)
	}
	os.Remove(filepath.Join(home, "control", "morercpthosts"))
	os.Mkdir(filepath.Join(home, "control", "morercpthosts"), 0o755)
	if code, _ := runIn(home); code != 111 {
		t.Fatal(code)
	}
	if got := records(t, filepath.Join(home, "control", "morercpthosts.cdb")); len(got) != 1 || got[0] != `"old.example"=""` {
		t.Errorf("old cdb: %v", got)
	}
}

// Abuse: a huge file of long lines, NUL bytes and no newline at all.
func TestAbuse(t *testing.T) {
	in := bytes.Repeat([]byte(strings.Repeat("X\x00", 40000)+"\n"), 50)
	in = append(in, bytes.Repeat([]byte{'y'}, 1<<20)...)
	home := newHome(t, string(in))
	if code, stderr := runIn(home); code != 0 {
		t.Fatalf("exit %d %s", code, stderr)
	}
	if got := records(t, filepath.Join(home, "control", "morercpthosts.cdb")); len(got) != 51 {
		t.Errorf("%d records", len(got))
	}
}

// The built program: mode 0644 whatever the caller's umask (umask 033).
func TestBinary(t *testing.T) {
	bin := progtest.Build(t, "qmail-newmrh")
	home := newHome(t, "a.example\n")
	cmd := exec.Command("/bin/sh", "-c", "umask 0; exec "+bin)
	cmd.Env = append(os.Environ(), "QMAILHOME="+home)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	fi, err := os.Stat(filepath.Join(home, "control", "morercpthosts.cdb"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("morercpthosts.cdb: %v %v", fi.Mode(), err)
	}
	cmd = exec.Command(bin)
	cmd.Env = append(os.Environ(), "QMAILHOME="+filepath.Join(home, "none"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if code := progtest.Run(t, cmd); code != 111 || !strings.HasPrefix(stderr.String(), "qmail-newmrh: fatal: unable to chdir to ") {
		t.Errorf("exit %d %q", code, stderr.String())
	}
}
