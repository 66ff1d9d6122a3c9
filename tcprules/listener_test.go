package tcprules

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// writeRules compiles rules into path as tcprules would.
func writeRules(t *testing.T, path, rules string) {
	t.Helper()
	if err := CompileFile(path, path+".tmp", strings.NewReader(rules)); err != nil {
		t.Fatal(err)
	}
}

// server runs an accept loop on l in the background, calling handle for each
// connection in its own goroutine. It stops when the test ends.
func server(t *testing.T, l *Listener, handle func(*Conn)) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("Accept: %v", err)
				}
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c.(*Conn))
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
}

// writeEnv is a server that writes the environment, sorted, and then
// whatever the client sent first (up to a newline), and closes.
func writeEnv(c *Conn) {
	defer c.Close()
	env := c.Env()
	var lines []string
	for k, v := range env {
		lines = append(lines, k+"="+v)
	}
	sort.Strings(lines)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, strings.Join(lines, "\n")+"\n\n")
	line, _ := bufio.NewReader(c).ReadString('\n')
	io.WriteString(c, "read:"+line)
}

func listen(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("listen %s %s: %v", network, addr, err)
	}
	return ln
}

// dial connects, sends first, and returns the environment the server
// reported and what it read back; env is nil when the connection was
// closed without a word.
func dial(t *testing.T, addr, first string) (env map[string]string, echoed string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if first != "" {
		if _, err := io.WriteString(c, first); err != nil {
			return nil, ""
		}
	}
	b, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("read: %v", err)
	}
	if len(b) == 0 {
		return nil, ""
	}
	head, rest, _ := strings.Cut(string(b), "\n\n")
	env = map[string]string{}
	for _, l := range strings.Split(head, "\n") {
		k, v, _ := strings.Cut(l, "=")
		env[k] = v
	}
	return env, strings.TrimPrefix(rest, "read:")
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset") || errors.Is(err, io.ErrUnexpectedEOF))
}

func TestListenerAllowDenyEnv(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.cdb")
	writeRules(t, rules, "127.0.0.2:deny\n127.0.0.1:allow,RELAYCLIENT=\"\",X=\"1\",X=\"2\",TCPLOCALPORT=\"override\"\n:deny\n")
	ln := listen(t, "tcp", "127.0.0.1:0")
	l := &Listener{Listener: ln, Rules: rules}
	server(t, l, writeEnv)

	env, echoed := dial(t, ln.Addr().String(), "hello\n")
	if env == nil {
		t.Fatal("allowed connection closed without a word")
	}
	want := map[string]string{
		"PROTO":        "TCP",
		"TCPREMOTEIP":  "127.0.0.1",
		"TCPLOCALIP":   "127.0.0.1",
		"TCPLOCALPORT": "override",
		"RELAYCLIENT":  "",
		"X":            "2",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s=%q, want %q (env %v)", k, env[k], v, env)
		}
	}
	if _, ok := env["TCPREMOTEPORT"]; !ok {
		t.Errorf("no TCPREMOTEPORT in %v", env)
	}
	if _, ok := env["TCPREMOTEHOST"]; ok {
		t.Errorf("TCPREMOTEHOST set without a Resolver: %v", env)
	}
	if echoed != "hello\n" {
		t.Errorf("server read %q", echoed)
	}

	// Now deny 127.0.0.1 by replacing the cdb while serving, then allow it
	// again: each connection sees the file of its time.
	writeRules(t, rules, "127.0.0.1:deny\n")
	if env, _ := dial(t, ln.Addr().String(), ""); env != nil {
		t.Errorf("denied connection got %v", env)
	}
	writeRules(t, rules, "127.0.0.1:allow,NEW=\"yes\"\n")
	if env, _ := dial(t, ln.Addr().String(), "x\n"); env["NEW"] != "yes" {
		t.Errorf("after replacing the cdb: env %v", env)
	}
	s := l.Stats()
	if s.Accepted != 3 || s.Allowed != 2 || s.Denied != 1 || s.Dropped != 0 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestListenerMissingRules(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run("AllowMissing="+strconv.FormatBool(allow), func(t *testing.T) {
			ln := listen(t, "tcp", "127.0.0.1:0")
			rules := filepath.Join(t.TempDir(), "none.cdb")
			l := &Listener{Listener: ln, Rules: rules, AllowMissing: allow}
			server(t, l, writeEnv)
			env, _ := dial(t, ln.Addr().String(), "x\n")
			if (env != nil) != allow {
				t.Errorf("env %v", env)
			}
			// A corrupt cdb drops even with AllowMissing.
			os.WriteFile(rules, []byte("short"), 0o644)
			if env, _ := dial(t, ln.Addr().String(), "x\n"); env != nil {
				t.Errorf("corrupt cdb: env %v", env)
			}
			if s := l.Stats(); s.Dropped != map[bool]uint64{false: 2, true: 1}[allow] {
				t.Errorf("Stats = %+v", s)
			}
		})
	}
}

