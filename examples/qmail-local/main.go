// Command qmail-local delivers a message to one local recipient by the
// recipient's .qmail file, a drop-in for qmail's qmail-local:
//
//	qmail-local [-nN] user homedir local dash ext domain sender defaultdelivery
//
// The message is on standard input (a seekable file). qmail-local runs in
// homedir as the recipient's user (qmail-lspawn, or dotqmail.Local, starts
// it so), finds homedir/.qmail + dash + ext as described in package
// dotqmail, and executes its lines; with no .qmail file for the user's own
// address it uses defaultdelivery. Exit 0: delivered, "did F+W+P" (and
// "qp <pid>" after a forward) on standard output; 100: permanent failure;
// 111: temporary failure; the reason on standard error. -n prints what
// would be done instead of doing it; -N (the default) delivers.
//
// Forwards are injected through $QMAILQUEUE, or QMAILHOME/bin/qmail-queue
// with QMAILHOME from $QMAILHOME (default /var/qmail) or -home DIR. No
// control file is read, as with qmail's qmail-local.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/qmailkit/qmailkit/dotqmail"
)

const usage = "qmail-local: usage: qmail-local [ -nN ] user homedir local dash ext domain sender aliasempty\n"

func main() {
	syscall.Umask(0o077)
	os.Exit(run(context.Background(), os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr))
}

// run is qmail-local with its arguments, environment and descriptors as
// parameters; it returns the exit code.
func run(ctx context.Context, args, env []string, stdin *os.File, stdout, stderr io.Writer) int {
	plan := false
	home := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "QMAILHOME="); ok {
			home = v
		}
	}
	for len(args) > 0 && len(args[0]) > 1 && args[0][0] == '-' {
		a := args[0]
		args = args[1:]
		if a == "--" {
			break
		}
		if a == "-home" || a == "--home" {
			if len(args) == 0 {
				io.WriteString(stderr, usage)
				return 100
			}
			home, args = args[0], args[1:]
			continue
		}
		for _, c := range a[1:] {
			switch c {
			case 'n':
				plan = true
			case 'N':
				plan = false
			default:
				io.WriteString(stderr, usage)
				return 100
			}
		}
	}
	if len(args) != 8 || !strings.HasPrefix(args[1], "/") {
		io.WriteString(stderr, usage)
		return 100
	}
	t := dotqmail.Target{User: args[0], Home: args[1], Local: args[2], Dash: args[3], Ext: args[4],
		Domain: args[5], Sender: args[6], DefaultDelivery: args[7]}
	d := &dotqmail.Deliverer{
		Forwarder: &dotqmail.QueueProgram{Home: home, Env: env, Stderr: stderr},
		Env:       env,
		Stdout:    stdout,
		Stderr:    stderr,
	}
	var (
		res dotqmail.Result
		err error
	)
	if plan {
		res, err = d.Plan(ctx, t)
	} else {
		res, err = d.Deliver(ctx, t, stdin)
	}
	if err != nil {
		fmt.Fprint(stderr, res.Report)
		return dotqmail.ExitCode(err)
	}
	fmt.Fprint(stdout, res.Report)
	return 0
}
