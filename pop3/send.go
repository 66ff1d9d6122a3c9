package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// errRead marks a failure to read a message while sending it: the session
// ends mid-response, as qmail-pop3d's die() does.
var errRead = errors.New("pop3: read message")

// blast sends the message read from r as the body of a multi-line reply,
// as qmail-pop3d's blast(): each line (split at LF) is sent without its LF
// and followed by CRLF, a line starting with '.' gets another '.', and a
// final line without LF gets its CRLF too. limit is qmail's: 0 sends
// everything; otherwise the header, the empty line that ends it and
// limit-1 body lines are sent (TOP n k has limit k+1).
//
// In compat mode every LF becomes CRLF (a stored CR LF is sent as CR CR LF)
// and an empty line is sent before the terminating dot, as qmail-pop3d does.
// Otherwise a stored CR LF is sent as it is, a line of a lone CR ends the
// header too, and no extra line is added.
//
// It never holds more of the message than buf. A read error is returned
// wrapped in errRead; write errors stay in w.
func blast(w *bufio.Writer, r io.Reader, buf []byte, limit uint64, compat bool) error {
	var (
		lineStart = true
		inHeaders = true
		lineLen   int  // content bytes of the current line so far
		first     byte // its first byte
		last      byte // its last byte
		readErr   error
	)
	crlf := []byte("\r\n")
loop:
	for {
		n, err := r.Read(buf)
		p := buf[:n]
		for len(p) > 0 {
			if lineStart {
				if limit != 0 && !inHeaders {
					if limit--; limit == 0 {
						break loop
					}
				}
				if p[0] == '.' {
					w.WriteByte('.')
				}
				lineStart, lineLen, first = false, 0, p[0]
			}
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				w.Write(p)
				lineLen += len(p)
				last = p[len(p)-1]
				break
			}
			w.Write(p[:i])
			if i > 0 {
				last = p[i-1]
			}
			lineLen += i
			if !compat && lineLen > 0 && last == '\r' {
				w.WriteByte('\n')
			} else {
				w.Write(crlf)
			}
			if lineLen == 0 || !compat && lineLen == 1 && first == '\r' {
				inHeaders = false
			}
			lineStart = true
			p = p[i+1:]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("%w: %w", errRead, err)
			break
		}
	}
	if !lineStart {
		if !compat && last == '\r' {
			w.WriteByte('\n')
		} else {
			w.Write(crlf)
		}
	}
	if readErr != nil {
		return readErr
	}
	if compat {
		w.WriteString("\r\n.\r\n")
	} else {
		w.WriteString(".\r\n")
	}
	return nil
}

// WireSize returns the size of a message as a modern server sends it
// (RFC 1939 section 5, "exact size"): its octets with each line ended by
// CRLF — an LF not preceded by CR counts two, and a last line without LF
// gets its CRLF — before dot-stuffing and without the terminating line.
func WireSize(r io.Reader, buf []byte) (int64, error) {
	var size int64
	var last byte
	for {
		n, err := r.Read(buf)
		p := buf[:n]
		size += int64(n)
		for len(p) > 0 {
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				break
			}
			prev := last
			if i > 0 {
				prev = p[i-1]
			}
			if prev != '\r' {
				size++
			}
			p = p[i+1:]
			last = '\n'
		}
		if n > 0 {
			last = buf[n-1]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	switch {
	case size == 0 || last == '\n':
	case last == '\r':
		size++
	default:
		size += 2
	}
	return size, nil
}
