package cdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

const headerSize = 2048

// ErrCorrupt is wrapped by every error that comes from a malformed or
// truncated database: an offset or length that points outside the file.
var ErrCorrupt = errors.New("cdb: corrupt database")

// Hash is the cdb hash: h = 5381; h = ((h << 5) + h) ^ c for each byte.
func Hash(b []byte) uint32 {
	h := uint32(5381)
	for _, c := range b {
		h = ((h << 5) + h) ^ uint32(c)
	}
	return h
}

// CDB reads a constant database. It is safe for concurrent use by many
// goroutines, as long as none calls Close while others read.
type CDB struct {
	data   []byte      // the whole file when memory-mapped or held in memory
	ra     io.ReaderAt // otherwise
	size   uint64
	hash   func([]byte) uint32 // nil: Hash
	header [256]struct{ pos, slots uint32 }
	end    uint32 // end of the records area: header[0].pos
	closer func() error
}

// Open memory-maps the database at path. The file may be replaced (renamed
// over) while it is open: this CDB keeps reading the old one, as tcpserver
// and qmail-lspawn do between opens.
func Open(path string) (*CDB, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cdb: %w", err)
	}
	defer f.Close()
	return OpenFile(f)
}

// OpenFile memory-maps the database open as f, for a caller that checks
// the file (its owner, say) before it is read: the check and the data are
// then of one file, whatever is renamed over its path meanwhile. f may be
// closed once OpenFile returns.
func OpenFile(f *os.File) (*CDB, error) {
	path := f.Name()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cdb: %w", err)
	}
	size := fi.Size()
	if size < headerSize {
		return nil, fmt.Errorf("%w: %s: %d bytes, shorter than the header", ErrCorrupt, path, size)
	}
	if size >= maxSize {
		return nil, fmt.Errorf("%w: %s: %d bytes, over 4 GiB", ErrCorrupt, path, size)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("cdb: mmap %s: %w", path, err)
	}
	c, err := newCDB(data, nil, uint64(size), nil)
	if err != nil {
		syscall.Munmap(data)
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	c.closer = func() error { return syscall.Munmap(data) }
	return c, nil
}

// Bytes reads a database held in memory. data must not change while the CDB
// is in use.
func Bytes(data []byte) (*CDB, error) {
	return newCDB(data, nil, uint64(len(data)), nil)
}

// New reads a database through r. hash may be nil for the standard cdb hash.
// The size of the database is taken from r's Size or Stat method when it has
// one; otherwise reads past the end are reported as corruption when they
// happen. If r is an io.Closer, Close closes it.
func New(r io.ReaderAt, hash func([]byte) uint32) (*CDB, error) {
	size := uint64(maxSize)
	switch s := r.(type) {
	case interface{ Size() int64 }:
		size = uint64(s.Size())
	case interface{ Stat() (os.FileInfo, error) }:
		fi, err := s.Stat()
		if err != nil {
			return nil, fmt.Errorf("cdb: %w", err)
		}
		size = uint64(fi.Size())
	}
	c, err := newCDB(nil, r, size, hash)
	if err != nil {
		return nil, err
	}
	if cl, ok := r.(io.Closer); ok {
		c.closer = cl.Close
	}
	return c, nil
}

func newCDB(data []byte, ra io.ReaderAt, size uint64, hash func([]byte) uint32) (*CDB, error) {
	c := &CDB{data: data, ra: ra, size: size, hash: hash}
	var hdr [headerSize]byte
	if err := c.readAt(hdr[:], 0); err != nil {
		return nil, err
	}
	for i := range c.header {
		c.header[i].pos = binary.LittleEndian.Uint32(hdr[8*i:])
		c.header[i].slots = binary.LittleEndian.Uint32(hdr[8*i+4:])
		if uint64(c.header[i].pos)+8*uint64(c.header[i].slots) > size {
			return nil, fmt.Errorf("%w: table %d extends past the end of the file", ErrCorrupt, i)
		}
	}
	c.end = c.header[0].pos
	if c.end < headerSize {
		return nil, fmt.Errorf("%w: records end at %d, inside the header", ErrCorrupt, c.end)
	}
	return c, nil
}

// Close releases the database (unmaps it, or closes the io.ReaderAt given to
// New if it is an io.Closer).
func (c *CDB) Close() error {
	if c.closer == nil {
		return nil
	}
	err := c.closer()
	c.closer = nil
	c.data = nil
	return err
}

// Size reports the database's size in bytes.
func (c *CDB) Size() int64 { return int64(c.size) }

func (c *CDB) readAt(buf []byte, off uint64) error {
	if off+uint64(len(buf)) > c.size {
		return fmt.Errorf("%w: %d bytes at %d pass the end (%d)", ErrCorrupt, len(buf), off, c.size)
	}
	if c.data != nil {
		copy(buf, c.data[off:])
		return nil
	}
	_, err := c.ra.ReadAt(buf, int64(off))
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: %d bytes at %d pass the end of the file", ErrCorrupt, len(buf), off)
	}
	if err != nil {
		return fmt.Errorf("cdb: read: %w", err)
	}
	return nil
}

