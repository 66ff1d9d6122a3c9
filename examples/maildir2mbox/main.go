// Command maildir2mbox is a drop-in for qmail's maildir2mbox: it moves the
// messages of the Maildir $MAILDIR to the end of the mbox $MAIL, through
// $MAILTMP, for mail readers that know only mbox files (maildir2mbox(1)).
//
//	MAILDIR=$HOME/Maildir MAIL=/var/mail/joe MAILTMP=$HOME/.mbox.tmp maildir2mbox
//
// Steps, as qmail's: umask 077; the three variables must be set (an empty
// value counts as set; MAIL and MAILTMP are relative to $MAILDIR); files in
// tmp/ not read for 36 hours are removed; the messages of new/ and cur/
// whose modification time is before the current second are taken, oldest
// first; when there are none it exits 0 without touching $MAIL. Otherwise
// $MAIL is opened for appending (created 0600 if missing) and locked with
// flock, its contents copied to $MAILTMP, each message appended in mbox
// form ("From SENDER DATE" from its Return-Path line and modification
// time in UTC, ">From " quoting, an empty line after it, an unterminated
// last line dropped), $MAILTMP fsynced and renamed over $MAIL, and the
// messages removed from the Maildir. A message that cannot be removed
// prints "maildir2mbox: warning: $MAILDIR/new/NAME will be delivered
// twice; unable to unlink: ERR".
//
// Errors print "maildir2mbox: fatal: ..." (MAIL not set, unable to chdir
// to DIR: ERR, unable to scan $MAILDIR/new: ERR, unable to lock MAIL: ERR,
// unable to read MAIL: ERR, unable to create MAILTMP: ERR, unable to
// read $MAILDIR/new/NAME: ERR, unable to write to MAILTMP: ERR, unable to
// move MAILTMP to MAIL: ERR) with djb's error texts and exit 111; $MAIL is
// then as it was.
//
// # Security
//
// Unlike qmail's, only regular files are taken from new/ and cur/: a
// symbolic link (to someone else's mail, say) or a FIFO there is skipped,
// and new/ or cur/ being a symbolic link is an error ("unable to scan
// $MAILDIR/new: a symbolic link, not followed").
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/internal/durable"
	"github.com/qmailkit/qmailkit/internal/errstr"
	"github.com/qmailkit/qmailkit/maildir"
)

func main() {
	syscall.Umask(0o077)
	os.Exit(run(os.LookupEnv, time.Now, os.Stderr))
}

func run(lookupEnv func(string) (string, bool), now func() time.Time, stderr io.Writer) int {
	fatal := func(msg string, err error) int {
		if err != nil {
			msg += ": " + errstr.Text(err)
		}
		fmt.Fprintf(stderr, "maildir2mbox: fatal: %s\n", msg)
		return 111
	}
	mbox, ok := lookupEnv("MAIL")
	if !ok {
		return fatal("MAIL not set", nil)
	}
	mboxtmp, ok := lookupEnv("MAILTMP")
	if !ok {
		return fatal("MAILTMP not set", nil)
	}
	dirName, ok := lookupEnv("MAILDIR")
	if !ok {
		return fatal("MAILDIR not set", nil)
	}
	if err := control.CanChdir(dirName); err != nil {
		return fatal("unable to chdir to "+dirName, err)
	}
	// qmail's maildir2mbox works in $MAILDIR after chdir.
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dirName, p)
	}
	dir := maildir.Dir(dirName)
	dir.Clean(now()) // as qmail's, whatever goes wrong here is ignored
	start := now()
	all, err := dir.List()
	if err != nil {
		return fatal(scanError(err))
	}
	var msgs []maildir.Message
	for _, m := range all {
		if m.ModTime.Unix() < start.Unix() { // later ones may still be arriving in order
			msgs = append(msgs, m)
		}
	}
	if len(msgs) == 0 {
		return 0
	}

	lock, err := os.OpenFile(abs(mbox), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return fatal("unable to lock "+mbox, err)
	}
	defer lock.Close()
	if err := flock(lock); err != nil {
		return fatal("unable to lock "+mbox, err)
	}
	old, err := os.Open(abs(mbox))
	if err != nil {
		return fatal("unable to read "+mbox, err)
	}
	defer old.Close()
	tmp, err := os.OpenFile(abs(mboxtmp), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NONBLOCK, 0o600) // 0644 &^ umask 077
	if err != nil {
		return fatal("unable to create "+mboxtmp, err)
	}
	defer tmp.Close()
	// An error naming MAILTMP is one of writing it; any other, of reading.
	writing := func(err error) bool {
		var pe *fs.PathError
		return errors.As(err, &pe) && pe.Path == tmp.Name()
	}
	out := bufio.NewWriterSize(tmp, 64<<10)
	if _, err := out.ReadFrom(old); err != nil {
		if writing(err) {
			return fatal("unable to write to "+mboxtmp, err)
		}
		return fatal("unable to read "+mbox, err)
	}
	for _, m := range msgs {
		f, err := dir.OpenMessage(m)
		if err != nil {
			return fatal("unable to read $MAILDIR/"+m.Path(), err)
		}
		err = maildir.WriteMbox(out, f, m.ModTime)
		f.Close()
		if err != nil && writing(err) {
			return fatal("unable to write to "+mboxtmp, err)
		}
		if err != nil {
			return fatal("unable to read $MAILDIR/"+m.Path(), err)
		}
	}
	if err := out.Flush(); err != nil {
		return fatal("unable to write to "+mboxtmp, err)
	}
	if err := durable.SyncClose(tmp); err != nil {
		return fatal("unable to write to "+mboxtmp, err)
	}
	if err := durable.Rename(abs(mboxtmp), abs(mbox)); err != nil {
		return fatal("unable to move "+mboxtmp+" to "+mbox, err)
	}
	for _, m := range msgs {
		if err := dir.Remove(m); err != nil {
			fmt.Fprintf(stderr, "maildir2mbox: warning: $MAILDIR/%s will be delivered twice; unable to unlink: %s\n", m.Path(), errstr.Text(err))
		}
	}
	return 0
}

// scanError words an error of maildir.Dir.List as maildir2mbox does: it
// could not open new/ or cur/ ("scan") or not read it ("read").
func scanError(err error) (string, error) {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return "unable to scan $MAILDIR", err
	}
	sub := filepath.Base(pe.Path)
	if sub != "new" && sub != "cur" {
		sub = filepath.Base(filepath.Dir(pe.Path))
	}
	if pe.Op == "open" {
		return "unable to scan $MAILDIR/" + sub, pe.Err
	}
	return "unable to read $MAILDIR/" + sub, pe.Err
}

// flock takes an exclusive lock on f, waiting for it.
func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}
