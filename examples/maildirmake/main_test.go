package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/qmailkit/qmailkit/maildir"
)

func TestRun(t *testing.T) {
	tmp := t.TempDir()
	d := filepath.Join(tmp, "d")
	file := filepath.Join(tmp, "file")
	os.WriteFile(file, nil, 0o600)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"makes d", []string{d}, 0, ""},
		{"vector 13: twice", []string{d}, 111, "maildirmake: fatal: unable to mkdir " + d + ": file already exists\n"},
		{"vector 13: no operand", nil, 100, "maildirmake: usage: maildirmake name\n"},
		{"missing parent", []string{filepath.Join(tmp, "no", "d")}, 111,
			"maildirmake: fatal: unable to mkdir " + filepath.Join(tmp, "no", "d") + ": file does not exist\n"},
		{"parent is a file", []string{filepath.Join(file, "d")}, 111,
			"maildirmake: fatal: unable to mkdir " + filepath.Join(file, "d") + ": not a directory\n"},
		{"extra operands ignored", []string{filepath.Join(tmp, "e"), "junk"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(tt.args, &stderr)
			if code != tt.code || stderr.String() != tt.stderr {
				t.Errorf("run(%q) = %d, %q; want %d, %q", tt.args, code, stderr.String(), tt.code, tt.stderr)
			}
		})
	}
	// What it made is a Maildir, every directory 0700.
	if _, err := maildir.Open(d); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", "tmp", "new", "cur"} {
		fi, err := os.Stat(filepath.Join(d, p))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s/%s: %v, %v", d, p, fi.Mode(), err)
		}
	}
}

// The built program: exit codes, stderr, and mode 0700 directories even
// under umask 0.
func TestProgram(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program")
	}
	bin := filepath.Join(t.TempDir(), "maildirmake")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	d := filepath.Join(t.TempDir(), "Maildir")
	for _, tt := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{d}, 0, ""},
		{[]string{d}, 111, "maildirmake: fatal: unable to mkdir " + d + ": file already exists\n"},
		{nil, 100, "maildirmake: usage: maildirmake name\n"},
	} {
		cmd := exec.Command(bin, tt.args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.code || stderr.String() != tt.stderr || stdout.Len() != 0 {
			t.Errorf("maildirmake %q: exit %d, stderr %q, stdout %q; want %d, %q", tt.args, code, stderr.String(), stdout.String(), tt.code, tt.stderr)
		}
	}
	d2 := filepath.Join(t.TempDir(), "Maildir")
	cmd := exec.Command("sh", "-c", `umask 0 && exec "$0" "$1"`, bin, d2)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, p := range []string{"", "tmp", "new", "cur"} {
		fi, err := os.Stat(filepath.Join(d2, p))
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("umask 0: %s/%s: %v, %v", d2, p, fi.Mode(), err)
		}
	}
	if _, err := maildir.Open(d2); err != nil {
		t.Error(err)
	}
}
