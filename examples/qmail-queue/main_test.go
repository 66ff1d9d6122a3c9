package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/queue"
)

func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.Contains(p, "/lock/") {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func TestRun(t *testing.T) {
	now := time.Unix(838640135, 0)
	for _, tc := range []struct {
		name     string
		envelope string
		code     int
		left     int // files left in the queue
	}{
		{"queued", "Fa@b\x00Tc@d\x00\x00", 0, 3},
		{"no recipients", "F\x00\x00", 0, 3},
		// A refused envelope removes the message (internal/qmailqueue;
		// qmail-queue leaves it to qmail-clean).
		{"format", "Xa@b\x00\x00", 91, 0},
		{"bad record", "Fa@b\x00Zc@d\x00\x00", 91, 0},
		{"eof", "Fa@b\x00Tc@d\x00", 54, 0},
		{"too long", "F" + strings.Repeat("x", 1003) + "\x00\x00", 11, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			if _, err := queue.Open(filepath.Join(home, "queue"), queue.Options{}); err != nil {
				t.Fatal(err)
			}
			getenv := func(k string) string {
				if k == "QMAILHOME" {
					return home
				}
				return ""
			}
			code := run(nil, getenv, strings.NewReader("Subject: x\n\nhi\n"), strings.NewReader(tc.envelope), 4242, 1000, now)
			if code != tc.code {
				t.Fatalf("exit %d, want %d", code, tc.code)
			}
			left := files(t, filepath.Join(home, "queue"))
			if len(left) != tc.left {
				t.Errorf("left %v, want %d files", left, tc.left)
			}
			if tc.code != 0 {
				return
			}
			for _, f := range left {
				b, _ := os.ReadFile(filepath.Join(home, "queue", f))
				if strings.HasPrefix(f, "mess/") && string(b) != "Received: (qmail 4242 invoked by uid 1000); 29 Jul 1996 11:35:35 -0000\nSubject: x\n\nhi\n" {
					t.Errorf("%s = %q", f, b)
				}
				if strings.HasPrefix(f, "todo/") && !strings.HasPrefix(string(b), "u1000\x00p4242\x00F") {
					t.Errorf("%s = %q", f, b)
				}
			}
		})
	}
	if code := run(nil, func(string) string { return "" }, strings.NewReader(""), strings.NewReader(""), 1, 1, now); code != 61 && os.Getuid() != 0 {
		// /var/qmail is absent on a test machine
		if _, err := os.Stat("/var/qmail"); errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing home: exit %d, want 61", code)
		}
	}
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, "queue"), nil, 0o644)
	if code := run([]string{"-home", home}, func(string) string { return "" }, strings.NewReader(""), strings.NewReader(""), 1, 1, now); code != 62 {
		t.Errorf("queue not a directory: exit %d, want 62", code)
	}
	// Nothing is created: a missing directory gives qmail-queue's code.
	for _, tc := range []struct {
		remove string
		code   int
	}{{"", 62}, {"pid", 63}, {"mess", 64}, {"intd", 65}, {"todo", 66}} {
		home := t.TempDir()
		if tc.remove != "" {
			if _, err := queue.Open(filepath.Join(home, "queue"), queue.Options{}); err != nil {
				t.Fatal(err)
			}
			os.RemoveAll(filepath.Join(home, "queue", tc.remove))
		}
		code := run([]string{"-home", home}, func(string) string { return "" }, strings.NewReader("x\n"), strings.NewReader("Fa@b\x00\x00"), 1, 1, now)
		if code != tc.code {
			t.Errorf("without %q: exit %d, want %d", tc.remove, code, tc.code)
		}
		if tc.remove == "" {
			if _, err := os.Stat(filepath.Join(home, "queue")); err == nil {
				t.Error("queue created")
			}
		}
	}
}

// The binary reads the envelope from descriptor 1, as qmail's clients pass it.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "qmail-queue")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	home := t.TempDir()
	if _, err := queue.Open(filepath.Join(home, "queue"), queue.Options{}); err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "QMAILHOME="+home)
	cmd.Stdin = strings.NewReader("Subject: binary\n\nhello\n")
	cmd.Stdout = pr
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	pw.WriteString("Fjoe@a.example\x00Tbob@b.example\x00\x00")
	pw.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr %q", stderr.String())
	}
	q, err := queue.Open(filepath.Join(home, "queue"), queue.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err := q.Stat()
	if err != nil || st != (queue.Stats{Messages: 1, Unprocessed: 1}) {
		t.Errorf("stat %+v %v", st, err)
	}
}
