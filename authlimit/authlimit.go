package authlimit

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/qmailkit/qmailkit/internal/connlimit"
)

// ErrThrottled is the condition of an attempt refused without checking its
// credentials because its client or account is being delayed and enough
// attempts already wait. It is a temporary error.
var ErrThrottled = errors.New("authlimit: too many failed logins, try again later")

// The events a Limiter's Observe hook is called with.
const (
	EventDelay  = "delay"  // an attempt waits before its check
	EventRefuse = "refuse" // an attempt is refused with ErrThrottled
)

// Defaults for the zero fields of a [Limiter].
const (
	DefaultClientFree      = 3
	DefaultAccountFree     = 10
	DefaultBaseDelay       = time.Second
	DefaultClientMaxDelay  = 60 * time.Second
	DefaultAccountMaxDelay = 15 * time.Second
	DefaultClientWaiters   = 1
	DefaultAccountWaiters  = 4
	DefaultDecay           = 10 * time.Minute
	DefaultTrustFor        = 30 * 24 * time.Hour
	DefaultMaxClients      = 100000
	DefaultMaxAccounts     = 100000
)

// maxUser is the most bytes of a user name an account is keyed by.
const maxUser = 255

// Limiter delays and refuses authentication attempts after repeated
// failures from one client or at one account (see the package
// documentation). Its zero value uses the defaults; set the fields before
// first use and do not change them after. It is safe for concurrent use.
type Limiter struct {
	// ClientFree is how many attempts a client gets before its attempts
	// are delayed; 0 means DefaultClientFree (3), negative means none.
	ClientFree int
	// AccountFree is how many attempts, from all clients together, an
	// account gets before its attempts are delayed; 0 means
	// DefaultAccountFree (10), negative means none.
	AccountFree int
	// BaseDelay is the first delay, doubled for each further failure;
	// 0 or negative means DefaultBaseDelay (1 s).
	BaseDelay time.Duration
	// ClientMaxDelay caps a client's delay; 0 or negative means
	// DefaultClientMaxDelay (60 s).
	ClientMaxDelay time.Duration
	// AccountMaxDelay caps an account's delay, which is kept shorter than
	// a client's because anyone can make an account wait; 0 or negative
	// means DefaultAccountMaxDelay (15 s).
	AccountMaxDelay time.Duration
	// ClientWaiters is how many attempts of one client may wait at once;
	// others are refused with ErrThrottled. 0 means DefaultClientWaiters
	// (1); negative means none wait (every delayed attempt is refused).
	ClientWaiters int
	// AccountWaiters is how many attempts at one account may wait at once;
	// 0 means DefaultAccountWaiters (4); negative means none.
	AccountWaiters int
	// Decay is the quiet time after which a count halves; 0 or negative
	// means DefaultDecay (10 minutes).
	Decay time.Duration
	// TrustFor is how long a client that logged in to an account is
	// exempt from that account's count and delay; 0 means DefaultTrustFor
	// (30 days), negative means never exempt.
	TrustFor time.Duration
	// MaxClients is the most clients tracked; 0 or negative means
	// DefaultMaxClients (100,000).
	MaxClients int
	// MaxAccounts is the most accounts (and the most known client–account
	// pairs) tracked; 0 or negative means DefaultMaxAccounts (100,000).
	MaxAccounts int

	// Now returns the current time; nil means time.Now. Waits sleep on
	// the runtime's timers, so Now must advance as they do (as
	// tls.Config.Time must).
	Now func() time.Time
	// Logger receives a Warn line when a client or account starts being
	// delayed and when it first has an attempt refused; nil means
	// slog.Default().
	Logger *slog.Logger
	// Observe, when set, is called (without any lock held) for each
	// attempt that must wait (EventDelay, with how long) and each attempt
	// refused (EventRefuse, with how long it would have had to wait).
	Observe func(event string, delay time.Duration)

	mu       sync.Mutex
	seed     maphash.Seed // keys accounts; made on first use
	seeded   bool
	clients  table[netip.Prefix]
	accounts table[uint64]
	trust    table[pair]
	stats    Stats
}

