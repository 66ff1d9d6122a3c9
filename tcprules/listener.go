package tcprules

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/qmailkit/qmailkit/internal/cdb"
)

// DefaultLimit is tcpserver's default -c: at most 40 connections at once.
const DefaultLimit = 40

// Resolver looks up host names for $TCPREMOTEHOST and $TCPLOCALHOST.
// *net.Resolver satisfies it.
type Resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

var _ Resolver = (*net.Resolver)(nil)

// Listener wraps a net.Listener with what tcpserver does around accept: a
// concurrency limit (-c), access rules from a cdb file (-x, -X) or held in
// memory (RulesData, RuleSet), host names (-h, -p, -l), the PROXY protocol
// from trusted balancers, and the environment of each connection. Accept returns only allowed connections,
// as *Conn, whose Env method gives that environment.
//
// Set the fields before the first call to Accept and do not change them
// afterwards; a Listener must not be copied after first use.
//
// Accept starts, on its first call, one goroutine that accepts from the
// wrapped listener, and one goroutine per accepted connection while that
// connection's PROXY header, host names and rules are worked out, so that a
// slow client or a slow DNS server never holds up the others. Close ends
// them all and waits for them.
type Listener struct {
	// Listener is the wrapped listener, normally a TCP listener.
	Listener net.Listener

	// Rules is the path of the rules cdb (tcpserver -x). It is looked at
	// for each connection and reopened when it has been replaced, so
	// tcprules or CompileFile may rebuild it at any time. Empty, with
	// RulesData and RuleSet nil: no rules, every connection is allowed.
	Rules string
	// AllowMissing allows connections while the Rules file does not exist
	// (tcpserver -X); by default they are dropped. An unreadable or corrupt
	// cdb drops connections either way.
	AllowMissing bool
	// RulesData is a rules cdb held in memory (the result of [Compile], or
	// the bytes of a cdb file), for a program that keeps its rules without
	// a file. It is copied and opened once, when the first connection is
	// checked, and looked up exactly as the Rules file would be; it is never reloaded (make a
	// new Listener for new rules). Nil: not used.
	RulesData []byte
	// RuleSet holds parsed rules (the result of [Parse], or Rules built in
	// Go), compiled when the first connection is checked into the cdb tcprules would write
	// for them, in their order, and then used as RulesData is. A Rule whose
	// Keys are nil stands for the keys of its Address, ranges expanded as
	// in a rules file. A non-nil empty RuleSet allows every connection.
	// Nil: not used.
	//
	// At most one of Rules, RulesData and RuleSet may be set: with more, or
	// with in-memory rules that cannot be read (a corrupt cdb, an Address
	// with a bad range), every connection is dropped and the reason
	// logged, as for an unreadable Rules file.
	RuleSet []Rule

	// Limit is the number of connections handled at once (tcpserver -c):
	// those being looked up plus those returned by Accept and not yet
	// closed. At the limit no more connections are accepted until one is
	// closed; new clients wait in the kernel's listen backlog, as with
	// tcpserver. Zero means DefaultLimit (40); negative means no limit.
	Limit int

	// Resolver, when set, is used to find $TCPREMOTEHOST: the first PTR name
	// of the client's address (tcpserver -h; nil is -H). It is also used for
	// $TCPLOCALHOST unless LocalHost is set.
	Resolver Resolver
	// Paranoid keeps $TCPREMOTEHOST only when one of the name's addresses
	// is the client's (tcpserver -p).
	Paranoid bool
	// LocalHost, when set, is $TCPLOCALHOST (tcpserver -l NAME), and no
	// lookup is made for it.
	LocalHost string
	// LookupTimeout bounds the host-name lookups of one connection. Zero
	// means 30 seconds. A lookup that fails or times out leaves the name
	// unset, as with tcpserver.
	LookupTimeout time.Duration

	// ProxyFrom lists the balancers trusted to send a PROXY protocol header
	// (HAProxy's v1 or v2). A connection from one of them must start with a
	// header, whose client address then replaces the socket's for the rules
	// and the environment; a missing or malformed header closes the
	// connection. Connections from anywhere else are never read for a
	// header: what they send reaches the server as data. See the package
	// documentation, # Security.
	ProxyFrom []netip.Prefix
	// ProxyTimeout bounds the wait for a trusted balancer's header. Zero
	// means 10 seconds.
	ProxyTimeout time.Duration

	// Logger receives a line for each connection denied or dropped. Nil
	// discards them.
	Logger *slog.Logger

	initOnce, startOnce, closeOnce sync.Once
	mu                             sync.Mutex // orders starting the accept loop against Close
	closed                         bool
	done                           chan struct{} // closed by Close
	ctx                            context.Context
	cancel                         context.CancelFunc
	sem                            chan struct{} // nil: no limit
	ready                          chan acceptResult
	acceptDone                     chan struct{} // closed when the accept loop ends
	acceptErr                      error         // why it ended; read after acceptDone
	wg                             sync.WaitGroup
	rules                          ruleCache
	memOnce                        sync.Once
	mem                            *DB   // RulesData or RuleSet, opened once
	memErr                         error // why they cannot be used
	accepted, allowed, denied      atomic.Uint64
	dropped                        atomic.Uint64
	active                         atomic.Int64
}

