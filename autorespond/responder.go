package autorespond

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/qmailkit/qmailkit"
)

// Errors Respond returns, wrapped; test with errors.Is.
var (
	// ErrLoop is returned, marked permanent, when the message is one of
	// autorespond's own replies coming back (a Delivered-To field with
	// "Autoresponder"): autorespond exits 100 then, bouncing the message.
	ErrLoop = errors.New("autorespond: message is looping (it has my Delivered-To header)")
	// ErrHeaderTooLarge is ReadHeader's error for a header beyond its
	// limit (Respond's reason HeaderTooLarge).
	ErrHeaderTooLarge = errors.New("autorespond: header too large")
	// ErrLogDir is returned when the log directory cannot be opened or
	// read (autorespond: "Failed to change into directory").
	ErrLogDir = errors.New("autorespond: log directory")
	// ErrLogEntry is returned when the message's log entry cannot be
	// created (autorespond: "Unable to create file").
	ErrLogEntry = errors.New("autorespond: unable to create the log entry")
)

// Envelope is the incoming message's envelope.
type Envelope struct {
	// Sender is the envelope sender (qmail's SENDER). The reply goes to
	// it and to nobody else.
	Sender string
	// Recipient is the address the message was delivered to (qmail's
	// RECIPIENT, or the mailbox's address). In modern mode it is the
	// reply's From when Responder.From is empty, and it counts among the
	// mailbox's addresses (Responder.Addresses).
	Recipient string
}

// Forwarder queues a message: a qmail-queue client such as
// dotqmail.QueueProgram (which runs $QMAILQUEUE or
// QMAILHOME/bin/qmail-queue), or anything else with the method. Every
// dotqmail.Forwarder is one.
type Forwarder interface {
	Forward(ctx context.Context, sender string, recipients []string, r io.Reader) (id string, err error)
}

// Reason says why a message was answered or not.
type Reason int

// The reasons, in the order the rules are applied (HeaderTooLarge, when
// the header is read, comes first). Compat mode does not apply FromSelf,
// AutoSubmitted and NotAddressed, and its NoSender, MailingList, Loop
// and Bulk are autorespond's narrower rules (see Responder.Check).
const (
	Replied        Reason = iota // a reply was built (and sent when Forwarder is set)
	Inactive                     // now is outside Responder.Since/Until
	NoSender                     // empty sender, MAILER-DAEMON, no '@', "#@[]", a list's owner or -request address, control characters
	FromSelf                     // the sender is one of the mailbox's own addresses
	MailingList                  // a Mailing-List field (modern mode: also List-Id, List-Unsubscribe, any List-*)
	Loop                         // "Delivered-To: Autoresponder", autorespond's own reply: ErrLoop, permanent
	Bulk                         // Precedence: junk, bulk or list
	AutoSubmitted                // an Auto-Submitted field other than "no" (RFC 3834 section 2)
	NotAddressed                 // Responder.Addressed and none of the addresses is in To, Cc, Bcc or Resent-*
	TooMany                      // the sender had Responder.Max replies in Responder.Interval already
	LogFull                      // the log directory holds more than Responder.MaxEntries entries
	HeaderTooLarge               // the header is longer than Responder.MaxHeaderBytes
)

var reasonText = [...]string{
	Replied:        "replied",
	Inactive:       "autoresponder not active now",
	NoSender:       "sender not answered",
	FromSelf:       "message from the mailbox itself",
	MailingList:    "mailing list",
	Loop:           "loop (Delivered-To: Autoresponder)",
	Bulk:           "junk, bulk or list precedence",
	AutoSubmitted:  "automatic message (Auto-Submitted)",
	NotAddressed:   "mailbox not in To, Cc or Bcc",
	TooMany:        "too many replies to this sender",
	LogFull:        "log directory full",
	HeaderTooLarge: "header too large",
}

