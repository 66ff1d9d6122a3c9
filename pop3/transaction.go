package pop3

import (
	"io"
	"strconv"
	"strings"
)

func (s *session) transaction(verb, arg string) error {
	switch verb {
	case "STAT":
		s.stat()
	case "LIST":
		s.list(arg, false)
	case "UIDL":
		s.list(arg, true)
	case "RETR":
		return s.retr(arg, true)
	case "TOP":
		return s.retr(arg, false)
	case "DELE":
		if i, ok := s.msgno(arg); ok {
			s.deleted[i] = true
			s.ndeleted++
			s.last = max(s.last, i+1)
			s.ok("message " + strconv.Itoa(i+1) + " deleted")
		}
	case "RSET":
		clear(s.deleted)
		clear(s.retrieved)
		s.ndeleted, s.last = 0, 0
		s.ok(strconv.Itoa(len(s.msgs)) + " messages")
	case "NOOP":
		s.ok("")
	case "QUIT":
		return s.quit()
	case "LAST":
		if !s.compat {
			s.reply("-ERR unknown command")
			return nil
		}
		s.reply("+OK " + strconv.Itoa(s.last))
	case "CAPA":
		if s.extensions() {
			s.capa()
			return nil
		}
		s.reply("-ERR unimplemented")
	default:
		if s.compat {
			s.reply("-ERR unimplemented")
		} else {
			s.reply("-ERR unknown command")
		}
	}
	return nil
}

// msgno parses a message number argument. In compat mode it is
// qmail-pop3d's msgno(): the leading digits (wrapping on overflow), text
// after them ignored. In modern mode the argument must be the number alone.
func (s *session) msgno(arg string) (int, bool) {
	if !s.compat && strings.Contains(strings.TrimRight(arg, " "), " ") {
		s.reply("-ERR syntax error")
		return 0, false
	}
	i, _, ok := s.msgnoRest(arg)
	return i, ok
}

// msgnoRest is msgno returning the text after the number too.
func (s *session) msgnoRest(arg string) (i int, rest string, ok bool) {
	u, n := scanUlong(arg)
	if !s.compat {
		f := strings.TrimRight(arg, " ")
		if sp := strings.IndexByte(f, ' '); sp >= 0 {
			f = f[:sp]
		}
		var good bool
		if u, good = parseNumber(f); !good {
			s.reply("-ERR syntax error")
			return 0, "", false
		}
		n = len(f)
	}
	switch {
	case n == 0:
		s.reply("-ERR syntax error")
	case u == 0:
		s.reply(s.pick("-ERR messages are counted from 1", "-ERR no such message"))
	case u > uint64(len(s.msgs)):
		s.reply(s.pick("-ERR not that many messages", "-ERR no such message"))
	case s.deleted[u-1]:
		s.reply(s.pick("-ERR already deleted", "-ERR message already deleted"))
	default:
		return int(u - 1), arg[n:], true
	}
	return 0, "", false
}

func (s *session) pick(compat, modern string) string {
	if s.compat {
		return compat
	}
	return modern
}

// size returns message i's size as reported: as stored in compat mode,
// as sent otherwise.
func (s *session) size(i int) int64 {
	if s.compat {
		return s.msgs[i].Size
	}
	if !s.wireSized {
		s.wireSized = true
		for j := range s.msgs {
			if s.msgs[j].WireSize >= 0 {
				continue
			}
			s.msgs[j].WireSize = s.msgs[j].Size
			if r, err := s.mb.Open(s.ctx, j); err == nil {
				if n, err := WireSize(r, s.buf); err == nil {
					s.msgs[j].WireSize = n
				}
				r.Close()
			}
		}
	}
	return s.msgs[i].WireSize
}

func (s *session) stat() {
	var total int64
	for i := range s.msgs {
		if !s.deleted[i] {
			total += s.size(i)
		}
	}
	n := len(s.msgs)
	if !s.compat {
		n -= s.ndeleted // RFC 1939 section 5; qmail counts deleted ones too
	}
	s.reply("+OK " + strconv.Itoa(n) + " " + strconv.FormatInt(total, 10))
}

// uid returns message i's UIDL: the unique name, made safe in modern mode.
func (s *session) uid(i int) string {
	if s.compat {
		return s.msgs[i].UID
	}
	return SafeUID(s.msgs[i].UID)
}

func (s *session) listLine(i int, uidl bool) string {
	b := make([]byte, 0, 64)
	b = strconv.AppendInt(b, int64(i+1), 10)
	b = append(b, ' ')
	if uidl {
		b = append(b, s.uid(i)...)
	} else {
		b = strconv.AppendInt(b, s.size(i), 10)
	}
	return string(b)
}

