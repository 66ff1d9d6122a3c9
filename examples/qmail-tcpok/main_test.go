package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/internal/progtest"
)

func runIn(home string) (int, string) {
	var stderr bytes.Buffer
	code := run(progtest.Env(home), &stderr)
	return code, stderr.String()
}

func TestClear(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content []byte
		want    []byte
	}{
		{"records", bytes.Repeat([]byte{0xff}, 1024), make([]byte, 1024)},
		{"short file grows", []byte{1, 2, 3}, make([]byte, 1024)},
		{"long file keeps its tail", append(bytes.Repeat([]byte{7}, 1024), "tail"...), append(make([]byte, 1024), "tail"...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := progtest.Home(t, map[string]string{"queue/lock/tcpto": string(tc.content)})
			code, stderr := runIn(home)
			got, _ := os.ReadFile(filepath.Join(home, "queue", "lock", "tcpto"))
			if code != 0 || stderr != "" || !bytes.Equal(got, tc.want) {
				t.Errorf("exit %d stderr %q, %d bytes", code, stderr, len(got))
			}
		})
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) string
		want  string
	}{
		{"no home", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none") },
			"qmail-tcpok: fatal: unable to chdir to HOME: file does not exist\n"},
		{"no queue/lock", func(t *testing.T) string { return t.TempDir() },
			"qmail-tcpok: fatal: unable to chdir to HOME/queue/lock: file does not exist\n"},
		{"no tcpto (never created)", func(t *testing.T) string { return progtest.Home(t, map[string]string{"queue/lock/": ""}) },
			"qmail-tcpok: fatal: unable to write HOME/queue/lock/tcpto: file does not exist\n"},
		{"tcpto a directory", func(t *testing.T) string { return progtest.Home(t, map[string]string{"queue/lock/tcpto/": ""}) },
			"qmail-tcpok: fatal: unable to write HOME/queue/lock/tcpto: is a directory\n"},
		{"tcpto /dev/full", func(t *testing.T) string {
			if _, err := os.Stat("/dev/full"); err != nil {
				t.Skip("no /dev/full")
			}
			h := progtest.Home(t, map[string]string{"queue/lock/": ""})
			os.Symlink("/dev/full", filepath.Join(h, "queue", "lock", "tcpto"))
			return h
		}, "qmail-tcpok: fatal: unable to clear HOME/queue/lock/tcpto: out of disk space\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := tc.setup(t)
			code, stderr := runIn(home)
			if want := strings.ReplaceAll(tc.want, "HOME", home); code != 111 || stderr != want {
				t.Errorf("exit %d stderr %q, want %q", code, stderr, want)
			}
		})
	}
}
