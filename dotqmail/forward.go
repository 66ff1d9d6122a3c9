package dotqmail

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
)

// Forwarder injects a forwarded message into the queue: what qmail-local,
// forward and condredirect do through qmail-queue. The queue satisfies it
// in-process; [QueueProgram] satisfies it by running qmail-queue.
//
// Forward reads the message from r to its end, queues it with the envelope
// sender and recipients (in order, duplicates kept, none is allowed), and
// returns the queue's id for the summary line "qp <id>". It returns only
// once the message is durable. An error is permanent when it has a
// Permanent() bool method returning true; its text (Error, or the Text of a
// *ForwardError) goes into the report "Unable to forward message: <text>.".
type Forwarder interface {
	Forward(ctx context.Context, sender string, recipients []string, r io.Reader) (id string, err error)
}

// ForwarderFunc adapts a function to [Forwarder].
type ForwarderFunc func(ctx context.Context, sender string, recipients []string, r io.Reader) (string, error)

// Forward calls f.
func (f ForwarderFunc) Forward(ctx context.Context, sender string, recipients []string, r io.Reader) (string, error) {
	return f(ctx, sender, recipients, r)
}

// ForwardError is a refused injection with qmail's client text (queue.md
// §2.5), such as "qq write error or disk full (#4.3.0)".
type ForwardError struct {
	Text string // the text, without qmail's leading D or Z
	Perm bool   // qmail's D: the injector refused the message for good
	Err  error  // the cause, if any
}

func (e *ForwardError) Error() string { return e.Text }

func (e *ForwardError) Unwrap() error { return e.Err }

// Permanent reports whether the refusal is permanent.
func (e *ForwardError) Permanent() bool { return e.Perm }

// forwardText is the <text> of "Unable to forward message: <text>.".
func forwardText(err error) string {
	var fe *ForwardError
	if errors.As(err, &fe) {
		return fe.Text
	}
	return err.Error()
}

// QueueProgram is a [Forwarder] that runs a qmail-queue program as every
// qmail client does (queue.md §2.1): the message on descriptor 0, the
// envelope "F<sender>\0T<rcpt>\0...\0" on descriptor 1, descriptor 6 open
// for an exit-82 text, the working directory QMAILHOME, and the exit code
// turned into qmail's client text. The id returned is the program's pid,
// as qmail-local's "qp" line shows.
type QueueProgram struct {
	// Path is the program. Empty: $QMAILQUEUE when Env (or, with Env nil,
	// the process environment) sets it, else Home + "/bin/qmail-queue".
	Path string
	// Home is QMAILHOME, the program's working directory; empty means
	// $QMAILHOME, else /var/qmail.
	Home string
	// Env is the program's environment; nil means the process's.
	Env []string
	// Stderr receives what the program writes on descriptor 2; nil
	// discards it.
	Stderr io.Writer
}

func (q *QueueProgram) getenv(name string) string {
	if q.Env == nil {
		return os.Getenv(name)
	}
	v := ""
	for _, kv := range q.Env {
		if len(kv) > len(name) && kv[len(name)] == '=' && kv[:len(name)] == name {
			v = kv[len(name)+1:]
		}
	}
	return v
}

func (q *QueueProgram) home() string {
	if q.Home != "" {
		return q.Home
	}
	if h := q.getenv("QMAILHOME"); h != "" {
		return h
	}
	return "/var/qmail"
}

func (q *QueueProgram) path() string {
	if q.Path != "" {
		return q.Path
	}
	if p := q.getenv("QMAILQUEUE"); p != "" {
		return p
	}
	return filepath.Join(q.home(), "bin", "qmail-queue")
}

// Forward runs the program and feeds it the message and the envelope.
func (q *QueueProgram) Forward(ctx context.Context, sender string, recipients []string, r io.Reader) (string, error) {
	var env bytes.Buffer
	env.WriteByte('F')
	env.WriteString(sender)
	env.WriteByte(0)
	for _, rc := range recipients {
		env.WriteByte('T')
		env.WriteString(rc)
		env.WriteByte(0)
	}
	env.WriteByte(0)

	mr, mw, err := os.Pipe()
	if err != nil {
		return "", qqError(120, nil, err)
	}
	defer mr.Close()
	defer mw.Close()
	er, ew, err := os.Pipe()
	if err != nil {
		return "", qqError(120, nil, err)
	}
	defer er.Close()
	defer ew.Close()
	// Descriptor 6 is a file, not a pipe: an injector that writes a
	// long text there before exiting can never block on it.
	custom, err := os.CreateTemp("", ".dotqmail-qq-")
	if err != nil {
		return "", qqError(120, nil, err)
	}
	os.Remove(custom.Name())
	defer custom.Close()

	cmd := exec.CommandContext(ctx, q.path())
	cmd.Dir = q.home()
	cmd.Env = q.Env
	cmd.Stdin = mr
	cmd.Stdout = er
	cmd.Stderr = q.Stderr
	cmd.ExtraFiles = []*os.File{nil, nil, nil, custom}
	if err := cmd.Start(); err != nil {
		// qmail's client exits 61 when it cannot chdir to QMAILHOME.
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) && pe.Op == "chdir" {
			return "", qqError(61, nil, err)
		}
		return "", qqError(120, nil, err)
	}
	mr.Close()
	er.Close()
	// qmail-queue reads the whole message before the envelope, so they are
	// written one after the other; a write error (an injector that died)
	// is "qq read error" unless the exit code says more.
	_, werr := io.Copy(mw, r)
	mw.Close()
	if werr == nil {
		_, werr = ew.Write(env.Bytes())
	}
	ew.Close()
	err = cmd.Wait()
	pid := strconv.Itoa(cmd.Process.Pid)
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return "", qqError(120, nil, err)
		}
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = -1
		}
	}
	if code == 0 && werr != nil {
		return "", &ForwardError{Text: "qq read error (#4.3.0)", Err: werr}
	}
	if code == 0 {
		return pid, nil
	}
	var text []byte
	if code == 82 {
		buf := make([]byte, 256)
		n, _ := custom.ReadAt(buf, 0)
		text = buf[:n]
	}
	return "", qqError(code, text, err)
}

// qqError turns an injector exit code into qmail's client text (queue.md
// §2.5); code -1 means killed by a signal.
func qqError(code int, custom []byte, cause error) error {
	s := QueueExitText(code, custom)
	if s == "" || (s[0] != 'D' && s[0] != 'Z') {
		s = "Z" + s // a custom text without a class letter is temporary
	}
	return &ForwardError{Text: s[1:], Perm: s[0] == 'D', Err: cause}
}

// QueueExitText is qmail's client mapping of a qmail-queue exit code
// (queue.md §2.5, qmail_close): "" for 0, else 'D' (permanent) or 'Z'
// (temporary) and the text. custom is what an injector exiting 82 wrote on
// descriptor 6; code -1 means the injector was killed by a signal.
func QueueExitText(code int, custom []byte) string {
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
	case code == 82 && len(custom) >= 3:
		if len(custom) > 255 {
			custom = custom[:255]
		}
		return string(custom)
	case code >= 11 && code <= 40:
		return "Dqq permanent problem (#5.3.0)"
	}
	return "Zqq temporary problem (#4.3.0)"
}
