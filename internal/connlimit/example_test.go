package connlimit_test

import (
	"fmt"
	"net/netip"

	"github.com/qmailkit/qmailkit/internal/connlimit"
)

func Example() {
	l := &connlimit.Limiter{Max: 100, PerClient: 1}
	client := netip.MustParseAddr("192.0.2.1")
	release, err := l.Acquire(client)
	fmt.Println(err)
	_, err = l.Acquire(client)
	fmt.Println(err)
	release()
	// Output:
	// <nil>
	// connlimit: too many connections from this address
}
