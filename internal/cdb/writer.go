package cdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/qmailkit/qmailkit/internal/durable"
)

// ErrTooMuchData is returned when a record or the hash tables would put data
// at or beyond 4 GiB, which 32-bit offsets cannot address. djb's cdb_make
// reports this as "out of memory"; we never wrap silently.
var ErrTooMuchData = errors.New("cdb: database would exceed 4 GiB")

// maxSize is the first offset a cdb cannot use.
const maxSize = 1 << 32

type slotEntry struct {
	hash uint32
	pos  uint32
}

// Writer builds a cdb. Records are written in the order they are added, so
// that a file made from the same records in the same order is byte-identical
// to what cdbmake, tinycdb's cdb -c, tcprules and qmail-newu write.
//
// A Writer made by [Create] or [CreateTemp] writes to a temporary file and
// makes the database appear at its final path only in [Writer.Close], after
// fsync, atomically, as qmail's tools do. A Writer is not safe for concurrent
// use.
type Writer struct {
	ws    io.WriteSeeker
	bw    *bufio.Writer
	hash  func([]byte) uint32
	pos   uint64
	lists [256][]slotEntry
	count int
	err   error   // sticky: once set, every call returns it
	hdr   [8]byte // a record's lengths, kept here so Put does not allocate

	// For files made by Create and CreateTemp.
	file          *os.File
	tmp, final    string
	closed, froze bool
}

// NewWriter starts a database on ws, which must be positioned where the
// database begins (normally an empty file). hash may be nil for the standard
// cdb hash. Close writes the tables and the header and, if ws is an
// io.Closer, closes it.
func NewWriter(ws io.WriteSeeker, hash func([]byte) uint32) (*Writer, error) {
	if hash == nil {
		hash = Hash
	}
	w := &Writer{ws: ws, bw: bufio.NewWriterSize(ws, 64<<10), hash: hash, pos: headerSize}
	if _, err := w.bw.Write(make([]byte, headerSize)); err != nil {
		return nil, fmt.Errorf("cdb: write header: %w", err)
	}
	return w, nil
}

// Create starts a database that Close will atomically install at path, using
// path+".tmp" as the temporary file (qmail-newu's users/cdb.tmp).
func Create(path string) (*Writer, error) {
	return CreateTemp(path, path+".tmp")
}

// CreateTemp starts a database written to tmp and renamed to path by Close,
// as "tcprules CDB TMP" does. tmp must be on the same file system as path. It
// is created or truncated with mode 0644 (before the umask). On any error
// path is left untouched; tmp may remain, as with qmail's tools.
func CreateTemp(path, tmp string) (*Writer, error) {
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cdb: create %s: %w", tmp, err)
	}
	w, err := NewWriter(f, nil)
	if err != nil {
		f.Close()
		return nil, err
	}
	w.file, w.tmp, w.final = f, tmp, path
	return w, nil
}

// Count reports how many records have been added.
func (w *Writer) Count() int { return w.count }

// Put appends a record. Duplicate keys are allowed; a lookup finds the first
// one added. Empty keys and values and arbitrary bytes are allowed.
func (w *Writer) Put(key, value []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.closed || w.froze {
		return errors.New("cdb: Put after Close or Freeze")
	}
	n := 8 + uint64(len(key)) + uint64(len(value))
	// Each record also needs 16 bytes of tables (two 8-byte slots), so check
	// the record and its share of the tables together, as cdb_make does.
	if w.pos+n+16*uint64(w.count+1) >= maxSize {
		w.err = ErrTooMuchData
		return w.err
	}
	if err := w.writeRecord(key, value); err != nil {
		return err
	}
	h := w.hash(key)
	w.lists[h&0xff] = append(w.lists[h&0xff], slotEntry{hash: h, pos: uint32(w.pos)})
	w.pos += n
	w.count++
	return nil
}

