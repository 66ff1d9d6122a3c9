// Command bouncesaying bounces the message with a given text, a drop-in for qmail's
// bouncesaying:
//
//	bouncesaying error [ program [ arg ... ] ]
//
// Without program it prints error and exits 100. With program it does so
// only when program exits 0; 111 defers; anything else continues (exit 0).
package main

import (
	"context"
	"os"

	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/dotqmail/helper"
)

func main() {
	env := os.Environ()
	os.Exit(helper.Bouncesaying(context.Background(), os.Args[1:], helper.IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Env: env,
		Forwarder: &dotqmail.QueueProgram{Env: env, Stderr: os.Stderr},
	}))
}
