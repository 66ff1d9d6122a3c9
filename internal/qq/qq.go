// Package qq is the client side of qmail-queue (qmail's qmail_open and
// qmail_close): it runs a qmail-queue compatible program, feeds it the
// message on descriptor 0 and the envelope on descriptor 1, offers
// descriptor 6 for an exit-82 text, and turns the exit code into qmail's
// result text. qmail-smtpd, qmail-local, qmail-inject and forward all talk
// to the queue this way; smtpserver, dotqmail and the inject programs share
// this one copy.
package qq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// Program is a qmail-queue program to run.
type Program struct {
	// Path is the program ($QMAILQUEUE, or QMAILHOME/bin/qmail-queue).
	Path string
	// Dir is its working directory (QMAILHOME); "" keeps the current one.
	Dir string
	// Env is its environment; nil inherits the process's.
	Env []string
	// Stderr receives its descriptor 2; nil discards it.
	Stderr io.Writer
}

// Error is a refused injection: the program's exit code (-1 when a signal
// killed it) and qmail_close's result, a leading 'D' (permanent) or 'Z'
// (temporary) and the text, such as "Zqq write error or disk full
// (#4.3.0)".
type Error struct {
	Exit   int
	Result string
	Err    error // the cause, when the program could not be run or fed
}

func (e *Error) Error() string { return "qmail-queue: exit " + strconv.Itoa(e.Exit) + ": " + e.Text() }

// Text is the result without its class letter: what goes into an SMTP
// reply or a qmail-local report.
func (e *Error) Text() string { return e.Result[1:] }

// Permanent reports whether the result is a 'D' one; any other first byte
// (an exit-82 text may start with anything) is temporary.
func (e *Error) Permanent() bool { return e.Result[0] == 'D' }

func (e *Error) Unwrap() error { return e.Err }

// OpenError is the cause of an *Error when the program could not be
// started because its pipes could not be made (qmail_open failing, which
// qmail-local reports as "Unable to fork: <error>"). The Error's result
// is still "unable to exec qq" for callers that do not look further.
type OpenError struct {
	Err error
}

func (e *OpenError) Error() string { return "qq: unable to make pipes: " + e.Err.Error() }

func (e *OpenError) Unwrap() error { return e.Err }

func fail(exit int, custom []byte, cause error) *Error {
	return &Error{Exit: exit, Result: ExitText(exit, custom), Err: cause}
}

// Envelope is the envelope qmail-queue reads on descriptor 1:
// "F" sender NUL, "T" recipient NUL for each recipient, and a final NUL.
func Envelope(from string, to []string) []byte {
	n := len(from) + 3
	for _, r := range to {
		n += len(r) + 2
	}
	env := make([]byte, 0, n)
	env = append(env, 'F')
	env = append(env, from...)
	env = append(env, 0)
	for _, r := range to {
		env = append(env, 'T')
		env = append(env, r...)
		env = append(env, 0)
	}
	return append(env, 0)
}