type acceptResult struct {
	conn net.Conn
	err  error
}

// Stats counts what a Listener has done.
type Stats struct {
	Accepted uint64 // connections taken from the wrapped listener
	Allowed  uint64 // connections returned by Accept
	Denied   uint64 // connections closed because a rule said deny
	Dropped  uint64 // connections closed for another reason: unreadable rules, a bad PROXY header, Close
	Active   int64  // connections counted against Limit now: being looked up, or returned by Accept and not yet closed
}

// Stats reports the Listener's counters.
func (l *Listener) Stats() Stats {
	return Stats{
		Accepted: l.accepted.Load(),
		Allowed:  l.allowed.Load(),
		Denied:   l.denied.Load(),
		Dropped:  l.dropped.Load(),
		Active:   l.active.Load(),
	}
}

func (l *Listener) init() {
	l.initOnce.Do(func() {
		l.done = make(chan struct{})
		l.ctx, l.cancel = context.WithCancel(context.Background())
		l.ready = make(chan acceptResult)
		l.acceptDone = make(chan struct{})
		switch {
		case l.Limit == 0:
			l.sem = make(chan struct{}, DefaultLimit)
		case l.Limit > 0:
			l.sem = make(chan struct{}, l.Limit)
		}
	})
}

// Accept waits for the next allowed connection and returns it as a *Conn.
// Denied connections are closed and counted, and Accept goes on waiting.
// After Close it returns an error wrapping net.ErrClosed. An error of the
// wrapped listener other than its closing is returned as it is, and
// accepting continues after a short pause (as net/http does for EMFILE).
func (l *Listener) Accept() (net.Conn, error) {
	l.init()
	l.startOnce.Do(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if !l.closed {
			l.wg.Add(1)
			go l.acceptLoop()
		}
	})
	select {
	case a := <-l.ready:
		return a.conn, a.err
	case <-l.done:
		return nil, fmt.Errorf("tcprules: accept: %w", net.ErrClosed)
	case <-l.acceptDone:
		return nil, l.acceptErr
	}
}

// Addr returns the wrapped listener's address.
func (l *Listener) Addr() net.Addr { return l.Listener.Addr() }

// Close closes the wrapped listener, closes the connections still being
// looked up, and waits until every goroutine the Listener started has
// ended. Connections already returned by Accept stay open, as tcpserver's
// children outlive it.
func (l *Listener) Close() error {
	l.init()
	var err error
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		close(l.done)
		l.mu.Unlock()
		l.cancel()
		err = l.Listener.Close()
		l.wg.Wait()
		l.rules.close()
		l.memOnce.Do(func() {}) // no lookup may open them from now on
		if l.mem != nil {
			l.mem.Close()
			l.mem = nil
		}
	})
	return err
}

func (l *Listener) logger() *slog.Logger {
	if l.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.Logger
}

