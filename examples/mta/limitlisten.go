package main

import (
	"net"
	"net/netip"
	"sync"

	"github.com/qmailkit/qmailkit/internal/connlimit"
)

// limitListener admits at most lim's connections (in total and per
// client) from l: a connection beyond them is closed at once, so that a
// flood of connections to an HTTP listener (the web admin) cannot take
// every descriptor. The SMTP and POP3 servers have their own limits.
type limitListener struct {
	net.Listener
	lim *connlimit.Limiter
}

func (l limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var addr netip.Addr
		if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
			addr = ap.Addr()
		}
		release, err := l.lim.Acquire(addr)
		if err != nil {
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, release: release}, nil
	}
}

// limitedConn gives its slot back when it is closed, once.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
