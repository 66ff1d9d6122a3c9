package tcprules

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/dnstest"
)

// *net.Resolver against a real DNS server on loopback: TCPREMOTEHOST from
// the PTR record, the paranoid check through the A record, and rules on
// the name.
func TestListenerNetResolver(t *testing.T) {
	srv := dnstest.New(t,
		"42.0.0.127.in-addr.arpa. 300 IN PTR MX.Example.COM.",
		"mx.example.com. 300 IN A 127.0.0.42",
		"43.0.0.127.in-addr.arpa. 300 IN PTR liar.example.com.",
		"liar.example.com. 300 IN A 192.0.2.1",
	)
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Addr)
	}}
	rules := filepath.Join(t.TempDir(), "rules.cdb")
	writeRules(t, rules, "=mx.example.com:allow,RELAYCLIENT=\"\"\n=:allow,NAMED=\"yes\"\n:allow\n")

	ln := listen(t, "tcp", "127.0.0.1:0")
	l := &Listener{Listener: ln, Rules: rules, Resolver: res, Paranoid: true, LocalHost: "0", LookupTimeout: 5 * time.Second}
	server(t, l, writeEnv)

	dialFrom := func(src string) map[string]string {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Skipf("cannot dial from %s: %v", src, err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte("x\n"))
		env := map[string]string{}
		buf := make([]byte, 4096)
		var all []byte
		for {
			n, err := c.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				break
			}
		}
		for _, l := range strings.Split(string(all), "\n") {
			if l == "" {
				break
			}
			k, v, _ := strings.Cut(l, "=")
			env[k] = v
		}
		return env
	}

	env := dialFrom("127.0.0.42")
	if env["TCPREMOTEHOST"] != "mx.example.com" || env["RELAYCLIENT"] != "" || env["TCPLOCALHOST"] != "0" {
		t.Errorf("127.0.0.42: env %v", env)
	}
	if _, ok := env["RELAYCLIENT"]; !ok {
		t.Errorf("127.0.0.42: RELAYCLIENT unset: %v", env)
	}
	// liar.example.com does not resolve back to 127.0.0.43: -p unsets it.
	env = dialFrom("127.0.0.43")
	if _, ok := env["TCPREMOTEHOST"]; ok || env["NAMED"] != "" {
		t.Errorf("127.0.0.43: env %v", env)
	}
	// No PTR at all.
	env = dialFrom("127.0.0.44")
	if _, ok := env["TCPREMOTEHOST"]; ok {
		t.Errorf("127.0.0.44: env %v", env)
	}
}
