package queue

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/internal/quote"
)

// bounceRecord is one paragraph of bounce/N for a permanent failure of addr
// (the recipient with any virtual-domain prepend removed) with report.
func bounceRecord(addr, report string) []byte {
	b := make([]byte, 0, len(addr)+len(report)+8)
	b = append(b, '<')
	b = append(b, strings.ReplaceAll(addr, "\n", "_")...)
	b = append(b, ">:\n"...)
	b = append(b, report...)
	if report != "" && !strings.HasSuffix(report, "\n") {
		b = append(b, '\n')
	}
	// No blank line inside the paragraph: a \n after a \n becomes /,
	// except the very last byte.
	// qmail walks backwards, so a run of n newlines keeps its first.
	for i := len(b) - 2; i > 0; i-- {
		if b[i] == '\n' && b[i-1] == '\n' {
			b[i] = '/'
		}
	}
	return append(b, '\n')
}

// Bounce is how the scheduler turns a message's permanent failures into a
// bounce message: qmail's control/bouncefrom, bouncehost, doublebounceto,
// doublebouncehost and the bouncemaxbytes extension. Zero fields take the
// defaults documented on each.
type Bounce struct {
	From string // local part of the bounce's From; "" means MAILER-DAEMON
	// Host is qmail's control/bouncehost: the domain of the bounce's From
	// and the host a QSBMF or RFC 3464 report names. "" means this
	// machine's host name (os.Hostname, "localhost" if it has none).
	// qmail-send uses control/me, else the literal "bouncehost"; a
	// drop-in sets that here (package mta's LoadHome does).
	Host     string
	DoubleTo string // local part of the double-bounce recipient; "" means postmaster
	// DoubleHost is qmail's control/doublebouncehost: the domain of the
	// double-bounce recipient. "" means this machine's host name, as for
	// Host (qmail: control/me, else the literal "doublebouncehost").
	DoubleHost string
	// DoubleToEmpty is qmail's doublebounceto with an empty first line:
	// double bounces go to "@DoubleHost", which a local deliverer treats
	// as a trash address. DoubleTo is then ignored.
	DoubleToEmpty bool
	// MaxBytes, when positive, limits the copy of the original message to
	// its first MaxBytes bytes (an extension of qmail patches; qmail
	// includes the whole message).
	MaxBytes int64
	// DSN makes bounces RFC 3464 delivery status notifications
	// (multipart/report) instead of qmail's QSBMF text. The bounce of a
	// message that came with DSN parameters (RFC 3461) is one whatever
	// DSN says.
	DSN bool
}

func (b Bounce) from() string { return def(b.From, "MAILER-DAEMON") }

func (b Bounce) host() string {
	if b.Host != "" {
		return b.Host
	}
	return hostname()
}

func (b Bounce) doubleHost() string {
	if b.DoubleHost != "" {
		return b.DoubleHost
	}
	return hostname()
}

// hostname is the default of Bounce.Host and DoubleHost: the kernel's host
// name, asked each time (it is one system call) so that a Bounce value
// needs no setup; "localhost" when it has none or it would break the
// bounce's header or address.
func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" || strings.ContainsAny(h, "\r\n\x00@<> \t") {
		return "localhost"
	}
	return h
}

