package maildir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// promptly fails the test when f takes more than 5 seconds: the tests of
// issue 17's finding 3 put FIFOs where a delivery opens files, and a
// regression must not hang the test binary.
func promptly(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s blocked for 5 seconds", what)
		return nil
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	os.RemoveAll(path)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFIFOInMaildir is issue 17's finding 3 for Maildirs: a user who makes
// the Maildir, one of its directories or its maildirsize a FIFO must not
// block a delivery (open(2) of a FIFO waits for the other end). The
// delivery fails or succeeds, at once.
func TestFIFOInMaildir(t *testing.T) {
	for _, tt := range []struct {
		name    string
		fifo    string // made a FIFO, relative to the Maildir ("" the Maildir itself)
		quota   Quota
		wantErr bool
	}{
		{"the Maildir", "", Quota{}, true},
		{"new", "new", Quota{}, true},
		{"tmp", "tmp", Quota{}, true},
		{"maildirsize, no quota", "maildirsize", Quota{}, false},
		{"maildirsize, a quota", "maildirsize", Quota{Bytes: 1 << 20}, false},
		{"cur, a quota", "cur", Quota{Bytes: 1 << 20}, true},
	} {
		for _, unnamed := range []bool{false, true} {
			name := tt.name
			if unnamed {
				name += ", unnamed"
			}
			t.Run(name, func(t *testing.T) {
				d, err := Create(filepath.Join(t.TempDir(), "Maildir"))
				if err != nil {
					t.Fatal(err)
				}
				mkfifo(t, filepath.Join(string(d), tt.fifo))
				dl := &Deliverer{Quota: tt.quota, Unnamed: unnamed}
				err = promptly(t, "Deliver", func() error {
					_, err := dl.Deliver(t.Context(), d, strings.NewReader("Subject: x\n\nhi\n"))
					return err
				})
				if (err != nil) != tt.wantErr {
					t.Errorf("Deliver: %v, want an error: %v", err, tt.wantErr)
				}
			})
		}
	}
}

// TestFIFOMaildirsize: the readers and writers of maildirsize outside a
// delivery do not block on a FIFO either.
func TestFIFOMaildirsize(t *testing.T) {
	d, err := Create(filepath.Join(t.TempDir(), "Maildir"))
	if err != nil {
		t.Fatal(err)
	}
	mkfifo(t, filepath.Join(string(d), quotaFile))
	err = promptly(t, "ReadQuota", func() error { _, _, err := d.ReadQuota(); return err })
	if !errors.Is(err, errNotRegular) {
		t.Errorf("ReadQuota: %v, want not a regular file", err)
	}
	err = promptly(t, "appendQuotaDelta", func() error { return appendQuotaDelta(string(d), 1, 1) })
	if !errors.Is(err, errNotRegular) {
		t.Errorf("appendQuotaDelta: %v, want not a regular file", err)
	}
	mkfifo(t, filepath.Join(string(d), "cur"))
	err = promptly(t, "RecalculateQuota", func() error { _, err := d.RecalculateQuota(Quota{Bytes: 100}); return err })
	if !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("RecalculateQuota with a FIFO cur: %v, want ENOTDIR", err)
	}
}
