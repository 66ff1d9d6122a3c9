package vmail

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/maildir"
	"golang.org/x/sys/unix"
)

// Injector queues a message for other addresses: the mail system's queue
// (*queue.Queue has this method, as dotqmail.Forwarder's). Forward reads
// the message from r to its end, queues it with the envelope sender and
// recipients and returns the queue's id once the message is durable; an
// error is permanent when it says so (see qmailkit.IsPermanent).
type Injector interface {
	Forward(ctx context.Context, sender string, recipients []string, r io.Reader) (id string, err error)
}

// Responder sends a mailbox's automatic reply to a message delivered to
// it, through inj, as the mailbox's Autoresponder says (package mta has
// one over package autorespond). A Deliverer calls it once the message is
// delivered; its error is logged and does not fail the delivery.
type Responder interface {
	Respond(ctx context.Context, r Response, inj Injector) error
}

// Response is what a Responder is given: the mailbox, the envelope of the
// message delivered to it and the message (its header decides whether a
// reply is due: lists, bulk mail and automatic replies get none).
type Response struct {
	Mailbox   Mailbox
	Sender    string // the envelope sender; "" for a bounce
	Recipient string // the address the message came for, as resolved
	Message   *io.SectionReader
}

// Deliverer delivers messages into virtual mailboxes, vdelivermail's job,
// in the mail system's process and as its account: the virtual Maildirs
// are the account's, as vpopmail's belonged to the vpopmail user. The
// zero value needs a Manager; the other fields are optional.
type Deliverer struct {
	// Manager resolves the addresses. Required.
	Manager *Manager
	// Injector queues forwards: the aliases' and catch-all's targets, a
	// mailbox's Forward and the forward lines of its .qmail file. Nil
	// makes every forward fail temporarily.
	Injector Injector
	// Maildir writes the messages; nil means a Deliverer of this one's
	// own (modern names, no size tag). Its Quota must be zero: the
	// mailbox's quota is written into maildirsize before a delivery, and
	// an over-quota refusal is always permanent here, whatever its
	// QuotaPermanent.
	Maildir *maildir.Deliverer
	// Responder sends the autoresponders' replies; nil sends none.
	Responder Responder
	// Now is the clock of the autoresponders' periods and of the quota
	// warnings; nil means time.Now.
	Now func() time.Time
	// Logger receives what is worth a line (an autoresponder's failure);
	// nil means slog.Default().
	Logger *slog.Logger

	md maildir.Deliverer
}

// Result is what a delivery did.
type Result struct {
	// Report is the summary in qmail-local's form: "did F+W+0\n" and,
	// after a forward, "qp ID\n".
	Report string
	// Files is the number of Maildirs the message went into, Forwards
	// the number of addresses it was forwarded to.
	Files, Forwards int
	// QP is the queue id of the forwarded copy, "" when none.
	QP string
	// Discarded is set when the message was accepted and thrown away: a
	// catch-all "delete", a .qmail of comments only.
	Discarded bool
}

// DeliveryError is a failed delivery: the report text that goes into the
// log and, when permanent, into the bounce, such as "user is over quota
// (#5.2.2)".
type DeliveryError struct {
	Text string // the report, without a final newline
	Perm bool   // a bounce (vdelivermail's exit 100) rather than a retry
	Err  error  // the cause, when there is one
}

func (e *DeliveryError) Error() string {
	if e.Err != nil {
		return "vmail: deliver: " + e.Text + ": " + e.Err.Error()
	}
	return "vmail: deliver: " + e.Text
}

// Unwrap returns the cause.
func (e *DeliveryError) Unwrap() error { return e.Err }

// Permanent reports whether the failure is permanent.
func (e *DeliveryError) Permanent() bool { return e.Perm }

// The reports of vdelivermail that users know, with qmail's enhanced
// status codes.
const (
	textNoMailbox = "Sorry, no mailbox here by that name. (#5.1.1)"
	textLooping   = "mail is looping (#5.4.6)"
	textOverQuota = "user is over quota"
	codeOverQuota = " (#5.2.2)"
)

