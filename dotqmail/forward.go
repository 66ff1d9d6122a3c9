package dotqmail

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"

	"github.com/qmailkit/qmailkit/internal/qq"
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

// ForwardError is a refused injection with qmail's client text (see
// qmail-queue(8)), such as "qq write error or disk full (#4.3.0)".
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
// qmail client does (see qmail-queue(8)): the message on descriptor 0, the
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
	p := qq.Program{Path: q.path(), Dir: q.home(), Env: q.Env, Stderr: q.Stderr}
	id, err := p.Run(ctx, sender, recipients, r)
	if qe := (*qq.Error)(nil); errors.As(err, &qe) {
		return "", &ForwardError{Text: qe.Text(), Perm: qe.Permanent(), Err: qe.Err}
	}
	if err != nil { // the message could not be read: nothing was queued
		return "", &ForwardError{Text: "qq read error (#4.3.0)", Err: err}
	}
	return id, nil
}

// QueueExitText is qmail's client mapping of a qmail-queue exit code
// (qmail_close in qmail.c): "" for 0, else 'D' (permanent) or 'Z'
// (temporary) and the text. custom is what an injector exiting 82 wrote on
// descriptor 6; code -1 means the injector was killed by a signal.
func QueueExitText(code int, custom []byte) string { return qq.ExitText(code, custom) }
