package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/internal/durable"
)

// Delivery Status Notifications (RFC 3461).
//
// A message injected with DSN parameters (Envelope.DSN, or EnqueueDSN from
// an SMTP server) carries them in one more file, dsn/N (mode 0600, in the
// flat directory dsn/, 0700), written and fsynced with the envelope before
// todo/N is linked; a message without them has no such file, and its files
// are exactly qmail's. The file is a list of NUL-terminated records:
//
//	R<FULL|HDRS>   the message's RET
//	E<envid>       its ENVID, decoded
//	T<recipient>   a recipient, as in the envelope; the records that
//	               follow, up to the next T, are its parameters:
//	N<notify>      NOTIFY: NEVER, or a comma list of SUCCESS, FAILURE, DELAY
//	O<orcpt>       ORCPT: address type, ";", the decoded address
//	Y<recipient>   appended by the scheduler: a "delayed" notification was
//	               sent for this routed recipient
//
// The scheduler removes dsn/N (and fsyncs dsn/) before the message's last
// name goes, a starting scheduler removes every dsn/N with neither todo/N
// nor info/S/N, and the removal of a dead injection's files removes it
// too, so that no message numbered N ever finds another's parameters.

// Notify is a recipient's NOTIFY parameter (RFC 3461 section 4.1). The
// zero value means it was not given: failures are reported, successes
// and delays are not.
type Notify uint8

// The NOTIFY keywords.
const (
	NotifySuccess Notify = 1 << iota
	NotifyFailure
	NotifyDelay
	NotifyNever
)

// ParseNotify parses a NOTIFY value: NEVER, or a comma list of SUCCESS,
// FAILURE and DELAY, each at most once, in any case.
func ParseNotify(s string) (Notify, error) {
	if strings.EqualFold(s, "NEVER") {
		return NotifyNever, nil
	}
	var n Notify
	for w := range strings.SplitSeq(s, ",") {
		var b Notify
		switch strings.ToUpper(w) {
		case "SUCCESS":
			b = NotifySuccess
		case "FAILURE":
			b = NotifyFailure
		case "DELAY":
			b = NotifyDelay
		default:
			return 0, fmt.Errorf("queue: bad NOTIFY %q", s)
		}
		if n&b != 0 {
			return 0, fmt.Errorf("queue: bad NOTIFY %q", s)
		}
		n |= b
	}
	return n, nil
}

// String returns the NOTIFY value, "" for the zero Notify.
func (n Notify) String() string {
	if n&NotifyNever != 0 {
		return "NEVER"
	}
	var w []string
	for _, x := range []struct {
		b Notify
		s string
	}{{NotifySuccess, "SUCCESS"}, {NotifyFailure, "FAILURE"}, {NotifyDelay, "DELAY"}} {
		if n&x.b != 0 {
			w = append(w, x.s)
		}
	}
	return strings.Join(w, ",")
}

// reportFailure reports whether a permanent failure is reported to the
// sender: NOTIFY was not given, or holds FAILURE.
func (n Notify) reportFailure() bool { return n == 0 || n&NotifyFailure != 0 }

// DSN is a message's Delivery Status Notification parameters (RFC 3461),
// as an SMTP server received them.
type DSN struct {
	// Ret is RET: "FULL", "HDRS" (a failure report returns the header
	// only) or "" (not given: the whole message).
	Ret string
	// EnvID is ENVID, decoded: the Original-Envelope-Id of the reports.
	EnvID string
	// Recipients are the recipients' parameters, in the order of
	// Envelope.Recipients (or Delivery.Recipients); it may be shorter,
	// recipients beyond its end having none.
	Recipients []RecipientDSN
}

// RecipientDSN is one recipient's DSN parameters.
type RecipientDSN struct {
	Notify Notify
	// ORcpt is ORCPT, decoded: the address type, ";" and the address
	// ("rfc822;user@example.org"); the Original-Recipient of reports.
	ORcpt string
}

// For returns the parameters of recipient i; the zero RecipientDSN when d
// is nil or has none for it.
func (d *DSN) For(i int) RecipientDSN {
	if d == nil || i < 0 || i >= len(d.Recipients) {
		return RecipientDSN{}
	}
	return d.Recipients[i]
}

