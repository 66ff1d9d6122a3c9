package smtpclient

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestParseTCPTO(t *testing.T) {
	b := []byte{192, 0, 2, 7, 2, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0,
		10, 1, 2, 3, 0, 9, 9, 9, 1, 2, 3, 4, 9, 9, 9, 9,
		1, 2, 3} // a partial record
	want := []TCPTORecord{
		{Addr: netip.MustParseAddr("192.0.2.7"), Count: 2, Last: 100},
		{Addr: netip.MustParseAddr("10.1.2.3"), Count: 0, Last: 0x04030201},
	}
	if got := ParseTCPTO(b); !slices.Equal(got, want) {
		t.Errorf("%+v", got)
	}
	if got := ParseTCPTO(nil); len(got) != 0 {
		t.Errorf("empty: %+v", got)
	}
}

// What Record writes, Records reads back; Clear forgets it, keeping the
// file's length and what lies beyond 1024 bytes.
func TestRecordsAndClear(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tcpto")
	tail := []byte("beyond")
	os.WriteFile(path, append(make([]byte, TCPTOSize), tail...), 0o644)
	f := &FileTCPTO{Path: path, PID: 32}
	a := netip.MustParseAddr("192.0.2.1")
	now := time.Unix(1_800_000_000, 0)
	f.Record(a, true, now)
	f.Record(a, true, now.Add(3*time.Minute))
	recs, err := f.Records()
	if err != nil || len(recs) != 64 || recs[0] != (TCPTORecord{Addr: a, Count: 2, Last: uint32(now.Unix() + 180)}) {
		t.Fatalf("%v %+v", err, recs[:1])
	}
	if err := f.Clear(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if len(b) != TCPTOSize+len(tail) || string(b[TCPTOSize:]) != "beyond" || slices.ContainsFunc(b[:TCPTOSize], func(c byte) bool { return c != 0 }) {
		t.Errorf("after Clear: %d bytes, tail %q", len(b), b[TCPTOSize:])
	}
	// A short file is read as it is and extended by Clear.
	os.WriteFile(path, []byte{1, 2, 3, 4, 5}, 0o644)
	if recs, err := f.Records(); err != nil || len(recs) != 0 {
		t.Errorf("short: %v %+v", err, recs)
	}
	f.Clear()
	if fi, _ := os.Stat(path); fi.Size() != TCPTOSize {
		t.Errorf("cleared short file: %d bytes", fi.Size())
	}
}

func TestRecordsErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		path string
		op   string
		err  error
	}{
		{filepath.Join(dir, "none"), "open", syscall.ENOENT},
		{dir, "open", syscall.EISDIR},
	} {
		f := &FileTCPTO{Path: tc.path}
		_, err := f.Records()
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Op != tc.op || !errors.Is(err, tc.err) {
			t.Errorf("Records %s: %v", tc.path, err)
		}
		err = f.Clear()
		if !errors.As(err, &pe) || pe.Op != tc.op || !errors.Is(err, tc.err) {
			t.Errorf("Clear %s: %v", tc.path, err)
		}
	}
	// Clear never creates the file.
	if _, err := os.Stat(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("created: %v", err)
	}
}

// Records and Clear wait for the lock that qmail-remote holds while it
// updates the file.
func TestClearWaitsForLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tcpto")
	os.WriteFile(path, []byte{192, 0, 2, 1, 1}, 0o644)
	held, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- (&FileTCPTO{Path: path}).Clear() }()
	select {
	case err := <-done:
		t.Fatalf("Clear did not wait for the lock: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	syscall.Flock(int(held.Fd()), syscall.LOCK_UN)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Clear still waiting after the lock was released")
	}
}

// FuzzParseTCPTO: every whole 16-byte record, in order, with its address,
// count and little-endian time; nothing of a partial one.
func FuzzParseTCPTO(f *testing.F) {
	f.Add([]byte{192, 0, 2, 7, 2, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0})
	f.Add(make([]byte, 1024))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs := ParseTCPTO(b)
		if len(recs) != len(b)/16 {
			t.Fatalf("%d records of %d bytes", len(recs), len(b))
		}
		for i, r := range recs {
			rec := b[16*i:]
			if r.Addr.As4() != [4]byte(rec[:4]) || r.Count != rec[4] ||
				r.Last != uint32(rec[8])|uint32(rec[9])<<8|uint32(rec[10])<<16|uint32(rec[11])<<24 {
				t.Errorf("record %d: %+v from % x", i, r, rec[:16])
			}
		}
	})
}

// A FIFO in place of the file does not hang qmail-tcpto's or qmail-tcpok's
// steps.
func TestTCPTOFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tcpto")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { _, err := (&FileTCPTO{Path: path}).Records(); done <- err }()
	go func() { done <- (&FileTCPTO{Path: path}).Clear() }()
	for range 2 {
		select {
		case err := <-done:
			if !errors.Is(err, syscall.ENXIO) {
				t.Errorf("FIFO: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("hangs on a FIFO")
		}
	}
}
