package smtpclient

import (
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
)

// maxRcptPerTx is the number of RCPTs per transaction RFC 5321 section
// 4.5.3.1.8 guarantees a server accepts.
const maxRcptPerTx = 100

// transactions runs mail transactions on s until every recipient is
// settled, then releases s (to the pool, or with QUIT).
func (d *delivery) transactions(ctx context.Context, s *session) {
	c, res := d.c, d.res
	defer d.release(s)
	pending := make([]int, 0, len(res.Recipients))
	utf8 := false
	needUTF8 := !isASCII(d.sender)
	for i := range res.Recipients {
		pending = append(pending, i)
		needUTF8 = needUTF8 || !isASCII(res.Recipients[i].Address)
	}
	if needUTF8 && !c.QmailCompat {
		if _, ok := s.ext["SMTPUTF8"]; ok {
			utf8 = true
		} else if !isASCII(d.sender) {
			res.fail(newHostError(true, s.ip, s.ip+" does not support SMTPUTF8, which the sender address needs. (#5.6.7)\n", ErrUTF8))
			return
		} else {
			kept := pending[:0]
			for _, i := range pending {
				r := &res.Recipients[i]
				if isASCII(r.Address) {
					kept = append(kept, i)
					continue
				}
				e := newHostError(true, s.ip, s.ip+" does not support SMTPUTF8, which this recipient needs. (#5.6.7)\n", ErrUTF8)
				r.status, r.text, r.Err = 'h', e.Report, e
			}
			pending = kept
			if len(pending) == 0 {
				res.fail(newHostError(true, s.ip, "Giving up on "+s.ip+".\n", nil))
				return
			}
		}
	}
	delivered := false
	var gaveUp error // the last "Giving up" of a batch
	for first := true; len(pending) > 0; first = false {
		if !first {
			if err := d.rewind(); err != nil {
				for _, i := range pending {
					res.Recipients[i].Err = newHostError(false, s.ip, "Not retried in this session: the message cannot be read again. (#4.3.0)\n", err)
				}
				break
			}
		}
		n := len(pending)
		if n > maxRcptPerTx && !c.QmailCompat {
			n = maxRcptPerTx
		}
		batch, rest := pending[:n], pending[n:]
		_, retry, err := d.transact(s, batch, utf8)
		switch {
		case err != nil && errors.Is(err, errAllRejected) && !s.broken:
			// No recipient of this batch was accepted: each keeps its own
			// refusal; one never asked (after a 452) is deferred. The
			// other batches are still tried.
			for _, i := range batch {
				if r := &res.Recipients[i]; r.status == 0 {
					r.Err = newHostError(false, s.ip, "Recipient not tried at "+s.ip+". (#4.5.3)\n", nil)
				}
			}
			gaveUp = err
			pending = rest
		case err != nil:
			if res.Err == nil {
				res.Err = err
			}
			for _, i := range batch {
				if r := &res.Recipients[i]; r.status == 'r' || r.status == 0 {
					r.Err = err
				}
			}
			for _, i := range rest {
				res.Recipients[i].Err = err
			}
			return
		default:
			delivered = true
			for _, i := range batch {
				// Defensive: a recipient of a successful transaction that
				// got no RCPT reply and is not retried must not look
				// delivered.
				if r := &res.Recipients[i]; r.status == 0 && r.Err == nil && !slices.Contains(retry, i) {
					r.Err = newHostError(false, s.ip, "Recipient not tried at "+s.ip+". (#4.3.0)\n", nil)
				}
			}
			pending = append(retry, rest...)
		}
	}
	if !delivered && gaveUp != nil && res.Err == nil {
		res.Err = gaveUp // qmail's "Giving up on IP."
	}
}

// release returns s to the pool when it can carry another transaction,
// otherwise ends it.
func (d *delivery) release(s *session) {
	s.unwatch()
	switch {
	case s.broken:
		s.close()
	case d.c.Pool != nil && !d.c.QmailCompat:
		d.c.Pool.put(s)
	default:
		s.quit()
	}
}

