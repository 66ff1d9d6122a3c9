// Command qmail-local delivers a message to one local recipient by the
// recipient's .qmail file, a drop-in for qmail's qmail-local:
//
//	qmail-local [-nN] user homedir local dash ext domain sender defaultdelivery
//
// The message is on standard input (a seekable file). qmail-local runs in
// homedir as the recipient's user (qmail-lspawn, or dotqmail.Local, starts
// it so), finds homedir/.qmail + dash + ext as described in package
// dotqmail, and executes its lines; with no .qmail file for the user's own
// address it uses defaultdelivery. Exit 0: delivered, "did F+W+P" (and
// "qp <pid>" after a forward) on standard output; 100: permanent failure;
// 111: temporary failure; the reason on standard error. -n prints what
// would be done instead of doing it; -N (the default) delivers.
//
// Forwards are injected through $QMAILQUEUE, or QMAILHOME/bin/qmail-queue
// with QMAILHOME from $QMAILHOME (default /var/qmail) or -home DIR. No
// control file is read, as with qmail's qmail-local.
//
// Unlike qmail's, it gives programs only PATH, TZ, LANG, LC_* and QMAIL*
// of its environment (and the variables qmail-local sets); it stops a
// delivery after 1000 seconds, and at SIGTERM, killing the running
// program's whole process group and exiting 111; and it defers a message
// whose .qmail file or mbox is a FIFO, a socket or a device instead of
// blocking on it.
package main

import (
	"context"
	"os"
	"syscall"

	"github.com/qmailkit/qmailkit/dotqmail"
)

func main() {
	syscall.Umask(0o077)
	os.Exit(dotqmail.QmailLocal(context.Background(), os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr))
}
