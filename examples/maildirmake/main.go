// Command maildirmake is qmail's maildirmake: it makes the Maildir DIR, with
// its tmp, new and cur subdirectories, all mode 0700.
//
//	maildirmake DIR
//
// It keeps the contract of qmail's maildirmake: umask 077; no operand is a
// usage error (exit 100); any failure, DIR already existing included,
// prints "maildirmake: fatal: unable to ..." with djb's error text and
// exits 111; like qmail it leaves behind what it made before a failure.
// Operands after DIR are ignored. Library users want maildir.Create, which
// refuses a half-made Maildir and cleans up after itself.
package main

import (
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/qmailkit/qmailkit/internal/errstr"
)

func main() {
	syscall.Umask(0o077)
	os.Exit(run(os.Args[1:], os.Stderr))
}

const fatal = "maildirmake: fatal: "

// run is maildirmake.c step by step. It works relative to an open handle
// on DIR where qmail chdirs into it.
func run(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "maildirmake: usage: maildirmake name")
		return 100
	}
	dir := args[0]
	if err := os.Mkdir(dir, 0o700); err != nil {
		fmt.Fprintf(stderr, "%sunable to mkdir %s: %s\n", fatal, dir, errstr.Text(err))
		return 111
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		fmt.Fprintf(stderr, "%sunable to chdir to %s: %s\n", fatal, dir, errstr.Text(err))
		return 111
	}
	defer root.Close()
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := root.Mkdir(sub, 0o700); err != nil {
			fmt.Fprintf(stderr, "%sunable to mkdir %s/%s: %s\n", fatal, dir, sub, errstr.Text(err))
			return 111
		}
	}
	return 0
}
