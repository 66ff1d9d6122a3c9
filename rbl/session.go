package rbl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrTimeout is what [Session.Serve] returns when the session's time is up.
var ErrTimeout = errors.New("rbl: session timed out")

// DefaultTimeout is how long a blocked client is kept talking when
// [Session.Timeout] is 0: rblsmtpd's default, -t 60.
const DefaultTimeout = 60 * time.Second

// Session is rblsmtpd's conversation with a blocked client: a fake SMTP
// server that accepts the greeting and MAIL but refuses every recipient,
// so that the client gets the reason and its mail stays queued (451) or
// bounces (553) without any message being taken.
type Session struct {
	// Message is the refusal, without CRLF: [Result.Message].
	Message string
	// Timeout is how long the session may last, counted from its start and
	// never extended by what the client sends (rblsmtpd -t). 0 means
	// [DefaultTimeout]. Negative means no session (rblsmtpd -t 0): Message
	// is written once, nothing is read.
	Timeout time.Duration
}

// Serve holds the session with a client that sends on r and reads w: the
// greeting "220 rblsmtpd.local", then per command line "250
// rblsmtpd.local" to HELO, EHLO, MAIL, RSET and NOOP, "221 rblsmtpd.local"
// to QUIT (which ends the session), and Message to anything else (RCPT,
// DATA, VRFY, an empty line, ...). Each reply is one Write.
//
// A line ends at LF; one CR before it is dropped; the verb is everything
// before the first space, compared without regard to ASCII case, so that
// "HELO\t" and "QUIT\x00" are not verbs. A last line without LF is not
// answered. Lines are not kept: memory use does not grow with their length
// or number.
//
// Serve returns nil after QUIT or when r reports EOF, [ErrTimeout] when
// Timeout has passed, ctx's error when ctx ends first, or the error of a
// read or write. When r or w has a SetReadDeadline or SetWriteDeadline
// method (a net.Conn; an *os.File that the runtime polls), the end of the
// time or of ctx interrupts a blocked Read or Write by setting a deadline in
// the past, which stays set; otherwise Serve notices it only between two
// reads. Serve closes neither r nor w.
func (s *Session) Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	msg := s.Message + "\r\n"
	if s.Timeout < 0 {
		if _, err := io.WriteString(w, msg); err != nil {
			return fmt.Errorf("rbl: session: %w", err)
		}
		return nil
	}
	timeout := s.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	expired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(expired)
		past := time.Unix(1, 0)
		if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok {
			d.SetReadDeadline(past)
		}
		if d, ok := w.(interface{ SetWriteDeadline(time.Time) error }); ok {
			d.SetWriteDeadline(past)
		}
	})
	defer func() {
		if !stop() {
			<-expired
		}
	}()
	end := func(err error) error {
		if ctx.Err() != nil {
			if err := parent.Err(); err != nil {
				return fmt.Errorf("rbl: session: %w", err)
			}
			return ErrTimeout
		}
		if err != nil {
			return fmt.Errorf("rbl: session: %w", err)
		}
		return nil
	}

	reply := func(line string) error {
		if ctx.Err() != nil {
			return end(nil)
		}
		if _, err := io.WriteString(w, line); err != nil {
			return end(err)
		}
		return nil
	}
	if err := reply(greeting); err != nil {
		return err
	}
	var p parser
	buf := make([]byte, 4096)
	for {
		if ctx.Err() != nil {
			return end(nil)
		}
		n, rerr := r.Read(buf)
		for _, c := range buf[:n] {
			v, done := p.feed(c)
			if !done {
				continue
			}
			switch v {
			case verbQuit:
				if err := reply(bye); err != nil {
					return err
				}
				return nil
			case verbAccept:
				if err := reply(accepted); err != nil {
					return err
				}
			default:
				if err := reply(msg); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return end(rerr)
		}
	}
}

const (
	greeting = "220 rblsmtpd.local\r\n"
	accepted = "250 rblsmtpd.local\r\n"
	bye      = "221 rblsmtpd.local\r\n"
)

type verb int

const (
	verbReject verb = iota
	verbAccept
	verbQuit
)

// parser reads command lines a byte at a time and keeps only what the verb
// needs: up to 6 of its bytes (a longer verb matches nothing), whether a
// space has ended it, and whether its last byte was CR.
type parser struct {
	verb  [6]byte
	n     int // bytes of the verb, at most len(verb)
	long  bool
	ended bool
	cr    bool
}

// feed takes the next byte; at the end of a line it returns the line's verb
// and true.
func (p *parser) feed(c byte) (verb, bool) {
	switch {
	case c == '\n':
		v := p.classify()
		*p = parser{}
		return v, true
	case p.ended:
	case c == ' ':
		p.ended = true
	default:
		if p.n < len(p.verb) {
			p.verb[p.n] = c
			p.n++
		} else {
			p.long = true
		}
		p.cr = c == '\r'
	}
	return verbReject, false
}

func (p *parser) classify() verb {
	n := p.n
	if !p.ended && p.cr {
		n-- // the CR before LF; a longer verb stays too long
	}
	if p.long || n != 4 {
		return verbReject
	}
	var v [4]byte
	for i := range v {
		c := p.verb[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		v[i] = c
	}
	switch string(v[:]) {
	case "quit":
		return verbQuit
	case "helo", "ehlo", "mail", "rset", "noop":
		return verbAccept
	}
	return verbReject
}
