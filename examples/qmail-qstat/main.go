// Command qmail-qstat summarises the queue, a drop-in for qmail's
// qmail-qstat: "messages in queue: N" (files under mess/) and "messages in
// queue but not yet preprocessed: M" (files in todo/). The queue is
// $QMAILHOME/queue (default /var/qmail/queue), or -home DIR. Exit 0; 111 when
// the queue cannot be read. While a qmailkit scheduler (examples/mta,
// examples/qmail-send) runs, the first count includes its slots, files it
// keeps ready for the next messages: up to 256, for 2 s after mail last
// flowed (see the queue package's documentation).
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/queue"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("qmail-qstat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	home := fs.String("home", "", "qmail home directory (default $QMAILHOME, else /var/qmail)")
	if err := fs.Parse(args); err != nil {
		return 100
	}
	*home = control.Home(*home, getenv)
	q, err := queue.Open(filepath.Join(*home, "queue"), queue.Options{ReadOnly: true})
	if err != nil {
		fmt.Fprintf(stderr, "qmail-qstat: fatal: unable to open queue: %v\n", err)
		return 111
	}
	st, err := q.Stat()
	if err != nil {
		fmt.Fprintf(stderr, "qmail-qstat: fatal: %v\n", err)
		return 111
	}
	if err := queue.WriteQstat(stdout, st); err != nil {
		return 111
	}
	return 0
}
