package queue_test

import (
	"context"
	"fmt"
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

// A Scheduler delivering through the application's own deliverers: here a
// local one that prints, and a remote one that refuses everything.
func ExampleScheduler() {
	home, err := os.MkdirTemp("", "qmailhome")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(home)
	q, err := queue.Open(filepath.Join(home, "queue"), queue.Options{})
	if err != nil {
		log.Fatal(err)
	}
	delivered := make(chan string, 1)
	s := &queue.Scheduler{
		Queue:   q,
		Routing: queue.Routing{Locals: []string{"example.com"}, EnvNoAtHost: "example.com"},
		Local: queue.LocalFunc(func(ctx context.Context, d queue.Delivery) queue.Result {
			delivered <- d.Recipients[0]
			return queue.Result{Report: "did 1+0+0\n"}
		}),
		Remote: queue.RemoteFunc(func(ctx context.Context, d queue.Delivery) []queue.Result {
			res := make([]queue.Result, len(d.Recipients))
			for i := range res {
				res[i] = queue.Result{Report: "Sorry, no remote delivery here. (#5.7.1)\n",
					Err: &queue.PermanentError{Text: "no remote delivery"}}
			}
			return res
		}),
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()

	_, err = q.Inject(ctx, queue.Envelope{Sender: "joe@example.com", Recipients: []string{"bob"}},
		strings.NewReader("Subject: hi\n\nhello\n"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("delivered to", <-delivered)
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	// Output:
	// delivered to bob@example.com
}

// Queue administration without a running Scheduler: hold a message, list
// the queue, then delete the message without a bounce. While a Scheduler
// runs, its methods of the same names do the same.
func ExampleQueue_Hold() {
	home, err := os.MkdirTemp("", "qmailhome")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(home)
	q, err := queue.Open(filepath.Join(home, "queue"), queue.Options{})
	if err != nil {
		log.Fatal(err)
	}
	id, err := q.Inject(context.Background(), queue.Envelope{Sender: "joe@example.com", Recipients: []string{"bob@example.net"}},
		strings.NewReader("Subject: hi\n\nhello\n"))
	if err != nil {
		log.Fatal(err)
	}
	if errs, err := q.Hold([]queue.ID{id}); err != nil || errs[0] != nil {
		log.Fatal(err, errs)
	}
	entries, err := q.List(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		fmt.Println(e.Sender, e.Recipients[0].Addr, "held:", e.Held, "queued:", e.Queued)
	}
	if errs, err := q.Delete([]queue.ID{id}); err != nil || errs[0] != nil {
		log.Fatal(err, errs)
	}
	entries, _ = q.List(context.Background())
	fmt.Println(len(entries), "messages left")
	// Output:
	// joe@example.com bob@example.net held: true queued: true
	// 0 messages left
}
