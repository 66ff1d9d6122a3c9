// Command sendmail is qmail's sendmail compatibility wrapper, a drop-in:
//
//	sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]
//
// It changes to QMAILHOME ($QMAILHOME, default /var/qmail; no -home flag:
// sendmail's options would take it) and hands over
// (exec) to bin/qmail-inject: "qmail-inject -a -- args" to send to the
// arguments, or "qmail-inject -H -- args" with -t (recipients from the
// header and the arguments; unlike sendmail, arguments are not
// subtracted). -f addr passes "-f addr" and sets $QMAILUSER and $QMAILHOST
// from addr (after unsetting $QMAILNAME, $MAILNAME, $NAME, $QMAILHOST and
// $MAILHOST) so the default From matches; -F name sets $MAILNAME. -bp, or
// the name mailq, runs bin/qmail-qread; -bs runs bin/qmail-smtpd on
// standard input and output, with a local tcpserver environment unless
// $PROTO is set; -bm is the normal mode. -i, -oX, -v, -m, -x, -e X, -p X,
// -B X, -E... and -J... are accepted and ignored. Any other flag is a usage
// error (exit 100); as newaliases it refuses with exit 100. When it cannot
// run the program it exits 111; otherwise the exit code is the program's.
//
// Deviations from qmail's sendmail, on purpose: -q (a queue run: "-q",
// "-q15m") is accepted and does nothing, exit 0, since qmail's queue runs
// all the time and many cron jobs call "sendmail -q"; and -F keeps its
// effect when combined with -f (qmail's code loses it).
package main

import (
	"io"
	"os"
	"syscall"

	"github.com/qmailkit/qmailkit/internal/inject"
)

func main() {
	os.Exit(run(os.Args, os.Environ(), os.Stderr, syscall.Exec))
}

// run is sendmail with its argv, environment, standard error and exec as
// arguments; exec returns only when it fails.
func run(argv, env []string, stderr io.Writer, exec func(path string, argv, env []string) error) int {
	return inject.SendmailMain(argv, env, stderr, exec)
}
