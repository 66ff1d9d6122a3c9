// Command preline feeds a message to a program with the mbox From_ line, Return-Path
// and Delivered-To lines in front, a drop-in for qmail's preline, for .qmail
// lines such as "| preline procmail":
//
//	preline [ -frdFRD ] cmd [ arg ... ]
//
// It needs $UFLINE, $RPLINE and $DTLINE (set by qmail-local); -f, -r and -d
// leave out the From_, Return-Path and Delivered-To line, -F, -R and -D put
// them back. It exits with cmd's exit code.
package main

import (
	"context"
	"os"

	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/dotqmail/helper"
)

func main() {
	env := os.Environ()
	os.Exit(helper.Preline(context.Background(), os.Args[1:], helper.IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Env: env,
		Forwarder: &dotqmail.QueueProgram{Env: env, Stderr: os.Stderr},
	}))
}
