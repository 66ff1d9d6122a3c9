package qmailqueue_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/qmailkit/qmailkit/internal/qmailqueue"
	"github.com/qmailkit/qmailkit/queue"
)

// qmail-queue's descriptors 0 and 1, here two readers.
func ExampleRun() {
	dir, _ := os.MkdirTemp("", "qmailqueue-example-")
	defer os.RemoveAll(dir)
	q, err := queue.Open(filepath.Join(dir, "queue"), queue.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()
	code := qmailqueue.Run(context.Background(), q, queue.Origin{},
		strings.NewReader("Subject: hi\n\nhello\n"),
		strings.NewReader("Fjoe@example.org\x00Tbob@example.net\x00\x00"))
	fmt.Println("exit", code)
	// Output: exit 0
}
