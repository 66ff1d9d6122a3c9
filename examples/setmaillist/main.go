// Command setmaillist compiles a mailing list, one address or list file a
// line, into fastforward's binary list, a drop-in for fastforward 0.51's
// setmaillist:
//
//	setmaillist list.bin list.tmp < list
//
// It writes list.tmp with umask 033, fsyncs it and renames it to list.bin.
// Exit 0 on success, 100 for missing arguments, 111 otherwise, with
// setmaillist's messages. See package github.com/qmailkit/qmailkit/aliases.
package main

import (
	"os"
	"syscall"

	"github.com/qmailkit/qmailkit/aliases/command"
)

func main() {
	syscall.Umask(0o033)
	os.Exit(command.Setmaillist(os.Args, command.IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Env: os.Environ(),
	}))
}