// Limits on what a delivery reads from files and messages.
const (
	maxDotQmail     = 64 << 10 // a USERDIR/.qmail longer than this is refused
	maxDotQmailLine = 1000     // and so is a longer line
	maxHeaderScan   = 1 << 20  // the header is scanned for Delivered-To lines this far
	maxMessageFile  = 4 << 10  // .over-quota.msg is read this far
	maxForwards     = 1000     // forward targets of one delivery
)

// Deliver delivers msg, a message from sender, to one virtual address,
// as vdelivermail does from a domain's .qmail-default:
//
//   - the recipient is resolved (Manager.Resolve): an unknown address,
//     or a domain that is not virtual, bounces with "Sorry, no mailbox
//     here by that name. (#5.1.1)"; a failure of the store defers;
//   - a message whose header already has "Delivered-To: ADDRESS" for the
//     resolved address (or for one of the targets it is forwarded to)
//     bounces with "mail is looping";
//   - an alias's and the catch-all's targets get the message forwarded,
//     in one queued copy, with the original envelope sender (as qmail
//     forwards) and "Delivered-To: ADDRESS" above the message; a
//     catch-all without target discards it;
//   - a mailbox with the BounceMail flag bounces it ("account is locked
//     email bounced ADDRESS");
//   - a mailbox with a .qmail file in its directory delivers as the file
//     says (see below); otherwise the message goes into the mailbox's
//     Maildir, unless its Forward sends it elsewhere without KeepCopy,
//     and to Forward.To;
//   - the Maildir's copy starts with "Return-Path: <SENDER>" and
//     "Delivered-To: ADDRESS" lines; a delivery beyond the mailbox's
//     Maildir++ quota bounces with "user is over quota" (or the domain
//     directory's .over-quota.msg), permanent as in vdelivermail;
//   - a Maildir left 90 % full gets the domain directory's
//     .quotawarn.msg, at most once a day;
//   - the Autoresponder, when enabled and in its period, is asked to
//     reply once the message is delivered.
//
// # The mailbox's .qmail
//
// USERDIR/.qmail, when present and not empty, replaces the default
// delivery, as in vdelivermail: lines starting with '#' are comments (a
// file of comments only, such as qmailadmin's "# delete", discards the
// message); "&address" or "address" lines forward; "./Maildir/" or an
// absolute path ending in '/' inside USERDIR delivers into that Maildir
// (the mailbox's quota applies to its own Maildir and its folders); blank
// lines are skipped. Departures from vdelivermail: a program line ('|')
// is not run (the delivery runs as the mail system's account, and the
// file is data, not code): the message bounces with a report naming the
// file; an mbox line, a Maildir outside USERDIR, a symbolic link on the
// way to it, a file over 64 KiB or a line over 1000 bytes defer the
// message (the file needs repair); and the lines are all checked before
// any is executed, so that a bad line never leaves half a delivery.
//
// The error is a *DeliveryError: permanent for a bounce, temporary
// otherwise.
func (d *Deliverer) Deliver(ctx context.Context, sender, recipient string, msg *io.SectionReader) (Result, error) {
	if d.Manager == nil {
		return Result{}, &DeliveryError{Text: "no virtual mailboxes (#4.3.0)"}
	}
	rcpt, err := d.Manager.Resolve(ctx, recipient)
	if errors.Is(err, ErrNotFound) {
		return Result{}, &DeliveryError{Text: textNoMailbox, Perm: true, Err: err}
	}
	if err != nil {
		return Result{}, &DeliveryError{Text: "temporary failure looking up the mailbox (#4.3.0)", Err: err}
	}
	seen, err := deliveredTo(msg)
	if err != nil {
		return Result{}, &DeliveryError{Text: "Unable to read message (#4.3.0)", Err: err}
	}
	if seen[strings.ToLower(rcpt.Address)] {
		return Result{}, &DeliveryError{Text: textLooping, Perm: true}
	}
	x := &delivery{d: d, sender: sender, rcpt: rcpt, msg: msg, seen: seen}
	switch rcpt.Kind {
	case IsMailbox:
		err = x.mailbox(ctx)
	case IsAlias, IsCatchAll:
		if len(rcpt.Targets) == 0 {
			x.res.Discarded = true
			break
		}
		err = x.forward(ctx, rcpt.Targets)
	default:
		return Result{}, &DeliveryError{Text: textNoMailbox, Perm: true}
	}
	if err != nil {
		return x.res, err
	}
	x.res.Report = "did " + strconv.Itoa(x.res.Files) + "+" + strconv.Itoa(x.res.Forwards) + "+0\n"
	if x.res.QP != "" {
		x.res.Report += "qp " + x.res.QP + "\n"
	}
	return x.res, nil
}

