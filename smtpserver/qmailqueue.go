package smtpserver

import (
	"context"
	"errors"
	"io"
	"strconv"

	"github.com/qmailkit/qmailkit/internal/qq"
)

// QmailQueue is an [Enqueuer] that runs a qmail-queue compatible program,
// as qmail-smtpd does (see qmail-queue(8)): the message on the
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
// followed by the text.
func (e *QueueError) Unwrap() error {
	if e.Permanent() {
		return Reply{Code: 554, Text: e.Result[1:]}
	}
	return Reply{Code: 451, Text: e.Result[1:]}
}

// QueueResult is qmail_close's mapping from qmail-queue's exit status to a
// result string ("D" then the text if permanent, "Z" then the text if
// temporary); "" is success.
func QueueResult(exit int) string { return qq.ExitText(exit, nil) }

// Enqueue runs the program. If msg fails (the message broke a rule or the
// client went away), the envelope is never written, so qmail-queue exits
// 54 and queues nothing, and msg's error is returned.
func (q *QmailQueue) Enqueue(ctx context.Context, from string, to []string, msg io.Reader) (string, error) {
	p := qq.Program{Path: q.Path, Dir: q.Dir, Env: q.Env}
	id, err := p.Run(ctx, from, to, msg)
	if qe := (*qq.Error)(nil); errors.As(err, &qe) {
		return "", &QueueError{Exit: qe.Exit, Result: qe.Result}
	}
	return id, err
}