// transact runs one transaction for the recipients batch (indices into the
// result). It returns the recipients accepted, those deferred by a 452 to be
// tried again in another transaction, and the message's failure.
func (d *delivery) transact(s *session, batch []int, utf8 bool) (accepted, retry []int, err error) {
	c, res := d.c, d.res
	to := &c.Timeouts
	var params strings.Builder
	if s.esmtp {
		lim, sizeOK := s.ext["SIZE"]
		_, eightOK := s.ext["8BITMIME"]
		if sizeOK || eightOK {
			d.measure(s.buffer())
		}
		if sizeOK && d.measured {
			limit, _ := strconv.ParseInt(strings.TrimSpace(lim), 10, 64)
			if limit > 0 && d.size > limit {
				return nil, nil, newHostError(true, s.ip, "Message is too big for "+s.ip+": "+
					strconv.FormatInt(d.size, 10)+" bytes, limit "+strconv.FormatInt(limit, 10)+". (#5.3.4)\n", ErrTooBig)
			}
			params.WriteString(" SIZE=" + strconv.FormatInt(d.size, 10))
		}
		if eightOK && (!d.measured || d.eightbit) {
			params.WriteString(" BODY=8BITMIME")
		}
		if utf8 {
			params.WriteString(" SMTPUTF8")
		}
	}
	_, dsnOK := s.ext["DSN"]
	dsnOK = dsnOK && s.esmtp && d.dsn != nil && !c.QmailCompat
	if dsnOK {
		params.WriteString(d.dsn.mailParams())
	}
	rcptLine := func(i int) string {
		line := "RCPT TO:<" + quoteAddr(res.Recipients[i].Address) + ">"
		if dsnOK {
			p, notify := d.dsn.rcptParams(i)
			line += p
			res.Recipients[i].DSNPassed = notify
		}
		return line
	}
	mail := "MAIL FROM:<" + quoteAddr(d.sender) + ">" + params.String()
	mailFailed := func(r *Reply) error {
		return replyError(verdict(r.Code) == 'D', s.ip, "Connected to "+s.ip+" but sender was rejected.\n", r, nil)
	}
	for _, i := range batch {
		r := &res.Recipients[i]
		r.status, r.text, r.Err, r.DSNPassed = 0, "", nil, false
	}
	_, pipelining := s.ext["PIPELINING"]
	if pipelining && s.esmtp {
		lines := make([]string, 0, len(batch)+1)
		lines = append(lines, mail)
		for _, i := range batch {
			lines = append(lines, rcptLine(i))
		}
		if err := s.send(to.command(), lines...); err != nil {
			return nil, nil, s.died(err, false)
		}
		r, err := s.read(to.command())
		if err != nil {
			return nil, nil, s.died(err, false)
		}
		if verdict(r.Code) != 0 {
			for range batch {
				if _, err := s.read(to.rcpt()); err != nil {
					break
				}
			}
			return nil, nil, mailFailed(r)
		}
		for _, i := range batch {
			r, err := s.read(to.rcpt())
			if err != nil {
				return nil, nil, s.died(err, false)
			}
			if d.rcptReply(s, i, r) {
				accepted = append(accepted, i)
			} else if tooMany(r) {
				retry = append(retry, i)
			}
		}
	} else {
		r, err := s.cmd(to.command(), mail)
		if err != nil {
			return nil, nil, s.died(err, false)
		}
		if verdict(r.Code) != 0 {
			return nil, nil, mailFailed(r)
		}
		for k, i := range batch {
			r, err := s.cmd(to.rcpt(), rcptLine(i))
			if err != nil {
				return nil, nil, s.died(err, false)
			}
			if d.rcptReply(s, i, r) {
				accepted = append(accepted, i)
			} else if tooMany(r) && !c.QmailCompat {
				// RFC 5321 section 4.5.3.1.10: too many recipients; the
				// rest go in another transaction.
				retry = append(retry, batch[k:]...)
				break
			}
			if s.broken && !c.QmailCompat {
				break // 421 or a malformed reply: stop here (qmail goes on)
			}
		}
	}
	if s.broken && !c.QmailCompat {
		// 421 or a malformed reply: the server is going away.
		return nil, nil, newHostError(false, s.ip, "Connected to "+s.ip+" but it ended the session.\n", nil)
	}
	if len(accepted) == 0 {
		// qmail's "Giving up" is permanent: every recipient was refused.
		// Recipients deferred by a 452 (some never asked for) make it
		// temporary.
		return nil, nil, newHostError(len(retry) == 0, s.ip, "Giving up on "+s.ip+".\n", errAllRejected)
	}
	r, err := s.cmd(to.data(), "DATA")
	if err != nil {
		return nil, nil, s.died(err, false)
	}
	if v := verdict(r.Code); v != 0 || r.Code != 354 && !c.QmailCompat {
		// qmail sends the message after any code below 400; anything but
		// 354 means the server would read the message as commands.
		return nil, nil, replyError(v == 'D', s.ip, s.ip+" failed on DATA command.\n", r, nil)
	}
	s.wto = to.block()
	d.readOnce = true
	readErr, writeErr := copyData(s.bw, d.msg, c.QmailCompat, s.buffer())
	switch {
	case readErr == errPartial:
		s.close() // qmail-remote exits inside DATA: the server discards it
		return nil, nil, newHostError(true, s.ip, "SMTP cannot transfer messages with partial final lines. (#5.6.2)\n", ErrPartialLine)
	case readErr != nil:
		s.close()
		return nil, nil, newHostError(false, s.ip, "Unable to read message. (#4.3.0)\n", wrap2(ErrMessageRead, readErr))
	case writeErr != nil:
		return nil, nil, s.died(writeErr, false)
	}
	r, err = s.read(to.final())
	if err != nil {
		return nil, nil, s.died(err, true)
	}
	if v := verdict(r.Code); v != 0 {
		return nil, nil, replyError(v == 'D', s.ip, s.ip+" failed after I sent the message.\n", r, nil)
	}
	res.Text = replyError(false, s.ip, s.ip+" accepted message.\n", r, nil).Report
	c.logger().Info("delivered", "addr", s.ip, "recipients", len(accepted), "reply", r.Text())
	return accepted, retry, nil
}

