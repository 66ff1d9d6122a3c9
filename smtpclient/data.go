package smtpclient

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// dataWriter encodes a stored message for DATA: every line end (LF, CR LF,
// or a bare CR) becomes one CRLF and every line starting with '.' gets
// another '.' (RFC 5321 section 4.5.2), so no bare CR or LF and no early
// terminator ever reaches the wire. It streams: a chunk at a time.
type dataWriter struct {
	w   *bufio.Writer
	bol bool // at the beginning of a line
	cr  bool // a CR was seen and not yet written
	// stuffed counts the dots added by dot-stuffing, which RFC 1870's
	// SIZE does not count.
	stuffed int64
}

func newDataWriter(w *bufio.Writer) *dataWriter { return &dataWriter{w: w, bol: true} }

func (d *dataWriter) Write(p []byte) (int, error) {
	n := len(p)
	w := d.w
	// cr is the offset in p of the next CR (-1: none left): CRs are rare,
	// so both line-end bytes are found with the vectorized IndexByte
	// rather than IndexAny.
	cr := bytes.IndexByte(p, '\r')
	for len(p) > 0 {
		if d.cr {
			d.cr = false
			w.WriteString("\r\n")
			d.bol = true
			if p[0] == '\n' {
				p = p[1:]
				cr--
				continue
			}
		}
		if d.bol && p[0] == '.' {
			w.WriteByte('.')
			d.stuffed++
		}
		i := bytes.IndexByte(p, '\n')
		if cr >= 0 && (i < 0 || cr < i) {
			i = cr
		}
		if i < 0 {
			w.Write(p)
			d.bol = false
			break
		}
		if i > 0 {
			w.Write(p[:i])
			d.bol = false
		}
		if p[i] == '\n' {
			w.WriteString("\r\n")
			d.bol = true
		} else {
			d.cr = true
		}
		p = p[i+1:]
		if cr >= 0 {
			if cr -= i + 1; cr < 0 {
				cr = bytes.IndexByte(p, '\r')
			}
		}
	}
	// bufio.Writer keeps its first error and returns it from every Write.
	if _, err := w.Write(nil); err != nil {
		return 0, err
	}
	return n, nil
}

// close ends the data: a pending CR becomes CRLF; a last line without a line
// end gets one, or fails with errPartial when strict (qmail's #5.6.2); then
// the terminating ".\r\n" is written (not flushed).
func (d *dataWriter) close(strict bool) error {
	if d.cr {
		d.cr = false
		d.w.WriteString("\r\n")
		d.bol = true
	}
	if !d.bol {
		if strict {
			return errPartial
		}
		d.w.WriteString("\r\n")
	}
	_, err := d.w.WriteString(".\r\n")
	return err
}

var errPartial = errors.New("partial final line")

// copyBufSize is the size of the buffer a delivery reads its message with.
const copyBufSize = 16 * 1024

// copyData streams the message r to w in DATA form, reading into buf. It tells read errors on
// the message (readErr) from write errors on the connection (writeErr).
func copyData(w *bufio.Writer, r io.Reader, strict bool, buf []byte) (readErr, writeErr error) {
	d := newDataWriter(w)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := d.Write(buf[:n]); werr != nil {
				return nil, werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err, nil
		}
	}
	if err := d.close(strict); err != nil {
		if err == errPartial {
			return err, nil
		}
		return nil, err
	}
	return nil, w.Flush()
}

// measure returns the size of the message as RFC 1870 section 3 defines it
// (its DATA form with CRLF line ends, without the doubled dots and the final
// ".\r\n") and whether it has 8-bit bytes.
func measure(r io.Reader, buf []byte) (size int64, eightbit bool, err error) {
	cw := &countWriter{}
	bw := bufio.NewWriterSize(cw, 512)
	d := newDataWriter(bw)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if !eightbit {
				for _, c := range buf[:n] {
					if c >= 0x80 {
						eightbit = true
						break
					}
				}
			}
			d.Write(buf[:n])
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, false, rerr
		}
	}
	d.close(false)
	bw.Flush()
	return cw.n - 3 - d.stuffed, eightbit, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
