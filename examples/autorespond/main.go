// Command autorespond answers mail automatically from a .qmail file, a
// drop-in for Eric Huss's autorespond (the program qmailadmin's vacation
// messages and autoresponder addresses run):
//
//	|autorespond [-compat] [-addressed] TIME NUM MESSAGE DIR [FLAG [ARSENDER]]
//
// It reads the message on standard input and the environment qmail-local
// sets (SENDER, EXT, HOST, RECIPIENT), answers the envelope sender at most
// NUM times in any TIME seconds, logging each message in the directory DIR
// (which must exist; files A<pid>.<time> holding the sender, autorespond's
// format), and queues the reply through $QMAILQUEUE, else
// QMAILHOME/bin/qmail-queue (QMAILHOME defaults to /var/qmail).
//
// MESSAGE is the reply's text. By default the reply follows RFC 3834: it
// goes with an empty envelope sender, carries "Auto-Submitted:
// auto-replied", In-Reply-To and References, and its text is MESSAGE as
// UTF-8 (when MESSAGE starts with header lines, as qmailadmin writes it,
// "From: joe@example.com\nSubject: Away\n\nBack Monday.", its Subject and
// From are the reply's and the rest its text; else the subject is "Re: "
// and the original's); the From address is MESSAGE's From, else ARSENDER
// (a literal address), else EXT@HOST, else RECIPIENT. Mail that is
// automatic (Auto-Submitted), from a list (List-*, Mailing-List,
// Precedence: bulk, junk or list), from MAILER-DAEMON, a list's owner or
// -request address or the mailbox itself is not answered; with
// -addressed, neither is mail that does not name the mailbox (EXT@HOST,
// RECIPIENT or MESSAGE's From) in To, Cc or Bcc. TIME 0 means 7 days and
// NUM 0 means 1. FLAG is ignored: the original's text is never sent back.
// Only the first megabyte of MESSAGE is used, and MESSAGE must be a
// regular file (a FIFO is refused as autorespond's unreadable file).
//
// With -compat the rules and the reply are autorespond 2.0.5's: FLAG 1
// (the default) appends the quoted original text, ARSENDER is the
// envelope sender and the From field ('+' empty, '$' the default
// EXT@HOST), the reply's header is Date, Message-ID, "Delivered-To:
// Autoresponder", To, From and "Subject: Re:" with the original subject,
// followed by MESSAGE as it is.
//
// Messages go to standard error, as autorespond's (qmail-local puts them
// in the delivery report). Exit codes: 0 replied or not answered (qmail
// goes on with the next .qmail line, such as the Maildir delivery); 100
// the message is one of autorespond's own replies coming back ("This
// message is looping"), which bounces it; 111 a usage error, MESSAGE or
// DIR unusable, or the message unreadable (qmail tries again later). A
// reply that cannot be queued is reported and exits 0 (autorespond
// ignored it): failing would have qmail deliver the message again.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/autorespond"
	"github.com/qmailkit/qmailkit/dotqmail"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Environ(), os.Stdin, os.Stderr, nil))
}

// usage is autorespond's usage text.
const usage = `
autorespond: usage: time num message dir [ flag arsender ]

time - amount of time to consider a message (in seconds)
num - maximum number of messages to allow within time seconds
message - the filename of the message to send
dir - the directory to hold the log of messages

optional parameters:

flag - handling of original message:

0 - append nothing
1 - append quoted original message without attachments <default>

arsender - from address in generated message, or:

+ = blank from envelope !
$ = To: address will be used

`