// delivery is one Deliver call in progress.
type delivery struct {
	d      *Deliverer
	sender string
	rcpt   Recipient
	msg    *io.SectionReader
	seen   map[string]bool // the header's Delivered-To addresses, lower case
	res    Result
}

// dtLine is the Delivered-To line of the resolved address.
func (x *delivery) dtLine() string {
	at := strings.LastIndexByte(x.rcpt.Address, '@')
	return dotqmail.DTLine(x.rcpt.Address[:max(at, 0)], x.rcpt.Address[at+1:])
}

// forward queues one copy of the message for targets, with the original
// sender and the recipient's Delivered-To line.
func (x *delivery) forward(ctx context.Context, targets []string) error {
	if len(targets) > maxForwards {
		return &DeliveryError{Text: fmt.Sprintf("too many forward addresses (%d) (#5.4.6)", len(targets)), Perm: true}
	}
	for _, t := range targets {
		if x.seen[strings.ToLower(t)] {
			return &DeliveryError{Text: textLooping, Perm: true}
		}
		if t == "" || strings.ContainsAny(t, "\n\r\x00") {
			return &DeliveryError{Text: fmt.Sprintf("bad forward address %q (#4.3.5)", t)}
		}
	}
	if x.d.Injector == nil {
		return &DeliveryError{Text: "Unable to forward message: no queue to forward through. (#4.3.0)"}
	}
	body := io.MultiReader(strings.NewReader(x.dtLine()), io.NewSectionReader(x.msg, 0, x.msg.Size()))
	id, err := x.d.Injector.Forward(ctx, x.sender, targets, body)
	if err != nil {
		return &DeliveryError{Text: "Unable to forward message: " + oneLine(err.Error()) + ".", Perm: qmailkit.IsPermanent(err), Err: err}
	}
	x.res.Forwards += len(targets)
	x.res.QP = id
	return nil
}

// mailbox delivers to a mailbox.
func (x *delivery) mailbox(ctx context.Context) error {
	mb := x.rcpt.Mailbox
	if mb.Flags&BounceMail != 0 {
		return &DeliveryError{Text: "account is locked email bounced " + x.rcpt.Address + " (#5.2.1)", Perm: true}
	}
	if mb.Dir == "" || !filepath.IsAbs(mb.Dir) {
		return &DeliveryError{Text: "the mailbox has no directory (#4.3.0)"}
	}
	// vdelivermail makes a missing USERDIR again, with its Maildir. Three
	// lstat calls tell the usual case, a Maildir that is there, from one
	// Ensure must make (which costs some twenty system calls); links are
	// refused by both (and by the Maildir deliverer, confined to the
	// Maildir).
	if !maildirReady(mb.Maildir()) {
		if _, err := maildir.Ensure(mb.Maildir()); err != nil {
			return &DeliveryError{Text: "Unable to make the mailbox's Maildir (#4.3.0)", Err: err}
		}
	}
	if err := syncQuota(mb); err != nil {
		return &DeliveryError{Text: "Unable to read the mailbox's quota (#4.3.0)", Err: err}
	}
	lines, found, err := readUserDotQmail(mb.Dir)
	if err != nil {
		return err
	}
	if found {
		if err := x.dotQmail(ctx, lines); err != nil {
			return err
		}
	} else {
		fw := mb.Forward
		if len(fw.To) == 0 || fw.KeepCopy {
			if err := x.maildir(ctx, mb.Maildir()); err != nil {
				return err
			}
		}
		if len(fw.To) > 0 {
			if err := x.forward(ctx, fw.To); err != nil {
				return err
			}
		}
	}
	x.respond(ctx)
	return nil
}

