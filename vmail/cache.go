package vmail

import (
	"context"
	"sync"
	"time"
)

// maxCached bounds each of the cache's maps: a flood of lookups of
// addresses that do not exist cannot grow it further (a full map is
// emptied and filled again).
const maxCached = 1 << 18

// cache keeps the answers of Resolve and IsDomain (and the mailboxes
// Authenticate checks) while the store's Generation stays the same, and
// asks the store for its Generation at most once per ttl.
type cache struct {
	ttl time.Duration
	max int // entries per map; 0 means maxCached

	refresh sync.Mutex // one Generation query at a time

	mu      sync.RWMutex
	valid   bool
	gen     int64
	checked time.Time
	domains map[string]domainEntry // by the name asked for
	recips  map[string]Recipient   // by the address asked for, lower case
}

type domainEntry struct {
	d     Domain
	found bool
}

// epoch returns the cache's generation after making sure it is no older
// than ttl, and whether the cache may be used at all.
func (c *cache) epoch(ctx context.Context, s Store, now time.Time) (int64, bool) {
	if c.ttl < 0 {
		return 0, false
	}
	if gen, ok := c.fresh(now); ok {
		return gen, true
	}
	c.refresh.Lock()
	defer c.refresh.Unlock()
	if gen, ok := c.fresh(now); ok { // another caller refreshed it meanwhile
		return gen, true
	}
	g, err := s.Generation(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.valid = false
		c.domains, c.recips = nil, nil
		return 0, false
	}
	if !c.valid || g != c.gen {
		c.domains, c.recips = nil, nil
	}
	c.valid, c.gen, c.checked = true, g, now
	return g, true
}

// fresh returns the cache's generation and whether it was checked less
// than ttl before now.
func (c *cache) fresh(now time.Time) (int64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen, c.valid && now.Sub(c.checked) < c.ttl && !now.Before(c.checked)
}

func (c *cache) limit() int {
	if c.max > 0 {
		return c.max
	}
	return maxCached
}

func (c *cache) domain(gen int64, name string) (domainEntry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.valid || c.gen != gen {
		return domainEntry{}, false
	}
	e, ok := c.domains[name]
	return e, ok
}

func (c *cache) putDomain(gen int64, name string, e domainEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.valid || c.gen != gen {
		return // the store changed meanwhile: the answer may be stale
	}
	if c.domains == nil || len(c.domains) >= c.limit() {
		c.domains = make(map[string]domainEntry)
	}
	c.domains[name] = e
}

func (c *cache) recipient(gen int64, addr string) (Recipient, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.valid || c.gen != gen {
		return Recipient{}, false
	}
	r, ok := c.recips[addr]
	return r, ok
}

func (c *cache) putRecipient(gen int64, addr string, r Recipient) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.valid || c.gen != gen {
		return
	}
	if c.recips == nil || len(c.recips) >= c.limit() {
		c.recips = make(map[string]Recipient)
	}
	c.recips[addr] = r
}

// forget empties the cache, after a change made through this Manager, so
// that its own changes are seen at once.
func (c *cache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.valid = false
	c.domains, c.recips = nil, nil
}
