// Command setforward compiles fastforward's own alias syntax into a
// database, a drop-in for fastforward 0.51's setforward:
//
//	setforward data.cdb data.tmp < data
//
// Entries are "TARGET: INSTR, ..., INSTR;" (see package
// github.com/qmailkit/qmailkit/aliases). It writes data.tmp, fsyncs it and
// renames it to data.cdb. Exit 0 on success, 100 for bad input or missing
// arguments, 111 for a system error, with setforward's messages.
package main

import (
	"os"

	"github.com/qmailkit/qmailkit/aliases/command"
)

func main() {
	os.Exit(command.Setforward(os.Args, command.IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Env: os.Environ(),
	}))
}