// String returns a short description of the reason.
func (r Reason) String() string {
	if r >= 0 && int(r) < len(reasonText) {
		return reasonText[r]
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// Result is what Respond did.
type Result struct {
	Reason Reason
	// Reply is the reply message (LF line ends, as qmail-queue takes
	// it), set when Reason is Replied.
	Reply []byte
	// From is the reply's envelope sender (empty in modern mode) and To
	// its one recipient, the incoming envelope sender.
	From, To string
	// ID is what the Forwarder returned (qmail-queue's pid).
	ID string
}

// Responder answers messages with an automatic reply, at most Max times
// per sender per Interval. Dir must be set (and, in modern mode, From or
// Envelope.Recipient). A Responder is safe for concurrent use when its
// fields are not changed.
type Responder struct {
	// Subject is the reply's subject in modern mode; "" means "Re: " and
	// the original's subject. Body is the reply's text (UTF-8), sent as
	// text/plain; charset=utf-8.
	Subject, Body string

	// Message is autorespond's MESSAGE file, for Compat mode: its bytes
	// (up to a NUL) follow the reply's Subject line as autorespond 2.0.5
	// printed them.
	Message []byte
	// Quote appends the quoted original text (autorespond's FLAG 1), in
	// Compat mode only: a modern reply never carries the original's
	// content, so that the responder cannot be used to relay text to a
	// forged sender.
	Quote bool

	// From is the reply's From address in modern mode ("" means
	// Envelope.Recipient). In Compat mode it is autorespond's resolved
	// ARSENDER, used as the envelope sender and the From field as is (""
	// for '+').
	From string
	// Addresses are the mailbox's other addresses (alias domains,
	// aliases). In modern mode mail from one of them, or from From or
	// Envelope.Recipient, is never answered.
	Addresses []string
	// Addressed, in modern mode, answers only messages that name one of
	// the mailbox's addresses in To, Cc, Bcc, Resent-To, Resent-Cc or
	// Resent-Bcc, as RFC 3834 section 2 asks of personal responders (a message
	// reaching the mailbox through a list or a Bcc to a forwarder is not
	// answered).
	Addressed bool

	// Interval and Max: at most Max replies per sender in any Interval.
	// In modern mode Interval 0 means 7 days (RFC 3834 section 2) and Max 0
	// means 1; in Compat mode both are autorespond's TIME and NUM as
	// given (NUM 0: never answer).
	Interval time.Duration
	Max      int
	// Dir is the log directory (autorespond's DIR): one file
	// A<pid>.<unix time> per message, holding the sender. It must exist.
	Dir string
	// MaxEntries bounds the entries of Dir examined per message; 0 means
	// 10000. A directory with more is taken as full: no reply (LogFull),
	// and the expired entries among those examined are removed.
	MaxEntries int

	// Since and Until bound the period in which replies are sent (an
	// absence); zero times do not bound it.
	Since, Until time.Time

	// Compat produces autorespond 2.0.5's reply, byte for byte, and
	// applies only its rules.
	Compat bool

	// Forwarder queues the reply; nil builds it and returns it in
	// Result.Reply without sending it.
	Forwarder Forwarder

	// MaxHeaderBytes bounds the incoming header read; 0 means 256 KiB. A
	// message with a larger header is not answered (HeaderTooLarge).
	MaxHeaderBytes int
	// Hostname is the right side of the reply's Message-ID in modern
	// mode; "" means the domain of the From address.
	Hostname string
	// PID names the log entries and the Compat Message-ID; 0 means
	// os.Getpid().
	PID int
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives a line per decision; nil means none.
	Logger *slog.Logger
}

const (
	defaultInterval   = 7 * 24 * time.Hour
	defaultMaxHeader  = 256 << 10
	defaultMaxEntries = 10000
	maxQuoteBytes     = 1 << 20
)

func (r *Responder) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Responder) pid() int {
	if r.PID != 0 {
		return r.PID
	}
	return os.Getpid()
}

// Respond reads the incoming message's header from msg (and, for a
// Compat reply with Quote, the rest of it), decides whether to answer by
// the rules (see the package documentation), records the message in Dir,
// and builds and queues the reply.
//
// A message not answered is not an error: Result.Reason says why. The
// errors are ErrLoop (permanent), a failure to read msg, ErrLogDir and
// ErrLogEntry (temporary), a modern Responder without a From address,
// and the Forwarder's error, returned wrapped with Result.Reason Replied
// and Result.Reply set (the caller decides whether a reply that could not
// be queued matters; autorespond ignored it).
func (r *Responder) Respond(ctx context.Context, msg io.Reader, env Envelope) (Result, error) {
	now := r.now()
	br := bufio.NewReaderSize(msg, 4096)
	max := r.MaxHeaderBytes
	if max <= 0 {
		max = defaultMaxHeader
	}
	h, err := ReadHeader(br, max, r.Compat)
	if errors.Is(err, ErrHeaderTooLarge) {
		r.log(ctx, env, HeaderTooLarge)
		return Result{Reason: HeaderTooLarge}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("autorespond: read the message: %w", err)
	}
	res := Result{Reason: r.Check(h, env, now)}
	if res.Reason == Loop {
		r.log(ctx, env, res.Reason)
		return res, qmailkit.Permanent(ErrLoop)
	}
	if res.Reason != Replied {
		r.log(ctx, env, res.Reason)
		return res, nil
	}
	if !r.Compat && clean(r.From) == "" && clean(env.Recipient) == "" {
		return Result{}, errNoFrom
	}
	interval, limit := r.limits()
	count, full, err := record(r.Dir, env.Sender, now, interval, r.pid(), r.maxEntries())
	if err != nil {
		return Result{}, err
	}
	switch {
	case full:
		res.Reason = LogFull
	case count > limit:
		res.Reason = TooMany
	}
	if res.Reason != Replied {
		r.log(ctx, env, res.Reason)
		return res, nil
	}
	var reply []byte
	if r.Compat {
		var body io.Reader
		if r.Quote {
			body = io.LimitReader(br, maxQuoteBytes)
		}
		reply, err = r.compatReply(h, env, body, now)
		res.From = r.From
	} else {
		reply, err = r.modernReply(h, env, now)
	}
	if err != nil {
		return Result{}, err
	}
	res.Reply, res.To = reply, env.Sender
	r.log(ctx, env, res.Reason)
	if r.Forwarder == nil {
		return res, nil
	}
	id, err := r.Forwarder.Forward(ctx, res.From, []string{env.Sender}, bytes.NewReader(reply))
	if err != nil {
		return res, fmt.Errorf("autorespond: queue the reply: %w", err)
	}
	res.ID = id
	return res, nil
}

func (r *Responder) limits() (time.Duration, int) {
	interval, limit := r.Interval, r.Max
	if !r.Compat {
		if interval <= 0 {
			interval = defaultInterval
		}
		if limit <= 0 {
			limit = 1
		}
	}
	return interval, limit
}

func (r *Responder) maxEntries() int {
	if r.MaxEntries > 0 {
		return r.MaxEntries
	}
	return defaultMaxEntries
}

func (r *Responder) log(ctx context.Context, env Envelope, why Reason) {
	if r.Logger == nil {
		return
	}
	r.Logger.LogAttrs(ctx, slog.LevelInfo, "autorespond",
		slog.String("sender", env.Sender), slog.String("recipient", env.Recipient),
		slog.String("result", why.String()))
}
