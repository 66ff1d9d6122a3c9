package dotqmail

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// QmailLocalUsage is what [QmailLocal] prints on standard error for a bad
// command line, qmail-local's usage line.
const QmailLocalUsage = "qmail-local: usage: qmail-local [ -nN ] user homedir local dash ext domain sender aliasempty\n"

// QmailLocal is qmail-local's command line for a program to call from its
// main: examples/qmail-local is nothing else, and examples/mta runs it
// when started as "qmail-local" by [Local] in a root process.
//
//	qmail-local [-nN] [-home DIR] [--] user homedir local dash ext domain sender defaultdelivery
//
// It delivers the message on stdin (a seekable file) to one recipient with
// a [Deliverer] whose program lines get env, and returns the exit code: 0
// with the report ("did F+W+P\n", "qp <pid>\n" after a forward) on
// stdout, 100 (permanent) or 111 (temporary) with the reason on stderr,
// and 100 with [QmailLocalUsage] for a bad command line. -n prints what
// would be done instead ([Deliverer.Plan]); -N, the default, delivers.
//
// Forwards are injected by a [QueueProgram] with env: $QMAILQUEUE, else
// QMAILHOME/bin/qmail-queue, with QMAILHOME from -home, else $QMAILHOME
// in env, else /var/qmail. No control file is read, as with qmail's
// qmail-local. The caller sets the umask (qmail-local's is 077).
//
// Programs get only what [AllowedEnv] keeps of env, and qmail-local's
// variables. The delivery is bounded by [DefaultTimeout]; when it passes,
// when ctx is cancelled, or when the process gets SIGTERM while QmailLocal
// runs (how [Local] stops a child), the running program's process group is
// killed and QmailLocal returns 111 at once.
//
// QmailLocal is meant to be the whole of a qmail-local process: it marks
// every descriptor of the process above 2 close-on-exec, so that none its
// parent left open reaches the recipient's programs. Programs get the
// message on stdin through a read-only descriptor (a stdin open for
// writing is reopened read-only, or copied), and their stdout and stderr
// are pipes unless stdout and stderr are pipes or sockets.
func QmailLocal(ctx context.Context, args, env []string, stdin *os.File, stdout, stderr io.Writer) int {
	closeOnExec()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
	defer stop()
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
				io.WriteString(stderr, QmailLocalUsage)
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
				io.WriteString(stderr, QmailLocalUsage)
				return 100
			}
		}
	}
	if len(args) != 8 || !strings.HasPrefix(args[1], "/") {
		io.WriteString(stderr, QmailLocalUsage)
		return 100
	}
	t := Target{User: args[0], Home: args[1], Local: args[2], Dash: args[3], Ext: args[4],
		Domain: args[5], Sender: args[6], DefaultDelivery: args[7]}
	d := &Deliverer{
		Forwarder: &QueueProgram{Home: home, Env: env, Stderr: stderr},
		Env:       env,
		Stdout:    stdout,
		Stderr:    stderr,
	}
	var (
		res Result
		err error
	)
	if plan {
		res, err = d.Plan(ctx, t)
	} else {
		res, err = d.Deliver(ctx, t, stdin)
	}
	if err != nil {
		fmt.Fprint(stderr, res.Report)
		return ExitCode(err)
	}
	fmt.Fprint(stdout, res.Report)
	return 0
}
