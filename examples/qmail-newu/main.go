// Command qmail-newu is a drop-in for qmail's qmail-newu: it compiles
// QMAILHOME/users/assign into QMAILHOME/users/cdb, byte for byte as qmail's
// does, through users/cdb.tmp, fsync and rename, so that readers see the old
// file or the new one and nothing between.
//
// Usage:
//
//	qmail-newu [-home DIR]
//
// The home directory is -home, else $QMAILHOME, else /var/qmail. Exit 0 on
// success, 111 on any error, with qmail-newu's messages on stderr:
//
//	qmail-newu: fatal: unable to chdir
//	qmail-newu: fatal: unable to open users/assign
//	qmail-newu: fatal: unable to open users/cdb.tmp
//	qmail-newu: fatal: unable to read users/assign
//	qmail-newu: fatal: bad format in users/assign
//	qmail-newu: fatal: unable to write users/cdb.tmp
//	qmail-newu: fatal: unable to move users/cdb.tmp to users/cdb
//
// With -v, a bad format is followed by a second line naming the line and
// field (assign.SyntaxError). One difference: after an error qmail's
// qmail-newu leaves a users/cdb.tmp behind (empty or partial); this one
// removes it. users/cdb itself is untouched by any failed run in both.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/qmailkit/qmailkit/assign"
	"github.com/qmailkit/qmailkit/control"
)

func main() {
	syscall.Umask(0o033) // qmail-newu: the cdb comes out 0644 whatever the caller's umask
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

func run(args []string, getenv func(string) string, stderr io.Writer) int {
	flags := flag.NewFlagSet("qmail-newu", flag.ContinueOnError)
	flags.SetOutput(stderr)
	home := flags.String("home", "", "qmail home directory (default $QMAILHOME, else /var/qmail)")
	verbose := flags.Bool("v", false, "after a format error, say where it is")
	if err := flags.Parse(args); err != nil {
		return 100
	}
	dir := *home
	dir = control.Home(dir, getenv)
	fatal := func(msg string) int {
		fmt.Fprintf(stderr, "qmail-newu: fatal: %s\n", msg)
		return 111
	}
	// qmail-newu chdirs to its home; we only need it to be a directory we
	// may search.
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || syscall.Access(dir, 1) != nil {
		return fatal("unable to chdir")
	}
	err := assign.CompileFile(filepath.Join(dir, "users", "assign"), filepath.Join(dir, "users", "cdb"))
	if err == nil {
		return 0
	}
	if errors.Is(err, assign.ErrSyntax) {
		code := fatal("bad format in users/assign")
		if *verbose {
			fmt.Fprintln(stderr, err)
		}
		return code
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		switch pe.Op {
		case "open":
			return fatal("unable to open users/assign")
		case "create":
			return fatal("unable to open users/cdb.tmp")
		case "read":
			return fatal("unable to read users/assign")
		case "rename":
			return fatal("unable to move users/cdb.tmp to users/cdb")
		}
	}
	return fatal("unable to write users/cdb.tmp")
}