// Stats are a Limiter's running totals and current sizes.
type Stats struct {
	Allowed  uint64 // attempts that went ahead (after waiting or not)
	Delayed  uint64 // attempts that had to wait (and went ahead or were cancelled)
	Refused  uint64 // attempts refused with ErrThrottled
	Failed   uint64 // checks reported wrong by Done
	Evicted  uint64 // entries forgotten because a table was full
	Clients  int    // clients tracked now
	Accounts int    // accounts tracked now
	Known    int    // client–account pairs known from a success now
}

// pair is a client known to an account.
type pair struct {
	account uint64
	client  netip.Prefix
}

// entry is the count of a client or an account, or (fails unused) a known
// pair, whose last is when it was last logged in.
type entry struct {
	fails   int       // attempts counted and not forgiven
	last    time.Time // when fails last grew (decay counts from here)
	next    time.Time // earliest start of the next attempt
	waiting int       // attempts sleeping in Wait for this entry
	warned  bool      // the delay was logged
	refused bool      // a refusal was logged since the delay began
	elem    *list.Element
}

// table is a map with its entries in order of last use, for eviction.
type table[K comparable] struct {
	m   map[K]*entry
	lru list.List // of K, least recently used first
}

func (t *table[K]) get(k K) *entry {
	e := t.m[k]
	if e != nil {
		t.lru.MoveToBack(e.elem)
	}
	return e
}

// add returns the entry of k, made and the least recently used entry
// evicted if the table holds max; evicted tells whether one was.
func (t *table[K]) add(k K, max int) (e *entry, evicted bool) {
	if e = t.get(k); e != nil {
		return e, false
	}
	if t.m == nil {
		t.m = map[K]*entry{}
		t.lru.Init()
	}
	if len(t.m) >= max {
		t.remove(t.lru.Front().Value.(K))
		evicted = true
	}
	e = &entry{}
	e.elem = t.lru.PushBack(k)
	t.m[k] = e
	return e, evicted
}

func (t *table[K]) remove(k K) {
	if e := t.m[k]; e != nil {
		t.lru.Remove(e.elem)
		delete(t.m, k)
	}
}

