package smtpserver

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Errors the DATA reader gives the Enqueuer instead of io.EOF, so that a
// message that must not be queued never looks complete.
var (
	// errRejected: the message broke a rule (size, hops, bare CR); the
	// server reads on to the end of data and replies.
	errRejected = errors.New("smtpserver: message rejected")
	// errBareLF: a bare LF; the server replies and closes the connection.
	errBareLF = errors.New("smtpserver: bare LF in DATA")
)

// Reader states, numbered as in qmail-smtpd's blast().
const (
	stMiddle = 0 // inside a line
	stStart  = 1 // after CRLF (or at the start)
	stDot    = 2 // after CRLF "."
	stDotCR  = 3 // after CRLF "." CR
	stCR     = 4 // after a CR
)

// maxHops is qmail's hop limit: 100 Received/Delivered header lines.
const maxHops = 100

// dataReader is the strict DATA reader, qmail-smtpd's made safe against SMTP
// smuggling: only CRLF "." CRLF ends the data, CRLF becomes LF, a leading
// dot is removed, a bare LF is fatal, and a bare CR is stored (qmail) or
// rejects the message (modern). It also counts hops (Received and Delivered
// header lines) and enforces databytes. It never holds more than the
// bufio.Reader's buffer.
//
// With chunked set it reads BDAT data: no dot handling, and the end of src is
// the end of the message.
type dataReader struct {
	src        *bufio.Reader
	beforeFill func() // sets the read deadline before a blocking read
	chunked    bool
	strictCR   bool  // modern: a bare CR rejects the message
	max        int64 // databytes; 0 = unlimited

	state int
	n     int64 // bytes stored so far
	pend  []byte

	inHeader   bool
	pos        int
	mx, my, mz bool
	hops       int

	done    bool  // end of data seen
	fatal   error // errBareLF or a read error: the session ends
	tooBig  bool
	bareCR  bool
	discard bool // draining: nothing more is returned
}

func newDataReader(src *bufio.Reader, max int64, strictCR, chunked bool) *dataReader {
	return &dataReader{
		src: src, max: max, strictCR: strictCR, chunked: chunked,
		state: stStart, inHeader: true, mx: true, my: true, mz: true,
		pend: make([]byte, 0, 4),
	}
}

// rejected reports whether the message broke a rule and must not be queued.
func (d *dataReader) rejected() bool {
	return d.tooBig || d.bareCR || d.hops >= maxHops
}

// reply is the reply for a rejected message, in qmail's priority order:
// hops, then size, then bare CR.
func (d *dataReader) reply() Reply {
	switch {
	case d.hops >= maxHops:
		return replyHops
	case d.tooBig:
		return replyTooBig
	default:
		return replyBareCR
	}
}

// reason is the reason token of reply.
func (d *dataReader) reason() string {
	switch {
	case d.hops >= maxHops:
		return ReasonLoop
	case d.tooBig:
		return ReasonSize
	default:
		return ReasonProtocol
	}
}

// Read returns message bytes; at the end of data it returns io.EOF only when
// the message may be queued, and errRejected otherwise.
func (d *dataReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	w := copy(p, d.pend)
	d.pend = d.pend[:copy(d.pend, d.pend[w:])]
	if w > 0 && len(d.pend) > 0 {
		return w, nil
	}
	for w < len(p) {
		if d.fatal != nil {
			return w, d.fatal
		}
		if d.rejected() {
			if w > 0 {
				return w, nil
			}
			return 0, errRejected
		}
		if d.done {
			if w > 0 {
				return w, nil
			}
			return 0, io.EOF
		}
		buf, err := d.fill()
		if err != nil {
			d.fatal = err
			continue
		}
		if buf == nil {
			continue // chunked end of input: d.done is set
		}
		used, wrote := d.scan(buf, p[w:])
		w += wrote
		d.src.Discard(used)
		if len(d.pend) > 0 {
			break
		}
	}
	return w, nil
}

// drain reads and discards the rest of the data, up to its end or a fatal
// error, keeping the state machine (hops, size, bare LF/CR) running.
func (d *dataReader) drain() error {
	d.discard = true
	for !d.done && d.fatal == nil {
		buf, err := d.fill()
		if err != nil {
			d.fatal = err
			break
		}
		if buf == nil {
			continue
		}
		used, _ := d.scan(buf, nil)
		d.src.Discard(used)
	}
	return d.fatal
}

