// Command qmail-queue queues a mail message, a drop-in for qmail's
// qmail-queue: the message is read from descriptor 0 to end of file, then
// the envelope (F sender \0, T recipient \0 ..., \0) from descriptor 1.
// Nothing is printed; the exit code is the result (0 queued, 11 address too
// long, 53 write error, 54 read error, 61 home, 62-66 queue directories, 91
// envelope format; see queue.ExitText).
//
// The queue is $QMAILHOME/queue (default /var/qmail/queue), or -home DIR;
// as with qmail-queue, nothing missing is created (qmail-send, or
// queue.Open in a program, creates the layout).
// The Received line says "invoked by alias", "from network" or "for bounce"
// when the real uid is that of the qmail user alias, qmaild or qmails.
// Unlike qmail-queue, a message whose envelope is refused (exit 11 or 91)
// is removed at once rather than left to qmail-clean's 36-hour rule.
package main

import (
	"context"
	"flag"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/qmailkit/qmailkit/internal/control"
	"github.com/qmailkit/qmailkit/internal/qmailqueue"
	"github.com/qmailkit/qmailkit/queue"
)

func main() {
	// qmail-queue's 24-hour "DEATH" alarm: exit 52 without cleanup.
	time.AfterFunc(86400*time.Second, func() { os.Exit(52) })
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdin, os.NewFile(1, "envelope"), os.Getpid(), os.Getuid(), time.Now()))
}

// run is qmail-queue with its descriptors, identity and clock as arguments.
func run(args []string, getenv func(string) string, message, envelope io.Reader, pid, uid int, now time.Time) int {
	fs := flag.NewFlagSet("qmail-queue", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	home := fs.String("home", "", "qmail home directory (default $QMAILHOME, else /var/qmail)")
	if err := fs.Parse(args); err != nil {
		return 81
	}
	*home = control.Home(*home, getenv)
	if fi, err := os.Stat(*home); err != nil || !fi.IsDir() {
		return 61
	}
	q, err := queue.Open(filepath.Join(*home, "queue"), queue.Options{
		NoClean:  true,
		NoCreate: true,
		Origin:   queue.Origin{PID: pid, UID: uid, Who: who(uid)},
		Now:      func() time.Time { return now },
	})
	if err != nil {
		return 62
	}
	return qmailqueue.Run(context.Background(), q, queue.Origin{}, message, envelope)
}

// who names the injector as qmail-queue does from its real uid.
func who(uid int) string {
	for _, u := range []struct{ name, who string }{
		{"alias", "by alias"}, {"qmaild", "from network"}, {"qmails", "for bounce"},
	} {
		if pw, err := user.Lookup(u.name); err == nil && pw.Uid == strconv.Itoa(uid) {
			return u.who
		}
	}
	return ""
}
