package aliases

import (
	"bufio"
	"encoding/binary"
	"io"
)

// ForwardReader reads setforward's input: entries "TARGET: INSTR, ...,
// INSTR;" compiled into database records. See the package documentation.
type ForwardReader struct {
	// MaxBytes limits a target, an instruction and an entry's instructions
	// together; more is the error "out of memory", as setforward reports
	// input it cannot hold. 0 means DefaultMaxLineBytes; negative means
	// unlimited.
	MaxBytes int

	r          io.ByteReader
	target     []byte
	command    []byte
	instr      []byte
	flagTarget bool
	queue      []Record
	done       bool
}

// NewForwardReader reads setforward input from r (read a byte at a time:
// give a buffered reader or an io.ByteReader).
func NewForwardReader(r io.Reader) *ForwardReader {
	return &ForwardReader{r: byteReader(r)}
}

func byteReader(r io.Reader) io.ByteReader {
	if br, ok := r.(io.ByteReader); ok {
		return br
	}
	return bufio.NewReader(r)
}

func limit(n int) int {
	switch {
	case n == 0:
		return DefaultMaxLineBytes
	case n < 0:
		return int(^uint(0) >> 1)
	}
	return n
}

// Next returns the next record, in the order setforward writes them, or
// io.EOF at the end. Errors are *Error with setforward's texts.
func (fr *ForwardReader) Next() (Record, error) {
	for len(fr.queue) == 0 {
		if fr.done {
			return Record{}, io.EOF
		}
		if err := fr.step(); err != nil {
			return Record{}, err
		}
	}
	r := fr.queue[0]
	fr.queue = fr.queue[1:]
	return r, nil
}

func (fr *ForwardReader) getch() (byte, bool, error) {
	c, err := fr.r.ReadByte()
	if err == io.EOF {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, sysErr("unable to read input", unwrapPath(err))
	}
	return c, true, nil
}

func (fr *ForwardReader) emit(prefix byte, data []byte) {
	fr.queue = append(fr.queue, Record{Key: string(prefix) + lower(string(fr.target)), Data: string(data)})
}

// step reads one byte (or a comment) and acts on it, as setforward's loop.
func (fr *ForwardReader) step() error {
	c, ok, err := fr.getch()
	if err != nil {
		return err
	}
	if !ok {
		return fr.eof()
	}
	switch c {
	case '#':
		for c != '\n' {
			if c, ok, err = fr.getch(); err != nil {
				return err
			} else if !ok {
				return fr.eof()
			}
		}
		return nil
	case ' ', '\n', '\t':
		return nil
	case ':':
		if fr.flagTarget {
			return permErr("double colons are not permitted")
		}
		fr.flagTarget = true
		return nil
	case ',', ';':
		if !fr.flagTarget {
			return permErr("commas are not permitted before colons")
		}
		if err := fr.command2instr(); err != nil {
			return err
		}
		if c == ';' {
			if len(fr.instr) > 0 {
				fr.emit(':', fr.instr)
			}
			fr.target, fr.instr, fr.flagTarget = fr.target[:0], fr.instr[:0], false
		}
		return nil
	case '\\':
		if c, ok, err = fr.getch(); err != nil {
			return err
		} else if !ok {
			return fr.eof()
		}
	}
	if c == 0 {
		return permErr("NUL bytes are not permitted")
	}
	max := limit(fr.MaxBytes)
	if fr.flagTarget {
		if len(fr.command) >= max {
			return nomem()
		}
		fr.command = append(fr.command, c)
	} else {
		if len(fr.target) >= max {
			return nomem()
		}
		fr.target = append(fr.target, c)
	}
	return nil
}

// command2instr files the finished instruction.
func (fr *ForwardReader) command2instr() error {
	cmd := fr.command
	fr.command = fr.command[:0]
	if len(cmd) == 0 {
		return nil
	}
	switch cmd[0] {
	case '?':
		fr.emit('?', cmd[1:])
		return nil
	case '|', '!', '.', '/':
	default:
		if len(cmd) > MaxAddressBytes {
			return permErr("addresses over 800 bytes are not permitted")
		}
		if cmd[0] != '&' {
			fr.instr = append(fr.instr, '&')
		}
	}
	if len(fr.instr)+len(cmd) >= limit(fr.MaxBytes) {
		return nomem()
	}
	fr.instr = append(fr.instr, cmd...)
	fr.instr = append(fr.instr, 0)
	return nil
}

func (fr *ForwardReader) eof() error {
	fr.done = true
	if fr.flagTarget || len(fr.target) > 0 {
		return permErr("final instruction must end with semicolon")
	}
	return nil
}

