package dotqmail

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// programWaitDelay bounds how long a finished program's output pipe is
// read after the program exits, when a background process it started
// still holds it (qmail-local does not wait for that either).
const programWaitDelay = 5 * time.Second

// program runs a program line as qmail-local does: "/bin/sh -c command"
// in the home directory, the message file rewound as stdin, the
// environment of qmail-command(8), stdout and stderr into the report. It
// returns stop for exit 99.
func (x *run) program(ctx context.Context, command string) (stop bool, err error) {
	stdin, err := x.msg.stdin()
	if err != nil {
		return false, &Error{Text: "Unable to rewind message. (#4.3.0)", Err: err}
	}
	shell := x.d.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	cmd := exec.CommandContext(ctx, shell, "-c", command)
	cmd.Args[0] = shell
	cmd.Dir = x.t.Home
	cmd.Env = x.environ()
	cmd.Stdin = stdin
	cmd.Stdout, cmd.Stderr = throughPipe(x.stdout), throughPipe(x.stderr)
	cmd.WaitDelay = programWaitDelay
	// A cancelled or timed-out delivery kills the program's whole process
	// group with SIGKILL, which no program can ignore: its children (a
	// pipeline's other members, what it started in the background) go
	// with it and do not keep its output open. Only a process that left
	// the group (setsid, setpgid) escapes, as it would any process-group
	// based supervisor (Postfix's too).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		return false, &Error{Text: "Unable to run " + shell + ": " + errText(unwrapExec(err)) + ". (#4.3.0)", Err: err}
	}
	err = cmd.Wait()
	if err == nil {
		return false, nil
	}
	if cerr := ctx.Err(); cerr != nil {
		// Killed, with its process group, by cmd.Cancel.
		if errors.Is(cerr, context.DeadlineExceeded) {
			return false, &Error{Text: "Timeout on program delivery. (#4.3.0)", Err: cerr}
		}
		return false, &Error{Text: "Aack, child crashed. (#4.3.0)", Err: cerr}
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if errors.Is(err, exec.ErrWaitDelay) {
			return false, nil // the program itself exited 0
		}
		return false, &Error{Text: "Unable to run " + shell + ": " + errText(err) + ". (#4.3.0)", Err: err}
	}
	ws, _ := ee.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return false, &Error{Text: "Aack, child crashed. (#4.3.0)",
			Err: &ExitError{Command: command, Code: -1, Signal: ws.Signal()}}
	}
	code := ee.ExitCode()
	switch {
	case code == 99:
		return true, nil
	case permanentExit(code):
		return false, &Error{Perm: true, Err: &ExitError{Command: command, Code: code}}
	}
	return false, &Error{Err: &ExitError{Command: command, Code: code}}
}

// throughPipe returns w, unless w is a file that is not a pipe or a
// socket: then a writer that os/exec connects to the program through a
// pipe. A program (running as the recipient) never gets a descriptor open
// for writing to a file it may not own: it could grow it, rewind it,
// truncate it, or keep writing to it after the delivery.
func throughPipe(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return w
	}
	if fi, err := f.Stat(); err == nil && fi.Mode()&(os.ModeNamedPipe|os.ModeSocket) != 0 {
		return w
	}
	return struct{ io.Writer }{f}
}

func unwrapExec(err error) error {
	var pe interface{ Unwrap() error }
	if errors.As(err, &pe) {
		if u := pe.Unwrap(); u != nil {
			return u
		}
	}
	return err
}
