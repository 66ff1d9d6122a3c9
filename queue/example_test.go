package queue_test

import (
	"context"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/qmailkit/qmailkit/queue"
)

// Inject a message: when Inject returns, message and envelope are durable.
func ExampleQueue_Inject() {
	home, err := os.MkdirTemp("", "qmailhome")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(home)
	q, err := queue.Open(filepath.Join(home, "queue"), queue.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()
	msg := "From: joe@example.com\nTo: bob@example.org\nSubject: hi\n\nhello\n"
	_, err = q.Inject(context.Background(), queue.Envelope{
		Sender:     "joe@example.com",
		Recipients: []string{"bob@example.org"},
	}, strings.NewReader(msg))
	if err != nil {
		log.Fatal(err)
	}
	st, err := q.Stat()
	if err != nil {
		log.Fatal(err)
	}
	queue.WriteQstat(os.Stdout, st)
	// Output:
	// messages in queue: 1
	// messages in queue but not yet preprocessed: 1
}
