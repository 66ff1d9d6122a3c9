package smtpclient

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// tcptoEntry remembers connect timeouts to one address (qmail's tcpto, spec
// §7.1), in memory for the life of the Client.
type tcptoEntry struct {
	count int
	last  time.Time
}

// tcptoHold is how long an address that timed out twice is skipped: qmail
// uses (60 + (pid & 31)) * 64 s, 3840–5824 s.
const tcptoHold = 3840 * time.Second

// tcptoSkip reports whether addr timed out at least twice recently.
func (c *Client) tcptoSkip(addr netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.tcpto[addr]
	return e != nil && e.count >= 2 && c.now().Sub(e.last) < tcptoHold
}

// tcptoRecord notes the outcome of a connect: a timeout counts (at most once
// per 120 s, up to 10), anything else clears the address.
func (c *Client) tcptoRecord(addr netip.Addr, err error) {
	var ne net.Error
	timeout := err != nil && errors.As(err, &ne) && ne.Timeout()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !timeout {
		delete(c.tcpto, addr)
		return
	}
	now := c.now()
	if c.tcpto == nil {
		c.tcpto = map[netip.Addr]*tcptoEntry{}
	}
	e := c.tcpto[addr]
	if e == nil {
		if len(c.tcpto) >= 1024 {
			for a := range c.tcpto { // bounded memory: forget one
				delete(c.tcpto, a)
				break
			}
		}
		c.tcpto[addr] = &tcptoEntry{count: 1, last: now}
		return
	}
	if now.Sub(e.last) >= 120*time.Second && e.count < 10 {
		e.count++
		e.last = now
	}
}