func TestListenerLimit(t *testing.T) {
	ln := listen(t, "tcp", "127.0.0.1:0")
	l := &Listener{Listener: ln, Limit: 2}
	conns := make(chan *Conn, 10)
	server(t, l, func(c *Conn) { conns <- c })

	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	first := <-conns
	<-conns
	// The third client is connected (in the backlog) but not accepted.
	time.Sleep(100 * time.Millisecond)
	select {
	case c := <-conns:
		t.Fatalf("a third connection was accepted at the limit: %v", c.RemoteAddr())
	default:
	}
	if s := l.Stats(); s.Accepted != 2 || s.Active != 2 {
		t.Errorf("at the limit: Stats = %+v", s)
	}
	// Closing one lets the third in.
	first.Close()
	first.Close() // a second Close must not free a second place
	select {
	case c := <-conns:
		defer c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the third connection was not accepted after one closed")
	}
	time.Sleep(50 * time.Millisecond)
	if s := l.Stats(); s.Accepted != 3 || s.Active != 2 {
		t.Errorf("after one closed: Stats = %+v", s)
	}
	close(conns)
	for c := range conns {
		c.Close()
	}
}

// fakeResolver answers from maps.
type fakeResolver struct {
	ptr  map[string][]string
	addr map[string][]string
}

func (r fakeResolver) LookupAddr(ctx context.Context, a string) ([]string, error) {
	if n, ok := r.ptr[a]; ok {
		return n, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: a, IsNotFound: true}
}

func (r fakeResolver) LookupHost(ctx context.Context, h string) ([]string, error) {
	if a, ok := r.addr[h]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: h, IsNotFound: true}
}

func TestListenerHostNames(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.cdb")
	writeRules(t, rules, "=mail.example.com:allow,H=\"exact\"\n=.example.com:allow,H=\"domain\"\n:allow,H=\"none\"\n")
	tests := []struct {
		name      string
		res       fakeResolver
		paranoid  bool
		localHost string
		host      string // "" = unset
		localWant string
		h         string
	}{
		{"ptr", fakeResolver{ptr: map[string][]string{"127.0.0.1": {"Mail.Example.COM.", "other."}}}, false, "", "mail.example.com", "mail.example.com", "exact"},
		{"paranoid ok", fakeResolver{ptr: map[string][]string{"127.0.0.1": {"x.example.com."}}, addr: map[string][]string{"x.example.com.": {"10.0.0.1", "127.0.0.1"}}}, true, "", "x.example.com", "x.example.com", "domain"},
		{"paranoid fails", fakeResolver{ptr: map[string][]string{"127.0.0.1": {"x.example.com."}}, addr: map[string][]string{"x.example.com.": {"10.0.0.1"}}}, true, "", "", "x.example.com", "none"},
		{"no ptr", fakeResolver{}, false, "", "", "", "none"},
		{"odd bytes", fakeResolver{ptr: map[string][]string{"127.0.0.1": {"a b\\.Example.com."}}}, false, "", `a\040b\134.example.com`, `a\040b\134.example.com`, "domain"},
		{"-l", fakeResolver{ptr: map[string][]string{"127.0.0.1": {"mail.example.com."}}}, false, "0", "mail.example.com", "0", "exact"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln := listen(t, "tcp", "127.0.0.1:0")
			l := &Listener{Listener: ln, Rules: rules, Resolver: tt.res, Paranoid: tt.paranoid, LocalHost: tt.localHost}
			server(t, l, writeEnv)
			env, _ := dial(t, ln.Addr().String(), "x\n")
			if got, ok := env["TCPREMOTEHOST"]; got != tt.host || ok != (tt.host != "") {
				t.Errorf("TCPREMOTEHOST = %q (set %v), want %q", got, ok, tt.host)
			}
			if got := env["TCPLOCALHOST"]; got != tt.localWant {
				t.Errorf("TCPLOCALHOST = %q, want %q", got, tt.localWant)
			}
			if env["H"] != tt.h {
				t.Errorf("H = %q, want %q", env["H"], tt.h)
			}
		})
	}
}