func def(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// envelope returns the bounce's envelope for a message whose stored sender
// is sender; triple reports a bounce of a double bounce, which is dropped.
func (b Bounce) envelope(sender string) (env Envelope, double, triple bool) {
	sender = stripVerp(sender)
	switch sender {
	case "#@[]":
		return Envelope{}, false, true
	case "":
		to := def(b.DoubleTo, "postmaster")
		if b.DoubleToEmpty {
			to = ""
		}
		return Envelope{Sender: "#@[]", Recipients: []string{to + "@" + b.doubleHost()}}, true, false
	}
	return Envelope{Sender: "", Recipients: []string{sender}}, false, false
}

// stripVerp turns owner-@host-@[] into owner-@host.
func stripVerp(s string) string {
	if strings.HasSuffix(s, "-@[]") {
		return s[:len(s)-4]
	}
	return s
}

// bounceMessage holds what a bounce is made of.
type bounceMessage struct {
	id      ID
	sender  string // stored sender (VERP stripped)
	rcpt    string // the bounce's recipient
	double  bool
	records []byte    // contents of bounce/N
	mess    io.Reader // mess/S/N
	birth   time.Time
	now     time.Time
	dsn     *msgDSN // the message's DSN parameters, nil if none
}

const (
	introSingle = "I could not deliver your message to the addresses below.\n" +
		"The failure is permanent, so no further attempts will be made.\n"
	introDouble = "A bounce message sent to the address below could not be delivered either.\n"
	breakSingle = "--- Below this line is a copy of the message.\n"
	breakDouble = "--- Below this line is the original bounce.\n"
)

// write writes the bounce (the bytes given to the injector, which adds its
// Received line), streaming the original message.
func (b Bounce) write(w io.Writer, m bounceMessage) error {
	if b.DSN || m.dsn != nil {
		return b.writeDSN(w, m)
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "Date: %s -0000\nFrom: %s@%s\nTo: %s\nSubject: failure notice\n\n", Date(m.now), quote.Local(b.from()), b.host(), quote.Addr(m.rcpt))
	b.writeText(bw, m)
	brk := breakSingle
	if m.double {
		brk = breakDouble
	}
	bw.WriteString(brk + "\n")
	fmt.Fprintf(bw, "Return-Path: <%s>\n", quote.Addr(m.sender))
	if err := b.copyMess(bw, m.mess); err != nil {
		return err
	}
	return bw.Flush()
}

func (b Bounce) writeText(w io.Writer, m bounceMessage) {
	intro := introSingle
	if m.double {
		intro = introDouble
	}
	fmt.Fprintf(w, "Hi. This is the qmail-send program at %s.\n%s\n", b.host(), intro)
	w.Write(m.records)
}

func (b Bounce) copyMess(w io.Writer, mess io.Reader) error {
	if b.MaxBytes > 0 {
		mess = io.LimitReader(mess, b.MaxBytes)
	}
	if _, err := io.Copy(w, mess); err != nil {
		return fmt.Errorf("queue: bounce: read message: %w", err)
	}
	return nil
}

var enhanced = regexp.MustCompile(`\(#([245]\.[0-9]{1,3}\.[0-9]{1,3})\)`)

// remoteSaid finds the remote server's reply in qmail-remote's report, and
// its enhanced status code, if any; givingUp the host that gave it.
var (
	remoteSaid = regexp.MustCompile(`(?m)^Remote host said: ([245][0-9][0-9](?: ([245]\.[0-9]{1,3}\.[0-9]{1,3}))?[^\n]*)$`)
	givingUp   = regexp.MustCompile(`(?m)^Giving up on ([^\s/]+)\.$`)
)

// writeDSN writes an RFC 3464 delivery status notification of the
// failures in m.records, with the QSBMF text as its human-readable part.
// The message's DSN parameters, when it has them, give the
// Original-Envelope-Id, each recipient's Original-Recipient, and with
// RET=HDRS only the header of the message.
func (b Bounce) writeDSN(w io.Writer, m bounceMessage) error {
	rep := dsnReport{
		id: m.id, rcpt: m.rcpt, subject: "failure notice", birth: m.birth, now: m.now,
		mess: m.mess, headers: b.MaxBytes > 0, limit: b.MaxBytes,
		text: func(w io.Writer) { b.writeText(w, m) },
	}
	if m.dsn != nil {
		rep.envid = m.dsn.envid
		if m.dsn.ret == "HDRS" {
			rep.headers = true
		}
	}
	for rec := range strings.SplitSeq(strings.TrimSuffix(string(m.records), "\n\n"), "\n\n") {
		first, text, _ := strings.Cut(rec, "\n")
		addr := strings.TrimSuffix(strings.TrimPrefix(first, "<"), ">:")
		status := "5.0.0"
		if sm := enhanced.FindAllStringSubmatch(text, -1); len(sm) > 0 {
			status = sm[len(sm)-1][1]
		}
		e := reportRcpt{final: addr, action: "failed", diag: strings.Join(strings.Fields(text), " ")}
		// qmail-remote's report of a remote refusal: "HOST does not like
		// recipient.\nRemote host said: 550 5.1.1 text\nGiving up on HOST."
		// The reply is the diagnostic (RFC 3464 section 2.3.6, type smtp)
		// and its enhanced code the status.
		if sm := remoteSaid.FindAllStringSubmatch(text, -1); len(sm) > 0 {
			reply := sm[len(sm)-1]
			e.diag, e.smtp = strings.TrimSpace(reply[1]), true
			if reply[2] != "" {
				status = reply[2]
			}
			if h := givingUp.FindStringSubmatch(text); h != nil {
				e.remote = h[1]
			}
		}
		if status[0] != '5' {
			status = "5" + status[1:] // a failure is permanent whatever the reporter said
		}
		e.status = status
		if m.dsn != nil {
			e.orcpt = m.dsn.bounced[addr].ORcpt
		}
		rep.rcpts = append(rep.rcpts, e)
	}
	return b.writeReport(w, rep)
}

// dsnReport is an RFC 3464 delivery status notification to write.
type dsnReport struct {
	id      ID
	rcpt    string // the report's recipient
	subject string
	envid   string
	birth   time.Time
	now     time.Time
	rcpts   []reportRcpt
	text    func(io.Writer) // the human-readable part
	mess    io.Reader       // the message
	headers bool            // return only its header (text/rfc822-headers)
	limit   int64           // when positive, read at most this much of it
}

// reportRcpt is one recipient's fields in a report.
type reportRcpt struct {
	final, orcpt string
	action       string // failed, delayed, delivered, relayed
	status       string // RFC 3463 code
	diag         string // qmail's report text, on one line, or the remote reply
	smtp         bool   // diag is a remote server's reply
	remote       string // the remote host that refused, when known
}

// writeReport writes rep as a multipart/report (RFC 3462) of type
// delivery-status. Lines end in LF, as every message in the queue; the
// injector stores it so and the SMTP client sends CRLF.
func (b Bounce) writeReport(w io.Writer, rep dsnReport) error {
	lf := &crlfToLF{w: w}
	boundary := fmt.Sprintf("qmailkit-%s-%d", rep.id, rep.now.Unix())
	mw := multipart.NewWriter(lf)
	if err := mw.SetBoundary(boundary); err != nil {
		return fmt.Errorf("queue: bounce: %w", err)
	}
	ct := mime.FormatMediaType("multipart/report", map[string]string{
		"report-type": "delivery-status",
		"boundary":    boundary,
	})
	for _, f := range [][2]string{
		{"Date", Date(rep.now) + " -0000"},
		{"From", quote.Local(b.from()) + "@" + b.host()},
		{"To", quote.Addr(rep.rcpt)},
		{"Subject", rep.subject},
		{"Auto-Submitted", "auto-replied"},
		{"Mime-Version", "1.0"},
		{"Content-Type", ct},
	} {
		if err := writeField(lf, f[0], f[1]); err != nil {
			return fmt.Errorf("queue: bounce: %w", err)
		}
	}
	if _, err := io.WriteString(lf, "\r\n"); err != nil {
		return fmt.Errorf("queue: bounce: %w", err)
	}

	pw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/plain; charset=utf-8"}})
	if err != nil {
		return fmt.Errorf("queue: bounce: %w", err)
	}
	rep.text(pw)

	pw, err = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"message/delivery-status"}})
	if err != nil {
		return fmt.Errorf("queue: bounce: %w", err)
	}
	if rep.envid != "" {
		fmt.Fprintf(pw, "Original-Envelope-Id: %s\n", rep.envid)
	}
	fmt.Fprintf(pw, "Reporting-MTA: dns; %s\n", b.host())
	if !rep.birth.IsZero() {
		fmt.Fprintf(pw, "Arrival-Date: %s\n", rep.birth.UTC().Format(time.RFC1123Z))
	}
	for _, e := range rep.rcpts {
		pw.Write([]byte{'\n'})
		if e.orcpt != "" {
			fmt.Fprintf(pw, "Original-Recipient: %s\n", e.orcpt)
		}
		fmt.Fprintf(pw, "Final-Recipient: rfc822; %s\nAction: %s\nStatus: %s\n", e.final, e.action, e.status)
		if e.remote != "" {
			fmt.Fprintf(pw, "Remote-MTA: dns; %s\n", e.remote)
		}
		switch {
		case e.smtp:
			fmt.Fprintf(pw, "Diagnostic-Code: smtp; %s\n", e.diag)
		case e.diag != "":
			fmt.Fprintf(pw, "Diagnostic-Code: X-qmail; %s\n", e.diag)
		}
	}

	otype := "message/rfc822"
	if rep.headers {
		otype = "text/rfc822-headers"
	}
	pw, err = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {otype}})
	if err != nil {
		return fmt.Errorf("queue: bounce: %w", err)
	}
	mess := rep.mess
	if rep.limit > 0 {
		mess = io.LimitReader(mess, rep.limit)
	}
	if rep.headers {
		err = copyHeader(pw, mess)
	} else if _, err = io.Copy(pw, mess); err != nil {
		err = fmt.Errorf("queue: bounce: read message: %w", err)
	}
	if err != nil {
		return err
	}
	if err := mw.Close(); err != nil {
		return fmt.Errorf("queue: bounce: %w", err)
	}
	return lf.flush()
}

