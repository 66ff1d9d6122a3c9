package queue

import (
	"context"
	"io"
)

// Delivery is one delivery the Scheduler asks for: one message to one local
// recipient, or to one or more recipients at one remote domain.
type Delivery struct {
	ID ID
	// Sender is the envelope sender for this delivery, after qmail's VERP
	// expansion (a sender ending in "-@[]"; a VERP sender is never batched
	// over several recipients).
	Sender string
	// Recipients are the routed addresses: exactly one for a local
	// delivery; for a remote one, all at the same domain (compared without
	// regard to ASCII case).
	Recipients []string
	// Message is the message file, Received line included. It is closed
	// when the deliverer returns.
	Message *io.SectionReader
	// DSN is the message's Delivery Status Notification parameters (RFC
	// 3461), its Recipients in the order of Recipients; nil when the
	// message has none. A remote deliverer passes them on where the
	// server supports DSN (and says so in Result.DSNPassed).
	DSN *DSN
}

// Result is the outcome of a delivery to one recipient.
type Result struct {
	// Report is qmail's report text for the recipient: for a success what
	// was done ("did 1+0+0\n"), for a failure the reason, ending in an
	// enhanced status code in qmail's form "(#5.1.1)" when there is one.
	// It goes into the log and, for a permanent failure, into the bounce.
	// An empty Report with a non-nil Err uses Err's text.
	Report string
	// Err is nil for a success. An error is permanent, and the recipient
	// bounced, when errors.As finds a Permanent() bool method returning
	// true; every other error is temporary and the recipient is retried.
	Err error
	// DSNPassed reports, for a remote success, that the server accepted
	// the recipient's DSN request (it supports DSN and was given NOTIFY):
	// it reports the delivery, so the queue does not. When false, a
	// recipient that asked for NOTIFY=SUCCESS is sent a "relayed"
	// notification.
	DSNPassed bool
}

// LocalDeliverer delivers a message to one local recipient, as qmail-lspawn
// and qmail-local do.
type LocalDeliverer interface {
	DeliverLocal(ctx context.Context, d Delivery) Result
}

// RemoteDeliverer delivers a message to recipients at one remote domain, as
// qmail-rspawn and qmail-remote do, in one transaction where it can. It
// returns one Result per recipient, in the order of d.Recipients.
type RemoteDeliverer interface {
	DeliverRemote(ctx context.Context, d Delivery) []Result
}

// LocalFunc adapts a function to LocalDeliverer.
type LocalFunc func(ctx context.Context, d Delivery) Result

// DeliverLocal calls f.
func (f LocalFunc) DeliverLocal(ctx context.Context, d Delivery) Result { return f(ctx, d) }

// RemoteFunc adapts a function to RemoteDeliverer.
type RemoteFunc func(ctx context.Context, d Delivery) []Result

// DeliverRemote calls f.
func (f RemoteFunc) DeliverRemote(ctx context.Context, d Delivery) []Result { return f(ctx, d) }

// PermanentError is a permanent delivery failure (qmail's D report, exit
// 100, 5xx) for deliverers that have no error type of their own.
type PermanentError struct{ Text string }

// Error returns the text.
func (e *PermanentError) Error() string { return e.Text }

// Permanent reports true: the recipient is bounced.
func (e *PermanentError) Permanent() bool { return true }