// respond asks the Responder for the mailbox's automatic reply, when its
// Autoresponder is on now. A failure is logged: the message is delivered.
func (x *delivery) respond(ctx context.Context) {
	ar := x.rcpt.Mailbox.Autoresponder
	if x.d.Responder == nil || !ar.Enabled || x.res.Discarded {
		return
	}
	now := x.d.now()
	if !ar.From.IsZero() && now.Before(ar.From) || !ar.Until.IsZero() && !now.Before(ar.Until) {
		return
	}
	inj := x.d.Injector
	if inj == nil {
		return
	}
	r := Response{Mailbox: x.rcpt.Mailbox, Sender: x.sender, Recipient: x.rcpt.Address, Message: io.NewSectionReader(x.msg, 0, x.msg.Size())}
	if err := x.d.Responder.Respond(ctx, r, inj); err != nil {
		x.d.logger().Warn("vmail: autoresponder failed", "mailbox", x.rcpt.Address, "err", err)
	}
}

func (d *Deliverer) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}

func (d *Deliverer) maildirDeliverer() *maildir.Deliverer {
	if d.Maildir != nil {
		return d.Maildir
	}
	return &d.md
}

// maildir delivers the message into the Maildir at path, with the
// Return-Path and Delivered-To lines.
func (x *delivery) maildir(ctx context.Context, path string) error {
	head := dotqmail.RPLine(x.sender) + x.dtLine()
	body := io.MultiReader(strings.NewReader(head), io.NewSectionReader(x.msg, 0, x.msg.Size()))
	_, err := x.d.maildirDeliverer().Deliver(ctx, maildir.Dir(path), body)
	own := path == x.rcpt.Mailbox.Maildir()
	if err == nil {
		x.res.Files++
		if own {
			x.quotaWarning(ctx)
		}
		return nil
	}
	if errors.Is(err, maildir.ErrQuota) || errors.Is(err, syscall.EDQUOT) {
		if own {
			x.quotaWarning(ctx)
		}
		return &DeliveryError{Text: x.overQuotaText(ctx), Perm: true, Err: err}
	}
	return &DeliveryError{Text: "Unable to deliver to the Maildir (#4.3.0)", Err: err}
}

// overQuotaText is the bounce of a mailbox over quota: the domain
// directory's .over-quota.msg, else vdelivermail's "user is over quota".
func (x *delivery) overQuotaText(ctx context.Context) string {
	dom, err := x.d.Manager.Domain(ctx, x.rcpt.Mailbox.Domain)
	if err == nil && dom.Dir != "" {
		if b, err := readSmallFile(filepath.Join(dom.Dir, ".over-quota.msg"), maxMessageFile); err == nil {
			if s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", "")); s != "" {
				return s
			}
		}
	}
	return textOverQuota + codeOverQuota
}

