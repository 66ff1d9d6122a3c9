package authlimit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// AuthLimiter is the interface smtpserver and pop3 each declare; the
// Limiter must satisfy it without either importing this package.
type AuthLimiter interface {
	Wait(ctx context.Context, addr netip.Addr, user string) error
	Done(addr netip.Addr, user string, ok bool)
}

var _ AuthLimiter = (*Limiter)(nil)

var quiet = slog.New(slog.DiscardHandler)

// attempt runs Wait and returns how long it took and its error.
func attempt(t *testing.T, l *Limiter, addr, user string) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	err := l.Wait(t.Context(), netip.MustParseAddr(addr), user)
	return time.Since(start), err
}

// fail runs an attempt that goes ahead and fails, and returns its wait.
func fail(t *testing.T, l *Limiter, addr, user string) time.Duration {
	t.Helper()
	d, err := attempt(t, l, addr, user)
	if err != nil {
		t.Fatalf("Wait(%s, %s): %v", addr, user, err)
	}
	l.Done(netip.MustParseAddr(addr), user, false)
	return d
}

func TestClientDelay(t *testing.T) {
	s := time.Second
	tests := []struct {
		name string
		l    func() *Limiter
		want []time.Duration
	}{
		{"defaults", func() *Limiter { return &Limiter{} }, []time.Duration{0, 0, 0, s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 60 * s, 60 * s, 60 * s}},
		{"free 1, cap 5s", func() *Limiter { return &Limiter{ClientFree: 1, ClientMaxDelay: 5 * s} }, []time.Duration{0, s, 2 * s, 4 * s, 5 * s, 5 * s}},
		{"none free", func() *Limiter { return &Limiter{ClientFree: -1, BaseDelay: 100 * time.Millisecond} }, []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := tt.l()
				l.Logger = quiet
				for i, want := range tt.want {
					// A new user name each time: only the client's count applies.
					if got := fail(t, l, "192.0.2.1", fmt.Sprint("user", i)); got != want {
						t.Errorf("attempt %d waited %v, want %v", i+1, got, want)
					}
				}
			})
		})
	}
}

func TestDelayCountsFromLastAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &Limiter{Logger: quiet}
		for range 4 {
			fail(t, l, "192.0.2.1", "a")
		}
		// The 5th may go 2 s after the 4th: a client that comes back
		// later does not wait at all.
		time.Sleep(3 * time.Second)
		if d := fail(t, l, "192.0.2.1", "a"); d != 0 {
			t.Errorf("waited %v after a pause longer than the delay", d)
		}
	})
}

// TestSuccessForgivesOnlyItself: a success takes back its own attempt,
// not the client's earlier failures.
func TestSuccessForgivesOnlyItself(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &Limiter{Logger: quiet}
		addr := netip.MustParseAddr("192.0.2.1")
		for range 6 {
			fail(t, l, "192.0.2.1", "alice")
		}
		d, err := attempt(t, l, "192.0.2.1", "alice")
		if err != nil || d != 8*time.Second {
			t.Fatalf("7th attempt: waited %v, %v; want 8s", d, err)
		}
		l.Done(addr, "alice", true)
		// The 6 failures still count: the next attempt is delayed.
		if d := fail(t, l, "192.0.2.1", "alice"); d < 8*time.Second {
			t.Errorf("attempt after a success waited %v, want at least 8s", d)
		}
		if st := l.Stats(); st.Known != 1 {
			t.Errorf("Known = %d, want 1", st.Known)
		}
	})
}

// TestSuccessDoesNotResetGuessing replays the re-audit: a client that
// knows one account's password logs in with it between rounds of three
// guesses at other accounts, for 20 s. Were a success to clear the
// client's count, every round would be free (60 checks in 20 s).
func TestSuccessDoesNotResetGuessing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &Limiter{Logger: quiet}
		addr := netip.MustParseAddr("192.0.2.9")
		end := time.Now().Add(20 * time.Second)
		guesses := 0
		for i := 0; time.Now().Before(end); i++ {
			for j := range 3 {
				if time.Now().After(end) {
					break
				}
				if _, err := attempt(t, l, "192.0.2.9", fmt.Sprintf("user%d-%d", i, j)); err == nil {
					guesses++
					l.Done(addr, fmt.Sprintf("user%d-%d", i, j), false)
				}
			}
			if _, err := attempt(t, l, "192.0.2.9", "known"); err == nil {
				l.Done(addr, "known", true)
			}
		}
		if guesses > 12 {
			t.Errorf("%d guesses checked in 20 s between logins to a known account, want at most 12", guesses)
		}
	})
}

func TestAccountAcrossClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &Limiter{Logger: quiet}
		// The owner logs in from home first.
		if _, err := attempt(t, l, "198.51.100.7", "alice"); err != nil {
			t.Fatal(err)
		}
		l.Done(netip.MustParseAddr("198.51.100.7"), "alice", true)

		s := time.Second
		want := []time.Duration{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, s, 2 * s, 4 * s, 8 * s, 15 * s, 15 * s}
		for i, w := range want {
			// Each guess from a new address, with the name's case varied.
			addr := fmt.Sprintf("203.0.113.%d", i+1)
			user := "alice"
			if i%2 == 1 {
				user = "ALICE"
			}
			if got := fail(t, l, addr, user); got != w {
				t.Errorf("guess %d from %s waited %v, want %v", i+1, addr, got, w)
			}
		}
		// The owner, at home, is not held back by the guesses.
		if d, err := attempt(t, l, "198.51.100.7", "Alice"); d != 0 || err != nil {
			t.Errorf("owner's login waited %v, %v", d, err)
		}
		l.Done(netip.MustParseAddr("198.51.100.7"), "alice", true)
		// Another account is not held back either.
		if d, err := attempt(t, l, "203.0.113.200", "bob"); d != 0 || err != nil {
			t.Errorf("bob's login waited %v, %v", d, err)
		}
	})
}

func TestIPv6Slash64IsOneClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &Limiter{Logger: quiet}
		for i := range 3 {
			fail(t, l, fmt.Sprintf("2001:db8:1:2::%x", i+1), fmt.Sprint("u", i))
		}
		if d := fail(t, l, "2001:db8:1:2:ffff::1", "u9"); d != time.Second {
			t.Errorf("4th attempt from the same /64 waited %v, want 1s", d)
		}
		if d := fail(t, l, "2001:db8:1:3::1", "u10"); d != 0 {
			t.Errorf("attempt from another /64 waited %v", d)
		}
	})
}

func TestDecay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &Limiter{Logger: quiet}
		for i := range 5 {
			fail(t, l, "192.0.2.1", fmt.Sprint("u", i))
		}
		// 5 halves to 2 after 10 quiet minutes: the 3rd attempt is free
		// again, then the delays start over.
		time.Sleep(10 * time.Minute)
		if d := fail(t, l, "192.0.2.1", "v"); d != 0 {
			t.Errorf("attempt after decay waited %v", d)
		}
		if d := fail(t, l, "192.0.2.1", "w"); d != time.Second {
			t.Errorf("2nd attempt after decay waited %v, want 1s", d)
		}
		// After long enough, everything is forgotten and the tables empty.
		time.Sleep(2 * time.Hour)
		fail(t, l, "192.0.2.99", "x")
		l.Done(netip.MustParseAddr("192.0.2.99"), "x", true)
		fail(t, l, "192.0.2.98", "y")
		l.Done(netip.MustParseAddr("192.0.2.98"), "y", true)
		if st := l.Stats(); st.Clients != 0 || st.Accounts != 0 {
			t.Errorf("after 2 quiet hours: %+v", st)
		}
	})
}

// TestParallelGuessing reproduces the audit's attack: 300 connections from
// one address guessing passwords in parallel for 15 s. Without a limiter
// they checked 2,100 passwords.
func TestParallelGuessing(t *testing.T) {
	for _, sameUser := range []bool{false, true} {
		t.Run(fmt.Sprint("sameUser=", sameUser), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var logs bytes.Buffer
				l := &Limiter{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
				addr := netip.MustParseAddr("192.0.2.66")
				var checks, refused atomic.Int64
				end := time.Now().Add(15 * time.Second)
				var wg sync.WaitGroup
				for g := range 300 {
					wg.Go(func() {
						for i := 0; time.Now().Before(end); i++ {
							user := fmt.Sprintf("user%d-%d", g, i)
							if sameUser {
								user = "postmaster"
							}
							ctx, cancel := context.WithDeadline(t.Context(), end)
							err := l.Wait(ctx, addr, user)
							cancel()
							switch {
							case err == nil:
								checks.Add(1)
								time.Sleep(10 * time.Millisecond) // the check
								l.Done(addr, user, false)
							case errors.Is(err, ErrThrottled):
								refused.Add(1)
								time.Sleep(100 * time.Millisecond) // the server's answer, a new try
							case errors.Is(err, context.DeadlineExceeded):
							default:
								t.Errorf("Wait: %v", err)
								return
							}
						}
					})
				}
				// Meanwhile another client logs in at once.
				time.Sleep(5 * time.Second)
				if d, err := attempt(t, l, "192.0.2.67", "bob"); d != 0 || err != nil {
					t.Errorf("another client waited %v, %v", d, err)
				}
				wg.Wait()
				t.Logf("%d checks, %d refused, %+v", checks.Load(), refused.Load(), l.Stats())
				// 3 free, then one at 1, 3, 7 and 15 s.
				if n := checks.Load(); n > 10 {
					t.Errorf("%d checks went ahead in 15 s, want at most 10 (2,100 unthrottled)", n)
				}
				if refused.Load() < 1000 {
					t.Errorf("only %d attempts refused", refused.Load())
				}
				st := l.Stats()
				// Refused and waiting attempts add no account entry (they
				// cannot evict anyone): the accounts are those checked.
				if st.Accounts > int(st.Allowed) || st.Clients != 2 {
					t.Errorf("refused attempts grew the tables: %+v", st)
				}
				if st.Refused != uint64(refused.Load()) || st.Delayed == 0 {
					t.Errorf("Stats = %+v, refused %d", st, refused.Load())
				}
				if n := strings.Count(logs.String(), "level=WARN"); n == 0 || n > 4 {
					t.Errorf("%d Warn lines, want 1 to 4:\n%s", n, logs.String())
				}
			})
		})
	}
}

func TestRefusedWhileOneWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []string
		var mu sync.Mutex
		l := &Limiter{Logger: quiet, Observe: func(ev string, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, fmt.Sprint(ev, " ", d))
		}}
		for range 3 {
			fail(t, l, "192.0.2.1", "a")
		}
		done := make(chan error)
		go func() {
			_, err := attempt(t, l, "192.0.2.1", "a")
			done <- err
		}()
		synctest.Wait()
		if _, err := attempt(t, l, "192.0.2.1", "b"); !errors.Is(err, ErrThrottled) {
			t.Errorf("second waiter: %v, want ErrThrottled", err)
		}
		if err := <-done; err != nil {
			t.Errorf("first waiter: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if got := strings.Join(events, ","); got != "delay 1s,refuse 1s" {
			t.Errorf("events %q", got)
		}
	})
}

func TestWaitCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &Limiter{Logger: quiet}
		addr := netip.MustParseAddr("192.0.2.1")
		for range 8 {
			fail(t, l, "192.0.2.1", "a") // the next waits 32 s
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		err := l.Wait(ctx, addr, "a")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Errorf("Wait: %v after %v", err, time.Since(start))
		}
		// The cancelled waiter gave its place back.
		if d, err := attempt(t, l, "192.0.2.1", "a"); err != nil || d != 31*time.Second {
			t.Errorf("next attempt: waited %v, %v", d, err)
		}
	})
}

func TestBoundedMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &Limiter{Logger: quiet, MaxClients: 100, MaxAccounts: 50}
		for i := range 1000 {
			// An attacker with many IPv6 /64s and many names.
			a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i), 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
			user := fmt.Sprint("user", i)
			if err := l.Wait(t.Context(), a, user); err != nil {
				t.Fatal(err)
			}
			l.Done(a, user, i%2 == 0)
		}
		st := l.Stats()
		if st.Clients > 100 || st.Accounts > 50 || st.Known > 50 {
			t.Errorf("tables grew past their caps: %+v", st)
		}
		if st.Evicted < 900 {
			t.Errorf("Evicted = %d", st.Evicted)
		}
	})
}

func TestLongUserName(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &Limiter{Logger: quiet}
		long := strings.Repeat("A", 1<<20)
		for i := range 10 {
			fail(t, l, fmt.Sprint("192.0.2.", i), long+fmt.Sprint(i))
		}
		// Names that differ only after 255 bytes are one account.
		if d := fail(t, l, "192.0.2.200", long); d != time.Second {
			t.Errorf("waited %v, want 1s", d)
		}
		if k := account(long); len(k) != 255 || k != strings.Repeat("a", 255) {
			t.Errorf("account name of %d bytes", len(k))
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	// Real time, for the race detector: small delays, many goroutines.
	l := &Limiter{Logger: quiet, BaseDelay: time.Microsecond, ClientMaxDelay: time.Millisecond, AccountMaxDelay: time.Millisecond, MaxClients: 8, MaxAccounts: 8}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				addr := netip.AddrFrom4([4]byte{192, 0, 2, byte(g % 12)})
				user := fmt.Sprint("u", i%10)
				if err := l.Wait(t.Context(), addr, user); err == nil {
					l.Done(addr, user, i%7 == 0)
				}
				_ = l.Stats()
			}
		})
	}
	wg.Wait()
	if st := l.Stats(); st.Clients > 8 || st.Accounts > 8 {
		t.Errorf("%+v", st)
	}
}

func TestTrustExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &Limiter{Logger: quiet, TrustFor: time.Hour, Decay: 24 * time.Hour}
		owner := netip.MustParseAddr("198.51.100.7")
		if err := l.Wait(t.Context(), owner, "alice"); err != nil {
			t.Fatal(err)
		}
		l.Done(owner, "alice", true)
		for i := range 12 {
			fail(t, l, fmt.Sprintf("203.0.113.%d", i+1), "alice")
		}
		if d, err := attempt(t, l, "198.51.100.7", "alice"); d != 0 || err != nil {
			t.Errorf("known owner waited %v, %v", d, err)
		}
		l.Done(owner, "alice", true) // renews the trust for an hour
		time.Sleep(time.Hour + time.Minute)
		// The guesses go on; the trust has expired: the owner is an
		// unknown client again, held back by the account's delay.
		fail(t, l, "203.0.113.99", "alice")
		if d, err := attempt(t, l, "198.51.100.7", "alice"); d != 8*time.Second || err != nil {
			t.Errorf("owner after TrustFor waited %v, %v; want 8s", d, err)
		}
	})
}
