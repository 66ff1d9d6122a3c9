package uring

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

func newRing(t *testing.T) *Ring {
	t.Helper()
	r, err := New(64)
	if err != nil {
		t.Skipf("no io_uring here: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestFsync(t *testing.T) {
	r := newRing(t)
	dir := t.TempDir()
	var wg sync.WaitGroup
	for i := range 200 { // more than the ring holds at once
		wg.Go(func() {
			f, err := os.Create(filepath.Join(dir, string(rune('a'+i%26))+string(rune('a'+i/26))))
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			f.WriteString("x")
			if err := r.Fsync(t.Context(), int(f.Fd())); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := r.Fsync(t.Context(), int(d.Fd())); err != nil {
		t.Errorf("directory: %v", err)
	}
}

// The kernel's error comes back as fsync(2)'s would.
func TestFsyncError(t *testing.T) {
	r := newRing(t)
	err := r.Fsync(t.Context(), 1<<20) // no such descriptor
	if !errors.Is(err, syscall.EBADF) || errors.Is(err, ErrRing) {
		t.Errorf("fsync of a bad descriptor: %v, want the fsync's EBADF", err)
	}
}

func TestClose(t *testing.T) {
	r := newRing(t)
	r.Close()
	if err := r.Fsync(context.Background(), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	r.Close()
}

func TestErrClosedIsErrRing(t *testing.T) {
	if !errors.Is(ErrClosed, ErrRing) {
		t.Error("ErrClosed does not wrap ErrRing")
	}
}

// Fsync falls back to fsync(2) for a nil ring and for one that can no
// longer take operations (here: closed).
func TestFsyncFallsBack(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Fsync(nil, int(f.Fd())); err != nil {
		t.Errorf("no ring: %v", err)
	}
	r := newRing(t)
	r.Close()
	if err := Fsync(r, int(f.Fd())); err != nil {
		t.Errorf("closed ring: %v", err)
	}
	if err := Fsync(r, 1<<20); !errors.Is(err, syscall.EBADF) {
		t.Errorf("closed ring, bad descriptor: %v, want fsync(2)'s EBADF", err)
	}
}
