package smtpclient

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// poolKey identifies connections that may carry each other's messages: same
// address and port, same TLS policy and credentials, same EHLO name.
type poolKey struct {
	addr   netip.AddrPort
	policy TLSPolicy
	server string
	user   string
	pass   string
	helo   string
}

// Pool keeps idle SMTP connections for reuse and bounds the connections
// open at once. Its zero value keeps up to 2 idle connections per address
// and 100 in all, each for 5 s, and does not bound open connections. A Pool
// is safe for concurrent use; Close ends every idle connection.
type Pool struct {
	// MaxIdlePerHost bounds the idle connections to one address; 0 means 2.
	MaxIdlePerHost int
	// MaxIdle bounds all idle connections; 0 means 100.
	MaxIdle int
	// MaxConnsPerHost bounds the connections open to one address, idle or
	// in use; a delivery that needs another one waits (until its context
	// ends, a temporary failure). 0 means no bound.
	MaxConnsPerHost int
	// MaxConns bounds all open connections in the same way; an idle
	// connection is closed to make room. 0 means no bound.
	MaxConns int
	// IdleTimeout is how long a connection stays idle before it is closed
	// with QUIT; 0 means 5 s.
	IdleTimeout time.Duration

	mu     sync.Mutex
	idle   map[poolKey][]*session
	n      int // idle sessions
	open   map[netip.AddrPort]int
	total  int           // open connections
	freed  chan struct{} // closed when a connection is released
	closed bool
}

// take returns an idle session for key, or reserves a new connection to
// key.addr within the bounds (closing an idle connection to another
// destination when that makes room), or waits until one of those is
// possible.
func (p *Pool) take(ctx context.Context, key poolKey) (*session, error) {
	addr := key.addr
	for {
		p.mu.Lock()
		if list := p.idle[key]; len(list) > 0 {
			s := list[len(list)-1]
			p.remove(s)
			s.timer.Stop()
			p.mu.Unlock()
			return s, nil
		}
		hostFull := p.MaxConnsPerHost > 0 && p.open[addr] >= p.MaxConnsPerHost
		allFull := p.MaxConns > 0 && p.total >= p.MaxConns
		if !hostFull && !allFull {
			if p.open == nil {
				p.open = map[netip.AddrPort]int{}
			}
			p.open[addr]++
			p.total++
			p.mu.Unlock()
			return nil, nil
		}
		var evict *session
		for k, list := range p.idle {
			if hostFull && k.addr != addr {
				continue
			}
			if t := list[0]; evict == nil || t.since.Before(evict.since) {
				evict = t
			}
		}
		if evict != nil {
			p.remove(evict)
			evict.timer.Stop()
			p.mu.Unlock()
			evict.quit()
			continue
		}
		if p.freed == nil {
			p.freed = make(chan struct{})
		}
		freed := p.freed
		p.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// wake tells waiting deliveries to look again; p.mu must be held.
func (p *Pool) wake() {
	if p.freed != nil {
		close(p.freed)
		p.freed = nil
	}
}

// release gives back a connection reserved by acquire.
func (p *Pool) release(addr netip.AddrPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open[addr]--; p.open[addr] <= 0 {
		delete(p.open, addr)
	}
	p.total--
	p.wake()
}

func (p *Pool) maxPerHost() int {
	if p.MaxIdlePerHost > 0 {
		return p.MaxIdlePerHost
	}
	return 2
}

func (p *Pool) maxIdle() int {
	if p.MaxIdle > 0 {
		return p.MaxIdle
	}
	return 100
}

func (p *Pool) idleTimeout() time.Duration {
	if p.IdleTimeout > 0 {
		return p.IdleTimeout
	}
	return 5 * time.Second
}

// remove takes s out of the idle lists; p.mu must be held.
func (p *Pool) remove(s *session) bool {
	list := p.idle[s.key]
	for i, t := range list {
		if t == s {
			list = append(list[:i], list[i+1:]...)
			if len(list) == 0 {
				delete(p.idle, s.key)
			} else {
				p.idle[s.key] = list
			}
			p.n--
			return true
		}
	}
	return false
}

// put keeps s idle, evicting the oldest idle session when a bound is
// reached. An idle session is ended with QUIT after IdleTimeout.
func (p *Pool) put(s *session) {
	var evict *session
	p.mu.Lock()
	if p.closed || len(p.idle[s.key]) >= p.maxPerHost() {
		p.mu.Unlock()
		s.quit()
		return
	}
	if p.n >= p.maxIdle() {
		for _, list := range p.idle {
			if t := list[0]; evict == nil || t.since.Before(evict.since) {
				evict = t
			}
		}
		p.remove(evict)
		evict.timer.Stop()
	}
	if p.idle == nil {
		p.idle = map[poolKey][]*session{}
	}
	s.since = time.Now()
	p.idle[s.key] = append(p.idle[s.key], s)
	p.n++
	s.timer = time.AfterFunc(p.idleTimeout(), func() { p.expire(s) })
	p.wake()
	p.mu.Unlock()
	if evict != nil {
		evict.quit()
	}
}

func (p *Pool) expire(s *session) {
	p.mu.Lock()
	ok := p.remove(s)
	p.mu.Unlock()
	if ok {
		s.quit()
	}
}

// Idle returns the number of idle connections.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Close ends every idle connection with QUIT and stops keeping new ones;
// it returns when they are closed. Connections in use are ended when their
// delivery finishes.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	var all []*session
	for _, list := range p.idle {
		for _, s := range list {
			s.timer.Stop()
			all = append(all, s)
		}
	}
	p.idle, p.n = nil, 0
	p.mu.Unlock()
	// Each QUIT waits up to Timeouts.Quit for its reply: all at once, so
	// that Close takes that long at most.
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Go(s.quit)
	}
	wg.Wait()
	return nil
}
