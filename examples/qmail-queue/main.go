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
//
// # Users who may not write the queue
//
// qmail's qmail-queue is setuid qmailq, the owner of the queue, so that a
// user's forward (a delivery running under the user's uid), sendmail and
// qmail-inject can queue. This one is not setuid: when the queue belongs
// to another uid and the process that owns it (examples/qmail-send run as
// root, examples/mta) serves $QMAILHOME/run/qmail-queue.sock, the
// message and envelope descriptors are handed to that process over the
// socket, which queues them and answers with the exit code. The Received
// line then says "invoked by uid N" with the caller's uid, from the
// kernel's word (SO_PEERCRED), as qmail-queue says it from its real uid.
// No one needs write access to the queue but its owner.
package main

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/internal/lspawn"
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
	if m, ok := message.(*os.File); ok {
		if e, ok := envelope.(*os.File); ok {
			if sock, ok := viaSocket(*home, os.Geteuid()); ok {
				return lspawn.Enqueue(sock, m, e)
			}
		}
	}
	q, err := queue.Open(filepath.Join(*home, "queue"), queue.Options{
		NoClean:  true,
		NoCreate: true,
		Origin:   queue.Origin{PID: pid, UID: uid, Who: qmailqueue.Namer()(uid)},
		Now:      func() time.Time { return now },
	})
	if err != nil {
		return 62
	}
	return qmailqueue.Run(context.Background(), q, queue.Origin{}, message, envelope)
}

// viaSocket reports whether a process with effective uid euid should hand
// its message to the queue's owner over the home's queue socket, and the
// socket: when it is not root, the queue belongs to another uid, and a
// socket is there.
func viaSocket(home string, euid int) (string, bool) {
	if euid == 0 {
		return "", false
	}
	fi, err := os.Stat(filepath.Join(home, "queue"))
	if err != nil {
		return "", false
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) == euid {
		return "", false
	}
	sock := lspawn.QueueSocket(home)
	if fi, err := os.Lstat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		return "", false
	}
	return sock, true
}
