package dotqmail

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
)

// message is the message of one delivery, readable from its start as many
// times as the .qmail lines need, never held in memory.
type message struct {
	ra   io.ReaderAt
	size int64
	// file is a regular file holding the message from offset 0, open
	// read-only, usable as a program's stdin (rewound before each
	// program); nil until a program needs one when the caller gave
	// something else. It is the only descriptor of the message a
	// program (or a qmail-local child) ever gets: a descriptor open for
	// writing would let a program, running as the recipient, grow a file
	// it does not own (outside its quota) or rewrite the message other
	// deliveries read.
	file    *os.File
	owned   bool     // file is ours to close: a temporary copy or a reopening
	given   *os.File // the caller's regular file, when not read-only
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
			m.ra, m.size = f, fi.Size()
			if readOnly(f) {
				m.file = f
			} else {
				m.given = f // reopened read-only when a program needs it
			}
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
// The copy is written through one descriptor, which is then closed, and
// read through another, opened read-only by name before the name is
// removed: no descriptor of the copy open for writing outlives spool.
func (m *message) spool(r io.Reader) error {
	w, err := os.CreateTemp(m.tempDir, ".dotqmail-msg-")
	if err != nil {
		return err
	}
	f, err := openSame(w.Name(), syscall.O_NOFOLLOW, w)
	os.Remove(w.Name())
	if err != nil {
		w.Close()
		return err
	}
	n, err := io.Copy(w, r)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		f.Close()
		return err
	}
	m.ra, m.size, m.file, m.owned = f, n, f, true
	return nil
}

// openSame opens name read-only, with flag added, and checks that it is the file of same
// (a name in a directory others may write to can be replaced). The open
// does not block (name could have become a FIFO); the descriptor is
// blocking again when returned.
func openSame(name string, flag int, same *os.File) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|flag|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		var si os.FileInfo
		if si, err = same.Stat(); err == nil && !os.SameFile(fi, si) {
			err = fmt.Errorf("%s was replaced", name)
		}
	}
	if err == nil {
		err = setBlocking(f)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// setBlocking clears O_NONBLOCK on f's descriptor.
func setBlocking(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.SetNonblock(int(fd), false) }); err != nil {
		return err
	}
	return serr
}

// readOnly reports whether f's descriptor is open for reading only.
func readOnly(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	mode := -1
	rc.Control(func(fd uintptr) {
		fl, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		if errno == 0 {
			mode = int(fl) & syscall.O_ACCMODE
		}
	})
	return mode == syscall.O_RDONLY
}

// reopen gives a read-only descriptor of the caller's file, which is open
// for writing too, by its /proc/self/fd link (which names the file even
// when it has no name left); without /proc, the message is copied.
func (m *message) reopen() error {
	f, err := m.given.SyscallConn()
	if err == nil {
		var fd uintptr
		f.Control(func(d uintptr) { fd = d })
		var ro *os.File
		if ro, err = openSame("/proc/self/fd/"+strconv.FormatUint(uint64(fd), 10), 0, m.given); err == nil {
			m.file, m.owned = ro, true
			return nil
		}
	}
	return m.spool(io.NewSectionReader(m.given, 0, m.size))
}

// reader returns a fresh reader of the whole message.
func (m *message) reader() io.Reader { return io.NewSectionReader(m.ra, 0, m.size) }

// stdin returns a regular file holding the message, at offset 0.
func (m *message) stdin() (*os.File, error) {
	if m.file == nil {
		var err error
		if m.given != nil {
			err = m.reopen()
		} else {
			err = m.spool(m.reader())
		}
		if err != nil {
			return nil, err
		}
	}
	if _, err := m.file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return m.file, nil
}

// close removes the temporary copy, if any, and closes what it opened.
func (m *message) close() {
	if m.owned {
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
