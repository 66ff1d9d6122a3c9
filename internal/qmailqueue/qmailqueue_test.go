package qmailqueue

import (
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/queue"
)

// files counts the files under the queue's message and envelope
// directories.
func files(t *testing.T, q *queue.Queue) int {
	t.Helper()
	n := 0
	for _, d := range []string{"mess", "intd", "todo"} {
		filepath.WalkDir(filepath.Join(q.Dir(), d), func(_ string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				n++
			}
			return nil
		})
	}
	return n
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("gone") }

func TestRun(t *testing.T) {
	for _, tt := range []struct {
		name     string
		msg      io.Reader
		envelope string
		code     int
		files    int // mess, intd, todo
	}{
		{"queued", strings.NewReader("Subject: x\n\nhi\n"), "Fa@b\x00Tc@d\x00\x00", 0, 3},
		{"message read error", io.MultiReader(strings.NewReader("part"), errReader{}), "Fa@b\x00\x00", 54, 0},
		{"envelope cut", strings.NewReader("x\n"), "Fa@b\x00Tc@", 54, 0},
		{"envelope format", strings.NewReader("x\n"), "Xa@b\x00\x00", 91, 0},
		{"address too long", strings.NewReader("x\n"), "F" + strings.Repeat("a", 1003) + "\x00\x00", 11, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q, err := queue.Open(filepath.Join(t.TempDir(), "queue"), queue.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			if code := Run(t.Context(), q, queue.Origin{PID: 1, UID: 2}, tt.msg, strings.NewReader(tt.envelope)); code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			if n := files(t, q); n != tt.files {
				t.Errorf("%d files in the queue, want %d", n, tt.files)
			}
		})
	}
}

// A closed queue: exit 62, as qmail-queue when it cannot make the message.
func TestRunClosed(t *testing.T) {
	q, err := queue.Open(filepath.Join(t.TempDir(), "queue"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	if code := Run(t.Context(), q, queue.Origin{}, strings.NewReader("x\n"), strings.NewReader("F\x00\x00")); code != 62 {
		t.Errorf("exit %d, want 62", code)
	}
}
