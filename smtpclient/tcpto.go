package smtpclient

import (
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// TCPTO remembers connect timeouts so that an address that timed out twice
// recently is skipped (qmail's tcpto). [Client.TCPTO] takes one; nil means
// a [MemoryTCPTO] of the Client's own.
type TCPTO interface {
	// Skip reports whether addr should not be tried now.
	Skip(addr netip.Addr, now time.Time) bool
	// Record notes the outcome of a connect to addr: timedOut for a
	// connect timeout, false for a success or any other failure.
	Record(addr netip.Addr, timedOut bool, now time.Time)
}

// tcptoHold is how long an address that timed out twice is skipped: qmail
// uses (60 + (pid & 31)) * 64 s, 3840–5824 s.
const tcptoHold = 3840 * time.Second

// MemoryTCPTO is qmail's tcpto rule kept in memory: a timeout counts (at
// most once per 120 s, up to 10), anything else clears the address; an
// address with a count of 2 or more is skipped for 3840 s after its last
// timeout. Its zero value is ready; it is safe for concurrent use.
type MemoryTCPTO struct {
	mu sync.Mutex
	m  map[netip.Addr]*tcptoEntry
}

type tcptoEntry struct {
	count int
	last  time.Time
}

// Skip implements [TCPTO].
func (t *MemoryTCPTO) Skip(addr netip.Addr, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.m[addr]
	return e != nil && e.count >= 2 && now.Sub(e.last) < tcptoHold
}

// Record implements [TCPTO].
func (t *MemoryTCPTO) Record(addr netip.Addr, timedOut bool, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !timedOut {
		delete(t.m, addr)
		return
	}
	if t.m == nil {
		t.m = map[netip.Addr]*tcptoEntry{}
	}
	e := t.m[addr]
	if e == nil {
		if len(t.m) >= 1024 {
			for a := range t.m { // bounded memory: forget one
				delete(t.m, a)
				break
			}
		}
		t.m[addr] = &tcptoEntry{count: 1, last: now}
		return
	}
	if now.Sub(e.last) >= 120*time.Second && e.count < 10 {
		e.count++
		e.last = now
	}
}

// FileTCPTO keeps the tcpto state in qmail's file, queue/lock/tcpto, so
// that it is shared with qmail-remote processes and survives them: up to
// 64 records of 16 bytes (IPv4 address, error count, 3 unused bytes, time
// of the last error as 4 little-endian bytes, 4 unused bytes), updated
// under an exclusive flock. Only IPv4 addresses are recorded. Errors on the
// file are ignored: an address is then tried.
type FileTCPTO struct {
	// Path is the file, such as "/var/qmail/queue/lock/tcpto".
	Path string
	// PID sets the hold time as qmail does, (60 + (PID & 31)) * 64 s; 0
	// means os.Getpid().
	PID int
}

const tcptoRecords = 64

func (f *FileTCPTO) hold() time.Duration {
	pid := f.PID
	if pid == 0 {
		pid = os.Getpid()
	}
	return time.Duration((60+(pid&31))<<6) * time.Second
}

// Skip implements [TCPTO].
func (f *FileTCPTO) Skip(addr netip.Addr, now time.Time) bool {
	if !addr.Is4() {
		return false
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		return false
	}
	defer fh.Close()
	buf := make([]byte, tcptoRecords*16)
	n, _ := io.ReadFull(fh, buf)
	ip := addr.As4()
	for i := 0; i+16 <= n; i += 16 {
		r := buf[i : i+16]
		if [4]byte(r[:4]) != ip {
			continue
		}
		if r[4] < 2 {
			return false
		}
		when := time.Unix(int64(binary.LittleEndian.Uint32(r[8:12])), 0)
		return now.Before(when.Add(f.hold()))
	}
	return false
}

// Record implements [TCPTO].
func (f *FileTCPTO) Record(addr netip.Addr, timedOut bool, now time.Time) {
	if !addr.Is4() {
		return
	}
	fh, err := os.OpenFile(f.Path, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer fh.Close()
	if syscall.Flock(int(fh.Fd()), syscall.LOCK_EX) != nil {
		return
	}
	buf := make([]byte, tcptoRecords*16)
	n, _ := io.ReadFull(fh, buf)
	n &^= 15
	ip := addr.As4()
	stamp := func(r []byte, count byte) {
		copy(r[:4], ip[:])
		r[4] = count
		binary.LittleEndian.PutUint32(r[8:12], uint32(now.Unix()))
	}
	for i := 0; i < n; i += 16 {
		r := buf[i : i+16]
		if [4]byte(r[:4]) != ip {
			continue
		}
		if !timedOut {
			if r[4] == 0 {
				return
			}
			r[4] = 0
		} else {
			when := int64(binary.LittleEndian.Uint32(r[8:12]))
			if r[4] > 0 && when+120 > now.Unix() {
				return // at most one count per 120 s
			}
			stamp(r, min(r[4]+1, 10))
		}
		fh.WriteAt(r, int64(i))
		return
	}
	if !timedOut {
		return
	}
	// A new address: the first free slot, else (when the file is shorter
	// than 64 records) a new one, else the one with the smallest
	// "last error + 1024 s × count".
	pos := -1
	for i := 0; i < n; i += 16 {
		if buf[i+4] == 0 {
			pos = i
			break
		}
	}
	if pos < 0 && n < len(buf) {
		pos = n
	}
	if pos < 0 {
		var first int64
		for i := 0; i < n; i += 16 {
			when := int64(binary.LittleEndian.Uint32(buf[i+8:i+12])) + int64(buf[i+4])<<10
			if pos < 0 || when < first {
				pos, first = i, when
			}
		}
	}
	r := make([]byte, 16)
	stamp(r, 1)
	fh.WriteAt(r, int64(pos))
}

// TCPTOSize is the size of qmail's tcpto file: 64 records of 16 bytes.
const TCPTOSize = tcptoRecords * 16

// TCPTORecord is one record of qmail's tcpto file (see [FileTCPTO]).
type TCPTORecord struct {
	Addr  netip.Addr // an IPv4 address
	Count byte       // timeouts counted; 0 for a free record
	Last  uint32     // time of the last timeout, Unix seconds
}

// ParseTCPTO splits the contents of a tcpto file into its records, in file
// order: len(b)/16 of them, a partial record at the end ignored.
func ParseTCPTO(b []byte) []TCPTORecord {
	recs := make([]TCPTORecord, 0, len(b)/16)
	for ; len(b) >= 16; b = b[16:] {
		recs = append(recs, TCPTORecord{
			Addr:  netip.AddrFrom4([4]byte(b[:4])),
			Count: b[4],
			Last:  binary.LittleEndian.Uint32(b[8:12]),
		})
	}
	return recs
}

// Records reads the file's records as qmail-tcpto does: the file opened
// for writing (a handle for the lock; never created) and for reading, an
// exclusive flock, then at most [TCPTOSize] bytes read. An error is an
// *fs.PathError whose Op is "open", "flock" or "read". The opens do not
// block: a FIFO in the file's place fails (ENXIO) or reads as empty.
func (f *FileTCPTO) Records() ([]TCPTORecord, error) {
	lock, err := os.OpenFile(f.Path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	fh, err := os.OpenFile(f.Path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	if err := flockEx(lock); err != nil {
		return nil, err
	}
	buf := make([]byte, TCPTOSize)
	n, err := fh.Read(buf) // one read(2), as qmail-tcpto does
	if err != nil && err != io.EOF {
		return nil, err
	}
	return ParseTCPTO(buf[:n]), nil
}

// Clear forgets every timeout as qmail-tcpok does: the file opened for
// writing (neither created nor truncated), an exclusive flock, then
// [TCPTOSize] NUL bytes written from its start. An error is an
// *fs.PathError whose Op is "open", "flock" or "write". The open does not
// block: a FIFO in the file's place fails (ENXIO).
func (f *FileTCPTO) Clear() error {
	fh, err := os.OpenFile(f.Path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer fh.Close()
	if err := flockEx(fh); err != nil {
		return err
	}
	if _, err := fh.Write(make([]byte, TCPTOSize)); err != nil {
		return err
	}
	return fh.Close()
}

// flockEx takes an exclusive flock on f, waiting for it.
func flockEx(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			if err != nil {
				return &fs.PathError{Op: "flock", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

func (c *Client) tcptoState() TCPTO {
	if c.TCPTO != nil {
		return c.TCPTO
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.memTCPTO == nil {
		c.memTCPTO = &MemoryTCPTO{}
	}
	return c.memTCPTO
}

// tcptoSkip reports whether addr timed out at least twice recently.
func (c *Client) tcptoSkip(addr netip.Addr) bool {
	return c.tcptoState().Skip(addr, c.now())
}

// tcptoRecord notes the outcome of a connect.
func (c *Client) tcptoRecord(addr netip.Addr, err error) {
	var ne net.Error
	timeout := err != nil && errors.As(err, &ne) && ne.Timeout()
	c.tcptoState().Record(addr, timeout, c.now())
}
