package dotforward

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/internal/errstr"
)

// file is a .forward file open for reading with the system calls
// themselves: opened with O_NONBLOCK, as dot-forward's open_read does, so
// that a FIFO never blocks (no writer: it reads as empty; a writer that
// writes nothing: "temporary failure"), and read without the poller, which
// would wait on it.
type file struct{ fd int }

func openFile(path string) (*file, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &file{fd: fd}, nil
	}
}

func (f *file) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(f.fd, p)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f *file) close() { syscall.Close(f.fd) }

// programWaitDelay bounds how long a finished program's output is waited
// for when it left a background process holding it (only when Stdout or
// Stderr is not an *os.File, which programs get as it is).
const programWaitDelay = 5 * time.Second

// program runs a program entry as dot-forward's run does: "/bin/sh -c
// command" with a pipe as stdin, fed UFLine, RPLine, DTLine and the
// message from its current offset; then msg is rewound.
func (d *Deliverer) program(ctx context.Context, command string, msg io.ReadSeeker) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return &Error{Text: "unable to create pipe: " + errstr.Text(err), Err: err}
	}
	defer pw.Close()
	shell := d.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	cmd := exec.CommandContext(ctx, shell, "-c", command)
	cmd.Dir = d.Dir
	cmd.Env = d.Env
	cmd.Stdin = pr
	cmd.Stdout, cmd.Stderr = d.Stdout, d.Stderr
	cmd.WaitDelay = programWaitDelay
	err = cmd.Start()
	pr.Close()
	if err != nil {
		return &Error{Text: "unable to run " + shell + ": " + errstr.Text(err), Err: err}
	}
	// The program may not read its input: writes to it are blind, as
	// dot-forward's are, and the message is read to its end regardless.
	// A cancelled ctx kills the program and stops the writes.
	stop := context.AfterFunc(ctx, func() { pw.SetWriteDeadline(time.Unix(1, 0)) })
	w := blind{w: pw}
	io.WriteString(w, d.UFLine+d.RPLine+d.DTLine)
	_, rerr := io.Copy(w, msg)
	stop()
	pw.Close()
	werr := cmd.Wait()
	if rerr != nil {
		return &Error{Text: "unable to read message: " + errstr.Text(rerr), Err: rerr}
	}
	if werr != nil {
		if cerr := ctx.Err(); cerr != nil {
			return &Error{Text: "child crashed", Err: cerr}
		}
		var ee *exec.ExitError
		if !errors.As(werr, &ee) {
			if !errors.Is(werr, exec.ErrWaitDelay) {
				return &Error{Text: "unable to run " + shell + ": " + errstr.Text(werr), Err: werr}
			}
		} else if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &Error{Text: "child crashed", Err: werr}
		} else {
			switch code := ee.ExitCode(); code {
			case 100, 64, 65, 70, 76, 77, 78, 112:
				return &Error{Perm: true, Err: werr}
			default:
				return &Error{Err: werr}
			}
		}
	}
	if _, err := msg.Seek(0, io.SeekStart); err != nil {
		return &Error{Text: "unable to rewind input: " + errstr.Text(err), Err: err}
	}
	return nil
}

// blind is dot-forward's blindwrite: a write error is ignored (the
// program stopped reading) and the data counts as written.
type blind struct{ w io.Writer }

func (b blind) Write(p []byte) (int, error) {
	b.w.Write(p)
	return len(p), nil
}