// Header folding: a line of a field is cut at the last space or tab that
// leaves it at most foldSoft bytes long (RFC 5322 section 2.1.1's 78, less
// the CRLF and a margin); a word too long for that stays whole up to
// foldHard (the 998 limit), beyond which a space is inserted. This is the
// folding go-message v0.18 did when it wrote these reports, kept so that
// they stay byte-identical.
const (
	foldSoft = 76
	foldHard = 998
)

// errFieldNewline refuses a field value with a CR or LF, which would end
// the field (or the header) early.
var errFieldNewline = errors.New("header field value contains CR or LF")

// writeField writes the header field k: v, folded, with a CRLF line end.
func writeField(w io.Writer, k, v string) error {
	if strings.ContainsAny(v, "\r\n") {
		return fmt.Errorf("%s: %w", k, errFieldNewline)
	}
	_, err := io.WriteString(w, formatField(k, v))
	return err
}

func formatField(k, v string) string {
	s := k + ": "
	if v == "" {
		return s + "\r\n"
	}
	for first := true; len(v) > 0; first = false {
		keylen := 0
		if first {
			keylen = len(s)
		}
		l, next, ok := foldLine(v, foldSoft-keylen)
		if !ok {
			l, next, _ = foldLine(v, foldHard-keylen)
		}
		s += l
		v = next
	}
	return s
}

