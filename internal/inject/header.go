package inject

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// readHeader reads the header as qmail's headerbody does, handing each
// field (with its continuation lines) to st.field as soon as it is
// complete. It returns the start of the body: "\n" when a blank line ended
// the header, "\n" and the line when a line that cannot start a field
// ended it (the blank line is inserted), nil when the input ended inside
// the header (st.eof is then set).
func (st *parseState) readHeader(br *bufio.Reader) ([]byte, error) {
	max := st.in.maxHeader()
	total := 0
	more := true // the previous line ended in "\n" (getln's match)
	readLine := func() ([]byte, error) {
		if !more {
			return nil, nil
		}
		var l []byte
		for {
			frag, err := br.ReadSlice('\n')
			total += len(frag)
			if total > max {
				return nil, errNoMem()
			}
			l = append(l, frag...)
			switch {
			case err == nil:
				return l, nil
			case errors.Is(err, bufio.ErrBufferFull):
				continue
			case err == io.EOF:
				more = false
				if len(l) == 0 {
					return nil, nil
				}
				return append(l, '\n'), nil // a last line gets its newline
			default:
				return nil, errRead(err)
			}
		}
	}
	var line []byte
	lineOK := false
	for {
		next, err := readLine()
		if err != nil {
			return nil, err
		}
		if next == nil {
			st.eof = true
			if lineOK {
				return nil, st.field(line)
			}
			return nil, nil
		}
		if lineOK {
			if next[0] == ' ' || next[0] == '\t' {
				line = append(line, next...)
				continue
			}
			if err := st.field(line); err != nil {
				return nil, err
			}
		}
		if len(next) == 1 {
			st.eof = !more
			return next, nil
		}
		switch {
		case bytes.HasPrefix(next, []byte("From ")):
			line = append([]byte("MBOX-Line: "), next...)
		case validField(next):
			line = next
		default:
			st.eof = !more
			return append([]byte{'\n'}, next...), nil
		}
		lineOK = true
	}
}