func (s *session) list(arg string, uidl bool) {
	if arg != "" {
		if i, ok := s.msgno(arg); ok {
			s.reply("+OK " + s.listLine(i, uidl))
		}
		return
	}
	if s.compat || uidl {
		s.ok("")
	} else {
		var total int64
		for i := range s.msgs {
			if !s.deleted[i] {
				total += s.size(i)
			}
		}
		s.ok(strconv.Itoa(len(s.msgs)-s.ndeleted) + " messages (" + strconv.FormatInt(total, 10) + " octets)")
	}
	b := make([]byte, 0, 64)
	for i := range s.msgs {
		if s.deleted[i] {
			continue
		}
		b = strconv.AppendInt(b[:0], int64(i+1), 10)
		b = append(b, ' ')
		if uidl {
			b = append(b, s.uid(i)...)
		} else {
			b = strconv.AppendInt(b, s.size(i), 10)
		}
		b = append(b, '\r', '\n')
		s.bw.Write(b)
	}
	s.reply(".")
}

// retr is RETR and TOP, which qmail-pop3d runs through one function: in
// compat mode "RETR n k" is "TOP n k" and "TOP n" is RETR.
func (s *session) retr(arg string, isRetr bool) error {
	var limit uint64
	var i int
	if s.compat {
		var rest string
		var ok bool
		if i, rest, ok = s.msgnoRest(arg); !ok {
			return nil
		}
		limit = topLimit(rest)
	} else {
		f := strings.Fields(arg)
		want := 2
		if isRetr {
			want = 1
		}
		if len(f) != want {
			s.reply("-ERR syntax error")
			return nil
		}
		var ok bool
		if i, _, ok = s.msgnoRest(f[0]); !ok {
			return nil
		}
		if !isRetr {
			k, ok := parseNumber(f[1])
			if !ok {
				s.reply("-ERR syntax error")
				return nil
			}
			limit = k + 1
		}
	}
	r, err := s.mb.Open(s.ctx, i)
	if err != nil {
		s.reply(s.pick("-ERR unable to open that message", "-ERR [SYS/TEMP] unable to open that message"))
		return nil
	}
	defer r.Close()
	// The first read comes before the +OK, so that a message that cannot
	// be read gets -ERR: a name swapped since the scan for a FIFO (opened
	// non-blocking, it reads as empty or EAGAIN) or a directory (EISDIR).
	// This is the check a Maildir's Open leaves out, to spare RETR an
	// fstat.
	n, ferr := r.Read(s.buf)
	if ferr != nil && ferr != io.EOF || n == 0 && ferr == io.EOF && s.msgs[i].Size > 0 {
		s.reply(s.pick("-ERR unable to open that message", "-ERR [SYS/TEMP] unable to open that message"))
		return nil
	}
	s.pre = prefixReader{pending: s.buf[:n], err: ferr, r: r}
	switch {
	case s.compat:
		s.ok("")
	case isRetr:
		s.reply("+OK " + strconv.FormatInt(s.size(i), 10) + " octets")
	default:
		s.ok("top of message follows")
	}
	if err := blast(s.bw, &s.pre, s.buf, limit, s.compat); err != nil {
		return err // mid-response: the session ends, as qmail-pop3d dies
	}
	if limit == 0 {
		s.retrieved[i] = true
		s.nretr++
		s.retrBytes += s.msgs[i].Size
	}
	return nil
}

func (s *session) quit() error {
	err := s.mb.Commit(s.ctx, Update{Deleted: s.deleted, Retrieved: s.retrieved})
	if err == nil {
		for i, d := range s.deleted {
			if d {
				s.ndel++
				s.delBytes += s.msgs[i].Size
			}
		}
	}
	if err != nil {
		s.srv.logger().Warn("pop3: QUIT update", "remote", s.env["TCPREMOTEIP"], "err", err)
		if !s.compat {
			s.reply("-ERR [SYS/TEMP] some deleted messages not removed")
			return errQuit
		}
		n := 1
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			n = len(j.Unwrap())
		}
		for range n {
			s.reply("-ERR unable to unlink all deleted messages")
		}
	}
	s.ok("bye")
	return errQuit
}

// SafeUID returns a UIDL that RFC 1939 section 7 allows: uid itself when it
// is 1 to 70 characters from 0x21 to 0x7E, else a stable 66-character hash
// form ("x-" and hex SHA-256), which no Maildir unique name looks like.
func SafeUID(uid string) string {
	if len(uid) > 0 && len(uid) <= 70 {
		ok := true
		for i := 0; i < len(uid); i++ {
			if uid[i] < 0x21 || uid[i] > 0x7e {
				ok = false
				break
			}
		}
		if ok {
			return uid
		}
	}
	return hashUID(uid)
}

// prefixReader gives back what retr's first read put at the start of the
// session's buffer, then reads on from r. blast reads into that same
// buffer, so the first Read copies the data onto itself.
type prefixReader struct {
	pending []byte
	err     error // the first read's error (io.EOF), given after pending
	r       io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.pending) > 0 {
		n := copy(b, p.pending)
		p.pending = p.pending[n:]
		return n, nil
	}
	if p.err != nil {
		return 0, p.err
	}
	return p.r.Read(b)
}
