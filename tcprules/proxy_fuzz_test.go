package tcprules

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// bytesConn is a connection from a trusted balancer that sends in and
// then EOF.
type bytesConn struct {
	*bytes.Reader
	remote, local net.Addr
}

func (c *bytesConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *bytesConn) Close() error                     { return nil }
func (c *bytesConn) LocalAddr() net.Addr              { return c.local }
func (c *bytesConn) RemoteAddr() net.Addr             { return c.remote }
func (c *bytesConn) SetDeadline(time.Time) error      { return nil }
func (c *bytesConn) SetReadDeadline(time.Time) error  { return nil }
func (c *bytesConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzProxyHeader: what a trusted balancer sends first goes through the
// Listener's PROXY handling (the header parser, the addresses it gives,
// the environment and the rules looked up with them) without panicking;
// an admitted connection has a well-formed environment, and reads exactly
// the bytes that followed the header.
func FuzzProxyHeader(f *testing.F) {
	tcp := func(s string) *net.TCPAddr { return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)) }
	for _, h := range []*proxyproto.Header{
		proxyproto.HeaderProxyFromAddrs(1, tcp("192.0.2.8:5555"), tcp("198.51.100.1:25")),
		proxyproto.HeaderProxyFromAddrs(2, tcp("192.0.2.8:5555"), tcp("198.51.100.1:25")),
		proxyproto.HeaderProxyFromAddrs(1, tcp("[2001:db8::1]:5555"), tcp("[2001:db8::2]:25")),
		proxyproto.HeaderProxyFromAddrs(2, tcp("[2001:db8::1]:5555"), tcp("[2001:db8::2]:25")),
		proxyproto.HeaderProxyFromAddrs(2, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 53}, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 53}),
		proxyproto.HeaderProxyFromAddrs(2, &net.UnixAddr{Net: "unix", Name: "/a"}, &net.UnixAddr{Net: "unix", Name: "/b"}),
		{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC},
	} {
		b, err := h.Format()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append(b, "EHLO x\r\n"...))
		f.Add(b[:len(b)-1])
	}
	for _, s := range []string{
		"PROXY TCP4 192.0.2.8 198.51.100.1 5555 25\r\nHELO x\r\n",
		"PROXY TCP6 ::ffff:192.0.2.8 2001:db8::1 5555 25\r\n",
		"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
		"PROXY TCP4 192.0.2.7 198.51.100.1 5555 25\r\n",
		"PROXY UNKNOWN\r\nx",
		"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
		"PROXY TCP4 192.0.2.999 1.2.3.4 1 2\r\n",
		"PROXY TCP4 1.2.3.4 1.2.3.4 99999 2\r\n",
		"PROXY TCP4 192.0.2.8 198.51.100.1 5555 25\n",
		"PROXY " + strings.Repeat("A", 200) + "\r\n",
		"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c",
		"\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff",
		"",
	} {
		f.Add([]byte(s))
	}
	rules := f.TempDir() + "/rules.cdb"
	if err := CompileFile(rules, rules+".tmp", strings.NewReader("192.0.2.7:deny\n192.0.2.:allow,NET=\"doc\"\n2001:db8::allow,NET=\"v6\"\n127.0.0.1:allow\n:deny\n")); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		l := &Listener{
			Rules:        rules,
			ProxyFrom:    []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			LocalHost:    "mx.example",
			ProxyTimeout: time.Second,
		}
		l.init()
		defer l.cancel()
		defer l.rules.close()
		c := &bytesConn{Reader: bytes.NewReader(in), remote: tcp("127.0.0.1:40000"), local: tcp("127.0.0.1:25")}
		conn, err := l.admit(c)
		if err != nil {
			return
		}
		env := conn.Env()
		for _, side := range []string{"REMOTE", "LOCAL"} {
			if _, err := netip.ParseAddr(env["TCP"+side+"IP"]); err != nil {
				t.Errorf("TCP%sIP = %q: %v", side, env["TCP"+side+"IP"], err)
			}
			if p, err := strconv.Atoi(env["TCP"+side+"PORT"]); err != nil || p < 0 || p > 65535 {
				t.Errorf("TCP%sPORT = %q", side, env["TCP"+side+"PORT"])
			}
		}
		for k, v := range env {
			if strings.ContainsAny(k+v, "\x00\n") {
				t.Errorf("environment %q=%q holds NUL or LF", k, v)
			}
		}
		// What the server reads is what followed the header.
		var rest bytes.Buffer
		buf := make([]byte, 7)
		for {
			n, err := conn.Read(buf)
			rest.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if !bytes.HasSuffix(in, rest.Bytes()) {
			t.Errorf("read %q after the header of %q", rest.Bytes(), in)
		}
		if rest.Len() >= len(in) && len(in) > 0 {
			t.Errorf("the header of %q was not consumed", in)
		}
	})
}