func TestListenerProxy(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.cdb")
	writeRules(t, rules, "192.0.2.7:deny\n192.0.2.:allow,NET=\"doc\"\n127.0.0.1:allow,NET=\"loop\"\n2001:db8::allow,NET=\"v6\"\n:deny\n")

	v2 := func(src, dst string) string {
		s, d := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)), net.TCPAddrFromAddrPort(netip.MustParseAddrPort(dst))
		b, err := proxyproto.HeaderProxyFromAddrs(2, s, d).Format()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	v2local := func() string {
		h := &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
		b, err := h.Format()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	elsewhere := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		send    string
		env     map[string]string // nil: the connection must be closed
		echoed  string
		denied  uint64
		dropped uint64
	}{
		{"v1", loopback, "PROXY TCP4 192.0.2.8 198.51.100.1 5555 25\r\nHELO x\n",
			map[string]string{"TCPREMOTEIP": "192.0.2.8", "TCPREMOTEPORT": "5555", "TCPLOCALIP": "198.51.100.1", "TCPLOCALPORT": "25", "NET": "doc", "PROTO": "TCP"}, "HELO x\n", 0, 0},
		{"v1 denied by the real address", loopback, "PROXY TCP4 192.0.2.7 198.51.100.1 5555 25\r\n", nil, "", 1, 0},
		{"v2", loopback, v2("192.0.2.9:4444", "198.51.100.1:587") + "EHLO y\n",
			map[string]string{"TCPREMOTEIP": "192.0.2.9", "TCPREMOTEPORT": "4444", "TCPLOCALPORT": "587", "NET": "doc"}, "EHLO y\n", 0, 0},
		{"v2 IPv6", loopback, v2("[2001:db8:0:1::5]:4444", "[2001:db8::1]:25") + "x\n",
			map[string]string{"PROTO": "TCP6", "TCPREMOTEIP": "2001:db8:0:1::5", "TCP6REMOTEIP": "2001:db8:0:1::5", "TCPLOCALIP": "2001:db8::1", "NET": "v6"}, "x\n", 0, 0},
		{"v2 LOCAL keeps the socket's address", loopback, v2local() + "x\n",
			map[string]string{"TCPREMOTEIP": "127.0.0.1", "NET": "loop"}, "x\n", 0, 0},
		{"v1 UNKNOWN keeps the socket's address", loopback, "PROXY UNKNOWN\r\nx\n",
			map[string]string{"TCPREMOTEIP": "127.0.0.1", "NET": "loop"}, "x\n", 0, 0},
		{"untrusted: header is data", elsewhere, "PROXY TCP4 192.0.2.8 198.51.100.1 5555 25\r\n",
			map[string]string{"TCPREMOTEIP": "127.0.0.1", "NET": "loop"}, "PROXY TCP4 192.0.2.8 198.51.100.1 5555 25\r\n", 0, 0},
		{"trusted without a header", loopback, "HELO x\r\n", nil, "", 0, 1},
		{"malformed v1", loopback, "PROXY TCP4 192.0.2.999 1.2.3.4 1 2\r\n", nil, "", 0, 1},
		{"malformed v2", loopback, v2("192.0.2.9:4444", "198.51.100.1:587")[:14] + "\x00\x00\x00\x00\x00", nil, "", 0, 1},
		{"v1 without CRLF", loopback, "PROXY TCP4 192.0.2.8 198.51.100.1 5555 25\n", nil, "", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln := listen(t, "tcp", "127.0.0.1:0")
			l := &Listener{Listener: ln, Rules: rules, ProxyFrom: tt.trusted, ProxyTimeout: time.Second}
			server(t, l, writeEnv)
			env, echoed := dial(t, ln.Addr().String(), tt.send)
			if tt.env == nil {
				if env != nil {
					t.Errorf("connection not closed: env %v", env)
				}
			} else {
				for k, v := range tt.env {
					if env[k] != v {
						t.Errorf("%s=%q, want %q (env %v)", k, env[k], v, env)
					}
				}
				if echoed != tt.echoed {
					t.Errorf("server read %q, want %q", echoed, tt.echoed)
				}
			}
			// Counters settle once the connection is handled.
			deadline := time.Now().Add(5 * time.Second)
			for {
				s := l.Stats()
				if s.Denied == tt.denied && s.Dropped == tt.dropped || time.Now().After(deadline) {
					if s.Denied != tt.denied || s.Dropped != tt.dropped {
						t.Errorf("Stats = %+v, want Denied %d Dropped %d", s, tt.denied, tt.dropped)
					}
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// A trusted balancer that connects and says nothing must not hold up other
// connections, and is dropped after ProxyTimeout.
func TestListenerProxySilent(t *testing.T) {
	ln := listen(t, "tcp", "127.0.0.1:0")
	l := &Listener{Listener: ln, ProxyFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, ProxyTimeout: 2 * time.Second}
	server(t, l, writeEnv)
	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start := time.Now()
	env, _ := dial(t, ln.Addr().String(), "PROXY TCP4 192.0.2.8 198.51.100.1 5555 25\r\nx\n")
	if env["TCPREMOTEIP"] != "192.0.2.8" {
		t.Errorf("env %v", env)
	}
	// Served before the silent client's ProxyTimeout ran out.
	if el := time.Since(start); el > 1500*time.Millisecond {
		t.Errorf("a silent client held up another for %v", el)
	}
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := silent.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("silent client: read %d, %v; want the connection closed", n, err)
	}
	if s := l.Stats(); s.Dropped != 1 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestListenerIPv6(t *testing.T) {
	ln := listen(t, "tcp6", "[::1]:0")
	rules := filepath.Join(t.TempDir(), "rules.cdb")
	writeRules(t, rules, "::1:allow,V6=\"yes\"\n:deny\n")
	l := &Listener{Listener: ln, Rules: rules}
	server(t, l, writeEnv)
	env, _ := dial(t, ln.Addr().String(), "x\n")
	for k, v := range map[string]string{"PROTO": "TCP6", "TCPREMOTEIP": "::1", "TCP6REMOTEIP": "::1", "TCPLOCALIP": "::1", "V6": "yes"} {
		if env[k] != v {
			t.Errorf("%s=%q, want %q (env %v)", k, env[k], v, env)
		}
	}
}

func fdCount(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// TestListenerCloseNoLeaks checks that Close unblocks Accept and that no
// goroutine or descriptor outlives the Listener, with connections in every
// state: being read for a PROXY header, waiting for Accept, denied.
func TestListenerCloseNoLeaks(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.cdb")
	writeRules(t, rules, "127.0.0.1:allow\n")
	// Start the runtime's network poller (its descriptors stay) before
	// taking the baseline.
	if warm, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		warm.Close()
	}
	runtime.GC()
	goroutines, fds := runtime.NumGoroutine(), fdCount(t)

	// Close unblocks an Accept that waits with nothing to accept.
	{
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l := &Listener{Listener: ln, Rules: rules}
		accepted := make(chan error, 1)
		go func() {
			_, err := l.Accept()
			accepted <- err
		}()
		time.Sleep(50 * time.Millisecond)
		l.Close()
		select {
		case err := <-accepted:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept after Close: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not unblock Accept")
		}
	}

	// Close with connections waiting for Accept, at the limit, in the
	// backlog, and (round 1) being read for a PROXY header.
	for round := range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l := &Listener{Listener: ln, Rules: rules, Limit: 4}
		if round == 1 {
			l.ProxyFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		}
		var clients []net.Conn
		for i := range 6 {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			if round == 1 && i == 0 {
				io.WriteString(c, "PROXY TCP4 127.0.0.1 127.0.0.1 1 2\r\n")
			}
			clients = append(clients, c)
		}
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v", err)
		}
		for _, c := range clients {
			c.Close()
		}
	}

	deadline := time.Now().Add(5 * time.Second)
	for {
		g, f := runtime.NumGoroutine(), fdCount(t)
		if g <= goroutines && f <= fds {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			ents, _ := os.ReadDir("/proc/self/fd")
			var links []string
			for _, e := range ents {
				l, _ := os.Readlink("/proc/self/fd/" + e.Name())
				links = append(links, e.Name()+"->"+l)
			}
			t.Fatalf("leak: goroutines %d -> %d, fds %d -> %d %v\n%s", goroutines, g, fds, f, links, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestListenerAcceptErrorKeepsServing(t *testing.T) {
	// Denied connections between allowed ones: Accept keeps serving.
	rules := filepath.Join(t.TempDir(), "rules.cdb")
	writeRules(t, rules, "127.0.0.1:deny\n")
	ln := listen(t, "tcp", "127.0.0.1:0")
	l := &Listener{Listener: ln, Rules: rules}
	server(t, l, writeEnv)
	for i := range 5 {
		if env, _ := dial(t, ln.Addr().String(), ""); env != nil {
			t.Errorf("denied connection %d got %v", i, env)
		}
	}
	writeRules(t, rules, "127.0.0.1:allow\n")
	if env, _ := dial(t, ln.Addr().String(), "x\n"); env == nil {
		t.Error("allowed connection after denials was closed")
	}
	if s := l.Stats(); s.Denied != 5 || s.Allowed != 1 {
		t.Errorf("Stats = %+v", s)
	}
}

// flakyListener fails its first Accept with a temporary error, as a
// listener out of descriptors (EMFILE) does.
type flakyListener struct {
	net.Listener
	mu     sync.Mutex
	failed bool
}

var errEMFILE = &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errors.New("too many open files"))}

func (f *flakyListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	if !f.failed {
		f.failed = true
		f.mu.Unlock()
		return nil, errEMFILE
	}
	f.mu.Unlock()
	return f.Listener.Accept()
}

func TestListenerAcceptErrorPassedOn(t *testing.T) {
	ln := listen(t, "tcp", "127.0.0.1:0")
	l := &Listener{Listener: &flakyListener{Listener: ln}}
	defer l.Close()
	if _, err := l.Accept(); err != errEMFILE {
		t.Fatalf("first Accept: %v, want the wrapped listener's error", err)
	}
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept after a temporary error: %v", err)
	}
	c.Close()
	if s := l.Stats(); s.Accepted != 1 || s.Active != 0 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestConnEnvIsACopy(t *testing.T) {
	ln := listen(t, "tcp", "127.0.0.1:0")
	l := &Listener{Listener: ln}
	defer l.Close()
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := nc.(*Conn)
	defer c.Close()
	env := c.Env()
	env["TCPREMOTEIP"] = "changed"
	if c.Env()["TCPREMOTEIP"] != "127.0.0.1" {
		t.Error("changing the map returned by Env changed the connection's environment")
	}
	if c.Decision().Found {
		t.Error("a Listener without Rules reports a rule")
	}
	if c.RemoteAddr().String() != c.NetConn().RemoteAddr().String() {
		t.Errorf("RemoteAddr %v, socket %v", c.RemoteAddr(), c.NetConn().RemoteAddr())
	}
	if err := c.CloseWrite(); err != nil {
		t.Errorf("CloseWrite: %v", err)
	}
}

func TestListenerNoLimit(t *testing.T) {
	ln := listen(t, "tcp", "127.0.0.1:0")
	l := &Listener{Listener: ln, Limit: -1}
	conns := make(chan *Conn, 100)
	server(t, l, func(c *Conn) { conns <- c })
	n := DefaultLimit + 10
	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	for i := range n {
		select {
		case c := <-conns:
			defer c.Close()
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d connections accepted with no limit", i, n)
		}
	}
	if s := l.Stats(); s.Active != int64(n) {
		t.Errorf("Stats = %+v", s)
	}
}
