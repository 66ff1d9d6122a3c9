package main

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/connlimit"
)

// A client that opens more connections than the limit gets the extra ones
// closed at once; a slot given back admits the next.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := limitListener{Listener: inner, lim: &connlimit.Limiter{Max: 10, PerClient: 2}}
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	var first net.Conn
	for i := range 2 {
		select {
		case c := <-accepted:
			if i == 0 {
				first = c
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a connection within the limit was not accepted")
		}
	}
	clients[2].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := clients[2].Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("the third connection from one client: read %v, want it closed (EOF)", err)
	}
	select {
	case c := <-accepted:
		t.Fatalf("a connection over the limit was accepted: %v", c.RemoteAddr())
	case <-time.After(100 * time.Millisecond):
	}
	first.Close() // its slot back: the next connection is admitted
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("a connection after a slot was given back was not accepted")
	}
}
