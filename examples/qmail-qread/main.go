// Command qmail-qread lists the messages in the queue, a drop-in for qmail's
// qmail-qread: for each preprocessed message its date, number, size, sender
// and (when it has failures to report) "bouncing", then one line per
// recipient, "\tlocal\t..." or "\tremote\t...", prefixed by "  done" once
// finished. The queue is $QMAILHOME/queue (default /var/qmail/queue), or
// -home DIR. Exit 0; 111 when the queue cannot be read.
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
	fs := flag.NewFlagSet("qmail-qread", flag.ContinueOnError)
	fs.SetOutput(stderr)
	home := fs.String("home", "", "qmail home directory (default $QMAILHOME, else /var/qmail)")
	if err := fs.Parse(args); err != nil {
		return 100
	}
	*home = control.Home(*home, getenv)
	q, err := queue.Open(filepath.Join(*home, "queue"), queue.Options{ReadOnly: true})
	if err != nil {
		fmt.Fprintf(stderr, "qmail-qread: fatal: unable to open queue: %v\n", err)
		return 111
	}
	if err := queue.WriteQread(stdout, q); err != nil {
		fmt.Fprintf(stderr, "qmail-qread: fatal: %v\n", err)
		return 111
	}
	return 0
}