// foldLine cuts the first line, of at most maxlen bytes, off v (which has
// no CR or LF), and returns it with its line end, and the rest, which
// starts with the space or tab the line was cut at. ok is false when no
// space or tab allowed the cut and one had to be inserted.
func foldLine(v string, maxlen int) (line, next string, ok bool) {
	foldBefore := maxlen + 1
	if foldBefore > len(v) {
		return v + "\r\n", "", true
	}
	foldAt := strings.LastIndexAny(v[:foldBefore], " \t")
	switch {
	case foldAt == 0:
		// The space that starts v, where the previous line was cut.
		foldAt = foldBefore - 1
	case foldAt < 0:
		foldAt = foldBefore - 2
	}
	if c := v[foldAt]; c == ' ' || c == '\t' {
		return v[:foldAt] + "\r\n", v[foldAt:], true
	}
	return v[:foldAt] + "\r\n ", v[foldAt:], false
}

// copyHeader copies the header of a message (up to its first empty line).
func copyHeader(w io.Writer, r io.Reader) error {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && (len(line) > 1 || line[0] != '\n') {
			w.Write(line)
		}
		if err != nil || len(line) == 1 {
			if err == io.EOF {
				err = nil
			}
			return err
		}
	}
}

// crlfToLF turns the CRLF line ends of a MIME writer into LF.
type crlfToLF struct {
	w  io.Writer
	cr bool // a CR ends the previous write
}

func (c *crlfToLF) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	out := make([]byte, 0, len(p)+1)
	if c.cr {
		if len(p) > 0 && p[0] != '\n' {
			out = append(out, '\r')
		}
		c.cr = false
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '\r' {
			if i+1 == len(p) {
				c.cr = true
				continue
			}
			if p[i+1] == '\n' {
				continue
			}
		}
		out = append(out, p[i])
	}
	if _, err := c.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *crlfToLF) flush() error {
	if c.cr {
		c.cr = false
		_, err := c.w.Write([]byte{'\r'})
		return err
	}
	return nil
}
