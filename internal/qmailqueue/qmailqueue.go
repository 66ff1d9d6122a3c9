// Package qmailqueue is the body of qmail-queue on a [queue.Queue]: the
// message read from one descriptor to its end, then the envelope from the
// other, and qmail-queue's exit code as the result (qmail-queue(8)). The
// command examples/qmail-queue and internal/lspawn's QueueServer (which
// reads descriptors passed over a socket) share it.
//
// # Compatibility
//
// The exit codes are qmail-queue's. One difference: a message whose
// envelope is refused (exit 11 or 91) is removed at once, where qmail-queue
// exits without cleanup and leaves the message file to qmail-clean's
// 36-hour rule; nothing ever reads that file, and a long-running server
// must not keep it open.
package qmailqueue

import (
	"context"
	"errors"
	"io"
	"os/user"
	"strconv"

	"github.com/qmailkit/qmailkit/queue"
)

// Run queues the message read from message, to its end, with the envelope
// then read from envelope ("F" sender NUL, "T" recipient NUL ..., NUL), as
// qmail-queue does with its descriptors 0 and 1, and returns qmail-queue's
// exit code: 0 when the message is durably queued; else the *queue.Error's
// code, 54 when a read fails, 62 when the message cannot be created for
// another reason (a closed queue, ctx ended) and 81 when it cannot be
// committed. o is the Received line's origin; the zero Origin stands for
// the queue's own (queue.Options.Origin). Nothing is queued unless Run
// returns 0.
func Run(ctx context.Context, q *queue.Queue, o queue.Origin, message, envelope io.Reader) int {
	w, err := q.Create(ctx, o)
	if err != nil {
		return code(err, 62)
	}
	if _, err := io.Copy(w, message); err != nil {
		w.Abort()
		return code(err, 54)
	}
	env, err := queue.ReadEnvelope(envelope)
	if err != nil {
		w.Abort()
		return code(err, 54)
	}
	if _, err := w.Commit(ctx, env); err != nil {
		return code(err, 81)
	}
	return 0
}

// code is the exit code of a *queue.Error in err's chain, else otherwise.
func code(err error, otherwise int) int {
	var qe *queue.Error
	if errors.As(err, &qe) {
		return qe.Code
	}
	return otherwise
}

// Namer returns how qmail-queue names an injector from its real uid, for
// the Received line's "invoked ..." words: "by alias", "from network" or
// "for bounce" for the uid of the qmail account alias, qmaild or qmails;
// else "" (which queue.Origin reads as "by uid N"). The accounts are looked
// up once, by Namer, so that a server naming many injectors does not read
// the password database for each.
func Namer() func(uid int) string {
	names := map[int]string{}
	for _, u := range []struct{ name, who string }{
		{"alias", "by alias"}, {"qmaild", "from network"}, {"qmails", "for bounce"},
	} {
		if pw, err := user.Lookup(u.name); err == nil {
			if uid, err := strconv.Atoi(pw.Uid); err == nil {
				if _, dup := names[uid]; !dup {
					names[uid] = u.who
				}
			}
		}
	}
	return func(uid int) string { return names[uid] }
}
