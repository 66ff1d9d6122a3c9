// Command qmail-newmrh is a drop-in for qmail's qmail-newmrh: it compiles
// QMAILHOME/control/morercpthosts into control/morercpthosts.cdb, the
// host list qmail-smtpd consults after rcpthosts, byte for byte as
// qmail's does (qmail-newmrh(8)).
//
//	qmail-newmrh
//
// Each line of morercpthosts is lower-cased, stripped of trailing spaces
// and tabs, and becomes a key with an empty value, unless it is then
// empty or starts with '#'; leading blanks and a CR are kept, and
// duplicates are added again. The database is written to
// control/morercpthosts.tmp (mode 0644: umask 033), fsynced, and renamed
// over control/morercpthosts.cdb, so readers see the old file or the new
// one. Arguments are ignored; the home is $QMAILHOME, else /var/qmail.
//
// Exit 0 silently, or 111 with one of these on standard error (djb's error
// texts):
//
//	qmail-newmrh: fatal: unable to chdir to HOME: ERR
//	qmail-newmrh: fatal: unable to read control/morercpthosts: ERR
//	qmail-newmrh: fatal: unable to write to control/morercpthosts.tmp: ERR
//	qmail-newmrh: fatal: unable to move control/morercpthosts.tmp to control/morercpthosts.cdbERR
//
// (the last one, sic, without ": "). A failed run leaves
// morercpthosts.cdb untouched; unlike qmail's, it also removes the
// morercpthosts.tmp it made.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/internal/cdb"
	"github.com/qmailkit/qmailkit/internal/errstr"
)

func main() {
	syscall.Umask(0o033)
	os.Exit(run(os.Getenv, os.Stderr))
}

func run(getenv func(string) string, stderr io.Writer) int {
	home := control.Home("", getenv)
	fatal := func(msg string, err error) int {
		fmt.Fprintf(stderr, "qmail-newmrh: fatal: %s%s\n", msg, errstr.Text(err))
		return 111
	}
	if err := control.CanChdir(home); err != nil {
		return fatal("unable to chdir to "+home+": ", err)
	}
	const (
		readErr  = "unable to read control/morercpthosts: "
		writeErr = "unable to write to control/morercpthosts.tmp: "
	)
	ctl := control.Dir{Home: home}
	in, err := os.Open(ctl.Path("morercpthosts"))
	if err != nil {
		return fatal(readErr, err)
	}
	defer in.Close()
	w, err := cdb.CreateTemp(ctl.Path("morercpthosts.cdb"), ctl.Path("morercpthosts.tmp"))
	if err != nil {
		return fatal(writeErr, err)
	}
	br := bufio.NewReader(in)
	for {
		line, rerr := br.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			w.Abort()
			return fatal(readErr, rerr)
		}
		if key, ok := control.MoreRcptHostsKey(line); ok {
			if err := w.Put(key, nil); err != nil {
				w.Abort()
				return fatal(writeErr, err)
			}
		}
		if rerr == io.EOF {
			break
		}
	}
	if err := w.Close(); err != nil {
		os.Remove(ctl.Path("morercpthosts.tmp"))
		var le *os.LinkError
		if errors.As(err, &le) {
			if errors.Is(le.Err, syscall.EEXIST) {
				// os.Rename says EEXIST for a directory in the way,
				// where rename(2) says EISDIR.
				err = syscall.EISDIR
			}
			return fatal("unable to move control/morercpthosts.tmp to control/morercpthosts.cdb", err)
		}
		return fatal(writeErr, err)
	}
	return 0
}
