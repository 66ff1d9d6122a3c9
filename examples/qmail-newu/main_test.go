package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/internal/golden"
)

// newHome makes a qmail home with users/assign holding content.
func newHome(t *testing.T, content []byte) string {
	t.Helper()
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, "users"), 0o755); err != nil {
		t.Fatal(err)
	}
	if content != nil {
		if err := os.WriteFile(filepath.Join(home, "users", "assign"), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return home
}

func runIn(home string, args ...string) (int, string) {
	var stderr bytes.Buffer
	code := run(args, func(k string) string {
		if k == "QMAILHOME" {
			return home
		}
		return ""
	}, &stderr)
	return code, stderr.String()
}

func TestGolden(t *testing.T) {
	g := golden.Dir(t, "assign")
	for _, name := range []string{"basic", "wildcard", "duplicates", "extensions", "odd", "many"} {
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(g, name+".assign"))
			if err != nil {
				t.Fatal(err)
			}
			home := newHome(t, src)
			code, stderr := runIn(home)
			if code != 0 || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			got, _ := os.ReadFile(filepath.Join(home, "users", "cdb"))
			want, _ := os.ReadFile(filepath.Join(g, name+".cdb"))
			if !bytes.Equal(got, want) {
				t.Errorf("users/cdb differs from qmail-newu's")
			}
		})
	}
	for _, name := range []string{"reject-nodot", "reject-comment", "reject-fields"} {
		t.Run(name, func(t *testing.T) {
			src, _ := os.ReadFile(filepath.Join(g, name+".assign"))
			wantErr, _ := os.ReadFile(filepath.Join(g, name+".stderr"))
			wantExit, _ := os.ReadFile(filepath.Join(g, name+".exit"))
			home := newHome(t, src)
			old := []byte("old cdb")
			os.WriteFile(filepath.Join(home, "users", "cdb"), old, 0o644)
			code, stderr := runIn(home)
			if stderr != string(wantErr) || strings.TrimSpace(string(wantExit)) != "111" || code != 111 {
				t.Errorf("exit %d stderr %q, want %s %q", code, stderr, wantExit, wantErr)
			}
			if got, _ := os.ReadFile(filepath.Join(home, "users", "cdb")); !bytes.Equal(got, old) {
				t.Errorf("users/cdb changed")
			}
		})
	}
}

func TestFatalMessages(t *testing.T) {
	ok := []byte("=a:u:1:2:/h:::\n.\n")
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) string
		args  []string
		want  string
	}{
		{"no home", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none") }, nil,
			"qmail-newu: fatal: unable to chdir\n"},
		{"home is a file", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "f")
			os.WriteFile(p, nil, 0o644)
			return p
		}, nil, "qmail-newu: fatal: unable to chdir\n"},
		{"no assign", func(t *testing.T) string { return newHome(t, nil) }, nil,
			"qmail-newu: fatal: unable to open users/assign\n"},
		{"cdb.tmp is a directory", func(t *testing.T) string {
			h := newHome(t, ok)
			os.Mkdir(filepath.Join(h, "users", "cdb.tmp"), 0o755)
			return h
		}, nil, "qmail-newu: fatal: unable to open users/cdb.tmp\n"},
		{"assign is a directory", func(t *testing.T) string {
			h := newHome(t, nil)
			os.Mkdir(filepath.Join(h, "users", "assign"), 0o755)
			return h
		}, nil, "qmail-newu: fatal: unable to read users/assign\n"},
		{"cdb is a non-empty directory", func(t *testing.T) string {
			h := newHome(t, ok)
			os.MkdirAll(filepath.Join(h, "users", "cdb", "x"), 0o755)
			return h
		}, nil, "qmail-newu: fatal: unable to move users/cdb.tmp to users/cdb\n"},
		{"-v names the line", func(t *testing.T) string { return newHome(t, []byte("=a:u:1:2:/h:::\n=b:u:1\n.\n")) }, []string{"-v"},
			"qmail-newu: fatal: bad format in users/assign\nassign: " + "USERS/assign:2: field uid: missing the ':' that ends it (1 of the 6 field colons after the local part)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := tc.setup(t)
			code, stderr := runIn(home, tc.args...)
			want := strings.ReplaceAll(tc.want, "USERS", filepath.Join(home, "users"))
			if code != 111 || stderr != want {
				t.Errorf("exit %d stderr %q, want 111 %q", code, stderr, want)
			}
		})
	}
}

// The -home flag wins over $QMAILHOME.
func TestHomeFlag(t *testing.T) {
	home := newHome(t, []byte(".\n"))
	code, stderr := runIn(filepath.Join(t.TempDir(), "wrong"), "-home", home)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(home, "users", "cdb")); err != nil {
		t.Error(err)
	}
	if code, _ := runIn(home, "-nosuchflag"); code != 100 {
		t.Errorf("bad flag: exit %d", code)
	}
}

// The built program: $QMAILHOME, exit codes, and mode 0644 whatever the
// umask, as qmail-newu's umask(033) gives.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program")
	}
	bin := filepath.Join(t.TempDir(), "qmail-newu")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	home := newHome(t, []byte("=a:u:1:2:/h:::\n.\n"))
	cmd := exec.Command("/bin/sh", "-c", "umask 077; exec "+bin)
	cmd.Env = append(os.Environ(), "QMAILHOME="+home)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	fi, err := os.Stat(filepath.Join(home, "users", "cdb"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("users/cdb: %v %v", fi.Mode(), err)
	}
	os.WriteFile(filepath.Join(home, "users", "assign"), []byte("bad\n.\n"), 0o644)
	cmd = exec.Command(bin)
	cmd.Env = append(os.Environ(), "QMAILHOME="+home)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 111 || stderr.String() != "qmail-newu: fatal: bad format in users/assign\n" {
		t.Errorf("bad format: %v %q", err, stderr.String())
	}
}