// quotaWarning delivers the domain's .quotawarn.msg into the mailbox's
// Maildir when it is 90 % full (of its bytes or of its messages), at most
// once a day (the time of Maildir/quotawarn), as vdelivermail does; a
// domain without the file sends none. A failure only loses the warning.
func (x *delivery) quotaWarning(ctx context.Context) {
	mb := x.rcpt.Mailbox
	if mb.Quota == (Quota{}) {
		return // no quota, no warning (and no maildirsize to read)
	}
	md := maildir.Dir(mb.Maildir())
	q, u, err := md.ReadQuota()
	if err != nil || !(q.Bytes > 0 && u.Bytes*10 >= q.Bytes*9 || q.Count > 0 && u.Count*10 >= q.Count*9) {
		return
	}
	now := x.d.now()
	stamp := filepath.Join(string(md), "quotawarn")
	if fi, err := os.Lstat(stamp); err == nil && now.Sub(fi.ModTime()) < 24*time.Hour {
		return
	}
	dom, err := x.d.Manager.Domain(ctx, mb.Domain)
	if err != nil || dom.Dir == "" {
		return
	}
	text, err := readSmallFile(filepath.Join(dom.Dir, ".quotawarn.msg"), maxMessageFile)
	if err != nil {
		return
	}
	f, err := os.OpenFile(stamp, os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return
	}
	// The time is set on the file opened without following a link, not
	// by name: a link put there meanwhile is not followed.
	tv := unix.NsecToTimeval(now.UnixNano())
	unix.Futimes(int(f.Fd()), []unix.Timeval{tv, tv})
	f.Close()
	msg := x.dtLine() + "Date: " + now.Format(time.RFC1123Z) + "\n" + string(text)
	if _, err := x.d.maildirDeliverer().Deliver(ctx, md, strings.NewReader(msg)); err != nil {
		x.d.logger().Warn("vmail: quota warning not delivered", "mailbox", x.rcpt.Address, "err", err)
	}
}

func (d *Deliverer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// maildirReady reports whether md's tmp/, new/ and cur/ are directories
// (not links).
func maildirReady(md string) bool {
	for _, s := range [...]string{"/tmp", "/new", "/cur"} {
		fi, err := os.Lstat(md + s)
		if err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// syncQuota writes the mailbox's quota into its Maildir's maildirsize
// when the file says another (or is missing while there is a quota), so
// that the Maildir deliverer, Dovecot and Courier enforce the same one.
func syncQuota(mb Mailbox) error {
	q := maildir.Quota{Bytes: mb.Quota.Bytes, Count: mb.Quota.Count}
	dir := maildir.Dir(mb.Maildir())
	cur, _, err := dir.ReadQuota()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if q == (maildir.Quota{}) {
			return nil
		}
	case err == nil && cur == q:
		return nil
	}
	_, err = dir.RecalculateQuota(q)
	return err
}

// dotQmail executes the lines of a mailbox's .qmail, checked first.
func (x *delivery) dotQmail(ctx context.Context, lines []dotLine) error {
	mb := x.rcpt.Mailbox
	var forwards, maildirs []string
	for _, l := range lines {
		switch l.kind {
		case dotqmail.Program:
			return &DeliveryError{Text: fmt.Sprintf("%s/.qmail line %d: program deliveries are not run for virtual mailboxes (#5.7.1)", mb.Dir, l.n), Perm: true}
		case dotqmail.Mbox:
			return &DeliveryError{Text: fmt.Sprintf("%s/.qmail line %d: can't handle mbox delivery for %s (#4.2.1)", mb.Dir, l.n, l.arg)}
		case dotqmail.Maildir:
			p, err := userMaildir(mb.Dir, l.arg)
			if err != nil {
				return &DeliveryError{Text: fmt.Sprintf("%s/.qmail line %d: %v (#4.2.1)", mb.Dir, l.n, err)}
			}
			if x.seen[strings.ToLower(p)] || x.seen[strings.ToLower(l.arg)] {
				return &DeliveryError{Text: textLooping, Perm: true}
			}
			maildirs = append(maildirs, p)
		case dotqmail.Forward:
			forwards = append(forwards, l.arg)
		}
	}
	if len(forwards) == 0 && len(maildirs) == 0 {
		x.res.Discarded = true // qmailadmin's "# delete"
		return nil
	}
	for _, p := range maildirs {
		if err := x.maildir(ctx, p); err != nil {
			return err
		}
	}
	if len(forwards) > 0 {
		return x.forward(ctx, forwards)
	}
	return nil
}

// dotLine is a meaningful line of a mailbox's .qmail.
type dotLine struct {
	kind dotqmail.Kind
	arg  string
	n    int
}

// readUserDotQmail reads USERDIR/.qmail: found is false when there is
// none or it holds nothing but blank lines. A symbolic link, a file that is
// not regular or too long, a line too long or holding a NUL is a temporary
// failure naming the file.
func readUserDotQmail(dir string) (lines []dotLine, found bool, err error) {
	path := filepath.Join(dir, ".qmail")
	b, err := readSmallFile(path, maxDotQmail)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, &DeliveryError{Text: fmt.Sprintf("Unable to read %s (#4.2.1)", path), Err: err}
	}
	return parseUserDotQmail(path, b)
}

// parseUserDotQmail parses the contents b of the .qmail at path (see
// readUserDotQmail).
func parseUserDotQmail(path string, b []byte) (lines []dotLine, found bool, err error) {
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, " \t\r")
		switch {
		case len(line) > maxDotQmailLine:
			return nil, false, &DeliveryError{Text: fmt.Sprintf("%s line %d is too long (#4.2.1)", path, n+1)}
		case strings.IndexByte(line, 0) >= 0:
			return nil, false, &DeliveryError{Text: fmt.Sprintf("%s line %d has a NUL byte (#4.2.1)", path, n+1)}
		case line == "":
			continue
		}
		found = true
		l := dotLine{n: n + 1, arg: line}
		switch line[0] {
		case '#':
			continue
		case '|':
			l.kind, l.arg = dotqmail.Program, strings.TrimLeft(line[1:], " ")
		case '/', '.':
			l.kind = dotqmail.Mbox
			if strings.HasSuffix(line, "/") {
				l.kind = dotqmail.Maildir
			}
		case '&':
			l.kind, l.arg = dotqmail.Forward, strings.TrimSpace(line[1:])
		default:
			l.kind = dotqmail.Forward
		}
		lines = append(lines, l)
	}
	return lines, found, nil
}

