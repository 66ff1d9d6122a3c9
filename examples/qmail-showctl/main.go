// Command qmail-showctl is a drop-in for qmail's qmail-showctl: it prints
// how qmail is set up, the compile-time settings and then what each file
// in QMAILHOME/control means, as qmail-showctl(8) describes.
//
//	qmail-showctl
//
// It first looks up qmail's accounts (users alias, qmaild, qmaill, root,
// qmailp, qmailq, qmailr, qmails; groups nofiles, qmail): one that does not
// exist prints "fatal: unable to find user NAME" (or group) on standard
// error and exits 111. Then it prints on standard output
//
//	qmail home directory: /var/qmail.
//	user-ext delimiter: -.
//	paternalism (in decimal): 2.
//	silent concurrency limit: 120.
//	subdirectory split: 23.
//	user ids: 7790, 7791, 7792, 0, 7793, 7794, 7795, 7796.
//	group ids: 2107, 2108.
//
// and, for every control file qmail knows, an empty line and a block such
// as "me: My name is mx.example.net." or "(Default.) ..." when the file is
// missing, then "NAME: I have no idea what this file does." for every other
// entry of the control directory, in directory order. Arguments are
// ignored. The home is $QMAILHOME, else /var/qmail.
//
// Exit 0; 111 for a missing account, or after "Oops! Unable to chdir to
// HOME.", "Oops! Unable to chdir to control.", "Oops! Unable to open
// current directory." or "Oops! Trouble reading control/me." (no newline).
// Unlike qmail's, it does not wait for a writer when a control file is a
// FIFO: that reads as an empty file.
package main

import (
	"errors"
	"io"
	"os"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/internal/account"
)

func main() {
	os.Exit(run(os.Getenv, os.Stdout, os.Stderr))
}

func run(getenv func(string) string, stdout, stderr io.Writer) int {
	// qmail's accounts, in qmail-showctl's order.
	uids, gids, err := account.IDs(
		[]string{"alias", "qmaild", "qmaill", "root", "qmailp", "qmailq", "qmailr", "qmails"},
		[]string{"nofiles", "qmail"})
	if err != nil {
		io.WriteString(stderr, account.Fatal(err))
		return 111
	}
	d := control.Dir{Home: control.Home("", getenv)}
	if err := d.Show(stdout, control.ShowSettings{UIDs: uids, GIDs: gids}); errors.Is(err, control.ErrShow) {
		return 111
	}
	return 0
}
