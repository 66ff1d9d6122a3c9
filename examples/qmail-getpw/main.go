// Command qmail-getpw is a drop-in for qmail's qmail-getpw: it finds the
// user who receives mail for a local part, from the password database, as
// qmail-lspawn asks it to when users/cdb has no assignment
// (qmail-getpw(8)).
//
//	qmail-getpw local
//
// The candidates are local and its prefixes ending before a '-', longest
// first, each shorter than 32 bytes and lower-cased; the first account
// with a uid other than 0 whose home directory exists and belongs to it
// wins, the rest of local after the '-' being the extension. Otherwise the
// account "alias" receives it, with the whole local part as extension.
// On success it writes, all at once,
//
//	USER\0UID\0GID\0HOME\0DASH\0EXT\0
//
// (DASH is "" or "-"; the extension keeps its case) and exits 0. Without
// an argument it exits 100; arguments after the first are ignored. Other
// exits, with nothing written: 116 when nobody matches and there is no
// alias account, 115 when a home directory's stat fails temporarily, 118
// when the password database fails. Library users want assign.Users.
package main

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"

	"github.com/qmailkit/qmailkit/assign"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], &assign.Users{Passwd: assign.SystemPasswd{}}, os.Stdout))
}

// run looks args[0] up in users, which must have no CDB: qmail-getpw
// reads only the password database.
func run(ctx context.Context, args []string, users *assign.Users, stdout io.Writer) int {
	if len(args) == 0 {
		return 100
	}
	u, err := users.Lookup(ctx, args[0])
	// qmail-getpw prints an alias account with uid 0; qmail-lspawn is the
	// one that refuses it.
	if err != nil && !errors.Is(err, assign.ErrRoot) {
		return assign.ExitCode(err)
	}
	out := u.Name + "\x00" + strconv.Itoa(u.UID) + "\x00" + strconv.Itoa(u.GID) + "\x00" + u.Home + "\x00" + u.Dash + "\x00" + u.Ext + "\x00"
	io.WriteString(stdout, out) // as qmail-getpw, a failed write still exits 0
	return 0
}
