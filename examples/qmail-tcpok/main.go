// Command qmail-tcpok is a drop-in for qmail's qmail-tcpok: it clears
// QMAILHOME/queue/lock/tcpto, the record of recent connection timeouts
// that makes qmail-remote (and qmail-send's remote deliveries) skip an
// address, so that every address is tried again at once
// (qmail-tcpok(8)).
//
//	qmail-tcpok
//
// The file is opened for writing (never created), locked, and overwritten
// with 1024 NUL bytes. Arguments are ignored; nothing is printed on
// success (exit 0). The home is $QMAILHOME, else /var/qmail. Errors, on
// standard error with djb's error texts, exit 111:
//
//	qmail-tcpok: fatal: unable to chdir to HOME: ERR
//	qmail-tcpok: fatal: unable to chdir to HOME/queue/lock: ERR
//	qmail-tcpok: fatal: unable to write HOME/queue/lock/tcpto: ERR
//	qmail-tcpok: fatal: unable to lock HOME/queue/lock/tcpto: ERR
//	qmail-tcpok: fatal: unable to clear HOME/queue/lock/tcpto: ERR
//
// Unlike qmail's, it does not wait for a reader when a FIFO stands in
// tcpto's place: that is "unable to write ...: device not configured".
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/internal/errstr"
	"github.com/qmailkit/qmailkit/smtpclient"
)

func main() {
	os.Exit(run(os.Getenv, os.Stderr))
}

func run(getenv func(string) string, stderr io.Writer) int {
	home := control.Home("", getenv)
	fatal := func(what, path string, err error) int {
		fmt.Fprintf(stderr, "qmail-tcpok: fatal: unable to %s %s: %s\n", what, path, errstr.Text(err))
		return 111
	}
	if err := control.CanChdir(home); err != nil {
		return fatal("chdir to", home, err)
	}
	lock := home + "/queue/lock"
	if err := control.CanChdir(filepath.Join(home, "queue", "lock")); err != nil {
		return fatal("chdir to", lock, err)
	}
	err := (&smtpclient.FileTCPTO{Path: filepath.Join(home, "queue", "lock", "tcpto")}).Clear()
	var pe *fs.PathError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &pe) && pe.Op == "open":
		return fatal("write", lock+"/tcpto", err)
	case errors.As(err, &pe) && pe.Op == "flock":
		return fatal("lock", lock+"/tcpto", err)
	}
	return fatal("clear", lock+"/tcpto", err)
}
