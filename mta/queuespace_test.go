package mta

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/smtpserver"
	"golang.org/x/sys/unix"
)

// TestCheckSpaceAndMaxMessageBytes: CheckSpace is the SMTP servers' check
// at MAIL (452 on a nearly full file system), MaxMessageBytes
// control/databytes as smtpserver reads it.
func TestCheckSpaceAndMaxMessageBytes(t *testing.T) {
	for _, tt := range []struct {
		name      string
		databytes string // "" for no file
		want      int64
	}{
		{"no file", "", 0},
		{"limit", "1000\n", 1000},
		{"zero is no limit", "0\n", -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "home")
			if _, _, err := Init(home, InitOptions{}); err != nil {
				t.Fatal(err)
			}
			if tt.databytes != "" {
				if err := os.WriteFile(filepath.Join(home, "control", "databytes"), []byte(tt.databytes), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s, err := Open(home, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got, err := s.MaxMessageBytes(); err != nil || got != tt.want {
				t.Errorf("MaxMessageBytes %d %v, want %d", got, err, tt.want)
			}
			now := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
			if err := s.CheckSpace(now); err != nil {
				t.Errorf("CheckSpace with room: %v", err)
			}
			s.space.statfs = func(_ string, st *unix.Statfs_t) error {
				st.Bsize, st.Bavail, st.Files, st.Ffree = 4096, 0, 1000, 1000
				return nil
			}
			var r smtpserver.Reply
			if err := s.CheckSpace(now.Add(time.Minute)); !errors.As(err, &r) || r.Code != 452 {
				t.Errorf("CheckSpace nearly full: %v, want a 452", err)
			}
		})
	}
}
