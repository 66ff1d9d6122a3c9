package authlimit_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/qmailkit/qmailkit/authlimit"
)

// A server asks the Limiter before each credentials check and reports the
// outcome after it.
func Example() {
	l := &authlimit.Limiter{
		ClientFree:     2,
		ClientMaxDelay: 1, // keep the example fast: delays are 1 ns
		Logger:         slog.New(slog.DiscardHandler),
	}
	check := func(addr netip.Addr, user, pass string) string {
		if err := l.Wait(context.Background(), addr, user); err != nil {
			if errors.Is(err, authlimit.ErrThrottled) {
				return "-ERR [SYS/TEMP] try again later"
			}
			return "-ERR " + err.Error()
		}
		ok := pass == "right"
		l.Done(addr, user, ok)
		if !ok {
			return "-ERR authorization failed"
		}
		return "+OK"
	}
	addr := netip.MustParseAddr("192.0.2.1")
	for _, pass := range []string{"wrong", "wrong", "wrong", "right"} {
		fmt.Println(check(addr, "alice", pass))
	}
	st := l.Stats()
	fmt.Println("allowed:", st.Allowed, "failed:", st.Failed, "known:", st.Known)
	// Output:
	// -ERR authorization failed
	// -ERR authorization failed
	// -ERR authorization failed
	// +OK
	// allowed: 4 failed: 3 known: 1
}
