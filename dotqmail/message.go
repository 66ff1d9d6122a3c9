package dotqmail

import (
	"errors"
	"io"
	"os"
)

// message is the message of one delivery, readable from its start as many
// times as the .qmail lines need, never held in memory.
type message struct {
	ra   io.ReaderAt
	size int64
	// file is a regular file holding the message from offset 0, usable
	// as a program's stdin (rewound before each program); nil until a
	// program needs one when the caller gave something else.
	file    *os.File
	spooled bool // file is our unlinked temporary copy
	tempDir string
}

// newMessage prepares r for repeated reading. A regular *os.File is used
// from offset 0 and in place (programs get it as stdin, as with
// qmail-local); an io.ReaderAt with a Size method (io.SectionReader,
// bytes.Reader, strings.Reader) or an io.ReadSeeker is read in place; any
// other reader is first copied to an unlinked temporary file.
func newMessage(r io.Reader, tempDir string) (*message, error) {
	m := &message{tempDir: tempDir}
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			m.ra, m.size, m.file = f, fi.Size(), f
			return m, nil
		}
	}
	switch v := r.(type) {
	case interface {
		io.ReaderAt
		Size() int64
	}:
		m.ra, m.size = v, v.Size()
		return m, nil
	case io.ReadSeeker:
		n, err := v.Seek(0, io.SeekEnd)
		if err == nil {
			m.ra, m.size = &seekReaderAt{rs: v, off: -1}, n
			return m, nil
		}
	}
	if err := m.spool(r); err != nil {
		return nil, err
	}
	return m, nil
}

// spool copies r to an unlinked temporary file that becomes the message.
func (m *message) spool(r io.Reader) error {
	f, err := os.CreateTemp(m.tempDir, ".dotqmail-msg-")
	if err != nil {
		return err
	}
	os.Remove(f.Name())
	n, err := io.Copy(f, r)
	if err != nil {
		f.Close()
		return err
	}
	m.ra, m.size, m.file, m.spooled = f, n, f, true
	return nil
}

// reader returns a fresh reader of the whole message.
func (m *message) reader() io.Reader { return io.NewSectionReader(m.ra, 0, m.size) }

// stdin returns a regular file holding the message, at offset 0.
func (m *message) stdin() (*os.File, error) {
	if m.file == nil {
		if err := m.spool(m.reader()); err != nil {
			return nil, err
		}
	}
	if _, err := m.file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return m.file, nil
}

// close removes the temporary copy, if any.
func (m *message) close() {
	if m.spooled {
		m.file.Close()
	}
}

// seekReaderAt reads an io.ReadSeeker as an io.ReaderAt, seeking only when
// a read does not continue the last one. It serves one reader at a time,
// which is how a delivery reads.
type seekReaderAt struct {
	rs  io.ReadSeeker
	off int64
}

func (s *seekReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off != s.off {
		if _, err := s.rs.Seek(off, io.SeekStart); err != nil {
			s.off = -1
			return 0, err
		}
		s.off = off
	}
	n, err := io.ReadFull(s.rs, p)
	s.off += int64(n)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}

// prefixed returns a reader of head and then r. Unlike io.MultiReader, one
// Read fills its buffer from both, so that a small message with its
// prepended lines reaches a file in one write.
func prefixed(head string, r io.Reader) io.Reader { return &prefixReader{head: head, r: r} }

type prefixReader struct {
	head string
	r    io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	n := copy(b, p.head)
	p.head = p.head[n:]
	if n == len(b) {
		return n, nil
	}
	k, err := p.r.Read(b[n:])
	if n > 0 && err == io.EOF {
		err = nil // the next call reports it
	}
	return n + k, err
}