// empty reports whether d carries no parameter at all.
func (d *DSN) empty() bool {
	if d == nil {
		return true
	}
	if d.Ret != "" || d.EnvID != "" {
		return false
	}
	for _, r := range d.Recipients {
		if r != (RecipientDSN{}) {
			return false
		}
	}
	return true
}

// check refuses what the dsn file cannot hold or a report must not carry.
func (d *DSN) check(nrcpt int) error {
	bad := func(what string) error {
		return qerr(91, "envelope", fmt.Errorf("%w: %s", ErrEnvelopeFormat, what))
	}
	if d.Ret != "" && d.Ret != "FULL" && d.Ret != "HDRS" {
		return bad("RET must be FULL or HDRS")
	}
	if len(d.Recipients) > nrcpt {
		return bad("more DSN parameters than recipients")
	}
	if len(d.EnvID) > MaxAddressLen || hasCtl(d.EnvID) {
		return bad("bad ENVID")
	}
	for _, r := range d.Recipients {
		if len(r.ORcpt) > MaxAddressLen || hasCtl(r.ORcpt) || r.Notify > NotifyNever || r.Notify&NotifyNever != 0 && r.Notify != NotifyNever {
			return bad("bad recipient DSN parameters")
		}
	}
	return nil
}

func hasCtl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// dsnRecords is the content of dsn/N.
func dsnRecords(env Envelope) []byte {
	d := env.DSN
	var b []byte
	rec := func(t byte, s string) {
		b = append(b, t)
		b = append(b, s...)
		b = append(b, 0)
	}
	if d.Ret != "" {
		rec('R', d.Ret)
	}
	if d.EnvID != "" {
		rec('E', d.EnvID)
	}
	for i, r := range d.Recipients {
		if r == (RecipientDSN{}) {
			continue
		}
		rec('T', env.Recipients[i])
		if r.Notify != 0 {
			rec('N', r.Notify.String())
		}
		if r.ORcpt != "" {
			rec('O', r.ORcpt)
		}
	}
	return b
}

// msgDSN is a message's dsn/N as the scheduler holds it.
type msgDSN struct {
	ret, envid string
	rcpts      map[string]RecipientDSN // by recipient as in the envelope
	delayed    map[string]bool         // routed recipients told of a delay
	// By routed recipient, and by routed recipient without its
	// virtual-domain prepend (the address of bounce records); made with
	// the routing of the scheduler that read the file.
	routed, bounced map[string]RecipientDSN
}

