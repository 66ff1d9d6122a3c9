package control

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestMoreRcptHostsKey(t *testing.T) {
	for _, tc := range []struct {
		line string
		key  string
		ok   bool
	}{
		{"Example.COM \n", "example.com", true},
		{"b.org\r\n", "b.org\r", true},
		{" x.net\t \n", " x.net", true},
		{"last", "last", true},
		{"#c\n", "", false},
		{"\n", "", false},
		{" \t \n", "", false},
		{"", "", false},
		{"a#b\n", "a#b", true},
		{"\xc3\x84\n", "\xc3\x84", true},
	} {
		key, ok := MoreRcptHostsKey([]byte(tc.line))
		if string(key) != tc.key || ok != tc.ok {
			t.Errorf("%q: %q %v", tc.line, key, ok)
		}
	}
}

// qmailNewmrhKey is qmail-newmrh.c's loop body transcribed: case_lowerb on
// the whole line, then the trailing-whitespace loop and the '#' check.
func qmailNewmrhKey(line []byte) ([]byte, bool) {
	l := bytes.Clone(line)
	for i, c := range l {
		if c >= 'A' && c <= 'Z' {
			l[i] = c + 32
		}
	}
	for len(l) > 0 {
		switch l[len(l)-1] {
		case ' ', '\n', '\t':
			l = l[:len(l)-1]
			continue
		}
		if l[0] != '#' {
			return l, true
		}
		break
	}
	return nil, false
}

func FuzzMoreRcptHostsKey(f *testing.F) {
	for _, s := range []string{"Example.COM \n", "b.org\r\n", "#x", " \t\n", "A\x00B\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		key, ok := MoreRcptHostsKey(line)
		want, wok := qmailNewmrhKey(line)
		if ok != wok || !bytes.Equal(key, want) {
			t.Errorf("%q: %q %v, qmail %q %v", line, key, ok, want, wok)
		}
	})
}

func TestCanChdir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o644)
	os.Symlink(dir, filepath.Join(dir, "link"))
	for _, tc := range []struct {
		path string
		err  error
	}{
		{dir, nil},
		{filepath.Join(dir, "link"), nil},
		{filepath.Join(dir, "none"), syscall.ENOENT},
		{file, syscall.ENOTDIR},
		{filepath.Join(file, "x"), syscall.ENOTDIR},
	} {
		err := CanChdir(tc.path)
		if (tc.err == nil) != (err == nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
			t.Errorf("%s: %v, want %v", tc.path, err, tc.err)
		}
	}
}