// userMaildir returns the path of a .qmail Maildir line, which must name a
// directory inside the mailbox's directory dir, reached without a symbolic
// link.
func userMaildir(dir, arg string) (string, error) {
	p := arg
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	p = filepath.Clean(p)
	rel, err := filepath.Rel(dir, p)
	if err != nil || !filepath.IsLocal(rel) || rel == "." {
		return "", fmt.Errorf("%s is outside the mailbox's directory", arg)
	}
	cur := dir
	for part := range strings.SplitSeq(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if err != nil {
			return "", fmt.Errorf("%s: %w", arg, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return "", fmt.Errorf("%s: %s is a symbolic link", arg, cur)
		}
	}
	return p, nil
}

// readSmallFile reads a regular file of at most max bytes, without
// following a symbolic link or blocking on a FIFO.
func readSmallFile(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s: a symbolic link, not followed", path)
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s: longer than %d bytes", path, max)
	}
	return io.ReadAll(io.LimitReader(f, max))
}

// deliveredTo returns the addresses of the Delivered-To lines of the
// message's header (up to its first empty line, at most maxHeaderScan
// bytes), lower case.
func deliveredTo(msg *io.SectionReader) (map[string]bool, error) {
	seen := map[string]bool{}
	br := bufio.NewReaderSize(io.NewSectionReader(msg, 0, min(msg.Size(), maxHeaderScan)), 4096)
	long := false // inside a line longer than the buffer: no Delivered-To line
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = true
			continue
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		if !long {
			s := strings.TrimRight(string(line), "\r\n")
			if s == "" {
				return seen, nil // the end of the header
			}
			if len(s) > 13 && strings.EqualFold(s[:13], "delivered-to:") {
				seen[strings.ToLower(strings.TrimSpace(s[13:]))] = true
			}
		}
		long = false
		if err == io.EOF {
			return seen, nil
		}
	}
}

// oneLine makes an error text fit in a report line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