// CompileForward is setforward: it reads entries from r and writes the
// database to tmp, fsyncs it and renames it to dst. On an error dst is
// untouched and tmp is left behind, as setforward leaves it.
func CompileForward(r io.Reader, tmp, dst string) error {
	w, err := Create(dst, tmp)
	if err != nil {
		return err
	}
	fr := NewForwardReader(r)
	for {
		rec, err := fr.Next()
		if err == io.EOF {
			return w.Close()
		}
		if err == nil {
			err = w.Put(rec)
		}
		if err != nil {
			w.Abort()
			return err
		}
	}
}

// ErrBadDatabase is the error for a database printforward cannot print:
// its text is printforward's "bad database format". It is permanent.
var ErrBadDatabase error = permErr("bad database format")

// PrintForward is printforward: it reads a database sequentially from r
// (records in file order, up to the end of the records that the first
// four bytes give) and prints it to w in setforward's syntax, each key,
// sender and instruction escaped so that setforward reads it back:
//
//	owner@: ?sender;
//	list@:
//	, &member@example.org
//	, /lists/x.bin
//	;
//
// A "\" goes before every byte below 33 or above 127 and before , : ; \ #.
// A record whose key is empty or starts with neither ":" nor "?", an
// instruction that starts with none of & | ! . / or an "&" one of 900
// bytes or more, data that does not end in NUL, or a truncated file is
// [ErrBadDatabase]; what was printed before stays printed. r is read a
// byte at a time (give a buffered reader or an io.ByteReader) and never
// beyond the records; memory grows with the input actually read, whatever
// lengths the file claims.
func PrintForward(w io.Writer, r io.Reader) error {
	br := byteReader(r)
	getch := func() (byte, error) {
		c, err := br.ReadByte()
		if err == io.EOF {
			return 0, ErrBadDatabase
		}
		if err != nil {
			return 0, sysErr("unable to read input", unwrapPath(err))
		}
		return c, nil
	}
	var hdr [8]byte
	for i := range 4 {
		c, err := getch()
		if err != nil {
			return err
		}
		hdr[i] = c
	}
	eod := binary.LittleEndian.Uint32(hdr[:])
	for range 2048 - 4 {
		if _, err := getch(); err != nil {
			return err
		}
	}
	pw := &printer{w: w}
	var key, data []byte
	for pos := uint32(2048); pos < eod; {
		if eod-pos < 8 {
			return ErrBadDatabase
		}
		pos += 8
		for i := range 8 {
			c, err := getch()
			if err != nil {
				return err
			}
			hdr[i] = c
		}
		klen := binary.LittleEndian.Uint32(hdr[:4])
		dlen := binary.LittleEndian.Uint32(hdr[4:])
		if eod-pos < klen {
			return ErrBadDatabase
		}
		pos += klen
		key = key[:0]
		for ; klen > 0; klen-- {
			c, err := getch()
			if err != nil {
				return err
			}
			key = append(key, c)
		}
		if eod-pos < dlen {
			return ErrBadDatabase
		}
		pos += dlen
		data = data[:0]
		for ; dlen > 0; dlen-- {
			c, err := getch()
			if err != nil {
				return err
			}
			data = append(data, c)
		}
		if err := printRecord(pw, key, data); err != nil {
			return err
		}
	}
	return nil
}

func printRecord(pw *printer, key, data []byte) error {
	if len(key) == 0 {
		return ErrBadDatabase
	}
	switch key[0] {
	case '?':
		pw.safe(key[1:])
		pw.str(": ?")
		pw.safe(data)
		pw.str(";\n")
	case ':':
		pw.safe(key[1:])
		pw.str(":\n")
		i := 0
		for j, c := range data {
			if c != 0 {
				continue
			}
			switch data[i] {
			case '.', '/', '|', '!':
			case '&':
				if j-i >= 900 {
					return ErrBadDatabase
				}
			default:
				return ErrBadDatabase
			}
			pw.str(", ")
			pw.safe(data[i:j])
			pw.str("\n")
			if pw.err != nil {
				return pw.err
			}
			i = j + 1
		}
		if i != len(data) {
			return ErrBadDatabase
		}
		pw.str(";\n")
	default:
		return ErrBadDatabase
	}
	return pw.err
}

// printer writes printforward's output, keeping the first error.
type printer struct {
	w   io.Writer
	buf []byte
	err error
}

func (p *printer) str(s string) {
	p.buf = append(p.buf[:0], s...)
	p.flush()
}

// safe escapes as printforward does: its test "ch <= 32" is on a signed
// char, so bytes of 128 and more are escaped too.
func (p *printer) safe(b []byte) {
	p.buf = p.buf[:0]
	for _, c := range b {
		switch {
		case c <= 32, c >= 128, c == ',', c == ':', c == ';', c == '\\', c == '#':
			p.buf = append(p.buf, '\\')
		}
		p.buf = append(p.buf, c)
	}
	p.flush()
}

func (p *printer) flush() {
	if p.err == nil && len(p.buf) > 0 {
		if _, err := p.w.Write(p.buf); err != nil {
			p.err = sysErr("unable to write output", unwrapPath(err))
		}
	}
}
