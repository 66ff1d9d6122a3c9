// Command printmaillist prints fastforward's binary mailing list an entry
// a line, a drop-in for fastforward 0.51's printmaillist:
//
//	printmaillist < list.bin
//
// Exit 0 on success, 100 for "bad mailing list format", 111 for a read or
// write error. See package github.com/qmailkit/qmailkit/aliases.
package main

import (
	"os"

	"github.com/qmailkit/qmailkit/aliases/command"
)

func main() {
	os.Exit(command.Printmaillist(command.IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Env: os.Environ(),
	}))
}
