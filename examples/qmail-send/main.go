// Command qmail-send is a drop-in for qmail-send started by qmail-start: it
// schedules the deliveries of the queue in $QMAILHOME/queue, local ones
// through users/cdb and .qmail files (dotqmail.Local: as root, each in a
// $QMAILHOME/bin/qmail-local child under the recipient's uid) and remote
// ones by SMTP (smtpclient, as qmail-remote, with control/smtproutes), and
// bounces what fails.
//
//	cd /var/qmail && QMAILHOME=/var/qmail qmail-send ./Maildir/ [logger args...]
//
// The argument is qmail-start's: the delivery of users without a .qmail
// file. qmail-send's log lines ("new msg 53", "delivery 1: success:
// did_1+0+0/", "status: local 0/10 remote 0/20", ...) go to standard output,
// or, as with qmail-start, to the standard input of a logger program when
// more arguments follow (qmail-send ./Maildir/ splogger qmail).
//
// The home is $QMAILHOME, else the current directory (qmail-start runs in
// /var/qmail). The queue is laid out as qmail's installer lays it out, and
// what is missing is created. Messages queued by qmail-queue (ours or
// qmail's) are picked up at once through lock/trigger.
//
// Signals, as qmail-send: SIGTERM stops (no new delivery; those in progress
// finish and are recorded; retry times are saved) and exits 0; SIGHUP
// rereads control/locals, virtualdomains, percenthack and envnoathost, and
// smtproutes, helohost and the remote timeouts (which qmail-remote reads at
// every delivery);
// SIGALRM makes every waiting delivery due now.
//
// By default remote delivery is qmail-remote's (HELO, no TLS, one recipient
// per delivery, tcpto in queue/lock/tcpto); -modern gives smtpclient's
// defaults (EHLO, opportunistic STARTTLS, several recipients at a domain in
// one transaction).
//
// As root, the deliveries run under the recipients' uids, which may not
// write the queue (qmail's qmail-queue is setuid qmailq for this; ours is
// not setuid). qmail-send therefore serves QMAILHOME/run/qmail-queue.sock
// (run/ made root's, mode 755; the socket mode 666): a user's forward
// (&address, |forward, a list's owner rewriting) runs
// QMAILHOME/bin/qmail-queue as that user, which hands the message and
// envelope descriptors to qmail-send over the socket; qmail-send queues
// them, with "invoked by uid N" (the kernel's word for the caller's uid) in
// the Received line. Install examples/qmail-queue as QMAILHOME/bin/qmail-queue,
// mode 755, owned by root. The deliveries' programs get QMAILHOME.
//
// Exit status: 0 after SIGTERM; 111 when it cannot start (unreadable
// controls, another qmail-send running, an unusable queue).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/qmailkit/qmailkit/internal/logbuf"
	"github.com/qmailkit/qmailkit/internal/lspawn"
	"github.com/qmailkit/qmailkit/internal/qmailqueue"
	"github.com/qmailkit/qmailkit/mta"
	"github.com/qmailkit/qmailkit/queue"
)

func main() {
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	alrm := make(chan os.Signal, 1)
	signal.Notify(alrm, syscall.SIGALRM)
	os.Exit(run(ctx, os.Args[1:], os.Getenv, hup, alrm, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, hup, alrm <-chan os.Signal, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("qmail-send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modern := fs.Bool("modern", false, "smtpclient's modern remote delivery instead of qmail-remote's")
	if err := fs.Parse(args); err != nil {
		return 111
	}
	if fs.NArg() < 1 {
		fmt.Fprintln(stderr, "usage: qmail-send [-modern] defaultdelivery [logger arg...]")
		return 111
	}
	logw := stdout
	if fs.NArg() > 1 {
		cmd := exec.Command(fs.Arg(1), fs.Args()[2:]...)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		pipe, err := cmd.StdinPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			fmt.Fprintf(stderr, "qmail-send: unable to start logger: %v\n", err)
			return 111
		}
		defer cmd.Wait()
		defer pipe.Close()
		logw = pipe
	}
	// Log lines go out from a goroutine of their own, many per write under
	// load; Close writes the last ones (before the logger's pipe closes).
	lb := logbuf.New(logw)
	defer lb.Close()
	log := slog.New(queue.NewLogHandler(lb, false))
	home := getenv("QMAILHOME")
	if home == "" {
		home = "."
	}
	home, err := filepath.Abs(home)
	if err != nil {
		log.Error("alert: cannot start: " + err.Error())
		return 111
	}
	sys, err := mta.Open(home, mta.Options{
		DefaultDelivery: fs.Arg(0),
		SendLogger:      log,
		QmailCompat:     !*modern,
		// The deliveries' programs (and qmail-local children) find the
		// home, hence bin/qmail-queue, whatever the directory they run in.
		ProgramEnv: append(withoutEnv(os.Environ(), "QMAILHOME"), "QMAILHOME="+home),
	})
	if err != nil {
		if errors.Is(err, mta.ErrNoControls) {
			log.Error("alert: cannot start: unable to read controls")
		} else {
			log.Error("alert: cannot start: " + err.Error())
		}
		return 111
	}
	defer sys.Close()
	if os.Geteuid() == 0 {
		// Deliveries run under the recipients' uids, which may not write
		// the queue: their forwards reach it through this socket, to which
		// QMAILHOME/bin/qmail-queue hands its descriptors.
		stopQQ, err := serveQueueSocket(sys, home)
		if err != nil {
			log.Error("alert: cannot start: qmail-queue socket: " + err.Error())
			return 111
		}
		defer stopQQ()
	}
	done := make(chan error, 1)
	go func() { done <- sys.Scheduler.Run(ctx) }()
	for {
		select {
		case <-hup:
			if err := sys.ReloadHome(); err != nil {
				log.Error("alert: unable to reread controls: " + err.Error())
			}
		case <-alrm:
			sys.Scheduler.Flush()
		case err := <-done:
			switch {
			case errors.Is(err, queue.ErrRunning):
				log.Error("alert: cannot start: qmail-send is already running")
				return 111
			case err != nil:
				log.Error("alert: " + err.Error())
				return 111
			}
			return 0
		}
	}
}

// serveQueueSocket makes home/run (root's, mode 755) and serves the queue
// on lspawn.QueueSocket(home) for every local uid.
func serveQueueSocket(sys *mta.System, home string) (stop func(), err error) {
	run := filepath.Join(home, "run")
	if err := os.Mkdir(run, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	fi, err := os.Lstat(run)
	if err != nil {
		return nil, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || !ok || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%s must be a directory of root's that only root may write", run)
	}
	// Every user must reach the socket, whatever the umask (qmail-start's
	// is 077).
	if fi.Mode().Perm() != 0o755 {
		if err := os.Chmod(run, 0o755); err != nil {
			return nil, err
		}
	}
	return sys.ServeQueueSocket(lspawn.QueueSocket(home), 0o666, qmailqueue.Namer())
}

// withoutEnv returns env without the variable name.
func withoutEnv(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if n, _, _ := strings.Cut(kv, "="); n != name {
			out = append(out, kv)
		}
	}
	return out
}