// acquire takes a connection slot, blocking at the limit; false once closed.
func (l *Listener) acquire() bool {
	if l.sem != nil {
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return false
		}
	}
	return true
}

// unacquire gives back a slot that no connection took.
func (l *Listener) unacquire() {
	if l.sem != nil {
		<-l.sem
	}
}

// release frees a connection's slot.
func (l *Listener) release() {
	l.active.Add(-1)
	l.unacquire()
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	defer close(l.acceptDone)
	var delay time.Duration
	for {
		if !l.acquire() {
			l.acceptErr = fmt.Errorf("tcprules: accept: %w", net.ErrClosed)
			return
		}
		c, err := l.Listener.Accept()
		if err != nil {
			l.unacquire()
			select {
			case <-l.done:
				l.acceptErr = fmt.Errorf("tcprules: accept: %w", net.ErrClosed)
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				l.acceptErr = err
				return
			}
			select {
			case l.ready <- acceptResult{err: err}:
			case <-l.done:
				l.acceptErr = fmt.Errorf("tcprules: accept: %w", net.ErrClosed)
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
			}
			continue
		}
		delay = 0
		l.accepted.Add(1)
		l.active.Add(1)
		l.wg.Add(1)
		go l.handle(c)
	}
}

// handle works out one connection and hands it to Accept, or closes it.
func (l *Listener) handle(c net.Conn) {
	defer l.wg.Done()
	conn, err := l.admit(c)
	if err != nil {
		c.Close()
		l.release()
		return
	}
	l.allowed.Add(1)
	select {
	case l.ready <- acceptResult{conn: conn}:
	case <-l.done:
		l.allowed.Add(^uint64(0))
		l.dropped.Add(1)
		conn.Close()
	}
}

// errDenied marks a connection a rule denied.
var errDenied = errors.New("denied")

// admit does tcpserver's per-connection work: the PROXY header from a
// trusted balancer, host names, rules, environment.
func (l *Listener) admit(c net.Conn) (*Conn, error) {
	remote, local := addrPort(c.RemoteAddr()), addrPort(c.LocalAddr())
	conn := &Conn{Conn: c, remote: c.RemoteAddr(), local: c.LocalAddr(), release: l.release}
	log := l.logger()
	if l.trusted(remote.Addr()) {
		h, br, err := l.readProxyHeader(c)
		if err != nil {
			l.dropped.Add(1)
			log.Warn("tcprules: dropping connection, bad PROXY header", "from", remote.String(), "err", err)
			return nil, err
		}
		conn.br = br
		if h.Command.IsProxy() {
			src, dst, ok := h.TCPAddrs()
			if !ok {
				l.dropped.Add(1)
				err := fmt.Errorf("tcprules: PROXY header for %v, not TCP", h.TransportProtocol)
				log.Warn("tcprules: dropping connection, bad PROXY header", "from", remote.String(), "err", err)
				return nil, err
			}
			remote, local = src.AddrPort(), dst.AddrPort()
			conn.remote, conn.local = src, dst
		}
		// LOCAL (v2) or UNKNOWN (v1): the balancer speaks for itself; the
		// socket's addresses stand.
	}

	env := baseEnv(remote, local)
	var host *string
	if l.LocalHost != "" {
		setBoth(env, "LOCALHOST", l.LocalHost)
	}
	if l.Resolver != nil {
		timeout := l.LookupTimeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		ctx, cancel := context.WithTimeout(l.ctx, timeout)
		if name, ok := l.remoteHost(ctx, remote.Addr()); ok {
			host = &name
			setBoth(env, "REMOTEHOST", name)
		}
		if l.LocalHost == "" && local.Addr().IsValid() {
			names, err := l.Resolver.LookupAddr(ctx, local.Addr().Unmap().WithZone("").String())
			if err == nil && len(names) > 0 && names[0] != "" && names[0] != "." {
				setBoth(env, "LOCALHOST", hostText(names[0]))
			}
		}
		cancel()
	}

	if l.Rules != "" || l.RulesData != nil || l.RuleSet != nil {
		ip := env["TCPREMOTEIP"]
		d, err := l.lookupRules(ip, host)
		switch {
		case errors.Is(err, fs.ErrNotExist) && l.AllowMissing:
		case err != nil:
			l.dropped.Add(1)
			log.Warn("tcprules: dropping connection, unable to read CDB", "from", ip, "err", err)
			return nil, err
		case d.Deny:
			l.denied.Add(1)
			log.Info("tcprules: deny", "from", ip, "rule", d.Key)
			return nil, errDenied
		default:
			d.Apply(env)
			conn.decision = d
		}
	}
	conn.env = env
	return conn, nil
}

