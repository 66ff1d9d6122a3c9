package queue

import (
	"testing"
	"time"
)

func u(s int64) time.Time { return time.Unix(s, 0) }

// qmail-send's retry schedule: the next try at birth + (⌊√(now−birth)⌋ +
// c)², c 10 local and 20 remote; a clock gone back counts as now = birth.
func TestNextRetry(t *testing.T) {
	for _, tc := range []struct {
		birth, now    int64
		local, remote int64
	}{
		{1000, 1000, 1100, 1400},
		{1000, 1100, 1400, 1900},
		{1000, 1399, 1841, 2521},
		{1000, 900, 1100, 1400},
		{1000, 605800, 620369, 636209},
	} {
		if got := NextRetry(u(tc.birth), u(tc.now), false).Unix(); got != tc.local {
			t.Errorf("NextRetry(%d, %d, local) = %d, want %d", tc.birth, tc.now, got, tc.local)
		}
		if got := NextRetry(u(tc.birth), u(tc.now), true).Unix(); got != tc.remote {
			t.Errorf("NextRetry(%d, %d, remote) = %d, want %d", tc.birth, tc.now, got, tc.remote)
		}
	}
	// On schedule, attempts are at birth + (10k)² and birth + (20k)².
	for _, remote := range []bool{false, true} {
		step := int64(10)
		if remote {
			step = 20
		}
		now := u(0)
		for k := int64(1); k <= 6; k++ {
			now = NextRetry(u(0), now, remote)
			if want := (step * k) * (step * k); now.Unix() != want {
				t.Errorf("remote=%v attempt %d at %d, want %d", remote, k, now.Unix(), want)
			}
		}
	}
}

func TestIsqrt(t *testing.T) {
	for x := int64(0); x < 100000; x += 7 {
		n := isqrt(x)
		if n*n > x || (n+1)*(n+1) <= x {
			t.Fatalf("isqrt(%d) = %d", x, n)
		}
	}
	if n := isqrt(1 << 62); n != 1<<31 {
		t.Errorf("isqrt(2^62) = %d", n)
	}
}

// A message is dying once now is past birth + queuelifetime.
func TestDying(t *testing.T) {
	if Dying(u(0), u(604800), DefaultLifetime) {
		t.Error("dying at exactly the lifetime")
	}
	if !Dying(u(0), u(604801), DefaultLifetime) {
		t.Error("not dying after the lifetime")
	}
}

// VERP: a sender P@D-@[] becomes P, the recipient with '=' for '@', then
// @D; other senders are kept.
func TestVerpSender(t *testing.T) {
	for _, tc := range []struct{ sender, rcpt, want string }{
		{"list-owner-@ex.com-@[]", "bob@b.org", "list-owner-bob=b.org@ex.com"},
		{"owner-@host-@[]", "box@dom", "owner-box=dom@host"},
		{"x-@[]", "bob@b.org", "x-@[]"},
		{"list-owner-@ex.com-@[]", "bob", "list-owner-@ex.com-@[]"},
		{"plain@ex.com", "bob@b.org", "plain@ex.com"},
		{"", "bob@b.org", ""},
		{"a@-@[]", "bob@b.org", "abob=b.org@"}, // as qmail's senderadd
	} {
		if got := verpSender(tc.sender, tc.rcpt); got != tc.want {
			t.Errorf("verpSender(%q, %q) = %q, want %q", tc.sender, tc.rcpt, got, tc.want)
		}
	}
}