// run is the program: args without the program name; fw queues the
// reply, nil meaning $QMAILQUEUE or QMAILHOME/bin/qmail-queue with env.
func run(ctx context.Context, args, env []string, stdin io.Reader, stderr io.Writer, fw autorespond.Forwarder) int {
	fs := flag.NewFlagSet("autorespond", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	compat := fs.Bool("compat", false, "autorespond 2.0.5's rules and reply")
	addressed := fs.Bool("addressed", false, "answer only mail naming the mailbox in To, Cc or Bcc")
	if err := fs.Parse(args); err != nil || fs.NArg() < 4 || fs.NArg() > 6 {
		io.WriteString(stderr, usage)
		return 111
	}
	getenv := func(name string) string {
		v := ""
		for _, kv := range env {
			if k, val, ok := strings.Cut(kv, "="); ok && k == name {
				v = val
			}
		}
		return v
	}
	op := fs.Args()
	seconds, num := number(op[0]), number(op[1])
	quote := true
	if len(op) > 4 {
		quote = number(op[4]) == 1
	}
	arsender := "$"
	if len(op) > 5 {
		arsender = op[5]
	}
	extHost := getenv("EXT") + "@" + getenv("HOST")
	sender := getenv("SENDER")

	message, err := readMessage(op[2])
	if err != nil {
		fmt.Fprintf(stderr, "AUTORESPOND: Failed to open message file.\n")
		return 111
	}
	if fw == nil {
		fw = &dotqmail.QueueProgram{Env: env, Stderr: stderr}
	}
	r := &autorespond.Responder{
		Compat:    *compat,
		Interval:  time.Duration(seconds) * time.Second,
		Max:       int(min(num, 1<<31-1)),
		Dir:       op[3],
		Forwarder: fw,
	}
	envelope := autorespond.Envelope{Sender: sender, Recipient: getenv("RECIPIENT")}
	if *compat {
		r.Message, r.Quote = message, quote
		switch {
		case strings.HasPrefix(arsender, "+"):
			r.From = ""
		case strings.HasPrefix(arsender, "$"):
			r.From = extHost
		default:
			r.From = arsender
		}
	} else {
		subject, from, body := parseMessage(message)
		r.Subject, r.Body = subject, body
		switch {
		case from != "":
			r.From = from
		case arsender != "" && arsender[0] != '+' && arsender[0] != '$':
			r.From = arsender
		case getenv("EXT") != "" && getenv("HOST") != "":
			r.From = extHost
		}
		if getenv("EXT") != "" && getenv("HOST") != "" {
			r.Addresses = []string{extHost}
		}
		r.Addressed = *addressed
	}

	res, err := r.Respond(ctx, stdin, envelope)
	switch {
	case errors.Is(err, autorespond.ErrLoop):
		fmt.Fprintf(stderr, "AUTORESPOND: This message is looping...it has my Delivered-To header.\n")
		return 100
	case errors.Is(err, autorespond.ErrLogDir):
		fmt.Fprintf(stderr, "AUTORESPOND: Failed to change into directory.\n")
		return 111
	case errors.Is(err, autorespond.ErrLogEntry):
		fmt.Fprintf(stderr, "AUTORESPOND: Unable to create file for [%s].", sender)
		return 111
	case err != nil && res.Reason == autorespond.Replied && res.Reply != nil:
		// The reply could not be queued: autorespond ignored that.
		if !*compat {
			fmt.Fprintf(stderr, "AUTORESPOND: Unable to queue the reply: %v\n", err)
		}
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "AUTORESPOND: %v\n", err)
		return 111
	}
	if text := reasonText(res.Reason, sender); text != "" {
		fmt.Fprintf(stderr, "AUTORESPOND: %s\n", text)
	}
	return 0
}

// reasonText is the message for a message not answered: autorespond's
// for its own reasons.
func reasonText(why autorespond.Reason, sender string) string {
	switch why {
	case autorespond.NoSender:
		return " Stopping on mail from [" + sender + "]."
	case autorespond.MailingList:
		return "This looks like it's from a mailing list, I will ignore it."
	case autorespond.Bulk:
		return "Junk mail received."
	case autorespond.TooMany:
		return "too many received from [" + sender + "]"
	case autorespond.FromSelf:
		return "Not answering mail from myself [" + sender + "]."
	case autorespond.AutoSubmitted:
		return "This is automatic mail (Auto-Submitted), I will ignore it."
	case autorespond.NotAddressed:
		return "I am not in To, Cc or Bcc, I will ignore it."
	case autorespond.LogFull:
		return "Too many entries in the log directory, not answering."
	case autorespond.HeaderTooLarge:
		return "The header is too large, I will ignore it."
	case autorespond.Replied:
		return ""
	}
	return why.String()
}

// maxMessage bounds what is read of MESSAGE.
const maxMessage = 1 << 20

// readMessage reads the MESSAGE file, at most maxMessage bytes of it. It
// opens without blocking and refuses anything but a regular file, so that
// a FIFO there cannot hold the delivery.
func readMessage(name string) ([]byte, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	return io.ReadAll(io.LimitReader(f, maxMessage))
}

// number is strtoul(s, NULL, 10) as autorespond parses its operands: the
// leading digits, 0 when there are none.
func number(s string) int64 {
	var n int64
	for i := 0; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
		if n > (1<<40)/10 {
			break
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n
}

// parseMessage splits a MESSAGE file that starts with header lines
// ("From: ...\nSubject: ...\n\ntext", as qmailadmin writes it) into its
// Subject, its From and its text. A file that does not start with a
// header is all text.
func parseMessage(b []byte) (subject, from, body string) {
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	head, text, ok := strings.Cut(s, "\n\n")
	if !ok {
		return "", "", s
	}
	var fields [][2]string
	for line := range strings.SplitSeq(head, "\n") {
		if line != "" && (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1][1] += " " + strings.TrimSpace(line)
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return "", "", s
		}
		fields = append(fields, [2]string{name, strings.TrimSpace(value)})
	}
	for _, f := range fields {
		switch strings.ToLower(f[0]) {
		case "subject":
			subject = f[1]
		case "from":
			from = address(f[1])
		}
	}
	return subject, from, text
}

// address returns the address of a From value: the one in angle
// brackets, else the value.
func address(v string) string {
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			return strings.TrimSpace(v[i+1 : i+j])
		}
	}
	return strings.TrimSpace(v)
}
