package mta

import (
	"errors"
	"fmt"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qmailkit/qmailkit/smtpserver"
)

func TestMinFree(t *testing.T) {
	for _, tc := range []struct {
		min       int64
		set       bool
		databytes int64
		want      int64
	}{
		{0, false, 0, defaultMinFree},
		{0, false, -1, defaultMinFree},
		{0, false, 10 << 20, 15 << 20},
		{5 << 20, true, 10 << 20, 5 << 20},
		{0, true, 10 << 20, 0},
	} {
		if got := minFree(tc.min, tc.set, tc.databytes); got != tc.want {
			t.Errorf("minFree(%d, %v, %d) = %d, want %d", tc.min, tc.set, tc.databytes, got, tc.want)
		}
	}
}

func TestSpaceCheck(t *testing.T) {
	var free, inodes uint64
	calls := 0
	c := &spaceCheck{
		dir:      "/queue",
		need:     func() int64 { return 1000 },
		interval: time.Second,
		statfs: func(path string, st *unix.Statfs_t) error {
			calls++
			if path != "/queue" {
				t.Errorf("statfs(%q)", path)
			}
			st.Bsize = 10
			st.Bavail = free / 10
			st.Files, st.Ffree = 1000, inodes
			return nil
		},
	}
	now := time.Unix(1e9, 0)
	free, inodes = 2000, 500
	if err := c.check(now); err != nil {
		t.Fatalf("room: %v", err)
	}
	free = 990
	if err := c.check(now.Add(500 * time.Millisecond)); err != nil || calls != 1 {
		t.Fatalf("within the interval: %v after %d statfs, want the cached nil after 1", err, calls)
	}
	var r smtpserver.Reply
	if err := c.check(now.Add(time.Second)); !errors.As(err, &r) || r.Code != 452 || r.Enhanced != "4.3.1" {
		t.Fatalf("nearly full: %v, want 452 4.3.1", err)
	}
	free, inodes = 5000, 10
	if err := c.check(now.Add(2 * time.Second)); !errors.As(err, &r) || r.Code != 452 {
		t.Fatalf("no inodes: %v, want 452", err)
	}
	inodes = 500
	if err := c.check(now.Add(3 * time.Second)); err != nil {
		t.Fatalf("room again: %v", err)
	}
	c.statfs = func(string, *unix.Statfs_t) error { return unix.EIO }
	if err := c.check(now.Add(4 * time.Second)); !errors.Is(err, unix.EIO) {
		t.Fatalf("statfs failing: %v, want EIO", err)
	}
}

// TestNearlyFullQueue fills the queue's file system until less than a
// message may need is free: MAIL is then refused with 452 4.3.1, before
// the client sends anything, and accepted again once there is room.
func TestNearlyFullQueue(t *testing.T) {
	small := os.Getenv("QMAILKIT_SYSTEM_TEST_SMALLFS")
	if small == "" {
		t.Skip("needs a small file system: run the tests as root (TestMain mounts a tmpfs)")
	}
	home := filepath.Join(small, "home")
	demo, _, err := Init(home, InitOptions{Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	// 10 MB messages need 15 MB free.
	if err := os.WriteFile(filepath.Join(home, "control", "databytes"), []byte("10000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startHome(t, home, demo)
	mail := func() string {
		t.Helper()
		c, err := textproto.Dial("tcp", r.smtp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, _, err := c.ReadResponse(220); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Cmd("EHLO x"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadResponse(250); err != nil {
			t.Fatal(err)
		}
		c.Cmd("MAIL FROM:<a@example.org>")
		code, msg, _ := c.ReadResponse(0)
		return fmt.Sprintf("%d %s", code, msg)
	}
	if got := mail(); !strings.HasPrefix(got, "250") {
		t.Fatalf("MAIL with room: %s", got)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(small, &st); err != nil {
		t.Fatal(err)
	}
	// Leave 10 MB free: less than the 15 MB a 10 MB message needs.
	fill := int64(st.Bavail)*st.Bsize - 10<<20
	filler := filepath.Join(small, "filler")
	if err := os.WriteFile(filler, make([]byte, fill), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // past the check's interval
	if got := mail(); !strings.HasPrefix(got, "452 4.3.1") {
		t.Fatalf("MAIL on a nearly full file system: %s, want 452 4.3.1", got)
	}
	os.Remove(filler)
	time.Sleep(300 * time.Millisecond)
	if got := mail(); !strings.HasPrefix(got, "250") {
		t.Fatalf("MAIL with room again: %s", got)
	}
}
