package mta

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"maps"
	"net"
	"net/netip"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/smtpclient"
	"github.com/qmailkit/qmailkit/tcprules"
)

func TestReadProxyFrom(t *testing.T) {
	pfx := netip.MustParsePrefix
	for _, tc := range []struct {
		name, data string
		want       []netip.Prefix
		err        string // in the error, after the file's path
	}{
		{name: "missing"},
		{name: "empty", data: ""},
		{name: "addresses and prefixes",
			data: "# balancers\n127.0.0.1\n\n  10.1.2.3/8   # the lb network\n2001:db8::1\n2001:db8::/32\n::ffff:192.0.2.1\n::ffff:192.0.2.0/120\r\n",
			want: []netip.Prefix{pfx("127.0.0.1/32"), pfx("10.0.0.0/8"), pfx("2001:db8::1/128"), pfx("2001:db8::/32"), pfx("192.0.2.1/32"), pfx("192.0.2.0/24")}},
		{name: "no final newline", data: "192.0.2.1", want: []netip.Prefix{pfx("192.0.2.1/32")}},
		{name: "a name", data: "127.0.0.1\n\nlb.example.org\n", err: `:3: "lb.example.org" is not an IP address or prefix`},
		{name: "two on a line", data: "127.0.0.1 127.0.0.2\n", err: ":1: "},
		{name: "bad prefix", data: "10.0.0.0/33\n", err: ":1: "},
		{name: "zone", data: "fe80::1%eth0\n", err: ":1: "},
		{name: "short mapped prefix", data: "::ffff:0:0/64\n", err: ":1: "},
		{name: "NUL", data: "127.0.0.1\x00\n", err: ":1: "},
		{name: "long line", data: "127.0.0.1\n" + strings.Repeat("1", 5000) + "\n", err: ":2: "},
		{name: "too many", data: strings.Repeat("127.0.0.1\n", maxProxyFromEntries+1), err: ":1025: more than"},
		{name: "huge", data: strings.Repeat("#\n", maxProxyFromBytes), err: ": larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := control.Dir{Home: t.TempDir()}
			os.Mkdir(filepath.Join(d.Home, "control"), 0o755)
			if tc.name != "missing" {
				if err := os.WriteFile(d.Path("proxyfrom"), []byte(tc.data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadProxyFrom(d)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), d.Path("proxyfrom")+tc.err) {
					t.Fatalf("ReadProxyFrom = %v, %v; want an error with %q", got, err, d.Path("proxyfrom")+tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("ReadProxyFrom = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		d := control.Dir{Home: t.TempDir()}
		os.MkdirAll(d.Path("proxyfrom"), 0o755)
		if _, err := ReadProxyFrom(d); err == nil {
			t.Fatal("a directory read as control/proxyfrom")
		}
	})
}

// LoadHome gives every listener role its control/tcp.ROLE.cdb and reads
// control/proxyfrom; a bad line there fails LoadHome, and Serve for a
// System Open made (which reads it only to serve).
func TestLoadHomeListenerPolicy(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	if _, _, err := Init(home, InitOptions{Domain: "example.org", Password: "secret"}); err != nil {
		t.Fatal(err)
	}
	d := control.Dir{Home: home}
	if err := os.WriteFile(d.Path("proxyfrom"), []byte("# haproxy\n127.0.0.1\n10.0.0.0/8\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadHome(home, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, role := range []string{"smtp", "submission", "submissions", "pop3", "pop3s", "lmtp"} {
		want[role] = filepath.Join(home, "control", "tcp."+role+".cdb")
	}
	if !maps.Equal(cfg.Rules, want) {
		t.Errorf("Rules = %v, want %v", cfg.Rules, want)
	}
	if !slices.Equal(cfg.ProxyFrom, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}) {
		t.Errorf("ProxyFrom = %v", cfg.ProxyFrom)
	}
	cfg.SMTP.release()

	if err := os.WriteFile(d.Path("proxyfrom"), []byte("127.0.0.1\n10.0.0.0/8 lb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHome(home, Options{}); err == nil || !strings.Contains(err.Error(), d.Path("proxyfrom")+":2:") {
		t.Fatalf("LoadHome with a bad proxyfrom: %v", err)
	}
	// Open (a queue-only program such as qmail-send) does not read it;
	// serving does.
	sys, err := Open(home, Options{})
	if err != nil {
		t.Fatalf("Open with a bad proxyfrom: %v", err)
	}
	defer sys.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv, err := sys.SMTP(false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := sys.Serve(ctx, Servers{SMTP: srv}, Listeners{SMTP: l}); err == nil || !strings.Contains(err.Error(), d.Path("proxyfrom")+":2:") {
		t.Fatalf("Serve with a bad proxyfrom: %v", err)
	}
}

func TestNewChecksListeners(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"submissions without TLS", Config{Listeners: Listeners{Submissions: l}}, "Submissions (implicit TLS, port 465) needs Config.TLS"},
		{"pop3s without TLS", Config{Listeners: Listeners{POP3S: l}}, "POP3S (implicit TLS, port 995) needs Config.TLS"},
		{"unknown role", Config{Rules: map[string]string{"smtp": "/x", "smtps": "/y"}}, `unknown listener role "smtps"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Hostname, tc.cfg.QueueDir = "mx.example.org", filepath.Join(dir, "queue")
			s, err := New(tc.cfg)
			if err == nil {
				s.Close()
				t.Fatal("New accepted it")
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("New: %v, want %q", err, tc.err)
			}
		})
	}
}

// goSystem is a System written in Go with every listener on 127.0.0.1,
// a balancer trusted at 127.0.0.9, RelayClients 192.0.2.0/24, and rules
// (tcprules source text) by role.
type goSystem struct {
	sys     *System
	ls      Listeners
	joe     string // joe's Maildir
	ann     string
	tlsConf *tls.Config
}

func startGoSystem(t *testing.T, rules map[string]string) *goSystem {
	t.Helper()
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	if err := writeCert(cert, "mx.example.org"); err != nil {
		t.Fatal(err)
	}
	kp, err := tls.LoadX509KeyPair(cert, cert)
	if err != nil {
		t.Fatal(err)
	}
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	g := &goSystem{
		ls:  Listeners{SMTP: listen(), Submission: listen(), Submissions: listen(), POP3: listen(), POP3S: listen(), LMTP: listen()},
		joe: filepath.Join(dir, "joe", "Maildir"), ann: filepath.Join(dir, "ann", "Maildir"),
	}
	cfg := Config{
		Hostname:  "mx.example.org",
		QueueDir:  filepath.Join(dir, "queue"),
		Routing:   queue.Routing{Locals: []string{"example.org"}},
		Users:     Mailboxes{"joe": {Password: "{PLAIN}joe-secret", Home: filepath.Join(dir, "joe")}, "ann": {Home: filepath.Join(dir, "ann")}},
		TLS:       &tls.Config{Certificates: []tls.Certificate{kp}},
		Listeners: g.ls,
		SMTP:      SMTPPolicy{RelayClients: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
		ProxyFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.9/32")},
		Rules:     map[string]string{},
		// Remote delivery goes nowhere: relayed mail stays queued.
		Remote: &smtpclient.Client{Routes: routesTo("127.0.0.1", 1)},
	}
	for role, src := range rules {
		path := filepath.Join(dir, "tcp."+role+".cdb")
		if err := tcprules.CompileFile(path, path+".tmp", strings.NewReader(src)); err != nil {
			t.Fatal(err)
		}
		cfg.Rules[role] = path
	}
	g.sys, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.sys.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.sys.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		g.sys.Close()
	})
	return g
}

// dialFrom connects from the loopback address from to l, sends a PROXY v2
// header naming client when client is valid, and wraps the connection in
// TLS when tlsOn.
func dialFrom(t *testing.T, from string, l net.Listener, client netip.AddrPort, tlsOn bool) (net.Conn, *textproto.Conn) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if client.IsValid() {
		h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(client), l.Addr())
		if _, err := h.WriteTo(c); err != nil {
			t.Fatal(err)
		}
	}
	if tlsOn {
		c = tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	}
	c.SetDeadline(time.Now().Add(15 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c, textproto.NewConn(c)
}

// cmd sends a command and reads its reply, failing unless its code is
// want (0: any); it returns the code and the text.
func cmd(t *testing.T, c *textproto.Conn, want int, format string, args ...any) (int, string) {
	t.Helper()
	if format != "" {
		if err := c.PrintfLine(format, args...); err != nil {
			t.Fatal(err)
		}
	}
	code, msg, err := c.ReadResponse(0)
	if err != nil && code == 0 {
		t.Fatalf("%q: %v", format, err)
	}
	if want != 0 && code != want {
		t.Fatalf("%q: %d %s, want %d", format, code, msg, want)
	}
	return code, msg
}

// Every listener of a System written in Go: the PROXY header of a
// trusted balancer gives the client's address (to RelayClients and the
// Received line), implicit TLS on Submissions and POP3S, rules by role,
// and LMTP.
func TestListeners(t *testing.T) {
	g := startGoSystem(t, map[string]string{
		"submissions": "127.0.0.3:deny\n:allow\n",
		"lmtp":        "127.0.0.1:allow,RELAYCLIENT=\"\"\n:allow\n",
		"pop3":        ":deny\n",
	})

	t.Run("proxy", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			client string
			relay  bool
		}{
			{"relay client", "192.0.2.5:40000", true},
			{"stranger", "198.51.100.1:40000", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, c := dialFrom(t, "127.0.0.9", g.ls.SMTP, netip.MustParseAddrPort(tc.client), false)
				cmd(t, c, 220, "")
				cmd(t, c, 250, "EHLO client.example")
				cmd(t, c, 250, "MAIL FROM:<a@b.test>")
				if code, _ := cmd(t, c, 0, "RCPT TO:<x@elsewhere.test>"); (code == 250) != tc.relay {
					t.Fatalf("relay from %s: %d", tc.client, code)
				}
				cmd(t, c, 250, "RSET")
				cmd(t, c, 250, "MAIL FROM:<a@b.test>")
				cmd(t, c, 250, "RCPT TO:<joe@example.org>")
				cmd(t, c, 354, "DATA")
				cmd(t, c, 250, "Subject: via %s\r\n\r\nhi\r\n.", tc.client)
				cmd(t, c, 221, "QUIT")
			})
		}
		msgs := waitMaildir(t, g.joe, 2)
		for _, ip := range []string{"192.0.2.5", "198.51.100.1"} {
			if !slices.ContainsFunc(msgs, func(m string) bool {
				return strings.Contains(m, "Subject: via "+ip) && strings.Contains(m[:strings.Index(m, "Subject:")], "("+ip+")")
			}) {
				t.Errorf("no message whose Received line names %s:\n%s", ip, strings.Join(msgs, "\n---\n"))
			}
		}
	})

	t.Run("untrusted header", func(t *testing.T) {
		// From elsewhere a PROXY header is data (a bad command): the
		// client stays 127.0.0.1, which may not relay.
		conn, c := dialFrom(t, "127.0.0.1", g.ls.SMTP, netip.AddrPort{}, false)
		conn.Write([]byte("PROXY TCP4 192.0.2.5 127.0.0.1 40000 25\r\n"))
		cmd(t, c, 220, "")
		cmd(t, c, 502, "")
		cmd(t, c, 250, "EHLO client.example")
		cmd(t, c, 250, "MAIL FROM:<a@b.test>")
		cmd(t, c, 553, "RCPT TO:<x@elsewhere.test>")
		cmd(t, c, 221, "QUIT")
	})

	t.Run("balancer without header", func(t *testing.T) {
		conn, c := dialFrom(t, "127.0.0.9", g.ls.SMTP, netip.AddrPort{}, false)
		conn.Write([]byte("EHLO x\r\n"))
		if code, msg, err := c.ReadResponse(0); err == nil {
			t.Fatalf("served without a PROXY header: %d %s", code, msg)
		}
	})

	t.Run("submissions", func(t *testing.T) {
		_, c := dialFrom(t, "127.0.0.1", g.ls.Submissions, netip.AddrPort{}, true)
		cmd(t, c, 220, "")
		_, ext := cmd(t, c, 250, "EHLO client.example")
		if strings.Contains(ext, "STARTTLS") || !strings.Contains(ext, "AUTH PLAIN") {
			t.Fatalf("EHLO on 465: %q", ext)
		}
		cmd(t, c, 530, "MAIL FROM:<joe@example.org>")
		cmd(t, c, 235, "AUTH PLAIN AGpvZQBqb2Utc2VjcmV0") // \0joe\0joe-secret
		cmd(t, c, 250, "MAIL FROM:<joe@example.org>")
		cmd(t, c, 250, "RCPT TO:<ann@example.org>")
		cmd(t, c, 354, "DATA")
		cmd(t, c, 250, "Subject: submitted on 465\r\n\r\nhi\r\n.")
		cmd(t, c, 221, "QUIT")
		msgs := waitMaildir(t, g.ann, 1)
		if !strings.Contains(msgs[0], "with ESMTPSA (TLS1.") {
			t.Errorf("message submitted on 465:\n%s", msgs[0])
		}
	})

	t.Run("submissions rules", func(t *testing.T) {
		conn, _ := dialFrom(t, "127.0.0.3", g.ls.Submissions, netip.AddrPort{}, true)
		if err := conn.(*tls.Conn).Handshake(); err == nil {
			t.Fatal("127.0.0.3, denied by tcp.submissions, completed a handshake")
		}
	})

	t.Run("pop3s", func(t *testing.T) {
		_, c := dialFrom(t, "127.0.0.1", g.ls.POP3S, netip.AddrPort{}, true)
		for _, step := range []struct{ send, want string }{
			{"", "+OK"}, {"CAPA", "+OK"}, {"USER joe", "+OK"}, {"PASS joe-secret", "+OK"}, {"QUIT", "+OK"},
		} {
			if step.send != "" {
				c.PrintfLine("%s", step.send)
			}
			line, err := c.ReadLine()
			if err != nil || !strings.HasPrefix(line, step.want) {
				t.Fatalf("%s: %q %v", step.send, line, err)
			}
			if step.send == "CAPA" {
				capa, err := c.ReadDotLines()
				if err != nil || slices.Contains(capa, "STLS") {
					t.Fatalf("CAPA on 995: %q %v", capa, err)
				}
			}
		}
	})

	t.Run("pop3 rules", func(t *testing.T) {
		_, c := dialFrom(t, "127.0.0.1", g.ls.POP3, netip.AddrPort{}, false)
		if line, err := c.ReadLine(); err == nil {
			t.Fatalf("denied by tcp.pop3, got %q", line)
		}
	})

	t.Run("lmtp", func(t *testing.T) {
		// The rules give 127.0.0.1 RELAYCLIENT: LMTP relays all the same never.
		_, c := dialFrom(t, "127.0.0.1", g.ls.LMTP, netip.AddrPort{}, false)
		_, greeting := cmd(t, c, 220, "")
		if !strings.Contains(greeting, "LMTP") {
			t.Errorf("greeting %q", greeting)
		}
		cmd(t, c, 502, "EHLO client.example")
		_, ext := cmd(t, c, 250, "LHLO client.example")
		if strings.Contains(ext, "AUTH") || strings.Contains(ext, "STARTTLS") {
			t.Errorf("LHLO: %q", ext)
		}
		cmd(t, c, 250, "MAIL FROM:<a@b.test>")
		cmd(t, c, 250, "RCPT TO:<joe@example.org>")
		cmd(t, c, 550, "RCPT TO:<nobody@example.org>")
		cmd(t, c, 550, "RCPT TO:<x@elsewhere.test>")
		cmd(t, c, 250, "RCPT TO:<ann@EXAMPLE.org>")
		cmd(t, c, 354, "DATA")
		cmd(t, c, 250, "Subject: over LMTP\r\n\r\nhi\r\n.")
		cmd(t, c, 250, "") // one reply per accepted recipient
		cmd(t, c, 221, "QUIT")
		for md, n := range map[string]int{g.joe: 3, g.ann: 2} {
			msgs := waitMaildir(t, md, n)
			if !slices.ContainsFunc(msgs, func(m string) bool {
				return strings.Contains(m, "Subject: over LMTP") && strings.Contains(m, "with LMTP;")
			}) {
				t.Errorf("%s: no message over LMTP:\n%s", md, strings.Join(msgs, "\n---\n"))
			}
		}
	})
}

// A connection to the implicit-TLS port that speaks SMTP in the clear gets
// nothing in the clear and is closed.
func TestSubmissionsPlainClient(t *testing.T) {
	g := startGoSystem(t, nil)
	conn, err := net.DialTimeout("tcp", g.ls.Submissions.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	conn.Write([]byte("EHLO client.example\r\n"))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err == nil || strings.HasPrefix(line, "220") {
		t.Fatalf("got %q, %v", line, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("not closed")
	}
}

// FuzzParseProxyFrom: control/proxyfrom's parser never panics, and what it
// accepts is a short list of valid, masked prefixes of unmapped
// addresses.
func FuzzParseProxyFrom(f *testing.F) {
	for _, s := range []string{"", "127.0.0.1\n", "# lb\n10.0.0.0/8 # x\n::1\n", "::ffff:10.0.0.1/104\n", "fe80::1%eth0\n", "1.2.3.4/33", "\x00", "a\r\nb\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		got, err := parseProxyFrom("proxyfrom", strings.NewReader(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "mta: proxyfrom") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if len(got) > maxProxyFromEntries {
			t.Fatalf("%d prefixes", len(got))
		}
		for _, p := range got {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("prefix %v from %q", p, data)
			}
		}
	})
}