func (c *CDB) u32pair(off uint64) (uint32, uint32, error) {
	if c.data != nil && off+8 <= c.size {
		p := c.data[off : off+8]
		return binary.LittleEndian.Uint32(p), binary.LittleEndian.Uint32(p[4:]), nil
	}
	var b [8]byte
	if err := c.readAt(b[:], off); err != nil {
		return 0, 0, err
	}
	return binary.LittleEndian.Uint32(b[:]), binary.LittleEndian.Uint32(b[4:]), nil
}

// keyAt reports whether the len(key) bytes at off equal key.
func (c *CDB) keyAt(off uint64, key []byte) (bool, error) {
	n := uint64(len(key))
	if c.data != nil && off+n <= c.size {
		return bytes.Equal(c.data[off:off+n], key), nil
	}
	b := make([]byte, n)
	if err := c.readAt(b, off); err != nil {
		return false, err
	}
	return bytes.Equal(b, key), nil
}

// finder walks the probe sequence of one key, as cdb_findstart/cdb_findnext.
type finder struct {
	c                        *CDB
	key                      []byte
	h                        uint32
	tpos, tslots, loop, slot uint32
}

func (c *CDB) find(key []byte) finder {
	var h uint32
	if c.hash == nil {
		h = Hash(key) // a direct call keeps key on the caller's stack
	} else {
		h = c.hash(key)
	}
	t := c.header[h&0xff]
	f := finder{c: c, key: key, h: h, tpos: t.pos, tslots: t.slots}
	if t.slots != 0 {
		f.slot = (h >> 8) % t.slots
	}
	return f
}

// next returns the position and length of the next value for the key, or
// ok=false when there is none.
func (f *finder) next() (pos uint64, n uint32, ok bool, err error) {
	c := f.c
	for f.loop < f.tslots {
		h, rec, err := c.u32pair(uint64(f.tpos) + 8*uint64(f.slot))
		if err != nil {
			return 0, 0, false, err
		}
		f.loop++
		if f.slot++; f.slot == f.tslots {
			f.slot = 0
		}
		if rec == 0 {
			return 0, 0, false, nil
		}
		if h != f.h {
			continue
		}
		klen, dlen, err := c.u32pair(uint64(rec))
		if err != nil {
			return 0, 0, false, err
		}
		if klen != uint32(len(f.key)) {
			continue
		}
		same, err := c.keyAt(uint64(rec)+8, f.key)
		if err != nil {
			return 0, 0, false, err
		}
		if !same {
			continue
		}
		pos = uint64(rec) + 8 + uint64(klen)
		if pos+uint64(dlen) > c.size {
			return 0, 0, false, fmt.Errorf("%w: value at %d passes the end", ErrCorrupt, pos)
		}
		return pos, dlen, true, nil
	}
	return 0, 0, false, nil
}

func (c *CDB) value(pos uint64, n uint32) ([]byte, error) {
	v := make([]byte, n)
	return v, c.readAt(v, pos)
}

// Get returns a copy of the first value stored under key (the first record
// added with it), or nil and no error when there is none. A present key with
// an empty value gives a non-nil empty slice.
func (c *CDB) Get(key []byte) ([]byte, error) {
	f := c.find(key)
	pos, n, ok, err := f.next()
	if !ok || err != nil {
		return nil, err
	}
	return c.value(pos, n)
}

// Has reports whether any record has key, without copying its value.
func (c *CDB) Has(key []byte) (bool, error) {
	f := c.find(key)
	_, _, ok, err := f.next()
	return ok, err
}

// GetAll returns every value stored under key, in the order they were added
// (cdb_findnext's order).
func (c *CDB) GetAll(key []byte) ([][]byte, error) {
	f := c.find(key)
	var all [][]byte
	for {
		pos, n, ok, err := f.next()
		if err != nil || !ok {
			return all, err
		}
		v, err := c.value(pos, n)
		if err != nil {
			return all, err
		}
		all = append(all, v)
	}
}

// Iterator walks every record in file order (the order they were added).
type Iterator struct {
	c          *CDB
	pos        uint64
	key, value []byte
	err        error
}

// Iter returns an iterator over all records in file order.
func (c *CDB) Iter() *Iterator {
	return &Iterator{c: c, pos: headerSize}
}

// Next advances to the next record and reports whether there is one.
func (it *Iterator) Next() bool {
	if it.err != nil || it.pos >= uint64(it.c.end) {
		return false
	}
	klen, dlen, err := it.c.u32pair(it.pos)
	if err != nil {
		it.err = err
		return false
	}
	n := 8 + uint64(klen) + uint64(dlen)
	if it.pos+n > uint64(it.c.end) {
		it.err = fmt.Errorf("%w: record at %d passes the end of the records", ErrCorrupt, it.pos)
		return false
	}
	it.key, it.err = it.c.value(it.pos+8, klen)
	if it.err == nil {
		it.value, it.err = it.c.value(it.pos+8+uint64(klen), dlen)
	}
	it.pos += n
	return it.err == nil
}

// Key returns the current record's key.
func (it *Iterator) Key() []byte { return it.key }

// Value returns the current record's value.
func (it *Iterator) Value() []byte { return it.value }

// Err returns the error that stopped the iteration, if any.
func (it *Iterator) Err() error { return it.err }