// oldest returns the least recently used key and entry, if any.
func (t *table[K]) oldest() (K, *entry, bool) {
	var zero K
	f := t.lru.Front()
	if f == nil {
		return zero, nil, false
	}
	k := f.Value.(K)
	return k, t.m[k], true
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// size is a table's size limit n, or def when n is 0 or negative.
func size(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// positive is d, or def when d is 0 or negative.
func positive(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Limiter) logger() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	return slog.Default()
}

// free returns the number of free attempts for a setting and its default.
func free(v, def int) int {
	if v < 0 {
		return 0
	}
	return orDefault(v, def)
}

// account is the name attempts for user are counted under: user cut to
// 255 bytes and folded to lower case.
func account(user string) string {
	if len(user) > maxUser {
		user = user[:maxUser]
	}
	return strings.ToLower(user)
}

// key returns the table keys of an attempt: the client's prefix and a
// hash of the account name, so that an entry's size does not depend on
// the name's. The hash is seeded per Limiter: no one can choose names that
// collide, and a chance collision only makes two accounts share a count.
// Called with l.mu held.
func (l *Limiter) key(client netip.Prefix, name string) pair {
	if !l.seeded {
		l.seed, l.seeded = maphash.MakeSeed(), true
	}
	return pair{maphash.String(l.seed, name), client}
}

// decay halves e's count for each Decay of quiet since it last grew.
func (l *Limiter) decay(e *entry, now time.Time) {
	if e.fails == 0 {
		return
	}
	d := positive(l.Decay, DefaultDecay)
	n := now.Sub(e.last) / d
	if n <= 0 {
		return
	}
	if n >= 63 {
		e.fails = 0
	} else {
		e.fails >>= uint(n)
	}
	e.last = e.last.Add(n * d)
	if e.fails == 0 {
		e.warned, e.refused = false, false
	}
}

// delay returns how long after the n-th counted attempt the next may go:
// BaseDelay·2^(n−free) (2^(n−1) when free is 0), at most limit.
func (l *Limiter) delay(n, free int, limit time.Duration) time.Duration {
	if n < free {
		return 0
	}
	d := positive(l.BaseDelay, DefaultBaseDelay)
	for i := max(free, 1); i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// count counts an attempt that goes ahead now.
func (l *Limiter) count(e *entry, now time.Time, free int, max time.Duration) {
	e.fails++
	e.last = now
	e.next = now.Add(l.delay(e.fails, free, max))
}

// tidy forgets a few entries that have decayed to nothing, so that the
// tables shrink when attacks stop without a sweep of the whole table.
func (l *Limiter) tidy(now time.Time) {
	for range 2 {
		if k, e, ok := l.clients.oldest(); ok && e.waiting == 0 {
			if l.decay(e, now); e.fails == 0 {
				l.clients.remove(k)
			}
		}
		if k, e, ok := l.accounts.oldest(); ok && e.waiting == 0 {
			if l.decay(e, now); e.fails == 0 {
				l.accounts.remove(k)
			}
		}
		if k, e, ok := l.trust.oldest(); ok && !e.last.After(now) {
			l.trust.remove(k)
		}
	}
}

// known reports whether client has logged in to account within TrustFor.
func (l *Limiter) known(p pair, now time.Time) bool {
	if l.TrustFor < 0 {
		return false
	}
	e := l.trust.m[p]
	if e == nil {
		return false
	}
	if !e.last.After(now) { // last is when the trust ends
		l.trust.remove(p)
		return false
	}
	return true
}

// Wait returns when an attempt to log in as user from addr may go ahead
// (at once unless the client or account has failed too often), or
// ErrThrottled to refuse it at once when enough attempts already wait, or
// ctx's error (wrapped) if ctx ends while it waits.
func (l *Limiter) Wait(ctx context.Context, addr netip.Addr, user string) error {
	client, name := connlimit.Client(addr), account(user)
	cfree, afree := free(l.ClientFree, DefaultClientFree), free(l.AccountFree, DefaultAccountFree)
	cmax, amax := positive(l.ClientMaxDelay, DefaultClientMaxDelay), positive(l.AccountMaxDelay, DefaultAccountMaxDelay)
	cwait, await := orDefault(l.ClientWaiters, DefaultClientWaiters), orDefault(l.AccountWaiters, DefaultAccountWaiters)
	var waited bool
	for {
		l.mu.Lock()
		p := l.key(client, name)
		now := l.now()
		l.tidy(now)
		// Look the entries up without making them: a refused attempt
		// adds nothing, so refusals cannot evict anyone.
		known := l.known(p, now)
		c, a := l.clients.get(p.client), (*entry)(nil)
		if !known {
			a = l.accounts.get(p.account)
		}
		var zero entry
		if c == nil {
			c = &zero
		}
		l.decay(c, now)
		at := c.next
		if a != nil {
			l.decay(a, now)
			if a.next.After(at) {
				at = a.next
			}
		}
		if !at.After(now) {
			c, a = l.make(p, known)
			l.count(c, now, cfree, cmax)
			if a != nil {
				l.count(a, now, afree, amax)
			}
			l.stats.Allowed++
			l.mu.Unlock()
			return nil
		}
		wait := at.Sub(now)
		// full is the entry (client first) whose waiting attempts are at
		// its limit, if any.
		var full *entry
		if c.waiting >= cwait {
			full = c
		} else if a != nil && a.next.After(now) && a.waiting >= await {
			full = a
		}
		if full != nil {
			l.stats.Refused++
			warn := !full.refused
			full.refused = true
			fails, cfails := full.fails, c.fails
			l.mu.Unlock()
			if warn {
				l.logger().Warn("authlimit: attempt refused", "addr", addr, "user", name, "client_failures", cfails, "failures", fails, "delay", wait)
			}
			if l.Observe != nil {
				l.Observe(EventRefuse, wait)
			}
			return ErrThrottled
		}
		// The client's entry holds the count of its waiters; an account
		// with no entry holds nothing back and gets none.
		c, _ = l.make(p, true)
		// Count the wait on both entries, and log the entries whose delay
		// holds the attempt back for the first time.
		var warn []any
		c.waiting++
		if c.next.After(now) && !c.warned {
			c.warned = true
			warn = append(warn, "client_failures", c.fails)
		}
		if a != nil {
			a.waiting++
			if a.next.After(now) && !a.warned {
				a.warned = true
				warn = append(warn, "account_failures", a.fails)
			}
		}
		if !waited {
			l.stats.Delayed++
		}
		l.mu.Unlock()
		if warn != nil {
			l.logger().Warn("authlimit: attempts delayed", append([]any{"addr", addr, "user", name, "delay", wait}, warn...)...)
		}
		if l.Observe != nil && !waited {
			l.Observe(EventDelay, wait)
		}
		waited = true
		err := sleep(ctx, wait)
		// c or a may have been evicted meanwhile: then this changes an
		// entry no one else sees, and the next round makes new ones.
		l.mu.Lock()
		c.waiting--
		if a != nil {
			a.waiting--
		}
		l.mu.Unlock()
		if err != nil {
			return fmt.Errorf("authlimit: %w", err)
		}
	}
}

// make returns the client's entry and, unless known (the client is known
// to the account, or the caller needs only the client's), the account's,
// made if new (evicting the least recently used entry of a full table).
func (l *Limiter) make(p pair, known bool) (c, a *entry) {
	c, ev := l.clients.add(p.client, size(l.MaxClients, DefaultMaxClients))
	if ev {
		l.stats.Evicted++
	}
	if !known {
		a, ev = l.accounts.add(p.account, size(l.MaxAccounts, DefaultMaxAccounts))
		if ev {
			l.stats.Evicted++
		}
	}
	return c, a
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done reports the outcome of a check that Wait let go ahead: ok is true
// for right credentials, false for wrong ones. A success takes its own
// attempt back from the client's count and from the account's, and
// makes the client known to the account for TrustFor. A temporary
// failure of the authenticator is not reported, and stays counted as
// a failure.
func (l *Limiter) Done(addr netip.Addr, user string, ok bool) {
	client, name := connlimit.Client(addr), account(user)
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.key(client, name)
	now := l.now()
	if !ok {
		l.stats.Failed++
		return
	}
	// A success takes back only its own attempt, counted at Wait: were
	// it to clear the client's count, one account the attacker knows
	// would reset the count between rounds of guesses at others.
	if c := l.clients.m[p.client]; c != nil && c.fails > 0 {
		c.fails--
		if c.fails == 0 && c.waiting == 0 {
			l.clients.remove(p.client)
		}
	}
	if l.known(p, now) {
		l.trust.m[p].last = now.Add(l.trustFor())
		l.trust.get(p)
		return
	}
	if a := l.accounts.m[p.account]; a != nil && a.fails > 0 {
		a.fails--
		if a.fails == 0 && a.waiting == 0 {
			l.accounts.remove(p.account)
		}
	}
	if l.TrustFor >= 0 {
		e, ev := l.trust.add(p, size(l.MaxAccounts, DefaultMaxAccounts))
		e.last = now.Add(l.trustFor())
		if ev {
			l.stats.Evicted++
		}
	}
}

// trustFor is TrustFor with its default applied.
func (l *Limiter) trustFor() time.Duration { return orDefault(l.TrustFor, DefaultTrustFor) }

// Stats returns the running totals and the current table sizes.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Clients, s.Accounts, s.Known = len(l.clients.m), len(l.accounts.m), len(l.trust.m)
	return s
}
