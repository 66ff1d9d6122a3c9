// Command tcprules compiles ucspi-tcp access rules into a cdb, a drop-in for
// ucspi-tcp's tcprules:
//
//	tcprules rules.cdb rules.tmp < rules
//
// It reads rules on stdin, writes the cdb to rules.tmp, fsyncs it and
// renames it to rules.cdb. The output is byte-identical to ucspi-tcp 0.88's;
// the rules are parsed as the IPv6-patched tcprules parses them (a superset
// of 0.88's). Exit 0 on success, 100 for a rules line it cannot parse or
// missing arguments, 111 for a system error, with tcprules' messages on
// stderr. See package github.com/qmailkit/qmailkit/tcprules.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/qmailkit/qmailkit/internal/errstr"
	"github.com/qmailkit/qmailkit/tcprules"
)

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stderr))
}

func run(args []string, stdin io.Reader, stderr io.Writer) int {
	if len(args) < 3 {
		fmt.Fprint(stderr, "tcprules: usage: tcprules rules.cdb rules.tmp\n")
		return 100
	}
	path, tmp := args[1], args[2]
	err := tcprules.CompileFile(path, tmp, stdin)
	if err == nil {
		return 0
	}
	var pe *tcprules.ParseError
	if errors.As(err, &pe) {
		fmt.Fprintf(stderr, "tcprules: fatal: unable to parse this line: %s\n", pe.Text)
		return 100
	}
	var fe *tcprules.FileError
	if !errors.As(err, &fe) {
		fmt.Fprintf(stderr, "tcprules: fatal: %v\n", err)
		return 111
	}
	switch fe.Op {
	case tcprules.OpCreate:
		fmt.Fprintf(stderr, "tcprules: fatal: unable to create %s: %s\n", tmp, errstr.Text(fe.Err))
	case tcprules.OpRead:
		fmt.Fprintf(stderr, "tcprules: fatal: unable to read input: %s\n", errstr.Text(fe.Err))
	case tcprules.OpRename:
		fmt.Fprintf(stderr, "tcprules: fatal: unable to move %s to %s: %s\n", tmp, path, errstr.Text(fe.Err))
	default:
		fmt.Fprintf(stderr, "tcprules: fatal: unable to write to %s: %s\n", tmp, errstr.Text(fe.Err))
	}
	return 111
}