// setBoth sets TCPname, and TCP6name too for an IPv6 connection, as the
// IPv6 tcpserver does.
func setBoth(env map[string]string, name, value string) {
	env["TCP"+name] = value
	if env["PROTO"] == "TCP6" {
		env["TCP6"+name] = value
	}
}

// baseEnv is tcpserver's environment before host names and rules.
func baseEnv(remote, local netip.AddrPort) map[string]string {
	env := map[string]string{"PROTO": "TCP"}
	if ra := remote.Addr().Unmap(); ra.Is6() {
		env["PROTO"] = "TCP6"
		if z := remote.Addr().Zone(); z != "" {
			env["TCP6INTERFACE"] = z
		}
	}
	setBoth(env, "REMOTEIP", FormatIP(remote.Addr()))
	setBoth(env, "REMOTEPORT", strconv.Itoa(int(remote.Port())))
	setBoth(env, "LOCALIP", FormatIP(local.Addr()))
	setBoth(env, "LOCALPORT", strconv.Itoa(int(local.Port())))
	return env
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case nil:
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func (l *Listener) trusted(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range l.ProxyFrom {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// readProxyHeader reads a PROXY header within ProxyTimeout, or until Close.
// It returns the buffered reader when bytes past the header were read.
func (l *Listener) readProxyHeader(c net.Conn) (*proxyproto.Header, *bufio.Reader, error) {
	timeout := l.ProxyTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(l.ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	br := bufio.NewReaderSize(c, 512)
	h, err := proxyproto.Read(br)
	if !stop() {
		return nil, nil, net.ErrClosed
	}
	if err != nil {
		return nil, nil, fmt.Errorf("tcprules: PROXY header: %w", err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return nil, nil, err
	}
	if br.Buffered() == 0 {
		br = nil
	}
	return h, br, nil
}

// remoteHost finds $TCPREMOTEHOST: the first PTR name, lower-cased and
// escaped as tcpserver writes it; with Paranoid, only if the name has the
// address among its own.
func (l *Listener) remoteHost(ctx context.Context, a netip.Addr) (string, bool) {
	a = a.Unmap()
	if !a.IsValid() {
		return "", false
	}
	names, err := l.Resolver.LookupAddr(ctx, a.String())
	if err != nil || len(names) == 0 || names[0] == "" || names[0] == "." {
		return "", false
	}
	name := names[0]
	if l.Paranoid {
		addrs, err := l.Resolver.LookupHost(ctx, name)
		if err != nil {
			return "", false
		}
		found := false
		for _, s := range addrs {
			if b, err := netip.ParseAddr(s); err == nil && b.Unmap().WithZone("") == a.WithZone("") {
				found = true
				break
			}
		}
		if !found {
			return "", false
		}
	}
	return hostText(name), true
}

// Conn is a connection accepted by a Listener.
type Conn struct {
	net.Conn
	br            *bufio.Reader // bytes read past a PROXY header, until drained
	remote, local net.Addr
	env           map[string]string
	decision      Decision
	release       func()
	closeOnce     sync.Once
	closeErr      error
}

// Env returns the connection's environment, as tcpserver would give it to
// the server program: PROTO, TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP,
// TCPLOCALPORT, TCPREMOTEHOST and TCPLOCALHOST when known (and the TCP6
// copies for an IPv6 client), then the matching rule's variables, which
// may override any of them. The map is the caller's to change.
func (c *Conn) Env() map[string]string { return maps.Clone(c.env) }

// Decision returns the rule that let the connection in (Found is false when
// no rule matched, or when the Listener has no Rules).
func (c *Conn) Decision() Decision { return c.decision }

// RemoteAddr returns the client's address: from the PROXY header when a
// trusted balancer sent one, else the socket's.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// LocalAddr returns the address the client connected to: from the PROXY
// header when a trusted balancer sent one, else the socket's.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Read reads from the connection, first the bytes the client sent right
// after a PROXY header.
func (c *Conn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}

// CloseWrite shuts down the writing side of the connection, when the
// underlying connection can (a *net.TCPConn does).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("tcprules: CloseWrite: %w", errors.ErrUnsupported)
}

// Close closes the connection and frees its place under the Listener's
// Limit. Only the first call has an effect.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.Conn.Close()
		if c.release != nil {
			c.release()
		}
	})
	return c.closeErr
}

// ruleCache keeps the rules cdb open between connections and reopens it
// when the file at the path is another one (renamed over, as tcprules
// does) or has changed size or time.
// lookupRules asks the Listener's rules about a connection: the Rules
// file, or the rules held in memory.
func (l *Listener) lookupRules(ip string, host *string) (Decision, error) {
	n := 0
	for _, set := range []bool{l.Rules != "", l.RulesData != nil, l.RuleSet != nil} {
		if set {
			n++
		}
	}
	if n > 1 {
		return Decision{}, errors.New("tcprules: more than one of Rules, RulesData and RuleSet set")
	}
	if l.Rules != "" {
		return l.rules.lookup(l.Rules, ip, host)
	}
	l.memOnce.Do(func() {
		data := l.RulesData
		if l.RuleSet != nil {
			data, l.memErr = compileRules(l.RuleSet)
		} else {
			data = bytes.Clone(data)
		}
		if l.memErr == nil {
			l.mem, l.memErr = OpenBytes(data)
		}
	})
	if l.memErr != nil {
		return Decision{}, l.memErr
	}
	if l.mem == nil {
		return Decision{}, fmt.Errorf("tcprules: accept: %w", net.ErrClosed)
	}
	return l.mem.Lookup(ip, host, nil)
}

// compileRules returns the cdb tcprules would write for rules, in their
// order; a rule with nil Keys has those of its Address.
func compileRules(rules []Rule) ([]byte, error) {
	var buf memFile
	w, err := cdb.NewWriter(&buf, nil)
	if err != nil {
		return nil, err
	}
	var val []byte
	for _, r := range rules {
		keys := r.Keys
		if keys == nil {
			var ok bool
			if keys, ok = expand(r.Address, nil); !ok {
				return nil, fmt.Errorf("tcprules: RuleSet: bad address %q", r.Address)
			}
		}
		val = r.appendValue(val[:0])
		for _, k := range keys {
			if err := w.Put([]byte(k), val); err != nil {
				return nil, fmt.Errorf("tcprules: RuleSet: %w", err)
			}
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("tcprules: RuleSet: %w", err)
	}
	return buf.b, nil
}

type ruleCache struct {
	mu sync.RWMutex
	db *DB
	fi os.FileInfo
}

func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

func (rc *ruleCache) lookup(path, ip string, host *string) (Decision, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Decision{}, fmt.Errorf("tcprules: %w", err)
	}
	rc.mu.RLock()
	if rc.db != nil && sameFile(rc.fi, fi) {
		defer rc.mu.RUnlock()
		return rc.db.Lookup(ip, host, nil)
	}
	rc.mu.RUnlock()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.db == nil || !sameFile(rc.fi, fi) {
		db, err := Open(path)
		if err != nil {
			return Decision{}, err
		}
		if rc.db != nil {
			rc.db.Close()
		}
		rc.db, rc.fi = db, fi
	}
	return rc.db.Lookup(ip, host, nil)
}

func (rc *ruleCache) close() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.db != nil {
		rc.db.Close()
		rc.db = nil
	}
}

var _ io.Reader = (*Conn)(nil)
