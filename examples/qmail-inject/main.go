// Command qmail-inject prepares a locally generated message and queues it,
// a drop-in for qmail's qmail-inject:
//
//	qmail-inject [-nNaAhH] [-f sender] [recip ...]
//
// The message is read from standard input to end of file. Its header is
// fixed up as qmail-inject does (addresses rewritten with
// control/defaulthost, defaultdomain and plusdomain; Date, Message-ID, From and
// "Cc: recipient list not shown: ;" added when missing; Bcc, Return-Path
// and Content-Length removed; Mail-Followup-To from $QMAILMFTFILE), the
// envelope sender comes from -f, a Return-Path field or the environment
// ($QMAILSUSER, $QMAILUSER, $MAILUSER, $USER, $LOGNAME; $QMAILSHOST,
// $QMAILHOST, $MAILHOST; $QMAILINJECT letters c s f i r m), and the
// recipients from the arguments (-a), the header (-h), both (-H) or the
// arguments if any, else the header (-A, the default). -n prints the
// message after a Return-Path line instead of queueing it.
//
// The message goes to $QMAILQUEUE if set, else QMAILHOME/bin/qmail-queue
// (QMAILHOME is $QMAILHOME, default /var/qmail; there is no -home flag,
// since qmail-inject's own options would read it as -h -o ...), with the
// message on its
// descriptor 0 and the envelope on its descriptor 1. Exit 0 when queued
// (or printed); 100 for a bad option, an unparsable field, -f argument or
// recipient, or a permanent refusal by the queue; 111 for temporary
// trouble, with "qmail-inject: fatal: ..." on standard error. The rules are
// those of package internal/inject.
package main

import (
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/qmailkit/qmailkit/internal/inject"
)

func main() {
	signal.Ignore(syscall.SIGPIPE) // as qmail-inject: a vanished reader is a write error
	os.Exit(run(os.Args, os.Environ(), os.Stdin, os.Stdout, os.Stderr))
}

// run is qmail-inject with its argv, environment ("NAME=value" entries)
// and descriptors as arguments.
func run(argv, env []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return inject.Main(argv, env, stdin, stdout, stderr)
}
