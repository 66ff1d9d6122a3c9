// Command forward forwards the message on standard input, a drop-in for qmail's
// forward, for .qmail lines such as "| forward \"$LOCAL\"@other.example":
//
//	forward address ...
//
// It injects $DTLINE and the message with envelope sender $NEWSENDER
// through $QMAILQUEUE or QMAILHOME/bin/qmail-queue and prints
// "forward: qp <pid>". Exit 0 on success, 100 or 111 on failure.
package main

import (
	"context"
	"os"

	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/dotqmail/helper"
)

func main() {
	env := os.Environ()
	os.Exit(helper.Forward(context.Background(), os.Args[1:], helper.IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Env: env,
		Forwarder: &dotqmail.QueueProgram{Env: env, Stderr: os.Stderr},
	}))
}