// errAllRejected marks qmail's "Giving up": no recipient was accepted.
var errAllRejected = errors.New("smtpclient: every recipient was rejected")

// tooMany reports whether an RCPT reply defers the recipient for another
// transaction: 452 (RFC 5321 section 4.5.3.1.10) without an enhanced code
// saying something else than 4.5.3 (a full mailbox, 4.2.2, is not retried).
func tooMany(r *Reply) bool {
	e := r.Enhanced()
	return r.Code == 452 && (e == "" || e == "4.5.3")
}

// rcptReply records the reply to one RCPT and reports whether it accepted.
func (d *delivery) rcptReply(s *session, i int, r *Reply) bool {
	rr := &d.res.Recipients[i]
	v := verdict(r.Code)
	e := replyError(v == 'D', s.ip, s.ip+" does not like recipient.\n", r, nil)
	switch v {
	case 0:
		rr.status, rr.text = 'r', ""
		return true
	case 'D':
		rr.status = 'h'
	default:
		rr.status = 's'
	}
	rr.text, rr.Err, rr.DSNPassed = e.Report, e, false
	return false
}

// measure takes the message's size and 8-bit content, when msg can be read
// again.
func (d *delivery) measure(buf []byte) bool {
	if d.measured {
		return true
	}
	if !d.seekable || d.readOnce {
		return false
	}
	size, eightbit, err := measure(d.msg, buf)
	if d.rewind() != nil || err != nil {
		d.seekable = false
		return false
	}
	d.measured, d.size, d.eightbit = true, size, eightbit
	return true
}

func (d *delivery) rewind() error {
	if !d.seekable {
		return io.ErrNoProgress
	}
	_, err := d.msg.(io.Seeker).Seek(d.start, io.SeekStart)
	return err
}

func newHostError(perm bool, host, text string, cause error) *Error {
	e := newError(perm, text, cause)
	e.Host = host
	return e
}

// buffer returns the session's buffer for reading messages, allocated
// once per connection.
func (s *session) buffer() []byte {
	if s.buf == nil {
		s.buf = make([]byte, copyBufSize)
	}
	return s.buf
}
