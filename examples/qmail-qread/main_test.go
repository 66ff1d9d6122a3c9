package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/queue"
)

func TestRun(t *testing.T) {
	home := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-home", home}, os.Getenv, &stdout, &stderr); code != 111 || !strings.HasPrefix(stderr.String(), "qmail-qread: fatal: ") {
		t.Fatalf("no queue: exit %d, %q", code, stderr.String())
	}
	q, err := queue.Open(filepath.Join(home, "queue"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// A preprocessed message, written as qmail-send leaves it.
	p := func(kind string) string { return filepath.Join(home, "queue", queue.Path(kind, 457, q.Split())) }
	os.WriteFile(p("mess"), bytes.Repeat([]byte("x"), 1234), 0o644)
	os.WriteFile(p("info"), []byte("Fjoe@a.example\x00"), 0o600)
	os.WriteFile(p("local"), []byte("Tbob@example.com\x00"), 0o600)
	os.WriteFile(p("remote"), []byte("Dcarol@c.example\x00"), 0o600)
	os.WriteFile(p("bounce"), []byte("<x@y>:\nno\n\n"), 0o600)
	b := time.Unix(838640135, 0)
	os.Chtimes(p("info"), b, b)
	stdout.Reset()
	stderr.Reset()
	getenv := func(k string) string {
		if k == "QMAILHOME" {
			return home
		}
		return ""
	}
	if code := run(nil, getenv, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	want := "29 Jul 1996 11:35:35 GMT  #457  1234  <joe@a.example>  bouncing\n\tlocal\tbob@example.com\n  done\tremote\tcarol@c.example\n"
	if stdout.String() != want {
		t.Errorf("got %q\nwant %q", stdout.String(), want)
	}
}
