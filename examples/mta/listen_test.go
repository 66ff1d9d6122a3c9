package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/tcprules"
)

// bannerAddr returns the address of the banner's line for a listener
// ("submissions", "POP3S", "LMTP"), failing when there is none.
func bannerAddr(t *testing.T, p *proc, name string) string {
	t.Helper()
	for _, line := range strings.Split(p.banner, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == name {
			if f[1] == "off" {
				break
			}
			return f[1]
		}
	}
	t.Fatalf("the banner gives no address for %s:\n%s", name, p.banner)
	return ""
}

// dialFrom connects to addr from the loopback address from.
func dialFrom(t *testing.T, from, addr string) (net.Conn, *textproto.Conn) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c, textproto.NewConn(c)
}

// step sends a command (none when "") and checks the reply's code.
func step(t *testing.T, c *textproto.Conn, want int, line string) string {
	t.Helper()
	if line != "" {
		if err := c.PrintfLine("%s", line); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
	}
	code, msg, err := c.ReadResponse(0)
	if code != want {
		t.Fatalf("%q: %d %s (%v), want %d", line, code, msg, err, want)
	}
	return msg
}

// The implicit-TLS ports are on by default: openssl s_client gets the
// SMTP greeting on -submissions and the POP3 one on -pop3s, over TLS.
func TestImplicitTLSPorts(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed (Debian: apt-get install openssl); .ci/run installs it")
	}
	home := filepath.Join(scratch(t), "home")
	p := startMTA(t, home)
	for _, tc := range []struct {
		name, banner string
		want         []string
	}{
		{"submissions", "submissions", []string{"220 ", " ESMTP", "221 "}},
		{"pop3s", "POP3S", []string{"+OK ", "+OK"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := bannerAddr(t, p, tc.banner)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", addr, "-quiet", "-crlf")
			cmd.Stdin = strings.NewReader("QUIT\n")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil && ctx.Err() != nil {
				t.Fatalf("openssl s_client: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
			}
			out := stdout.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("openssl s_client -connect %s: no %q in\n%s\nstderr:\n%s", addr, w, out, &stderr)
				}
			}
			if !strings.Contains(stderr.String(), "verify") && !strings.Contains(stderr.String(), "CN") {
				t.Errorf("no TLS handshake reported by openssl:\n%s", &stderr)
			}
		})
	}
	// The plain ports are still plain: a greeting in the clear.
	_, c := dialFrom(t, "127.0.0.1", p.submission)
	step(t, c, 220, "")
	p.stop(t)
}

// control/proxyfrom trusts HAProxy at 127.0.0.1: the PROXY v2 header it
// sends gives the client's address, 127.0.0.2, which the Received line
// names.
func TestProxyV2FromHAProxy(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy is not installed (Debian: apt-get install haproxy); .ci/run installs it")
	}
	dir := scratch(t)
	home := filepath.Join(dir, "home")
	// A first start makes the home; control/proxyfrom is read at start.
	p := startMTA(t, home)
	p.stop(t)
	user, md := p.user, p.maildir // the second banner has no password to show
	if err := os.WriteFile(filepath.Join(home, "control", "proxyfrom"), []byte("# haproxy\n127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p = startMTA(t, home)

	// A loopback port for haproxy's frontend.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := l.Addr().String()
	l.Close()
	hdir := t.TempDir()
	cfg := fmt.Sprintf(`global
	pidfile %s
defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
frontend smtp
	bind %s
	default_backend mta
backend mta
	server mta %s send-proxy-v2
`, filepath.Join(hdir, "haproxy.pid"), front, p.smtp)
	cfgPath := filepath.Join(hdir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var hout bytes.Buffer
	hp := exec.Command(haproxy, "-db", "-f", cfgPath) // -db: in the foreground
	hp.Stdout, hp.Stderr = &hout, &hout
	if err := hp.Start(); err != nil {
		t.Fatal(err)
	}
	hdone := make(chan struct{})
	go func() { hp.Wait(); close(hdone) }()
	t.Cleanup(func() {
		hp.Process.Kill()
		<-hdone
	})
	// Wait for the frontend.
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", front, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-hdone:
			t.Fatalf("haproxy exited:\n%s", &hout)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy is not listening on %s:\n%s", front, &hout)
		}
		time.Sleep(50 * time.Millisecond)
	}

	_, c := dialFrom(t, "127.0.0.2", front)
	step(t, c, 220, "")
	step(t, c, 250, "EHLO client.example")
	step(t, c, 250, "MAIL FROM:<someone@example.org>")
	step(t, c, 250, "RCPT TO:<"+user+"@localhost>")
	step(t, c, 354, "DATA")
	step(t, c, 250, "Subject: through haproxy\r\n\r\nhello\r\n.")
	step(t, c, 221, "QUIT")
	msgs := waitMessages(t, md, 1, p)
	rec := msgs[0][:max(strings.Index(msgs[0], "Subject: through haproxy"), 0)]
	if !strings.Contains(rec, "(127.0.0.2)") || strings.Contains(rec, "(127.0.0.1)") {
		t.Errorf("the Received line does not name the client 127.0.0.2:\n%s", msgs[0])
	}

	// From 127.0.0.1 every connection is believed to be haproxy's: one
	// without a header is closed unserved.
	conn, c2 := dialFrom(t, "127.0.0.1", p.smtp)
	conn.Write([]byte("EHLO direct.example\r\n"))
	if code, msg, err := c2.ReadResponse(0); err == nil {
		t.Errorf("a connection from the trusted balancer without a PROXY header was served: %d %s", code, msg)
	}
	p.stop(t)
}

