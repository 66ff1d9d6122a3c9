package pop3

import (
	"context"
	"io"
)

// Message is one message of a maildrop as a session numbers it.
type Message struct {
	// UID is the message's unique id, stable across sessions (UIDL). For a
	// Maildir it is the unique name. The server makes it safe to send
	// (see the package doc, # Compatibility).
	UID string
	// Size is the message's size as stored: its octets with LF line ends.
	// qmail-pop3d reports it in STAT and LIST.
	Size int64
	// WireSize is the size as sent, with CRLF line ends (RFC 1939
	// section 5), which a modern server reports. Negative means unknown:
	// the server then reads the message to count it, once per session.
	WireSize int64
}

// Update is what a session changes at QUIT, the only time it changes
// anything (RFC 1939 section 6): for message i (0-based), Deleted[i] marks
// it deleted and Retrieved[i] retrieved whole by RETR.
type Update struct {
	Deleted   []bool
	Retrieved []bool
}

// Mailbox is a maildrop opened for one session. The server calls Messages
// once, Open for each RETR and TOP, Commit at most once (at QUIT), and
// Close always, last.
type Mailbox interface {
	// Messages lists the maildrop: message i+1 of the session is
	// element i, and the numbering never changes during the session.
	Messages(ctx context.Context) ([]Message, error)
	// Open returns message i (0-based) for reading. The server reads it
	// in pieces and closes it.
	Open(ctx context.Context, i int) (io.ReadCloser, error)
	// Commit applies the session's update: deletes the messages marked
	// deleted and marks the others as read (for a Maildir: moves them
	// from new/ to cur/). It goes on after a failure and returns them all
	// (errors.Join); each is reported to the client.
	Commit(ctx context.Context, u Update) error
	// Close releases the mailbox and its lock, changing nothing.
	Close() error
}
