package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/queue"
)

func TestRun(t *testing.T) {
	home := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-home", home}, os.Getenv, &stdout, &stderr); code != 111 {
		t.Fatalf("no queue: exit %d", code)
	}
	q, err := queue.Open(filepath.Join(home, "queue"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := q.Inject(t.Context(), queue.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}, strings.NewReader("x\n")); err != nil {
			t.Fatal(err)
		}
	}
	// A preprocessed one: mess and info only.
	os.WriteFile(filepath.Join(home, "queue", queue.Path("mess", 457, q.Split())), []byte("x"), 0o644)
	stdout.Reset()
	if code := run([]string{"-home", home}, os.Getenv, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if want := "messages in queue: 3\nmessages in queue but not yet preprocessed: 2\n"; stdout.String() != want {
		t.Errorf("got %q", stdout.String())
	}
}