// control/tcp.submission.cdb denies 127.0.0.3 on the submission port
// (read at each connection: no restart); 127.0.0.1 is served, and the
// SMTP port, whose rules are tcp.smtp's, serves 127.0.0.3.
func TestSubmissionRules(t *testing.T) {
	home := filepath.Join(scratch(t), "home")
	p := startMTA(t, home)
	cdbPath := filepath.Join(home, "control", "tcp.submission.cdb")
	if err := tcprules.CompileFile(cdbPath, cdbPath+".tmp", strings.NewReader("127.0.0.3:deny\n:allow\n")); err != nil {
		t.Fatal(err)
	}
	os.Chmod(cdbPath, 0o644)
	for _, tc := range []struct {
		from, addr string
		served     bool
	}{
		{"127.0.0.3", p.submission, false},
		{"127.0.0.1", p.submission, true},
		{"127.0.0.3", p.smtp, true},
	} {
		conn, c := dialFrom(t, tc.from, tc.addr)
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		code, msg, err := c.ReadResponse(0)
		if served := err == nil && code == 220; served != tc.served {
			t.Errorf("%s to %s: %d %s %v, want served %v", tc.from, tc.addr, code, msg, err, tc.served)
		}
		conn.Close()
	}
	p.stop(t)
}

// -lmtp: an LMTP session hands over a message for local users, one reply
// per accepted recipient; an unknown user and a remote domain are refused.
func TestLMTP(t *testing.T) {
	home := filepath.Join(scratch(t), "home")
	p := startMTA(t, home, "-lmtp", "127.0.0.1:0")
	addr := bannerAddr(t, p, "LMTP")
	_, c := dialFrom(t, "127.0.0.1", addr)
	if g := step(t, c, 220, ""); !strings.Contains(g, "LMTP") {
		t.Errorf("greeting %q", g)
	}
	ext := step(t, c, 250, "LHLO front.example")
	if strings.Contains(ext, "AUTH") || strings.Contains(ext, "STARTTLS") {
		t.Errorf("LHLO offers %q", ext)
	}
	step(t, c, 250, "MAIL FROM:<someone@example.org>")
	step(t, c, 250, "RCPT TO:<"+p.user+"@localhost>")
	step(t, c, 550, "RCPT TO:<nosuchuser@localhost>")
	step(t, c, 550, "RCPT TO:<someone@example.com>")  // 127.0.0.1 may relay on SMTP, never here
	step(t, c, 250, "RCPT TO:<postmaster@localhost>") // alias/.qmail-postmaster: the demo user
	step(t, c, 354, "DATA")
	step(t, c, 250, "Subject: over LMTP\r\n\r\nhello\r\n.")
	step(t, c, 250, "") // the second accepted recipient's reply
	step(t, c, 221, "QUIT")
	msgs := waitMessages(t, p.maildir, 2, p)
	for _, m := range msgs {
		if !strings.Contains(m, "Subject: over LMTP") || !strings.Contains(m, "with LMTP;") {
			t.Errorf("message:\n%s", m)
		}
	}
	p.stop(t)
}