// readDSN reads dsn/N; a missing file is (nil, nil), and one that is not
// a regular file an error (readRegularFile).
func (q *Queue) readDSN(id ID) (*msgDSN, error) {
	data, err := readRegularFile(q.path("dsn", id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	d := &msgDSN{rcpts: map[string]RecipientDSN{}}
	cur := ""
	for len(data) > 0 {
		rec, rest, _ := bytes.Cut(data, []byte{0})
		data = rest
		if len(rec) == 0 {
			continue
		}
		v := string(rec[1:])
		switch rec[0] {
		case 'R':
			d.ret = v
		case 'E':
			d.envid = v
		case 'T':
			cur = v
			if _, ok := d.rcpts[cur]; !ok {
				d.rcpts[cur] = RecipientDSN{}
			}
		case 'N':
			r := d.rcpts[cur]
			r.Notify, _ = ParseNotify(v)
			d.rcpts[cur] = r
		case 'O':
			r := d.rcpts[cur]
			r.ORcpt = v
			d.rcpts[cur] = r
		case 'Y':
			if d.delayed == nil {
				d.delayed = map[string]bool{}
			}
			d.delayed[v] = true
		}
	}
	return d, nil
}

// appendDSN appends records to dsn/N, durably.
func (q *Queue) appendDSN(id ID, records []byte) error {
	f, err := os.OpenFile(q.path("dsn", id), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(records); err != nil {
		f.Close()
		return err
	}
	return durable.SyncClose(f)
}

// removeDSN removes dsn/N and fsyncs dsn/, so that the removal is durable
// before the number N can be another message's.
func (q *Queue) removeDSN(id ID) error {
	if err := removeMissingOK(q.path("dsn", id)); err != nil {
		return err
	}
	return q.syncDir(filepath.Join(q.dir, "dsn"))
}

// EnqueueDSN is Enqueue with the DSN parameters an SMTP server received
// (it satisfies smtpserver.DSNEnqueuer): mail holds "RET" and "ENVID",
// rcpt one map per recipient with "NOTIFY" and "ORCPT", values decoded.
// A malformed value is a permanent error.
func (q *Queue) EnqueueDSN(ctx context.Context, from string, to []string, mail map[string]string, rcpt []map[string]string, r io.Reader) (string, error) {
	d := &DSN{Ret: mail["RET"], EnvID: mail["ENVID"]}
	if len(rcpt) > 0 {
		d.Recipients = make([]RecipientDSN, len(rcpt))
		for i, p := range rcpt {
			if v, ok := p["NOTIFY"]; ok {
				n, err := ParseNotify(v)
				if err != nil {
					return "", qerr(91, "envelope", fmt.Errorf("%w: %w", ErrEnvelopeFormat, err))
				}
				d.Recipients[i].Notify = n
			}
			d.Recipients[i].ORcpt = p["ORCPT"]
		}
	}
	o := q.origin
	o.Who = "from network"
	id, err := q.inject(ctx, o, Envelope{Sender: from, Recipients: to, DSN: d}, r)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// DefaultDelayNotice is how long a recipient that asked for NOTIFY=DELAY
// may stay deferred before it is sent a "delayed" notification: 4 hours.
const DefaultDelayNotice = 4 * time.Hour

// unitDSN is what a delivery needs of its message's DSN parameters,
// copied from the run's state when it starts, since a delivery runs in
// its own goroutine.
type unitDSN struct {
	to      string    // the notifications' recipient: the sender, VERP stripped
	final   []string  // each recipient without its virtual-domain prepend
	delayed []bool    // each recipient was told of a delay already
	dying   bool      // the pass is the last: a deferral bounces
	birth   time.Time // the message's
}

// loadDSN returns m's DSN parameters, reading dsn/N the first time; nil
// when m has none, or dsn/N cannot be read now (a warning; read again
// next time).
func (r *run) loadDSN(m *msg) *msgDSN {
	if !m.hasDSN {
		return nil
	}
	if m.dsn != nil {
		return m.dsn
	}
	d, err := r.q.readDSN(m.id)
	if err != nil {
		r.warn("unable to read dsn/" + m.id.String() + ": " + logSafe(err.Error()))
		return nil
	}
	if d == nil {
		m.hasDSN = false
		return nil
	}
	d.routed = make(map[string]RecipientDSN, len(d.rcpts))
	d.bounced = make(map[string]RecipientDSN, len(d.rcpts))
	for orig, p := range d.rcpts {
		addr, _ := r.router.route(orig)
		d.routed[addr] = p
		d.bounced[r.router.stripPrepend(addr)] = p
	}
	m.dsn = d
	return d
}

// startDSN gives a delivery starting its message's DSN parameters: those
// the deliverer passes on (u.dsn) and those for notifications (u.notice).
func (r *run) startDSN(u *unit) {
	m := u.j.m
	d := r.loadDSN(m)
	if d == nil {
		return
	}
	u.dsn = &DSN{Ret: d.ret, EnvID: d.envid, Recipients: make([]RecipientDSN, len(u.rcpts))}
	to := stripVerp(m.sender)
	if to == "" || to == "#@[]" {
		return // bounces never cause notifications
	}
	n := &unitDSN{to: to, final: make([]string, len(u.rcpts)), delayed: make([]bool, len(u.rcpts)), dying: u.j.dying, birth: m.birth}
	for i, a := range u.rcpts {
		u.dsn.Recipients[i] = d.routed[a]
		n.final[i] = r.router.stripPrepend(a)
		n.delayed[i] = d.delayed[a]
	}
	u.notice = n
}

// notify sends the notifications a delivery's results call for, in the
// delivery's goroutine: "delivered" for a local success and "relayed" for
// a remote one the deliverer could not pass the request on for
// (Result.DSNPassed), to recipients with NOTIFY=SUCCESS; "delayed", once,
// to those with NOTIFY=DELAY deferred for longer than the delay notice
// time. It returns the recipients told of a delay, recorded in dsn/N. A
// notification that cannot be sent is logged and not retried (success)
// or retried at the next deferral (delay): the delivery itself is never
// repeated for it.
func (r *run) notify(u *unit, res []Result) (delayed []string) {
	n := u.notice
	if n == nil || len(res) != len(u.rcpts) {
		return nil
	}
	now := r.now()
	var done, late []reportRcpt
	var lateAddrs []string
	for i, x := range res {
		p := u.dsn.Recipients[i]
		text := x.Report
		if text == "" && x.Err != nil {
			text = x.Err.Error()
		}
		e := reportRcpt{final: n.final[i], orcpt: p.ORcpt, diag: strings.Join(strings.Fields(text), " ")}
		switch {
		case x.Err == nil:
			if p.Notify&NotifySuccess == 0 || u.j.remote && x.DSNPassed {
				continue
			}
			e.action, e.status = "delivered", "2.0.0"
			if u.j.remote {
				e.action = "relayed"
			}
			done = append(done, e)
		case errors.Is(x.Err, errMangled) || qmailkit.IsPermanent(x.Err) || n.dying:
		case p.Notify&NotifyDelay != 0 && !n.delayed[i] && r.delayAfter > 0 && now.Sub(n.birth) >= r.delayAfter:
			e.action, e.status = "delayed", "4.0.0"
			if sm := enhanced.FindAllStringSubmatch(text, -1); len(sm) > 0 && sm[len(sm)-1][1][0] == '4' {
				e.status = sm[len(sm)-1][1]
			}
			late = append(late, e)
			lateAddrs = append(lateAddrs, u.rcpts[i])
		}
	}
	if len(done) > 0 {
		if err := r.injectNotice(u, done, "delivery notice", now); err != nil {
			r.warn("unable to send the delivery notice of msg " + u.j.m.id.String() + ": " + logSafe(err.Error()))
		}
	}
	if len(late) > 0 {
		if err := r.injectNotice(u, late, "delay notice", now); err != nil {
			r.warn("unable to send the delay notice of msg " + u.j.m.id.String() + ": " + logSafe(err.Error()))
			return nil
		}
		var recs []byte
		for _, a := range lateAddrs {
			recs = append(append(append(recs, 'Y'), a...), 0)
		}
		if err := r.q.appendDSN(u.j.m.id, recs); err != nil {
			r.warn("unable to record the delay notice in dsn/" + u.j.m.id.String() + "; it may be sent again")
		}
		return lateAddrs
	}
	return nil
}

// injectNotice injects a report of successes or delays to the sender, with
// the header of the message (RFC 3461 section 4.3: no content for these).
func (r *run) injectNotice(u *unit, rcpts []reportRcpt, subject string, now time.Time) error {
	q := r.q
	mess, err := openFile(q.path("mess", u.j.m.id), os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer mess.Close()
	n := u.notice
	intro := "Your message was delivered to the addresses below.\n"
	if rcpts[0].action == "delayed" {
		intro = "I have not been able to deliver your message to the addresses below yet.\n" +
			"I will keep trying; you need not send it again.\n"
	}
	rep := dsnReport{
		id: u.j.m.id, rcpt: n.to, subject: subject, envid: u.dsn.EnvID, birth: n.birth, now: now,
		rcpts: rcpts, mess: mess, headers: true,
		text: func(w io.Writer) {
			fmt.Fprintf(w, "Hi. This is the qmail-send program at %s.\n%s\n", r.s.Bounce.host(), intro)
			for _, e := range rcpts {
				verb := ""
				if e.action == "relayed" {
					verb = "Relayed to a server that sends no delivery notification.\n"
				}
				w.Write(bounceRecord(e.final, verb+e.diag))
			}
		},
	}
	ctx := context.WithoutCancel(r.ctx)
	w, err := q.Create(ctx, Origin{PID: q.origin.PID, UID: q.origin.UID, Who: "for bounce"})
	if err != nil {
		return err
	}
	if err := r.s.Bounce.writeReport(w, rep); err != nil {
		w.Abort()
		return err
	}
	id, err := w.Commit(ctx, Envelope{Recipients: []string{n.to}})
	if err == nil {
		r.info("dsn msg "+u.j.m.id.String()+": "+subject+" msg "+id.String(), "id", uint64(u.j.m.id), "notice", uint64(id))
	}
	return err
}
