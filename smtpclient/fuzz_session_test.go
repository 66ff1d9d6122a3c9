package smtpclient

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// blobDialer connects to a "server" that sends a fixed byte string as all
// its replies, whatever the client says, then hangs up.
type blobDialer struct{ blob []byte }

func (b blobDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	client, server := net.Pipe()
	go func() {
		go io.Copy(io.Discard, server)
		server.Write(b.blob)
		server.Close()
	}()
	return client, nil
}

// FuzzDeliver runs whole deliveries against arbitrary server replies: the
// client never panics or hangs, gives every recipient a result, and its
// report is well formed.
func FuzzDeliver(f *testing.F) {
	for _, s := range []string{
		"220 hi\r\n250 hello\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n221 bye\r\n",
		"220 hi\r\n250-hello\r\n250-PIPELINING\r\n250-SIZE 100\r\n250 8BITMIME\r\n250 ok\r\n250 ok\r\n550 no\r\n354 go\r\n250 queued\r\n",
		"220 hi\r\n250-hello\r\n250 STARTTLS\r\n220 go\r\n\x16\x03\x01garbage",
		"220 hi\r\n502 no\r\n250 helo\r\n250 ok\r\n452 4.5.3 too many\r\n",
		"554 go away\r\n",
		"220-a\r\n220 b\r\n250 x\r\n421 bye\r\n",
		"220 hi\r\n250 hello\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, blob []byte, compat bool) {
		c := &Client{
			Hostname:    "h",
			Routes:      mustRoutes(t, ":192.0.2.1"),
			Dialer:      blobDialer{blob},
			QmailCompat: compat,
			Timeouts:    Timeouts{Remote: time.Second, Quit: 50 * time.Millisecond},
		}
		rcpts := []string{"a@example.net", "b@example.net", "c@example.net"}
		start := time.Now()
		res, err := c.Deliver(context.Background(), "example.net", "s@x", rcpts, strings.NewReader("Subject: x\n\n.body\n"))
		if time.Since(start) > 10*time.Second {
			t.Fatalf("delivery took %v", time.Since(start))
		}
		if len(res.Recipients) != len(rcpts) || err != res.Err {
			t.Fatalf("result %+v, err %v", res, err)
		}
		accepted := 0
		for i, r := range res.Recipients {
			if r.Address != rcpts[i] {
				t.Fatalf("recipient %d is %q", i, r.Address)
			}
			if r.Err == nil {
				accepted++
				if st, _ := r.Report(); st != 'r' {
					t.Fatalf("%s delivered without an accepted RCPT: %q %v", r.Address, res.Report(), err)
				}
			}
		}
		// A later transaction (after a 452) may fail after an earlier one
		// delivered: then both an error and deliveries are possible.
		if err == nil && accepted == 0 {
			t.Fatalf("no error and nothing delivered: %q", res.Report())
		}
		rep := res.Report()
		if len(rep) == 0 || rep[len(rep)-1] != 0 {
			t.Fatalf("report %q", rep)
		}
		parts := bytes.Split(rep[:len(rep)-1], []byte{0})
		last := parts[len(parts)-1]
		if len(last) == 0 || !bytes.ContainsRune([]byte("KZD"), rune(last[0])) {
			t.Fatalf("report %q ends without a message report", rep)
		}
		for _, p := range parts[:len(parts)-1] {
			if len(p) == 0 || !bytes.ContainsRune([]byte("rhs"), rune(p[0])) {
				t.Fatalf("report %q: bad recipient report %q", rep, p)
			}
		}
	})
}
