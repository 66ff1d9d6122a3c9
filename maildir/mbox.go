package maildir

import (
	"bufio"
	"bytes"
	"io"
	"time"
)

// MboxFromLine returns the "From " line that qmail's maildir2mbox puts
// before a message in an mbox (maildir2mbox(1)), LF included. first is the
// message's first line with its LF, if it has one; delivered is the
// message file's modification time. The sender comes from a first line
// "Return-Path: <...>\n": "MAILER-DAEMON" for "<>", else the bytes after
// the '<' up to the line's last two bytes (normally ">\n"), spaces and
// tabs turned into '-'; any other first line gives "XXX". The date is
// delivered in UTC as "Sun Jan 02 03:04:05 2000" (the day with a leading
// zero, unlike ctime's).
func MboxFromLine(first []byte, delivered time.Time) []byte {
	const rp = "Return-Path: <"
	line := []byte("From XXX ")
	if len(first) > 0 && first[len(first)-1] == '\n' && bytes.HasPrefix(first, []byte(rp)) {
		if first[len(rp)] == '>' {
			line = []byte("From MAILER-DAEMON ")
		} else {
			line = []byte("From ")
			for _, c := range first[len(rp):max(len(first)-2, len(rp))] {
				if c == ' ' || c == '\t' {
					c = '-'
				}
				line = append(line, c)
			}
			line = append(line, ' ')
		}
	}
	return delivered.UTC().AppendFormat(line, "Mon Jan 02 15:04:05 2006\n")
}

// WriteMbox appends one message, read from r, to an mbox being written to
// w, as qmail's maildir2mbox does: [MboxFromLine], then every line of the
// message that ends in LF, with '>' put before a line that is "From "
// after any number of '>', then an empty line. An unterminated last line
// is dropped, as maildir2mbox drops it. A message's lines are held in
// memory one at a time. WriteMbox returns the first error of r or w.
func WriteMbox(w io.Writer, r io.Reader, delivered time.Time) error {
	br := bufio.NewReaderSize(r, 64<<10)
	line, rerr := br.ReadBytes('\n')
	if rerr != nil && rerr != io.EOF {
		return rerr
	}
	if _, err := w.Write(MboxFromLine(line, delivered)); err != nil {
		return err
	}
	for rerr == nil {
		if fromLine(line) {
			if _, err := w.Write([]byte{'>'}); err != nil {
				return err
			}
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		line, rerr = br.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return rerr
		}
	}
	if _, err := w.Write([]byte{'\n'}); err != nil {
		return err
	}
	return nil
}

// fromLine is qmail's gfrom: line is "From " after zero or more '>'.
func fromLine(line []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From "))
}
