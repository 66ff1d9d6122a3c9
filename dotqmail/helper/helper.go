// Package helper implements the small programs qmail users put in .qmail
// program lines: preline(1), forward(1), condredirect(1), bouncesaying(1)
// and except(1). Each is a function taking the program's arguments and an
// [IO], returning the exit code, so that the programs under examples/ are
// a few lines and the behaviour is tested here.
//
// All follow the qmail-command exit convention: 0 success, 99 success and
// skip the following .qmail lines, 100 permanent failure (bounce), 111
// temporary failure (retry). Diagnostics go to standard error as
// "<name>: fatal: <text>", which qmail-local puts in its report.
//
// # Compatibility
//
// Arguments, environment variables, exit codes and messages are those of
// qmail 1.03's programs. Programs named in arguments are found on PATH and
// run without a shell, as execvp runs them. forward and condredirect inject
// through a dotqmail.Forwarder; the programs use dotqmail.QueueProgram,
// which runs $QMAILQUEUE or QMAILHOME/bin/qmail-queue as qmail does.
package helper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/errstr"
	"github.com/qmailkit/qmailkit/internal/qq"
)

// IO is what a helper program works with: its descriptors, environment and
// injector. Package aliases/command's programs (fastforward and the
// database tools) work with it too.
type IO struct {
	// Stdin is the message, as qmail-local gives it: a file a program can
	// rewind (condredirect does). preline and forward read it from its
	// current offset.
	Stdin *os.File
	// Stdout and Stderr are the program's output descriptors. Programs run
	// by the helpers inherit them (as files when they are *os.File).
	Stdout, Stderr io.Writer
	// Env is the environment, "NAME=value" strings; the programs pass
	// os.Environ().
	Env []string
	// Forwarder injects messages for forward and condredirect.
	Forwarder dotqmail.Forwarder
}

// Getenv returns the value of the variable name in o.Env (the last one
// when it appears more than once) and whether it is set.
func (o IO) Getenv(name string) (string, bool) {
	v, ok := "", false
	for _, kv := range o.Env {
		if len(kv) > len(name) && kv[len(name)] == '=' && kv[:len(name)] == name {
			v, ok = kv[len(name)+1:], true
		}
	}
	return v, ok
}

func (o IO) fatal(name string, code int, format string, a ...any) int {
	fmt.Fprintf(o.Stderr, name+": fatal: "+format+"\n", a...)
	return code
}

// child runs argv[0] (found on PATH) with argv[1:], inheriting the helper's
// descriptors and environment, and returns its exit code; -1 means killed
// by a signal. An exec failure gives 111 for a temporary errno, else 100,
// as the C helpers' forked children exit.
func (o IO) child(ctx context.Context, argv []string, stdin io.Reader) int {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return execFailure(err)
	}
	cmd := exec.CommandContext(ctx, path, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Env = o.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, o.Stdout, o.Stderr
	if err := cmd.Start(); err != nil {
		return execFailure(err)
	}
	return waitCode(cmd.Wait())
}

func execFailure(err error) int {
	if temporary(err) {
		return 111
	}
	return 100
}

// waitCode turns the result of Wait into an exit code, -1 for a signal.
func waitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -1
		}
		return ee.ExitCode()
	}
	return 111
}

// temporary reports qmail's error_temp for the errno in err.
func temporary(err error) bool {
	var e syscall.Errno
	if !errors.As(err, &e) {
		return false
	}
	switch e {
	case syscall.EINTR, syscall.ENOMEM, syscall.ETXTBSY, syscall.EIO, syscall.ETIMEDOUT,
		syscall.EAGAIN, syscall.EDEADLK, syscall.EBUSY, syscall.ENFILE, syscall.EMFILE,
		syscall.EFBIG, syscall.ENOSPC, syscall.ENOBUFS, syscall.EDQUOT, syscall.ESTALE, syscall.ENOLCK:
		return true
	}
	return false
}

// Except is except(1): "except program [arg...]" runs the program and
// turns success into a bounce: 0 → 100, 111 → 111, anything else (a
// program that cannot be run included) → 0.
func Except(ctx context.Context, args []string, o IO) int {
	if len(args) == 0 {
		fmt.Fprintln(o.Stderr, "except: usage: except program [ arg ... ]")
		return 100
	}
	switch code := o.child(ctx, args, o.Stdin); code {
	case -1:
		return o.fatal("except", 111, "child crashed")
	case 0:
		return 100
	case 111:
		return o.fatal("except", 111, "temporary child error")
	}
	return 0
}

// Bouncesaying is bouncesaying(1): "bouncesaying error" prints error and
// bounces (100); "bouncesaying error program [arg...]" does so only when
// the program succeeds, defers when it exits 111 and lets delivery
// continue (0) otherwise.
func Bouncesaying(ctx context.Context, args []string, o IO) int {
	if len(args) == 0 {
		fmt.Fprintln(o.Stderr, "bouncesaying: usage: bouncesaying error [ program [ arg ... ] ]")
		return 100
	}
	if len(args) > 1 {
		switch code := o.child(ctx, args[1:], o.Stdin); code {
		case -1:
			return o.fatal("bouncesaying", 111, "child crashed")
		case 0:
		case 111:
			return o.fatal("bouncesaying", 111, "temporary child error")
		default:
			return 0
		}
	}
	fmt.Fprintln(o.Stderr, args[0])
	return 100
}

