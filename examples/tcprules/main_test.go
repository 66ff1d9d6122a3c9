package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/internal/golden"
)

func TestGolden(t *testing.T) {
	dir := golden.Dir(t, "tcprules")
	for _, name := range []string{"basic", "prefix", "ranges", "hosts", "info", "env", "order", "qmail", "ipv6"} {
		t.Run(name, func(t *testing.T) {
			rules, err := os.ReadFile(filepath.Join(dir, name+".rules"))
			if err != nil {
				t.Fatal(err)
			}
			tmp := t.TempDir()
			out := filepath.Join(tmp, "r.cdb")
			var stderr bytes.Buffer
			if code := run([]string{"tcprules", out, out + ".tmp"}, bytes.NewReader(rules), &stderr); code != 0 || stderr.Len() != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr.String())
			}
			got, _ := os.ReadFile(out)
			want, _ := os.ReadFile(filepath.Join(dir, name+".cdb"))
			if !bytes.Equal(got, want) {
				t.Errorf("cdb differs from %s.cdb", name)
			}
		})
	}
	for _, name := range []string{"crlf", "quote", "space", "range"} {
		t.Run(name+".bad", func(t *testing.T) {
			rules, _ := os.ReadFile(filepath.Join(dir, name+".bad.rules"))
			want, _ := os.ReadFile(filepath.Join(dir, name+".bad.err"))
			tmp := t.TempDir()
			out := filepath.Join(tmp, "r.cdb")
			var stderr bytes.Buffer
			if code := run([]string{"tcprules", out, out + ".tmp"}, bytes.NewReader(rules), &stderr); code != 100 {
				t.Errorf("exit %d, want 100", code)
			}
			if stderr.String() != string(want) {
				t.Errorf("stderr %q, want %q", stderr.String(), want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("cdb created: %v", err)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stderr string
	}{
		{"no args", []string{"tcprules"}, "", 100, "tcprules: usage: tcprules rules.cdb rules.tmp\n"},
		{"one arg", []string{"tcprules", "x.cdb"}, "", 100, "tcprules: usage: tcprules rules.cdb rules.tmp\n"},
		{"tmp dir missing", []string{"tcprules", filepath.Join(dir, "r.cdb"), filepath.Join(dir, "nodir", "r.tmp")}, ":allow\n", 111,
			"tcprules: fatal: unable to create " + filepath.Join(dir, "nodir", "r.tmp") + ": file does not exist\n"},
		{"rename into a missing dir", []string{"tcprules", filepath.Join(dir, "nodir", "r.cdb"), filepath.Join(dir, "r.tmp")}, ":allow\n", 111,
			"tcprules: fatal: unable to move " + filepath.Join(dir, "r.tmp") + " to " + filepath.Join(dir, "nodir", "r.cdb") + ": file does not exist\n"},
		{"bad line", []string{"tcprules", filepath.Join(dir, "r.cdb"), filepath.Join(dir, "r.tmp")}, "1.2.3.4:allow\n1.2.3.4:allow,X\n", 100,
			"tcprules: fatal: unable to parse this line: 1.2.3.4:allow,X\n"},
		{"NUL cuts the message", []string{"tcprules", filepath.Join(dir, "r.cdb"), filepath.Join(dir, "r.tmp")}, "1.2\x00.3:allw\n", 100,
			"tcprules: fatal: unable to parse this line: 1.2\n"},
		{"empty input", []string{"tcprules", filepath.Join(dir, "e.cdb"), filepath.Join(dir, "e.tmp")}, "", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(tt.args, strings.NewReader(tt.stdin), &stderr)
			if code != tt.code || stderr.String() != tt.stderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, stderr.String(), tt.code, tt.stderr)
			}
		})
	}
	if fi, err := os.Stat(filepath.Join(dir, "e.cdb")); err != nil || fi.Size() != 2048 {
		t.Errorf("empty input: %v, want a 2048-byte cdb", err)
	}
}

func TestReadError(t *testing.T) {
	dir := t.TempDir()
	var stderr bytes.Buffer
	// A directory as stdin: read fails with EISDIR.
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	code := run([]string{"tcprules", filepath.Join(dir, "r.cdb"), filepath.Join(dir, "r.tmp")}, d, &stderr)
	if code != 111 || stderr.String() != "tcprules: fatal: unable to read input: is a directory\n" {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
