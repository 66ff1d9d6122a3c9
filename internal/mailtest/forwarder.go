package mailtest

import (
	"context"
	"io"
)

// Forwarder is a dotqmail.Forwarder that records the last message it is
// given to forward, for tests of programs that forward (fastforward,
// dot-forward, forward, condredirect).
type Forwarder struct {
	// Err, when set, is returned (after the message is read) and nothing
	// is recorded.
	Err error
	// Sender, Rcpts and Msg are the last message forwarded.
	Sender string
	Rcpts  []string
	Msg    string
	// Calls counts the calls to Forward.
	Calls int
}

// Forward reads r to its end and records it; the queue id is "4242".
func (q *Forwarder) Forward(ctx context.Context, sender string, rcpts []string, r io.Reader) (string, error) {
	q.Calls++
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	if q.Err != nil {
		return "", q.Err
	}
	q.Sender, q.Rcpts, q.Msg = sender, rcpts, string(b)
	return "4242", nil
}