// Condredirect is condredirect(1): "condredirect newaddr program
// [arg...]" runs the program; when it succeeds, the message (rewound, with
// $DTLINE in front) goes to newaddr with envelope sender $SENDER and the
// helper exits 99, so that the .qmail file's later lines are skipped. 111
// from the program defers; anything else continues (0).
func Condredirect(ctx context.Context, args []string, o IO) int {
	if len(args) < 2 {
		fmt.Fprintln(o.Stderr, "condredirect: usage: condredirect newaddress program [ arg ... ]")
		return 100
	}
	switch code := o.child(ctx, args[1:], o.Stdin); code {
	case -1:
		return o.fatal("condredirect", 111, "child crashed")
	case 0:
	case 111:
		return o.fatal("condredirect", 111, "temporary child error")
	default:
		return 0
	}
	if _, err := o.Stdin.Seek(0, io.SeekStart); err != nil {
		return o.fatal("condredirect", 111, "unable to rewind: %s", errText(err))
	}
	sender, ok := o.Getenv("SENDER")
	if !ok {
		return o.fatal("condredirect", 100, "SENDER not set")
	}
	dtline, ok := o.Getenv("DTLINE")
	if !ok {
		return o.fatal("condredirect", 100, "DTLINE not set")
	}
	return o.inject(ctx, "condredirect", sender, dtline, []string{args[0]}, 99)
}

// Forward is forward(1): "forward addr..." injects $DTLINE and the message
// (from stdin's current offset) to the addresses, with envelope sender
// $NEWSENDER, and prints "forward: qp <id>".
func Forward(ctx context.Context, args []string, o IO) int {
	sender, ok := o.Getenv("NEWSENDER")
	if !ok {
		return o.fatal("forward", 100, "NEWSENDER not set")
	}
	dtline, ok := o.Getenv("DTLINE")
	if !ok {
		return o.fatal("forward", 100, "DTLINE not set")
	}
	return o.inject(ctx, "forward", sender, dtline, args, 0)
}

func (o IO) inject(ctx context.Context, name, sender, dtline string, rcpts []string, okCode int) int {
	if o.Forwarder == nil {
		return o.fatal(name, 111, "unable to fork: no injector")
	}
	r := io.MultiReader(strings.NewReader(dtline), o.Stdin)
	id, err := o.Forwarder.Forward(ctx, sender, rcpts, r)
	if oe := (*qq.OpenError)(nil); errors.As(err, &oe) {
		return o.fatal(name, 111, "unable to fork: %s", errText(oe.Err)) // qmail_open failed
	}
	if err != nil {
		var fe *dotqmail.ForwardError
		text := err.Error()
		if errors.As(err, &fe) {
			text = fe.Text
		}
		code := dotqmail.ExitCode(err)
		return o.fatal(name, code, "%s", text)
	}
	fmt.Fprintf(o.Stderr, "%s: qp %s\n", name, id)
	return okCode
}

// Preline is preline(1): "preline [-frdFRD] cmd [arg...]" runs cmd with a
// pipe as stdin carrying $UFLINE, $RPLINE and $DTLINE (each unless turned
// off by -f, -r, -d; -F, -R, -D turn them on again) and then the message
// unchanged, and exits with cmd's exit code.
func Preline(ctx context.Context, args []string, o IO) int {
	usage := func() int {
		fmt.Fprintln(o.Stderr, "preline: usage: preline cmd [ arg ... ]")
		return 100
	}
	uf, ok1 := o.Getenv("UFLINE")
	rp, ok2 := o.Getenv("RPLINE")
	dt, ok3 := o.Getenv("DTLINE")
	if !ok1 || !ok2 || !ok3 {
		return usage()
	}
	flagUF, flagRP, flagDT := true, true, true
	for len(args) > 0 && len(args[0]) > 1 && args[0][0] == '-' {
		if args[0] == "--" {
			args = args[1:]
			break
		}
		for _, c := range args[0][1:] {
			switch c {
			case 'f':
				flagUF = false
			case 'r':
				flagRP = false
			case 'd':
				flagDT = false
			case 'F':
				flagUF = true
			case 'R':
				flagRP = true
			case 'D':
				flagDT = true
			default:
				return usage()
			}
		}
		args = args[1:]
	}
	if len(args) == 0 {
		return usage()
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		return o.fatal("preline", execFailure(err), "unable to run %s: %s", args[0], errText(err))
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return o.fatal("preline", 111, "unable to create pipe: %s", errText(err))
	}
	defer pw.Close()
	cmd := exec.CommandContext(ctx, path, args[1:]...)
	cmd.Args[0] = args[0]
	cmd.Env = o.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pr, o.Stdout, o.Stderr
	err = cmd.Start()
	pr.Close()
	if err != nil {
		return o.fatal("preline", execFailure(err), "unable to run %s: %s", args[0], errText(err))
	}
	head := ""
	if flagUF {
		head += uf
	}
	if flagRP {
		head += rp
	}
	if flagDT {
		head += dt
	}
	_, werr := io.Copy(pw, io.MultiReader(strings.NewReader(head), o.Stdin))
	pw.Close()
	code := waitCode(cmd.Wait())
	if werr != nil {
		return o.fatal("preline", 111, "unable to copy input: %s", errText(werr))
	}
	if code < 0 {
		return o.fatal("preline", 111, "child crashed")
	}
	return code
}

// errText is djb's text for the errno in err, as the helpers' strerr
// messages word it ("file does not exist"). exec.LookPath's verdicts read
// as the errno execvp would have set: ENOENT for a program not found,
// EACCES for a file that is not executable.
func errText(err error) string {
	switch {
	case errors.Is(err, exec.ErrNotFound):
		err = syscall.ENOENT
	case errors.Is(err, fs.ErrPermission):
		err = syscall.EACCES
	}
	return errstr.Text(err)
}
