// Package command implements fastforward 0.51's programs: fastforward(1),
// newaliases(8) (Debian's qmail-newaliases), setforward(1),
// printforward(1), setmaillist(1) and printmaillist(1). Each is a function
// taking the program's arguments and an [IO] and returning the exit code,
// so that the programs under examples/ are a few lines and their behaviour
// is tested here; the work is done by package aliases.
//
// # Compatibility
//
// Arguments, environment variables, exit codes and messages are
// fastforward 0.51's, byte for byte: diagnostics go to standard error as
// "PROGRAM: fatal: TEXT" with djb's error_str wording for system errors;
// 0 is success, 99 "delivered, skip the rest of .qmail" (fastforward -p),
// 100 a permanent failure, 111 a temporary one. printforward's messages
// name printmaillist, as the original's do. printforward and printmaillist
// read and write through 256-byte buffers as the originals do, so that
// even the partial output before "bad database format" is the same.
// fastforward forwards through a [dotqmail.Forwarder]; the program uses
// [dotqmail.QueueProgram], which runs $QMAILQUEUE (fastforward 0.51 always
// ran QMAILHOME/bin/qmail-queue) or QMAILHOME/bin/qmail-queue.
package command

import (
	"errors"
	"io"

	"github.com/qmailkit/qmailkit/aliases"
	"github.com/qmailkit/qmailkit/dotqmail/helper"
	"github.com/qmailkit/qmailkit/internal/errstr"
)

// IO is what a program works with: its descriptors (Stdin is the message
// for fastforward, a file it rewinds after each program it runs, as
// qmail-local gives it; the aliases, list or database for the others),
// its environment, and fastforward's injector.
type IO = helper.IO

// say writes a line to standard error, as strerr_die does.
func say(o IO, s string) {
	io.WriteString(o.Stderr, s+"\n")
}

// die reports err with prog's prefix and returns the exit code: 100 for
// a permanent *aliases.Error, else 111.
func die(o IO, prefix string, err error) int {
	var e *aliases.Error
	if !errors.As(err, &e) {
		say(o, prefix+errstr.Text(err))
		return 111
	}
	text := e.Text
	if e.Err != nil {
		text += ": " + errstr.Text(e.Err)
	}
	say(o, prefix+text)
	if e.Permanent() {
		return 100
	}
	return 111
}
