package authlimit

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// FuzzLimiter runs a fuzzed schedule of attempts (client, account,
// outcome, pause, some in parallel) on a Limiter with small tables:
// nothing panics or deadlocks, Wait returns nil, ErrThrottled or the
// context's error, the tables stay within their caps, and the totals add
// up.
func FuzzLimiter(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	f.Add([]byte{0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0xff, 0xfe, 0x7f, 0x40})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 200 {
			ops = ops[:200]
		}
		synctest.Test(t, func(t *testing.T) {
			l := &Limiter{Logger: quiet, MaxClients: 4, MaxAccounts: 3, ClientFree: 1, AccountFree: 2, TrustFor: time.Minute}
			var wg sync.WaitGroup
			var mu sync.Mutex
			var waits uint64
			for _, op := range ops {
				// bits: 0-2 client, 3-4 account, 5 outcome, 6 parallel, 7 pause
				addr := netip.AddrFrom4([4]byte{192, 0, 2, op & 7})
				if op&4 != 0 {
					addr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, op & 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, op})
				}
				user := fmt.Sprint("u", op>>3&3)
				run := func() {
					ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
					defer cancel()
					err := l.Wait(ctx, addr, user)
					mu.Lock()
					waits++
					mu.Unlock()
					switch {
					case err == nil:
						l.Done(addr, user, op&0x20 != 0)
					case errors.Is(err, ErrThrottled), errors.Is(err, context.DeadlineExceeded):
					default:
						t.Errorf("Wait: %v", err)
					}
				}
				if op&0x40 != 0 {
					wg.Go(run)
				} else {
					run()
				}
				if op&0x80 != 0 {
					time.Sleep(time.Duration(op&0x1f) * time.Minute)
				}
				st := l.Stats()
				if st.Clients > 4 || st.Accounts > 3 || st.Known > 3 {
					t.Fatalf("tables past their caps: %+v", st)
				}
			}
			wg.Wait()
			st := l.Stats()
			if st.Allowed+st.Refused > waits || st.Allowed+st.Refused+st.Delayed < waits {
				t.Errorf("%d attempts, %+v", waits, st)
			}
		})
	})
}
