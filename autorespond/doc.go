// Package autorespond answers mail automatically (a vacation message, an
// autoresponder address), the job of Eric Huss's autorespond for qmail,
// and as RFC 3834 asks of automatic responders: never to an empty or
// MAILER-DAEMON sender, never to lists, bulk or automatic mail, never to
// its own replies, to the envelope sender only, with an empty envelope
// sender and "Auto-Submitted: auto-replied", and at most so many times per
// sender in a period.
//
//	r := &autorespond.Responder{
//		Subject: "Away", Body: "Back on Monday.\n",
//		Dir: "/home/vpopmail/domains/example.com/joe/vacation",
//		Forwarder: &dotqmail.QueueProgram{},
//	}
//	res, err := r.Respond(ctx, message, autorespond.Envelope{
//		Sender: "bob@example.org", Recipient: "joe@example.com",
//	})
//	// res.Reason is Replied, or why there was no reply (Bulk, TooMany...);
//	// err is ErrLoop (permanent) for one of autorespond's replies coming
//	// back, or a failure.
//
// The program examples/autorespond is the drop-in command for .qmail
// lines, "|autorespond TIME NUM MESSAGE DIR [FLAG [ARSENDER]]".
//
// # Rules
//
// The header is read first; one longer than MaxHeaderBytes is not
// answered (HeaderTooLarge). Then a message is not answered when, in this
// order ([Responder.Check]): now
// is outside Since..Until (Inactive); the envelope sender is empty, begins
// with "mailer-daemon", has no '@', is "#@[]" (qmail's double-bounce
// sender), or is a list address such as owner-x@ or x-request@ (NoSender);
// it is one of the mailbox's addresses (FromSelf); the header has a
// Mailing-List or any List-* field (MailingList, RFC 2369, RFC 2919); a
// Delivered-To field is "Autoresponder", the one autorespond's replies
// carry (Loop: ErrLoop, permanent, so that the message bounces as
// autorespond's exit 100 does); a
// Precedence field contains "junk", "bulk" or "list" (Bulk); an
// Auto-Submitted field is anything but "no" (AutoSubmitted, RFC 3834 section 2);
// with Addressed, none of the mailbox's addresses is in To, Cc, Bcc or a
// Resent- field (NotAddressed, RFC 3834 section 2: a personal responder answers
// only mail addressed to the person); the sender has had Max replies
// within Interval (TooMany; 1 per 7 days by default, RFC 3834 section 2),
// or the log directory holds more than MaxEntries entries (LogFull).
//
// # Format
//
// The log directory is autorespond's, so that existing directories go on
// working: every message that passes the rules leaves a file
// A<pid>.<unix time> holding the sender's address (no line end); the
// replies a sender had in the window are the entries of the directory
// whose time is within Interval of now and whose content equals the
// sender in any case, the new entry included, and entries older than the
// window are removed as they are met. A message that is not answered for
// being too frequent is logged too: a sender who keeps writing more often
// than Max per Interval gets nothing until the pace drops. When a process
// logs two messages in the same second, the second entry is
// A<pid>.<time>.1 (autorespond read the time as the leading digits after
// the first '.').
//
// A modern reply (the default):
//
//	From: <joe@example.com>
//	To: <bob@example.org>
//	Subject: Away                     (Subject; "" means "Re: " + the original's)
//	Date: Tue, 08 Dec 2026 10:00:00 +0000
//	Message-ID: <...autorespond@example.com>
//	In-Reply-To: <original@id>        (with a Message-ID in the original)
//	References: <original@id>
//	Auto-Submitted: auto-replied
//	MIME-Version: 1.0
//	Content-Type: text/plain; charset=utf-8
//	Content-Transfer-Encoding: 7bit   (quoted-printable unless plain ASCII)
//
//	Back on Monday.
//
// queued with an empty envelope sender to the envelope sender alone.
// The original's text is never included.
//
// # Security
//
// The log directory is not trusted: entries are opened without following
// symbolic links and without blocking (a FIFO is skipped), only regular
// files are read, and only their first kilobyte; at most MaxEntries
// entries are examined per message (a fuller directory gives LogFull, no
// reply). The incoming header is read up to MaxHeaderBytes; a sender with
// control characters is never answered, and what goes from the original
// into the reply (subject, message identifiers) is reduced to one line of
// valid text.
//
// # Compatibility
//
// With Compat set, the rules are autorespond 2.0.5's (the sender rules
// but the list addresses, Mailing-List, the first Delivered-To field
// containing "Autoresponder" (so a Delivered-To: autoresponder@example.com
// counts too), the first Precedence field; not Auto-Submitted, List-*,
// FromSelf or Addressed) and the reply is its bytes: Date in UTC without a weekday,
// Message-ID <time.pid.blah>, "Delivered-To: Autoresponder", To, From
// (ARSENDER), "Subject: Re:" followed by the original Subject field's raw
// value with its line end (so the MESSAGE file starts the body; without
// a Subject field "(null)" and no empty line), the MESSAGE file, the
// quoted original with Quote (FLAG 1), and two empty lines, with
// ARSENDER as the envelope sender. The departures: the header is read up
// to MaxHeaderBytes (autorespond read any size); a sender with control
// characters is not answered (autorespond wrote it into the header as it
// was); at most MaxEntries log entries are examined, symbolic links and
// FIFOs among them are not followed or read; an entry that exists is not
// overwritten but gets a ".N" suffix.
package autorespond