// fill returns the buffered input, blocking for more only when there is
// none. In chunked mode the end of src ends the message (returns nil, nil).
func (d *dataReader) fill() ([]byte, error) {
	if d.src.Buffered() == 0 {
		if d.beforeFill != nil {
			d.beforeFill()
		}
		if _, err := d.src.Peek(1); err != nil {
			if err == io.EOF {
				if d.chunked {
					d.finishChunked()
					return nil, nil
				}
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	buf, _ := d.src.Peek(d.src.Buffered())
	return buf, nil
}

// finishChunked ends a BDAT message: a CR left pending at the very end is a
// bare CR.
func (d *dataReader) finishChunked() {
	if d.state == stCR {
		d.put(nil, []byte{'\r'})
		if d.strictCR {
			d.bareCR = true
		}
	}
	d.done = true
}

// scan runs the state machine over buf, writing stored bytes to out (and to
// d.pend when out is full), and returns the bytes of buf consumed and of out
// written. It stops at the end of data, a fatal error, a rejection, or when
// out is full.
func (d *dataReader) scan(buf, out []byte) (used, wrote int) {
	for used < len(buf) {
		if d.done || d.fatal != nil || (!d.discard && (d.rejected() || len(d.pend) > 0)) {
			return
		}
		if !d.discard && wrote >= len(out) {
			return
		}
		// Fast path: a run of ordinary bytes in the middle of a line, past
		// the bytes the hop count looks at.
		if d.state == stMiddle && (!d.inHeader || d.pos >= 9) {
			rest := buf[used:]
			k := len(rest)
			if i := bytes.IndexByte(rest, '\r'); i >= 0 && i < k {
				k = i
			}
			if i := bytes.IndexByte(rest, '\n'); i >= 0 && i < k {
				k = i
			}
			if !d.discard {
				k = min(k, len(out)-wrote)
			}
			if k > 0 {
				wrote += d.put(out[wrote:], rest[:k])
				used += k
				continue
			}
		}
		ch := buf[used]
		used++
		if d.inHeader {
			d.countHop(ch)
		}
		wrote += d.step(ch, out[min(wrote, len(out)):])
	}
	return
}

// countHop is qmail's header scan over raw bytes: a header line whose first
// 8 bytes are "received" or 9 are "delivered" (any case) is a hop; the
// header ends at the first line that starts with CR LF.
func (d *dataReader) countHop(ch byte) {
	if d.pos < 9 {
		if ch != "delivered"[d.pos] && ch != "DELIVERED"[d.pos] {
			d.mz = false
		}
		if d.mz && d.pos == 8 {
			d.hops++
		}
		if d.pos < 8 && ch != "received"[d.pos] && ch != "RECEIVED"[d.pos] {
			d.mx = false
		}
		if d.mx && d.pos == 7 {
			d.hops++
		}
		if d.pos < 2 && ch != "\r\n"[d.pos] {
			d.my = false
		}
		if d.my && d.pos == 1 {
			d.inHeader = false
		}
		d.pos++
	}
	if ch == '\n' {
		d.pos = 0
		d.mx, d.my, d.mz = true, true, true
	}
}

// step feeds one byte through blast()'s state machine and returns how many
// bytes it wrote to out.
func (d *dataReader) step(ch byte, out []byte) int {
	switch d.state {
	case stMiddle:
		switch ch {
		case '\n':
			d.fatal = errBareLF
			return 0
		case '\r':
			d.state = stCR
			return 0
		}
	case stStart:
		switch {
		case ch == '\n':
			d.fatal = errBareLF
			return 0
		case ch == '.' && !d.chunked:
			d.state = stDot
			return 0
		case ch == '\r':
			d.state = stCR
			return 0
		}
		d.state = stMiddle
	case stDot:
		switch ch {
		case '\n':
			d.fatal = errBareLF
			return 0
		case '\r':
			d.state = stDotCR
			return 0
		}
		d.state = stMiddle
	case stDotCR:
		if ch == '\n' {
			d.done = true
			return 0
		}
		if d.strictCR {
			d.bareCR = true
		}
		n := d.put(out, []byte{'.', '\r'})
		if ch == '\r' {
			d.state = stCR
			return n
		}
		d.state = stMiddle
		return n + d.put(out[min(n, len(out)):], []byte{ch})
	case stCR:
		if ch == '\n' {
			d.state = stStart
			break
		}
		if d.strictCR {
			d.bareCR = true
		}
		if ch != '\r' {
			d.state = stMiddle
			return d.put(out, []byte{'\r', ch})
		}
		// CR CR: store the first, stay after a CR.
	}
	return d.put(out, []byte{ch})
}

// put stores b: counts it against databytes and copies it to out, keeping
// what does not fit in d.pend.
func (d *dataReader) put(out, b []byte) int {
	d.n += int64(len(b))
	if d.max > 0 && d.n > d.max {
		d.tooBig = true
	}
	if d.discard {
		return 0
	}
	k := copy(out, b)
	d.pend = append(d.pend, b[k:]...)
	return k
}
