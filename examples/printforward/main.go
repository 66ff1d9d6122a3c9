// Command printforward prints a fastforward database in setforward's
// syntax, a drop-in for fastforward 0.51's printforward:
//
//	printforward < data.cdb
//
// Exit 0 on success, 100 for a database it cannot read ("printmaillist:
// fatal: bad database format", the original's wording), 111 for a read or
// write error. See package github.com/qmailkit/qmailkit/aliases.
package main

import (
	"os"

	"github.com/qmailkit/qmailkit/aliases/command"
)

func main() {
	os.Exit(command.Printforward(command.IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Env: os.Environ(),
	}))
}
