package smtpclient

import (
	"bufio"
	"errors"
	"io"
	"strings"
)

// maxReplyText is how much reply text qmail-remote keeps for its report.
const maxReplyText = 5000

// maxReplyRead bounds the bytes read for one reply, so a server cannot make
// the client read forever within one deadline.
const maxReplyRead = 1 << 20

// Reply is one SMTP reply, possibly of several lines.
type Reply struct {
	// Code is the reply code, 0 when the reply is malformed (its first three
	// bytes are not a code from 200 to 599).
	Code int
	// Lines are the reply's lines, code included ("250-first", "250 last"),
	// CR removed, NUL bytes shown as '?', cut at 5000 bytes in all.
	Lines []string
}

// errMalformed marks a reply that is not SMTP; it is a temporary failure.
var errMalformed = errors.New("smtpclient: malformed reply")

// Enhanced returns the RFC 3463 enhanced status code at the start of the
// reply's text ("5.1.1"), or "" when it has none.
func (r *Reply) Enhanced() string {
	if r == nil || len(r.Lines) == 0 || len(r.Lines[0]) < 5 {
		return ""
	}
	s := r.Lines[0][4:]
	if i := strings.IndexByte(s, ' '); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || parts[0][0] != r.Lines[0][0] {
		return ""
	}
	for _, p := range parts {
		if len(p) < 1 || len(p) > 3 {
			return ""
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return ""
			}
		}
	}
	return s
}

// Text returns the reply lines joined by LF.
func (r *Reply) Text() string { return strings.Join(r.Lines, "\n") }

// readReply reads one reply: lines until one whose fourth byte is not '-'
// (qmail-remote's rule). io.ErrUnexpectedEOF (or the read error) is returned
// when the connection ends before the last line is complete: qmail treats a
// partial final line as a lost connection. A reply whose code is not three
// digits from 200 to 599 is returned with Code 0 and errMalformed.
func readReply(br *bufio.Reader) (*Reply, error) {
	r := &Reply{}
	kept, read := 0, 0
	for first := true; ; first = false {
		line, err := readLine(br, &read)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return r, err
		}
		if first {
			r.Code = parseCode(line)
		}
		if kept < maxReplyText {
			s := cleanLine(line)
			if kept+len(s) > maxReplyText {
				s = s[:maxReplyText-kept]
			}
			kept += len(s) + 1
			r.Lines = append(r.Lines, s)
		}
		if len(line) < 4 || line[3] != '-' {
			break
		}
	}
	if r.Code == 0 {
		return r, errMalformed
	}
	return r, nil
}

// readLine returns one line without its LF. It fails on a line without LF
// before EOF, and when more than maxReplyRead bytes have been read in all.
func readLine(br *bufio.Reader, read *int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		*read += len(frag)
		if *read > maxReplyRead {
			return nil, errMalformed
		}
		switch err {
		case nil:
			line = append(line, frag[:len(frag)-1]...)
			return line, nil
		case bufio.ErrBufferFull:
			line = append(line, frag...)
		default:
			return nil, err
		}
	}
}

func parseCode(line []byte) int {
	if len(line) < 3 {
		return 0
	}
	n := 0
	for _, c := range line[:3] {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	if n < 200 || n > 599 {
		return 0
	}
	return n
}

// cleanLine removes CRs and shows NULs as '?', as qmail-remote's report does.
func cleanLine(b []byte) string {
	var s strings.Builder
	s.Grow(len(b))
	for _, c := range b {
		switch c {
		case '\r':
		case 0:
			s.WriteByte('?')
		default:
			s.WriteByte(c)
		}
	}
	return s.String()
}
