// Command fastforward forwards mail through a database of aliases, a
// drop-in for fastforward 0.51's fastforward, run from a .qmail file
// (usually the alias user's .qmail-default):
//
//	| fastforward -d /etc/aliases.cdb
//
// Options: -n only prints the plan ("run CMD", "from <SENDER>",
// "to <ADDRESS>", "no forwarding") on standard error; -N delivers (the
// default); -p exits 0 for an unknown recipient and 99 after forwarding;
// -P bounces an unknown recipient (the default); -d takes the recipient
// from $DEFAULT@$HOST (or $EXT@$HOST); -D from $RECIPIENT (the default).
// $SENDER and $DTLINE are read too. Programs in the database run as
// "sh -c CMD" or "preline sh -c CMD" with the message on standard input;
// the copy, $DTLINE first, goes through $QMAILQUEUE or
// QMAILHOME/bin/qmail-queue, and "fastforward: qp N" is printed. Exit 0
// (99 with -p) on success, 100 or 111 on failure. See package
// github.com/qmailkit/qmailkit/aliases/command.
package main

import (
	"context"
	"os"

	"github.com/qmailkit/qmailkit/aliases/command"
	"github.com/qmailkit/qmailkit/dotqmail"
)

func main() {
	env := os.Environ()
	os.Exit(command.Fastforward(context.Background(), os.Args, command.IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Env: env,
		Forwarder: &dotqmail.QueueProgram{Env: env, Stderr: os.Stderr},
	}))
}
