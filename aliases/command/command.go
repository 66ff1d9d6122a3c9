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
	"os"

	"github.com/qmailkit/qmailkit/aliases"
	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/errstr"
)

// IO is what a program works with.
type IO struct {
	// Stdin is the program's input: the message for fastforward (a file it
	// can rewind after each program it runs, as qmail-local gives it), the
	// aliases, list or database for the others.
	Stdin *os.File
	// Stdout and Stderr are the output descriptors; programs fastforward
	// runs inherit them (as files when they are *os.File).
	Stdout, Stderr io.Writer
	// Env is the environment, "NAME=value" strings; the programs pass
	// os.Environ().
	Env []string
	// Forwarder queues fastforward's copy.
	Forwarder dotqmail.Forwarder
}

func (o IO) getenv(name string) (string, bool) {
	v, ok := "", false
	for _, kv := range o.Env {
		if len(kv) > len(name) && kv[len(name)] == '=' && kv[:len(name)] == name {
			v, ok = kv[len(name)+1:], true
		}
	}
	return v, ok
}

// say writes a line to standard error, as strerr_die does.
func (o IO) say(s string) {
	io.WriteString(o.Stderr, s+"\n")
}

// die reports err with prog's prefix and returns the exit code: 100 for
// a permanent *aliases.Error, else 111.
func (o IO) die(prefix string, err error) int {
	var e *aliases.Error
	if !errors.As(err, &e) {
		o.say(prefix + errstr.Text(err))
		return 111
	}
	text := e.Text
	if e.Err != nil {
		text += ": " + errstr.Text(e.Err)
	}
	o.say(prefix + text)
	if e.Permanent() {
		return 100
	}
	return 111
}
