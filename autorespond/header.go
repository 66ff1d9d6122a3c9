package autorespond

import (
	"bufio"
	"bytes"
	"io"
	"strings"
)

// Field is one header field of the incoming message.
type Field struct {
	// Name is the field's name as written, without the colon.
	Name string
	// Value is, in modern mode, the unfolded value without leading and
	// trailing white space; in Compat mode autorespond's raw value: from
	// the white space after the name, line ends and continuation lines
	// included.
	Value string
}

// Header is the incoming message's header, fields in order.
type Header []Field

// Get returns the value of the first field named name (in any case), as
// autorespond examines only the first field of a name.
func (h Header) Get(name string) (string, bool) {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value, true
		}
	}
	return "", false
}

// Values returns the values of every field named name (in any case).
func (h Header) Values(name string) []string {
	var vs []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// compatChunk is the size of autorespond's header buffer: fgets reads at
// most 1023 bytes at a time, and a longer line goes on as a new "line".
const compatChunk = 1023

// ReadHeader reads a message header from br, up to and including the
// empty line that ends it (or to the end of the input), at most max bytes
// (ErrHeaderTooLarge beyond). br is left at the start of the body.
//
// In modern mode a line ends with LF or CR LF, a line starting with space
// or tab continues the previous field (RFC 5322 section 2.2.3), a field's name
// ends at its colon, and a line that is not a field (no colon, or white
// space in the name) is skipped.
//
// In Compat mode the header is read as autorespond 2.0.5 read it: in
// chunks of at most 1023 bytes (fgets), ending at a chunk that is exactly
// "\n" (a CR LF line does not end it); a chunk starting with space or tab
// is appended to the previous field's value; otherwise the name is the
// bytes up to the first space or tab, minus one trailing colon, and the
// value the rest of the chunk, from that space on, line end included.
func ReadHeader(br *bufio.Reader, max int, compat bool) (Header, error) {
	var h Header
	total := 0
	for {
		limit := max - total + 1
		if compat {
			limit = min(limit, compatChunk)
		}
		line, err := readLine(br, limit)
		total += len(line)
		if total > max {
			return h, ErrHeaderTooLarge
		}
		if len(line) > 0 {
			if compat {
				if done := h.addCompat(line); done {
					return h, nil
				}
			} else if done := h.addModern(line); done {
				return h, nil
			}
		}
		if err == io.EOF {
			return h, nil
		}
		if err != nil {
			return h, err
		}
	}
}

// readLine returns the bytes up to and including the next LF, or at most
// limit bytes, or what is left before the end of the input (with io.EOF).
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for len(line) < limit {
		peek, err := br.Peek(min(limit-len(line), br.Size()))
		if i := bytes.IndexByte(peek, '\n'); i >= 0 {
			line = append(line, peek[:i+1]...)
			br.Discard(i + 1)
			return line, nil
		}
		line = append(line, peek...)
		br.Discard(len(peek))
		if err != nil {
			return line, err
		}
	}
	return line, nil
}

func (h *Header) addCompat(chunk []byte) (done bool) {
	if string(chunk) == "\n" {
		return true
	}
	switch chunk[0] {
	case ' ', '\t':
		if n := len(*h); n > 0 {
			(*h)[n-1].Value += string(chunk)
		}
		return false
	}
	i := bytes.IndexAny(chunk, " \t")
	var name, value []byte
	if i < 0 {
		name = bytes.TrimSuffix(chunk, []byte("\n"))
	} else {
		name, value = chunk[:i], chunk[i:]
	}
	name = bytes.TrimSuffix(name, []byte(":"))
	*h = append(*h, Field{Name: string(name), Value: string(value)})
	return false
}

func (h *Header) addModern(line []byte) (done bool) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return true
	}
	switch line[0] {
	case ' ', '\t':
		if n := len(*h); n > 0 {
			f := &(*h)[n-1]
			f.Value = strings.Trim(f.Value+string(line), " \t")
		}
		return false
	}
	i := bytes.IndexByte(line, ':')
	if i <= 0 || bytes.ContainsAny(line[:i], " \t") {
		return false
	}
	*h = append(*h, Field{Name: string(line[:i]), Value: string(bytes.Trim(line[i+1:], " \t"))})
	return false
}
