// Command condredirect redirects the message when a program succeeds, a drop-in for
// qmail's condredirect:
//
//	condredirect newaddress program [ arg ... ]
//
// It runs program on the message; if it exits 0 the message goes to
// newaddress (sender $SENDER, $DTLINE in front) and condredirect exits 99,
// so the following .qmail lines are skipped. 111 from program defers the
// delivery; any other exit code continues with the next line (exit 0).
package main

import (
	"context"
	"os"

	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/dotqmail/helper"
)

func main() {
	env := os.Environ()
	os.Exit(helper.Condredirect(context.Background(), os.Args[1:], helper.IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Env: env,
		Forwarder: &dotqmail.QueueProgram{Env: env, Stderr: os.Stderr},
	}))
}