// writeRecord writes one record's lengths, key and value.
func (w *Writer) writeRecord(key, value []byte) error {
	hdr := w.hdr[:]
	binary.LittleEndian.PutUint32(hdr[0:], uint32(len(key)))
	binary.LittleEndian.PutUint32(hdr[4:], uint32(len(value)))
	if err := w.write(hdr); err != nil {
		return err
	}
	if err := w.write(key); err != nil {
		return err
	}
	return w.write(value)
}

func (w *Writer) write(b []byte) error {
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("cdb: write: %w", err)
		return w.err
	}
	return nil
}

// finish writes the hash tables and the header.
func (w *Writer) finish() error {
	if w.err != nil {
		return w.err
	}
	var header [headerSize]byte
	var table []slotEntry
	var buf []byte
	for i := range 256 {
		list := w.lists[i]
		slots := uint32(2 * len(list))
		binary.LittleEndian.PutUint32(header[8*i:], uint32(w.pos))
		binary.LittleEndian.PutUint32(header[8*i+4:], slots)
		if slots == 0 {
			continue
		}
		table = append(table[:0], make([]slotEntry, slots)...)
		for _, e := range list {
			j := (e.hash >> 8) % slots
			for table[j].pos != 0 {
				if j++; j == slots {
					j = 0
				}
			}
			table[j] = e
		}
		buf = buf[:0]
		for _, e := range table {
			buf = binary.LittleEndian.AppendUint32(buf, e.hash)
			buf = binary.LittleEndian.AppendUint32(buf, e.pos)
		}
		if err := w.write(buf); err != nil {
			return err
		}
		w.pos += uint64(len(buf))
		w.lists[i] = nil
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("cdb: write: %w", err)
		return w.err
	}
	if _, err := w.ws.Seek(-int64(w.pos), io.SeekCurrent); err != nil {
		w.err = fmt.Errorf("cdb: seek to header: %w", err)
		return w.err
	}
	if _, err := w.ws.Write(header[:]); err != nil {
		w.err = fmt.Errorf("cdb: write header: %w", err)
		return w.err
	}
	return nil
}

// Close finishes the database. For a Writer from Create or CreateTemp it
// fsyncs and closes the temporary file, renames it over the final path and
// fsyncs the directory; only then has the database been replaced. For a
// Writer from NewWriter it closes the underlying writer if that is an
// io.Closer.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if !w.froze {
		if err := w.finish(); err != nil {
			if c, ok := w.ws.(io.Closer); ok {
				c.Close()
			}
			return err
		}
	}
	if w.file == nil {
		if c, ok := w.ws.(io.Closer); ok {
			if err := c.Close(); err != nil {
				w.err = fmt.Errorf("cdb: close: %w", err)
			}
		}
		return w.err
	}
	if err := durable.SyncClose(w.file); err != nil {
		w.err = fmt.Errorf("cdb: %s: %w", w.tmp, err)
		return w.err
	}
	if err := durable.Rename(w.tmp, w.final); err != nil {
		w.err = fmt.Errorf("cdb: install %s: %w", w.final, err)
	}
	return w.err
}

// Freeze finishes the database without closing the underlying writer and
// returns a reader over it, which requires the writer to be an io.ReaderAt
// too. A Writer from Create or CreateTemp still installs its file in Close.
func (w *Writer) Freeze() (*CDB, error) {
	if w.froze || w.closed {
		return nil, errors.New("cdb: Freeze after Close or Freeze")
	}
	if err := w.finish(); err != nil {
		return nil, err
	}
	w.froze = true
	ra, ok := w.ws.(io.ReaderAt)
	if !ok {
		return nil, errors.New("cdb: Freeze: writer is not an io.ReaderAt")
	}
	return New(ra, w.hash)
}

// Abort gives up a Writer from Create or CreateTemp: it closes and removes
// the temporary file, leaving the final path untouched.
func (w *Writer) Abort() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if w.file == nil {
		return nil
	}
	w.file.Close()
	return os.Remove(w.tmp)
}
