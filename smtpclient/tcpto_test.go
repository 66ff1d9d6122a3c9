package smtpclient

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var (
	_ TCPTO = (*MemoryTCPTO)(nil)
	_ TCPTO = (*FileTCPTO)(nil)
)

func TestFileTCPTO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tcpto")
	if err := os.WriteFile(path, make([]byte, 1024), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &FileTCPTO{Path: path, PID: 32} // hold (60 + 0) * 64 = 3840 s
	a := netip.MustParseAddr("192.0.2.1")
	now := time.Unix(1_800_000_000, 0)
	f.Record(a, true, now)
	b, _ := os.ReadFile(path)
	if [4]byte(b[:4]) != a.As4() || b[4] != 1 || binary.LittleEndian.Uint32(b[8:12]) != uint32(now.Unix()) || len(b) != 1024 {
		t.Fatalf("record % x", b[:16])
	}
	if f.Skip(a, now) {
		t.Error("skipped after one timeout")
	}
	f.Record(a, true, now.Add(time.Minute)) // within 120 s: not counted
	if b, _ = os.ReadFile(path); b[4] != 1 {
		t.Errorf("count %d after a timeout within 120 s", b[4])
	}
	now = now.Add(3 * time.Minute)
	f.Record(a, true, now)
	if !f.Skip(a, now.Add(3839*time.Second)) || f.Skip(a, now.Add(3840*time.Second)) {
		t.Error("hold period wrong")
	}
	f.Record(a, false, now)
	if b, _ = os.ReadFile(path); b[4] != 0 || f.Skip(a, now) {
		t.Errorf("not cleared: % x", b[:16])
	}
	// The count stops at 10.
	for i := range 15 {
		f.Record(a, true, now.Add(time.Duration(i)*200*time.Second))
	}
	if b, _ = os.ReadFile(path); b[4] != 10 {
		t.Errorf("count %d, want 10", b[4])
	}
	// Full file: the record with the smallest "time + 1024 s × count" goes.
	for i := range 64 {
		r := b[i*16 : i*16+16]
		r[0], r[1], r[2], r[3], r[4] = 10, 0, 0, byte(i), 3
		binary.LittleEndian.PutUint32(r[8:12], uint32(now.Unix())+uint32(i))
	}
	b[7*16+4] = 1 // 7: smallest
	os.WriteFile(path, b, 0o644)
	c := netip.MustParseAddr("198.51.100.9")
	f.Record(c, true, now)
	b, _ = os.ReadFile(path)
	if [4]byte(b[7*16:7*16+4]) != c.As4() || b[7*16+4] != 1 {
		t.Errorf("slot 7 % x", b[7*16:7*16+16])
	}
	// IPv6 addresses and a missing file are ignored.
	f.Record(netip.MustParseAddr("2001:db8::1"), true, now)
	if f.Skip(netip.MustParseAddr("2001:db8::1"), now) {
		t.Error("IPv6 skipped")
	}
	missing := &FileTCPTO{Path: filepath.Join(t.TempDir(), "none")}
	missing.Record(a, true, now)
	if missing.Skip(a, now) {
		t.Error("missing file skipped")
	}
	// An empty file grows a record at a time.
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o644)
	(&FileTCPTO{Path: empty}).Record(a, true, now)
	if b, _ := os.ReadFile(empty); len(b) != 16 || b[4] != 1 {
		t.Errorf("empty file: % x", b)
	}
}

// A Client with a FileTCPTO skips an address another process recorded.
func TestClientFileTCPTO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tcpto")
	rec := make([]byte, 1024)
	copy(rec, []byte{192, 0, 2, 1, 2})
	now := time.Unix(1_800_000_000, 0)
	binary.LittleEndian.PutUint32(rec[8:12], uint32(now.Unix()-60))
	os.WriteFile(path, rec, 0o644)
	d := &timeoutDialer{}
	c := &Client{
		Hostname:   "h",
		Resolver:   staticResolver{ip: map[string][]netip.Addr{"example.net": addrs("192.0.2.1", "192.0.2.2")}},
		Dialer:     d,
		Timeouts:   Timeouts{Connect: 20 * time.Millisecond},
		TCPTO:      &FileTCPTO{Path: path},
		Now:        func() time.Time { return now },
		LocalAddrs: noLocal,
	}
	c.Deliver(t.Context(), "example.net", "s@x", []string{"r@example.net"}, nil)
	if len(d.dials) != 1 || d.dials[0] != "192.0.2.2:25" {
		t.Errorf("dials %v", d.dials)
	}
	b, _ := os.ReadFile(path)
	if [4]byte(b[16:20]) != [4]byte{192, 0, 2, 2} || b[20] != 1 {
		t.Errorf("second record % x", b[16:32])
	}
}
