package vmail

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// genStore is the part of a Store the cache asks.
type genStore struct {
	Store
	gen int64
}

func (s *genStore) Generation(context.Context) (int64, error) { return s.gen, nil }

// TestCacheBounded: a flood of lookups of addresses that do not exist
// cannot grow the cache beyond its bound.
func TestCacheBounded(t *testing.T) {
	c := &cache{ttl: time.Hour, max: 100}
	s := &genStore{gen: 1}
	now := time.Unix(1e9, 0)
	gen, ok := c.epoch(t.Context(), s, now)
	if !ok {
		t.Fatal("cache not usable")
	}
	for i := range 10000 {
		c.putRecipient(gen, fmt.Sprintf("x%d@example.com", i), Recipient{})
		c.putDomain(gen, fmt.Sprintf("d%d.example", i), domainEntry{})
		if len(c.recips) > 100 || len(c.domains) > 100 {
			t.Fatalf("cache grew to %d, %d entries", len(c.recips), len(c.domains))
		}
	}
	// A new Generation empties it; a stale answer is not kept.
	s.gen = 2
	c.putRecipient(gen, "stale@example.com", Recipient{Kind: IsMailbox})
	if _, ok := c.recipient(gen, "stale@example.com"); !ok {
		t.Fatal("an answer of the current generation was not kept")
	}
	gen2, _ := c.epoch(t.Context(), s, now.Add(2*time.Hour))
	if gen2 != 2 || len(c.recips) != 0 {
		t.Fatalf("after a new generation: gen %d, %d entries", gen2, len(c.recips))
	}
	c.putRecipient(gen, "old@example.com", Recipient{})
	if _, ok := c.recipient(gen2, "old@example.com"); ok {
		t.Fatal("an answer found under the old generation was cached under the new")
	}
	// Within the TTL the store is not asked again.
	s.gen = 3
	if g, _ := c.epoch(t.Context(), s, now.Add(2*time.Hour+time.Minute)); g != 2 {
		t.Fatalf("Generation asked again within the TTL: %d", g)
	}
	// A clock that went back is not trusted.
	if g, _ := c.epoch(t.Context(), s, now); g != 3 {
		t.Fatalf("a clock going back kept the cache: %d", g)
	}
}
