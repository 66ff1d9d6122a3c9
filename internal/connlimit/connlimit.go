// Package connlimit counts a server's open connections, in total and per
// client, so that no one client (nor all of them together) can take every
// slot or every descriptor: the limits tcpserver's -c gives in total, and
// the per-address limit common qmail patches add (MAXCONNIP).
//
// A client is an IPv4 address, or the /64 network of an IPv6 address, since
// one IPv6 host commonly holds a whole /64.
package connlimit

import (
	"errors"
	"net/netip"
	"sync"
)

// Why a connection was not admitted. Acquire returns one of them.
var (
	// ErrTotal: the server has Max connections open.
	ErrTotal = errors.New("connlimit: too many connections")
	// ErrClient: this client has PerClient connections open.
	ErrClient = errors.New("connlimit: too many connections from this address")
)

// Limiter admits connections within its limits. Its zero value admits
// every connection; set the limits before first use and do not change them
// after. It is safe for concurrent use.
type Limiter struct {
	// Max is the most connections open at once; 0 or negative: no limit.
	Max int
	// PerClient is the most connections open at once from one client
	// (an IPv4 address or an IPv6 /64); 0 or negative: no limit.
	PerClient int

	mu  sync.Mutex
	n   int
	per map[netip.Prefix]int
}

// Client is the key connections from addr are counted under: addr as a
// /32 for IPv4 (IPv4-mapped IPv6 included), its /64 for IPv6. An invalid
// addr (a connection with no IP, such as a unix socket) is its own
// single client.
func Client(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, err := addr.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// Acquire admits a connection from addr, or returns ErrClient or ErrTotal
// (in that order of precedence) when a limit is reached. release, called once when the connection ends,
// gives its slot back; it is nil when err is not.
func (l *Limiter) Acquire(addr netip.Addr) (release func(), err error) {
	if l.Max <= 0 && l.PerClient <= 0 {
		return func() {}, nil
	}
	key := Client(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.PerClient > 0 && l.per[key] >= l.PerClient {
		return nil, ErrClient
	}
	if l.Max > 0 && l.n >= l.Max {
		return nil, ErrTotal
	}
	if l.per == nil {
		l.per = map[netip.Prefix]int{}
	}
	l.n++
	l.per[key]++
	var once sync.Once
	return func() { once.Do(func() { l.release(key) }) }, nil
}

// AcquireTrusted admits a connection from a trusted client (one that may
// relay, say), counting it against Max only: PerClient does not apply, as
// Postfix exempts $mynetworks from its per-client limits. It returns
// ErrTotal at the limit.
func (l *Limiter) AcquireTrusted() (release func(), err error) {
	if l.Max <= 0 {
		return func() {}, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n >= l.Max {
		return nil, ErrTotal
	}
	l.n++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.n--
			l.mu.Unlock()
		})
	}, nil
}

func (l *Limiter) release(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n--
	if l.per[key]--; l.per[key] <= 0 {
		delete(l.per, key)
	}
}

// Open returns the number of connections open now.
func (l *Limiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
