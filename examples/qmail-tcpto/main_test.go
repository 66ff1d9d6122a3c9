package main

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/progtest"
)

func record(ip [4]byte, count byte, when uint32) []byte {
	return []byte{ip[0], ip[1], ip[2], ip[3], count, 0, 0, 0, byte(when), byte(when >> 8), byte(when >> 16), byte(when >> 24), 0, 0, 0, 0}
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func runAt(home string, now int64) (int, string) {
	var out bytes.Buffer
	code := run(progtest.Env(home), func() time.Time { return time.Unix(now, 0) }, &out)
	return code, out.String()
}

func TestTCPTO(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content []byte
		now     int64
		want    string
	}{
		// One record: the address, the age of its last timeout, the count.
		{"Q1", record([4]byte{192, 0, 2, 7}, 2, 100), 1000, "192.0.2.7 timed out 900 seconds ago; # recent timeouts: 2\n"},
		{"empty file", []byte{}, 1000, ""},
		{"all free", make([]byte, 1024), 1000, ""},
		{"file order, free skipped", cat(record([4]byte{10, 0, 0, 2}, 1, 1700000000), record([4]byte{10, 0, 0, 3}, 0, 5),
			record([4]byte{10, 0, 0, 1}, 10, 1699999000)), 1700000060,
			"10.0.0.2 timed out 60 seconds ago; # recent timeouts: 1\n10.0.0.1 timed out 1060 seconds ago; # recent timeouts: 10\n"},
		{"future stamp", record([4]byte{192, 0, 2, 1}, 1, 2000), 1000, "192.0.2.1 timed out 18446744073709550616 seconds ago; # recent timeouts: 1\n"},
		{"count 127 shown, 128 and 255 not (signed char)", cat(record([4]byte{1, 1, 1, 1}, 127, 0), record([4]byte{2, 2, 2, 2}, 128, 0),
			record([4]byte{3, 3, 3, 3}, 255, 0)), 5, "1.1.1.1 timed out 5 seconds ago; # recent timeouts: 127\n"},
		{"partial record ignored", cat(record([4]byte{1, 2, 3, 4}, 1, 0), []byte{5, 6, 7, 8, 1}), 1, "1.2.3.4 timed out 1 seconds ago; # recent timeouts: 1\n"},
		{"only the first 1024 bytes", cat(make([]byte, 1024), record([4]byte{1, 2, 3, 4}, 1, 0)), 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runAt(progtest.Home(t, map[string]string{"queue/lock/tcpto": string(tc.content)}), tc.now)
			if code != 0 || out != tc.want {
				t.Errorf("exit %d, output %q; want %q", code, out, tc.want)
			}
		})
	}
}

// Errors go to standard output, without the program's name.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		home func(t *testing.T) string
		want string
	}{
		{"no home", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none") }, "fatal: unable to chdir: file does not exist\n"},
		{"no queue/lock", func(t *testing.T) string { return t.TempDir() }, "fatal: unable to chdir: file does not exist\n"},
		{"queue/lock a file", func(t *testing.T) string { return progtest.Home(t, map[string]string{"queue/lock": ""}) },
			"fatal: unable to chdir: not a directory\n"},
		{"no tcpto", func(t *testing.T) string { return progtest.Home(t, map[string]string{"queue/lock/": ""}) },
			"fatal: unable to open tcpto: file does not exist\n"},
		{"tcpto a directory", func(t *testing.T) string { return progtest.Home(t, map[string]string{"queue/lock/tcpto/": ""}) },
			"fatal: unable to open tcpto: is a directory\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runAt(tc.home(t), 1)
			if code != 111 || out != tc.want {
				t.Errorf("exit %d, output %q; want %q", code, out, tc.want)
			}
		})
	}
}

// A huge file is read only up to its first 1024 bytes.
func TestAbuse(t *testing.T) {
	big := make([]byte, 10<<20)
	copy(big, record([4]byte{9, 9, 9, 9}, 3, 0))
	home := progtest.Home(t, map[string]string{"queue/lock/tcpto": string(big)})
	if code, out := runAt(home, 7); code != 0 || out != "9.9.9.9 timed out 7 seconds ago; # recent timeouts: 3\n" {
		t.Errorf("big file: %d %q", code, out)
	}
}
