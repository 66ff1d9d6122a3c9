package tcpenv

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

type fakeResolver map[string]any // address → []string or error

func (f fakeResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	switch v := f[addr].(type) {
	case []string:
		return v, nil
	case error:
		return nil, v
	}
	return nil, &net.DNSError{Err: "no such host", Name: addr, IsNotFound: true}
}

func TestEnv(t *testing.T) {
	r := fakeResolver{
		"192.0.2.1":   []string{"MX.Example.ORG.", "other.example."},
		"192.0.2.2":   &net.DNSError{Err: "server misbehaving", Name: "2.2.0.192.in-addr.arpa", IsTemporary: true},
		"2001:db8::1": []string{"v6.example."},
	}
	for _, tc := range []struct {
		name          string
		local, remote string
		o             Options
		set           map[string]string
		unset         []string
	}{
		{name: "names", local: "192.0.2.1:25", remote: "192.0.2.2:40000", o: Options{Resolver: r},
			set: map[string]string{"PROTO": "TCP", "TCPLOCALIP": "192.0.2.1", "TCPLOCALPORT": "25", "TCPLOCALHOST": "mx.example.org",
				"TCPREMOTEIP": "192.0.2.2", "TCPREMOTEPORT": "40000", "TCPREMOTEHOST": "softdnserror"},
			unset: []string{"TCPREMOTEINFO"}},
		{name: "no PTR", local: "192.0.2.9:25", remote: "[2001:db8::1]:5", o: Options{Resolver: r},
			set:   map[string]string{"PROTO": "TCP", "TCPLOCALIP": "192.0.2.9", "TCPLOCALPORT": "25", "TCPREMOTEIP": "2001:db8::1", "TCPREMOTEPORT": "5", "TCPREMOTEHOST": "v6.example"},
			unset: []string{"TCPLOCALHOST", "TCPREMOTEINFO"}},
		{name: "mapped", local: "[::ffff:192.0.2.1]:110", remote: "[::ffff:192.0.2.7]:7", o: Options{Resolver: r, NoHosts: true},
			set:   map[string]string{"PROTO": "TCP", "TCPLOCALIP": "192.0.2.1", "TCPLOCALPORT": "110", "TCPREMOTEIP": "192.0.2.7", "TCPREMOTEPORT": "7"},
			unset: []string{"TCPLOCALHOST", "TCPREMOTEHOST", "TCPREMOTEINFO"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Env(context.Background(), netip.MustParseAddrPort(tc.local), netip.MustParseAddrPort(tc.remote), tc.o)
			if len(v.Set) != len(tc.set) {
				t.Errorf("set %v, want %v", v.Set, tc.set)
			}
			for k, want := range tc.set {
				if v.Set[k] != want {
					t.Errorf("%s=%q, want %q", k, v.Set[k], want)
				}
			}
			slices.Sort(v.Unset)
			slices.Sort(tc.unset)
			if !slices.Equal(v.Unset, tc.unset) {
				t.Errorf("unset %v, want %v", v.Unset, tc.unset)
			}
		})
	}
}

// identServer answers each query on 127.0.0.113:113 with reply (after
// delay), and records the queries.
func identServer(t *testing.T, reply string, delay time.Duration) chan string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to listen on port 113")
	}
	l, err := net.Listen("tcp", "127.0.0.113:113")
	if err != nil {
		t.Skipf("port 113: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	queries := make(chan string, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				q, _ := bufio.NewReader(c).ReadString('\n')
				queries <- q
				time.Sleep(delay)
				c.Write([]byte(reply))
			}()
		}
	}()
	return queries
}

func TestRemoteInfo(t *testing.T) {
	remote := netip.MustParseAddrPort("127.0.0.113:6193")
	local := netip.MustParseAddr("127.0.0.1")
	long := strings.Repeat("x", 2000)
	for _, tc := range []struct {
		name, reply string
		delay       time.Duration
		want        string
		ok          bool
	}{
		{"userid", "6193 , 25 : USERID : UNIX : joe\r\n", 0, "joe", true},
		{"spaces removed", "6193,25:USERID:UNIX:jo e\t\r\n", 0, "joe", true},
		{"error", "6193 , 25 : ERROR : NO-USER\r\n", 0, "", true},
		{"colons in the user", "6193,25:USERID:UNIX:a:b\n", 0, "a:b", true},
		{"too long", "1,2:USERID:UNIX:" + long + "\n", 0, long[:maxInfo], true},
		{"no line end", "6193 , 25 : USERID : UNIX : joe", 0, "", false},
		{"too slow", "6193 , 25 : USERID : UNIX : joe\r\n", 3 * time.Second, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			queries := identServer(t, tc.reply, tc.delay)
			got, ok := RemoteInfo(context.Background(), local, remote, 25, time.Second)
			if got != tc.want || ok != tc.ok {
				t.Errorf("RemoteInfo = %q %v, want %q %v", got, ok, tc.want, tc.ok)
			}
			if q := <-queries; q != "6193 , 25\r\n" {
				t.Errorf("query %q", q)
			}
		})
	}
	// An ident server that drips a line without colons, one byte every
	// 100 ms, for ever: the line is given the timeout in all.
	t.Run("drip", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to listen on port 113")
		}
		l, err := net.Listen("tcp", "127.0.0.113:113")
		if err != nil {
			t.Skipf("port 113: %v", err)
		}
		defer l.Close()
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			for range 600 {
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		start := time.Now()
		if _, ok := RemoteInfo(context.Background(), local, remote, 25, time.Second); ok || time.Since(start) > 5*time.Second {
			t.Errorf("a dripping server: ok %v after %v", ok, time.Since(start))
		}
	})
	// No ident server: not ok, at once.
	start := time.Now()
	if _, ok := RemoteInfo(context.Background(), local, netip.MustParseAddrPort("127.0.0.114:1"), 25, 5*time.Second); ok || time.Since(start) > 3*time.Second {
		t.Errorf("no server: ok %v after %v", ok, time.Since(start))
	}
}

type envConn struct {
	net.Conn
	env map[string]string
}

func (c envConn) Env() map[string]string { return c.env }

// TestFromConn: a connection's own environment wins, also under TLS;
// otherwise its addresses.
func TestFromConn(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	srv, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	plain := FromConn(srv)
	caddr := client.LocalAddr().(*net.TCPAddr)
	if plain["PROTO"] != "TCP" || plain["TCPREMOTEIP"] != "127.0.0.1" || plain["TCPREMOTEPORT"] != fmt.Sprint(caddr.Port) ||
		plain["TCPLOCALIP"] != "127.0.0.1" || plain["TCPLOCALPORT"] != fmt.Sprint(l.Addr().(*net.TCPAddr).Port) || len(plain) != 5 {
		t.Errorf("plain: %v", plain)
	}
	own := map[string]string{"TCPREMOTEIP": "192.0.2.9", "RELAYCLIENT": ""}
	if got := FromConn(envConn{srv, own}); got["TCPREMOTEIP"] != "192.0.2.9" || len(got) != 2 {
		t.Errorf("own environment: %v", got)
	}
	if got := FromConn(tls.Server(envConn{srv, own}, &tls.Config{})); got["TCPREMOTEIP"] != "192.0.2.9" {
		t.Errorf("under TLS: %v", got)
	}
	if got := FromConn(envConn{srv, nil}); got["TCPREMOTEIP"] != "127.0.0.1" {
		t.Errorf("a nil environment: %v", got)
	}
}
