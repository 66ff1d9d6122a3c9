package smtpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// QmailQueue is an [Enqueuer] that runs a qmail-queue compatible program,
// as qmail-smtpd does (spec smtpd.md §11, queue.md §2): the message on the
// program's descriptor 0, then the envelope on its descriptor 1
// ("F" sender "\0", "T" recipient "\0" for each, "\0"), and notqmail's error
// pipe on descriptor 6. The id is the program's pid, as in qmail's
// "250 ok <time> qp <pid>". Its errors carry qmail_close's texts as a
// [Reply] ("451 qq write error or disk full (#4.3.0)", ...).
type QmailQueue struct {
	// Path is the program: $QMAILQUEUE, or QMAILHOME/bin/qmail-queue.
	Path string
	// Dir is its working directory (QMAILHOME); "" keeps the current one.
	Dir string
	// Env is its environment; nil inherits the server's.
	Env []string
}

// QueueError is a failed qmail-queue run: its exit status (-1 when it did
// not exit normally) and qmail_close's result string, whose first byte is
// "D" (permanent) or "Z" (temporary).
type QueueError struct {
	Exit   int
	Result string
}

func (e *QueueError) Error() string {
	return "smtpserver: qmail-queue: exit " + strconv.Itoa(e.Exit) + ": " + e.Result[1:]
}

// Permanent reports whether the result is a "D" one.
func (e *QueueError) Permanent() bool { return e.Result != "" && e.Result[0] == 'D' }

// Unwrap gives the SMTP reply qmail-smtpd writes for the result: 554 or 451
// followed by the text (spec §9.4).
func (e *QueueError) Unwrap() error {
	if e.Permanent() {
		return Reply{Code: 554, Text: e.Result[1:]}
	}
	return Reply{Code: 451, Text: e.Result[1:]}
}

// QueueResult is qmail_close's mapping from qmail-queue's exit status to a
// result string (queue.md §2.5); "" is success.
func QueueResult(exit int) string {
	switch exit {
	case 0:
		return ""
	case 11, 115:
		return "Denvelope address too long for qq (#5.1.3)"
	case 31:
		return "Dmail server permanently rejected message (#5.3.0)"
	case 51:
		return "Zqq out of memory (#4.3.0)"
	case 52:
		return "Zqq timeout (#4.3.0)"
	case 53:
		return "Zqq write error or disk full (#4.3.0)"
	case 54:
		return "Zqq read error (#4.3.0)"
	case 55:
		return "Zqq unable to read configuration (#4.3.0)"
	case 56:
		return "Zqq trouble making network connection (#4.3.0)"
	case 61:
		return "Zqq trouble in home directory (#4.3.0)"
	case 62, 63, 64, 65, 66:
		return "Zqq trouble creating files in queue (#4.3.0)"
	case 71:
		return "Zmail server temporarily rejected message (#4.3.0)"
	case 72:
		return "Zconnection to mail server timed out (#4.4.1)"
	case 73:
		return "Zconnection to mail server rejected (#4.4.1)"
	case 74:
		return "Zcommunication with mail server failed (#4.4.2)"
	case 81, 91:
		return "Zqq internal bug (#4.3.0)"
	case 120:
		return "Zunable to exec qq (#4.3.0)"
	}
	if exit >= 11 && exit <= 40 {
		return "Dqq permanent problem (#5.3.0)"
	}
	return "Zqq temporary problem (#4.3.0)"
}

// Enqueue runs the program. If msg fails (the message broke a rule or the
// client went away), the envelope is never written, so qmail-queue exits
// 54 and queues nothing, and msg's error is returned.
func (q *QmailQueue) Enqueue(ctx context.Context, from string, to []string, msg io.Reader) (string, error) {
	mr, mw, err := os.Pipe()
	if err != nil {
		return "", fmt.Errorf("smtpserver: qmail-queue: %w", err)
	}
	er, ew, err := os.Pipe()
	if err != nil {
		mr.Close()
		mw.Close()
		return "", fmt.Errorf("smtpserver: qmail-queue: %w", err)
	}
	xr, xw, err := os.Pipe()
	if err != nil {
		mr.Close()
		mw.Close()
		er.Close()
		ew.Close()
		return "", fmt.Errorf("smtpserver: qmail-queue: %w", err)
	}
	cmd := exec.Command(q.Path)
	cmd.Dir = q.Dir
	cmd.Env = q.Env
	cmd.Stdin = mr
	cmd.Stdout = er // descriptor 1 is read by qmail-queue: the envelope
	cmd.ExtraFiles = []*os.File{nil, nil, nil, xw}
	err = cmd.Start()
	mr.Close()
	er.Close()
	xw.Close()
	if err != nil {
		mw.Close()
		ew.Close()
		xr.Close()
		// qmail forks first and the child's exec fails: the client sees
		// 354, sends the data, and gets "unable to exec qq".
		if _, err := io.Copy(io.Discard, msg); err != nil {
			return "", err
		}
		return "", &QueueError{Exit: 120, Result: QueueResult(120)}
	}
	id := strconv.Itoa(cmd.Process.Pid)
	defer xr.Close()

	writeFailed := false
	_, cerr := io.Copy(writerFunc(func(p []byte) (int, error) {
		if writeFailed {
			return len(p), nil // keep reading the client's data
		}
		if _, err := mw.Write(p); err != nil {
			writeFailed = true
		}
		return len(p), nil
	}), msg)
	mw.Close()
	if cerr == nil && !writeFailed {
		env := make([]byte, 0, 64)
		env = append(env, 'F')
		env = append(env, from...)
		env = append(env, 0)
		for _, r := range to {
			env = append(env, 'T')
			env = append(env, r...)
			env = append(env, 0)
		}
		env = append(env, 0)
		if _, err := ew.Write(env); err != nil {
			writeFailed = true
		}
	}
	ew.Close()
	custom := make([]byte, 256)
	n, _ := io.ReadFull(xr, custom)
	custom = custom[:n]
	werr := cmd.Wait()
	if cerr != nil {
		return "", cerr
	}
	exit := 0
	if werr != nil {
		var ee *exec.ExitError
		if !errors.As(werr, &ee) {
			return "", &QueueError{Exit: -1, Result: "Zqq crashed (#4.3.0)"}
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "", &QueueError{Exit: -1, Result: "Zqq crashed (#4.3.0)"}
		}
		exit = ee.ExitCode()
	}
	if exit == 82 && len(custom) >= 3 && (custom[0] == 'D' || custom[0] == 'Z') {
		return "", &QueueError{Exit: 82, Result: string(custom[:min(len(custom), 255)])}
	}
	if exit == 0 && writeFailed {
		return "", &QueueError{Exit: 0, Result: "Zqq read error (#4.3.0)"}
	}
	if r := QueueResult(exit); r != "" {
		return "", &QueueError{Exit: exit, Result: r}
	}
	return id, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
