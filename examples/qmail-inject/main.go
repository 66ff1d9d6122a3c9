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
	"bufio"
	"context"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/qmailkit/qmailkit/internal/inject"
	"github.com/qmailkit/qmailkit/internal/qq"
)

func main() {
	signal.Ignore(syscall.SIGPIPE) // as qmail-inject: a vanished reader is a write error
	os.Exit(run(os.Args, os.Environ(), os.Stdin, os.Stdout, os.Stderr))
}

// run is qmail-inject with its argv, environment ("NAME=value" entries)
// and descriptors as arguments.
func run(argv, env []string, stdin io.Reader, stdout, stderr io.Writer) int {
	lookup := func(name string) (string, bool) {
		for _, kv := range env {
			if len(kv) > len(name) && kv[len(name)] == '=' && kv[:len(name)] == name {
				return kv[len(name)+1:], true
			}
		}
		return "", false
	}
	fail := func(err error) int {
		if e, ok := err.(*inject.Error); ok {
			io.WriteString(stderr, e.Text)
		} else {
			io.WriteString(stderr, "qmail-inject: fatal: "+err.Error()+"\n")
		}
		return inject.ExitCode(err)
	}
	home, ok := lookup("QMAILHOME")
	if !ok || home == "" {
		home = "/var/qmail"
	}
	in, err := inject.Load(home, lookup)
	if err != nil {
		return fail(err)
	}
	if len(argv) == 0 {
		argv = []string{"qmail-inject"}
	}
	opts, err := in.ParseArgs(argv[0], argv[1:])
	if err != nil {
		return fail(err)
	}
	m, err := in.Prepare(bufio.NewReaderSize(stdin, 64<<10), opts)
	if err != nil {
		return fail(err)
	}
	if opts.Print {
		w := bufio.NewWriterSize(stdout, 64<<10)
		err := m.Print(w)
		w.Flush() // qmail-inject does not check its output either
		if err != nil {
			return fail(err)
		}
		return 0
	}
	// qmail_open: $QMAILQUEUE or bin/qmail-queue, run in QMAILHOME.
	qqPath, ok := lookup("QMAILQUEUE")
	if !ok || qqPath == "" {
		qqPath = "bin/qmail-queue"
	}
	if !filepath.IsAbs(qqPath) {
		qqPath = filepath.Join(home, qqPath)
	}
	q := &qq.Program{Path: qqPath, Dir: home, Env: env, Stderr: stderr}
	if err := m.Queue(context.Background(), q.Run); err != nil {
		return fail(err)
	}
	return 0
}
