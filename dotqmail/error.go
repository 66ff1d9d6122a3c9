package dotqmail

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/qmailkit/qmailkit"
)

// Error is a failed delivery, carrying qmail-local's report text and
// whether the failure is permanent (qmail-local exit 100: the message
// bounces) or temporary (exit 111: it is retried).
type Error struct {
	// Text is qmail-local's report text for the failure, without the final
	// newline: "Sorry, no mailbox here by that name. (#5.1.1)". It is empty
	// when a program's exit status decided: the program's own output is
	// then the report, as with qmail-local.
	Text string
	// Perm makes the failure permanent.
	Perm bool
	// File and Line locate the .qmail instruction that failed, when one did
	// ("" and 0 for failures before or outside the file's lines, and
	// "defaultdelivery" for the default delivery's lines).
	File string
	Line int
	// Err is the cause, when there is one: an *ExitError for a program,
	// a *maildir.DeliveryError, a system call error...
	Err error
}

func (e *Error) Error() string {
	s := "dotqmail: "
	if e.File != "" {
		s += e.File + ":" + strconv.Itoa(e.Line) + ": "
	}
	var cause string
	if e.Err != nil {
		cause = strings.TrimPrefix(e.Err.Error(), "dotqmail: ")
	}
	switch {
	case e.Text != "" && cause != "":
		return s + e.Text + ": " + cause
	case e.Text != "":
		return s + e.Text
	case cause != "":
		return s + cause
	}
	return s + "delivery failed"
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether the failure is permanent.
func (e *Error) Permanent() bool { return e.Perm }

// ExitCode returns qmail-local's exit code for the failure: 100 or 111.
func (e *Error) ExitCode() int {
	if e.Perm {
		return 100
	}
	return 111
}

// ExitCode returns the exit code qmail-local ends with after a delivery that
// returned err: 0 for nil, 100 for a permanent failure, 111 otherwise.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	if qmailkit.IsPermanent(err) {
		return 100
	}
	return 111
}

// ExitError is the exit status of a .qmail program line that ended the
// delivery (see qmail-command(8)).
type ExitError struct {
	Command string // the shell command, the line after '|'
	// Code is the exit status, or -1 when the program was killed by a
	// signal (Signal).
	Code   int
	Signal syscall.Signal
}

func (e *ExitError) Error() string {
	if e.Code < 0 {
		return fmt.Sprintf("dotqmail: program killed by signal %d (%v): %s", int(e.Signal), e.Signal, e.Command)
	}
	return fmt.Sprintf("dotqmail: program exited %d: %s", e.Code, e.Command)
}

// Permanent reports whether qmail-local bounces the message for this exit
// status: 100, and the sysexits codes 64, 65, 70, 76, 77, 78 and 112.
// Every other status, and death by a signal, defers it.
func (e *ExitError) Permanent() bool { return e.Code >= 0 && permanentExit(e.Code) }

func permanentExit(code int) bool {
	switch code {
	case 100, 64, 65, 70, 76, 77, 78, 112:
		return true
	}
	return false
}
