package aliases

import (
	"bytes"
	"io"
	"os"
)

// WriteMaillist is setmaillist without the file handling: it reads a
// mailing list, one address or file name a line, and writes fastforward's
// binary list to w: each entry NUL-terminated, "&" put before an address
// that lacks it. Trailing LF, spaces and tabs of a line are removed;
// empty lines and lines starting "#" are skipped; a line starting "." or
// "/" is kept as it is (no ".bin" is added). Errors are *Error with
// setmaillist's texts: "NUL in input", "addresses must be under 800 bytes"
// (both exit 111). maxLine limits a line as [AliasReader.MaxLineBytes]
// does.
func WriteMaillist(w io.Writer, r io.Reader, maxLine int) error {
	br := byteReader(r)
	max := limit(maxLine)
	var line []byte
	for {
		line = line[:0]
		match := false
		for {
			c, err := br.ReadByte()
			if err == io.EOF {
				break
			}
			if err != nil {
				return sysErr("unable to read input", unwrapPath(err))
			}
			if len(line) >= max {
				return nomem()
			}
			line = append(line, c)
			if c == '\n' {
				match = true
				break
			}
		}
		line = bytes.TrimRight(line, "\n \t")
		if bytes.IndexByte(line, 0) >= 0 {
			return tempErr("NUL in input")
		}
		if len(line) > 0 && line[0] != '#' {
			var out []byte
			switch line[0] {
			case '.', '/':
			default:
				if len(line) > MaxAddressBytes {
					return tempErr("addresses must be under 800 bytes")
				}
				if line[0] != '&' {
					out = append(out, '&')
				}
			}
			out = append(append(out, line...), 0)
			if _, err := w.Write(out); err != nil {
				return err
			}
		}
		if !match {
			return nil
		}
	}
}

// CompileMaillist is setmaillist: it reads a list from r, writes the binary
// list to tmp, fsyncs it and renames it to dst. Errors are *Error with
// setmaillist's texts ("unable to create TMP", "unable to write to TMP",
// "unable to move TMP to DST", and those of [WriteMaillist]).
func CompileMaillist(r io.Reader, tmp, dst string) error {
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return sysErr("unable to create "+tmp, unwrapPath(err))
	}
	bw := &errWriter{w: f}
	if err := WriteMaillist(bw, r, 0); err != nil {
		f.Close()
		if bw.err != nil {
			return sysErr("unable to write to "+tmp, unwrapPath(bw.err))
		}
		return err
	}
	return install(f, tmp, dst)
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	n, err := e.w.Write(b)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// ErrBadList is the error for a binary list printmaillist cannot print:
// its text is "bad mailing list format". It is permanent.
var ErrBadList error = permErr("bad mailing list format")

// PrintMaillist is printmaillist: it prints each NUL-terminated entry of
// the binary list in r on a line of its own. An entry must start with "."
// or "/" or be an "&" address under 900 bytes, and contain no LF;
// anything else, or bytes after the last NUL, is [ErrBadList], after the
// entries before it were written. Each entry is one Write to w and its LF
// another. r is read a byte at a time (give a buffered reader or an
// io.ByteReader); maxEntry limits an entry as [AliasReader.MaxLineBytes]
// does.
func PrintMaillist(w io.Writer, r io.Reader, maxEntry int) error {
	br := byteReader(r)
	max := limit(maxEntry)
	var e []byte
	for {
		e = e[:0]
		for {
			c, err := br.ReadByte()
			if err == io.EOF {
				if len(e) > 0 {
					return ErrBadList
				}
				return nil
			}
			if err != nil {
				return sysErr("unable to read input", unwrapPath(err))
			}
			if c == 0 {
				break
			}
			if len(e) >= max {
				return nomem()
			}
			e = append(e, c)
		}
		if len(e) == 0 || bytes.IndexByte(e, '\n') >= 0 {
			return ErrBadList
		}
		switch e[0] {
		case '.', '/':
		case '&':
			if len(e) >= 900 {
				return ErrBadList
			}
		default:
			return ErrBadList
		}
		if _, err := w.Write(e); err != nil {
			return sysErr("unable to write output", unwrapPath(err))
		}
		if _, err := w.Write([]byte{'\n'}); err != nil {
			return sysErr("unable to write output", unwrapPath(err))
		}
	}
}
