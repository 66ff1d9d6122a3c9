// Command dot-forward reads sendmail-style .forward files for qmail, a
// drop-in for dot-forward 0.71, run from a .qmail file:
//
//	|dot-forward .forward
//	./Mailbox
//
//	dot-forward [ -nN ] file ...
//
// The files are tried in order (a missing one is skipped) and the first
// that has an address decides, as package dotforward describes: programs
// run, addresses are forwarded in one message through $QMAILQUEUE or
// QMAILHOME/bin/qmail-queue ("dot-forward: info: qp N" on standard
// error), and the exit code tells qmail-local what to do next: 99 the
// message was taken care of, 0 deliver it normally (the file lists the
// user, or no file applied), 100 bounce, 111 retry. -n reports on
// standard error what would be done instead of doing it; -N (the default)
// does it.
//
// The environment is qmail-local's: USER, HOST, NEWSENDER, UFLINE,
// RPLINE and DTLINE (each missing one is empty). Addresses are completed
// with QMAILHOME/control/me (default "me"), defaultdomain, defaulthost and
// plusdomain (each defaulting to me); QMAILHOME is $QMAILHOME, else
// /var/qmail.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/dotforward"
	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/errstr"
)

const usage = "dot-forward: usage: dot-forward [ -nN ] file ...\n"

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, argv []string, stdin *os.File, stdout, stderr io.Writer) int {
	prog := "dot-forward"
	if len(argv) > 0 {
		prog = argv[0][strings.LastIndexByte(argv[0], '/')+1:]
	}
	plan, files, bad := options(argv[1:])
	if bad != 0 {
		fmt.Fprintf(stderr, "%s: illegal option -- %c\n%s", prog, bad, usage)
		return 100
	}
	home := control.Home("", os.Getenv)
	cfg, text := readControls(home)
	if text != "" {
		io.WriteString(stderr, "dot-forward: fatal: "+text+"\n")
		return 111
	}
	cfg.User, cfg.Host = os.Getenv("USER"), os.Getenv("HOST")
	env := os.Environ()
	d := &dotforward.Deliverer{
		Config: cfg,
		Sender: os.Getenv("NEWSENDER"),
		UFLine: os.Getenv("UFLINE"), RPLine: os.Getenv("RPLINE"), DTLine: os.Getenv("DTLINE"),
		Forwarder: &dotqmail.QueueProgram{Home: home, Env: env, Stderr: stderr},
		Stdout:    stdout,
		Stderr:    stderr,
	}
	var (
		res dotforward.Result
		err error
	)
	if plan {
		res, err = d.Plan(ctx, files, stderr)
	} else {
		res, err = d.Deliver(ctx, files, stdin)
	}
	if e := (*dotforward.Error)(nil); err != nil && errors.As(err, &e) && e.Text != "" {
		io.WriteString(stderr, "dot-forward: fatal: "+e.Text+"\n")
	}
	if err == nil && res.QP != "" {
		io.WriteString(stderr, "dot-forward: info: qp "+res.QP+"\n")
	}
	return dotforward.ExitCode(res, err)
}

// options reads "-nN" as djb's getopt does: letters may be bundled;
// options end at the first argument not starting with '-', at a lone "-"
// (kept), or at an argument starting with "--" (dropped). bad is the
// first letter that is not an option.
func options(args []string) (plan bool, rest []string, bad byte) {
	for len(args) > 0 {
		a := args[0]
		if len(a) < 2 || a[0] != '-' {
			break
		}
		args = args[1:]
		if a[1] == '-' {
			break
		}
		for i := 1; i < len(a); i++ {
			switch a[i] {
			case 'n':
				plan = true
			case 'N':
				plan = false
			default:
				return false, nil, a[i]
			}
		}
	}
	return plan, args, 0
}

// readControls reads the control files as dot-forward does: in the qmail
// home, to which it changes directory and back; text is the message of a
// failure.
func readControls(home string) (cfg dotforward.Config, text string) {
	dot, err := os.Open(".")
	if err != nil {
		return cfg, "unable to open current directory: " + errstr.Text(err)
	}
	defer dot.Close()
	if err := os.Chdir(home); err != nil {
		return cfg, "unable to chdir to " + home + ": " + errstr.Text(err)
	}
	cfg, err = controls(control.Dir{Home: "."})
	if err != nil {
		text = "unable to read controls: " + errstr.Text(err)
	}
	if err := syscall.Fchdir(int(dot.Fd())); err != nil && text == "" {
		text = "unable to set current directory: " + errstr.Text(err)
	}
	return cfg, text
}

// controls reads me (default "me"), then defaultdomain, defaulthost and
// plusdomain, each defaulting to me.
func controls(dir control.Dir) (dotforward.Config, error) {
	var cfg dotforward.Config
	me, ok, err := dir.Line("me")
	if err != nil {
		return cfg, err
	}
	if !ok {
		me = "me"
	}
	for _, c := range []struct {
		name string
		v    *string
	}{{"defaultdomain", &cfg.DefaultDomain}, {"defaulthost", &cfg.DefaultHost}, {"plusdomain", &cfg.PlusDomain}} {
		l, ok, err := dir.Line(c.name)
		if err != nil {
			return cfg, err
		}
		if !ok {
			l = me
		}
		*c.v = l
	}
	return cfg, nil
}