// Run queues msg for from and to through the program and returns the
// program's pid (qmail's "qp"). msg is always read to its end, even when the
// program stops reading it early, so a server can go on reading its client's
// data. If reading msg fails, the envelope is never written, so the program
// queues nothing (it exits 54), and msg's error is returned as is. Every
// other failure is an *Error. Cancelling ctx kills the program.
func (p *Program) Run(ctx context.Context, from string, to []string, msg io.Reader) (string, error) {
	mr, mw, err := os.Pipe()
	if err != nil {
		return "", fail(120, nil, &OpenError{err})
	}
	defer mw.Close()
	er, ew, err := os.Pipe()
	if err != nil {
		mr.Close()
		return "", fail(120, nil, &OpenError{err})
	}
	defer ew.Close()
	xr, xw, err := os.Pipe()
	if err != nil {
		mr.Close()
		er.Close()
		return "", fail(120, nil, &OpenError{err})
	}
	defer xr.Close()

	cmd := exec.CommandContext(ctx, p.Path)
	cmd.Dir = p.Dir
	cmd.Env = p.Env
	cmd.Stdin = mr
	cmd.Stdout = er // descriptor 1 is read by qmail-queue: the envelope
	cmd.Stderr = p.Stderr
	cmd.ExtraFiles = []*os.File{nil, nil, nil, xw}
	err = cmd.Start()
	mr.Close()
	er.Close()
	xw.Close()
	if err != nil {
		// qmail forks and the child's exec fails: the client still sends
		// the data and then reads "unable to exec qq"; qmail-queue itself
		// exits 61 when it cannot chdir to QMAILHOME.
		if _, rerr := io.Copy(io.Discard, msg); rerr != nil {
			return "", rerr
		}
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) && pe.Op == "chdir" {
			return "", fail(61, nil, err)
		}
		return "", fail(120, nil, err)
	}

	// The message first, then the envelope: qmail-queue reads them in that
	// order. A write error means the program stopped reading; the rest of
	// msg is drained and the exit code says why.
	var werr error
	_, rerr := io.Copy(writerFunc(func(b []byte) (int, error) {
		if werr == nil {
			_, werr = mw.Write(b)
		}
		return len(b), nil
	}), msg)
	mw.Close()
	if rerr == nil && werr == nil {
		_, werr = ew.Write(Envelope(from, to))
	}
	ew.Close()
	// Descriptor 6 is read to its end, keeping 256 bytes, so that a
	// program writing more can never block on it.
	custom := &capped{max: 256}
	io.Copy(custom, xr)
	waitErr := cmd.Wait()
	if rerr != nil {
		return "", rerr
	}
	exit := 0
	if waitErr != nil {
		var ee *exec.ExitError
		if !errors.As(waitErr, &ee) {
			return "", fail(-1, nil, waitErr)
		}
		exit = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			exit = -1
		}
	}
	switch {
	case exit == 0 && werr != nil:
		return "", fail(54, nil, werr)
	case exit != 0:
		return "", fail(exit, custom.b, waitErr)
	}
	return strconv.Itoa(cmd.Process.Pid), nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// capped keeps the first max bytes written to it and discards the rest.
type capped struct {
	b   []byte
	max int
}

func (c *capped) Write(b []byte) (int, error) {
	if room := c.max - len(c.b); room > 0 {
		c.b = append(c.b, b[:min(room, len(b))]...)
	}
	return len(b), nil
}

// ExitText is qmail_close's result for a qmail-queue exit code: "" for 0,
// else 'D' (permanent) or 'Z' (temporary) and the text. custom is what the
// program wrote on descriptor 6 before exiting 82; a negative code means a
// signal killed it.
func ExitText(code int, custom []byte) string {
	switch {
	case code < 0:
		return "Zqq crashed (#4.3.0)"
	case code == 0:
		return ""
	case code == 11 || code == 115:
		return "Denvelope address too long for qq (#5.1.3)"
	case code == 31:
		return "Dmail server permanently rejected message (#5.3.0)"
	case code == 51:
		return "Zqq out of memory (#4.3.0)"
	case code == 52:
		return "Zqq timeout (#4.3.0)"
	case code == 53:
		return "Zqq write error or disk full (#4.3.0)"
	case code == 54:
		return "Zqq read error (#4.3.0)"
	case code == 55:
		return "Zqq unable to read configuration (#4.3.0)"
	case code == 56:
		return "Zqq trouble making network connection (#4.3.0)"
	case code == 61:
		return "Zqq trouble in home directory (#4.3.0)"
	case code >= 62 && code <= 66:
		return "Zqq trouble creating files in queue (#4.3.0)"
	case code == 71:
		return "Zmail server temporarily rejected message (#4.3.0)"
	case code == 72:
		return "Zconnection to mail server timed out (#4.4.1)"
	case code == 73:
		return "Zconnection to mail server rejected (#4.4.1)"
	case code == 74:
		return "Zcommunication with mail server failed (#4.4.2)"
	case code == 81 || code == 91:
		return "Zqq internal bug (#4.3.0)"
	case code == 120:
		return "Zunable to exec qq (#4.3.0)"
	case code == 82 && len(custom) >= 3: // verbatim: its first byte is the class
		return string(custom[:min(len(custom), 255)])
	case code >= 11 && code <= 40:
		return "Dqq permanent problem (#5.3.0)"
	}
	return "Zqq temporary problem (#4.3.0)"
}

// String helps debugging: the program and its directory.
func (p *Program) String() string { return fmt.Sprintf("%s (in %s)", p.Path, p.Dir) }
