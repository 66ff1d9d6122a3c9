// Command qmail-tcpto is a drop-in for qmail's qmail-tcpto: it prints the
// record of recent connection timeouts in QMAILHOME/queue/lock/tcpto, the
// file qmail-remote (and qmail-send's remote deliveries) keep to skip an
// address that timed out twice recently (qmail-tcpto(8)).
//
//	qmail-tcpto
//
// For each record with a timeout count, in file order, one line on
// standard output:
//
//	192.0.2.7 timed out 900 seconds ago; # recent timeouts: 2
//
// The seconds are now minus the time stored, as an unsigned 64-bit number
// (a time in the future prints a huge one, as qmail's does). A count byte
// of 128 or more is skipped, as qmail-tcpto's signed char comparison does
// on the machines qmail runs on. Arguments are ignored; exit 0. The home is
// $QMAILHOME, else /var/qmail. Errors go to standard output too, without a
// program name, and exit 111:
//
//	fatal: unable to chdir: ERR
//	fatal: unable to open tcpto: ERR
//	fatal: unable to lock tcpto: ERR
//	fatal: unable to read tcpto: ERR
//
// Unlike qmail's, it does not wait for a writer when a FIFO stands in
// tcpto's place: that is "unable to open tcpto: device not configured".
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/internal/errstr"
	"github.com/qmailkit/qmailkit/smtpclient"
)

func main() {
	os.Exit(run(os.Getenv, time.Now, os.Stdout))
}

func run(getenv func(string) string, now func() time.Time, stdout io.Writer) int {
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	home := control.Home("", getenv)
	lock := filepath.Join(home, "queue", "lock")
	fatal := func(what string, err error) int {
		fmt.Fprintf(w, "fatal: unable to %s: %s\n", what, errstr.Text(err))
		return 111
	}
	if err := control.CanChdir(home); err != nil {
		return fatal("chdir", err)
	}
	if err := control.CanChdir(lock); err != nil {
		return fatal("chdir", err)
	}
	recs, err := (&smtpclient.FileTCPTO{Path: filepath.Join(lock, "tcpto")}).Records()
	var pe *fs.PathError
	switch {
	case err == nil:
	case errors.As(err, &pe) && pe.Op == "open":
		return fatal("open tcpto", err)
	case errors.As(err, &pe) && pe.Op == "flock":
		return fatal("lock tcpto", err)
	default:
		return fatal("read tcpto", err)
	}
	start := now().Unix()
	for _, r := range recs {
		if int8(r.Count) < 1 {
			continue
		}
		fmt.Fprintf(w, "%s timed out %d seconds ago; # recent timeouts: %d\n", r.Addr, uint64(start-int64(r.Last)), r.Count)
	}
	return 0
}
