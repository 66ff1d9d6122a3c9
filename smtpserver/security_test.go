package smtpserver

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// smuggled is a second message hidden after a non-standard end of data.
const smuggled = "MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@d.example>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n"

// TestSmuggling sends the published end-of-data variants (CERT VU#302671)
// followed by a second transaction, pipelined and not, in both modes: no
// second message may ever be accepted, and the evil sender is never queued.
func TestSmuggling(t *testing.T) {
	variants := []string{"\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r\n.\r", "\r.\r\n", "\n.\r", "\r\n.\r\r\n", ".\n", "\r\n..\r\n", "\r\n.\x00\r\n"}
	for _, compat := range []bool{true, false} {
		for _, pipelined := range []bool{true, false} {
			for _, v := range variants {
				name := strings.NewReplacer("\r", "CR", "\n", "LF", "\x00", "NUL").Replace(v)
				mode := "modern"
				if compat {
					mode = "compat"
				}
				if pipelined {
					mode += "-pipelined"
				}
				t.Run(mode+"/"+name, func(t *testing.T) {
					t.Parallel()
					k := &sink{}
					srv := compatServer(k)
					srv.Compat = compat
					c := start(t, srv, qmailEnv())
					c.expect("220 *")
					tx := "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
					body := "Subject: first\r\n\r\nhello" + v + smuggled + "QUIT\r\n"
					if pipelined {
						// In modern mode this is also a synchronisation error.
						c.send(tx + body)
					} else {
						c.send(tx)
						c.expect("250 *")
						c.expect("250 *")
						c.expect("354 *")
						c.send(body)
					}
					var finals int
					for {
						l, err := c.line()
						if err != nil {
							break
						}
						if strings.HasPrefix(l, "250 ok ") || strings.HasPrefix(l, "250 2.0.0 ok ") {
							finals++
						}
					}
					c.wait()
					msgs := k.messages()
					if len(msgs) > 1 || finals > 1 {
						t.Fatalf("%d messages queued, %d acknowledged: smuggling worked", len(msgs), finals)
					}
					for _, m := range msgs {
						if m.from != "a@b" || len(m.to) != 1 || m.to[0] != "c@d" {
							t.Fatalf("queued envelope %q %q", m.from, m.to)
						}
						if !compat && strings.Contains(m.data, "\r") {
							t.Fatalf("modern mode queued a bare CR: %q", m.data)
						}
						// What was queued is one message: the smuggled text is
						// its body, never a separate message.
						if !strings.Contains(m.data, "hello") {
							t.Fatalf("queued %q", m.data)
						}
					}
				})
			}
		}
	}
}

// TestRelayTricks tries the classic ways to make a server relay: none may
// get a recipient accepted whose routing domain (after its last "@") is not
// local, unless the client may relay.
func TestRelayTricks(t *testing.T) {
	tricks := []string{
		"<joe@evil.example>",
		"<joe%evil.example@example.com>",
		"<joe%evil.example>",
		"<evil.example!joe>",
		"<evil.example!joe@example.com>",
		"<joe@evil.example@example.com>",
		"<@example.com:joe@evil.example>",
		"<@example.com,@x.example:joe@evil.example>",
		`<"joe@evil.example">`,
		`<"joe@evil.example"@example.com>`,
		`<joe@evil.example.>`,
		`<joe@example.com.>`,
		`<joe@EVIL.EXAMPLE>`,
		`<joe@EXAMPLE.COM>`,
		`<joe@[192.0.2.1]>`,
		`<joe@[127.0.0.1]>`,
		`<joe@[127.0.0.1].>`,
		`<joe@evil.example\@example.com>`,
		`<joe\@evil.example>`,
		`<joe@evil.example%example.com>`,
		`<joe@example.com@evil.example>`,
		`<joe@sub.example.com>`,
		`<joe@example.com.evil.example>`,
		`<joe@evilexample.com>`,
		` <joe@evil.example>`,
		`joe@evil.example`,
		`<joe@evil.example >`,
		`<joe@[IPv6:::1]>`,
		`<joe@evil.example> <joe@example.com>`,
		`<joe@[127.1]>`,
		`<joe@[127.0.0.1]@evil.example>`,
		`<"joe@example.com"@evil.example>`,
		`<joe@ex"ample.com">`,
		"<joe@exаmple.com>", // Cyrillic a
		`<joe@evil.example(comment)>`,
		`<joe@0x7f000001>`,
		`<"joe"@"evil.example">`,
		`<joe@evil.example\>@example.com>`,
	}
	local := HostList([]string{"example.com"}, nil)
	for _, compat := range []bool{true, false} {
		for _, relay := range []bool{false, true} {
			k := &sink{}
			srv := compatServer(k)
			srv.Compat = compat
			srv.OpenRelay = false
			srv.RcptHosts = local
			srv.LocalIPHost = "example.com"
			srv.MaxErrors = -1
			env := qmailEnv()
			if relay {
				env["RELAYCLIENT"] = ""
			}
			c := start(t, srv, env)
			c.expect("220 *")
			c.send("EHLO c\r\n")
			c.reply()
			c.send("MAIL FROM:<a@b>\r\n")
			c.expect("250 *")
			accepted := 0
			for _, tr := range tricks {
				c.send("RCPT TO:" + tr + "\r\n")
				r := c.reply()
				if strings.HasPrefix(r[0], "250") {
					accepted++
				} else if relay && strings.HasPrefix(r[0], "553") && strings.Contains(r[0], "rcpthosts") {
					t.Errorf("compat=%v: RELAYCLIENT set but %s refused: %q", compat, tr, r[0])
				}
			}
			c.send("DATA\r\n")
			c.expect("354 *")
			c.send("x\r\n.\r\nQUIT\r\n")
			c.reply()
			c.reply()
			msgs := k.messages()
			if len(msgs) != 1 {
				t.Fatalf("compat=%v relay=%v: %d messages", compat, relay, len(msgs))
			}
			// qmail queues every accepted RCPT; the modern mode each
			// recipient once (joe@example.com and joe@EXAMPLE.COM are one).
			distinct := map[string]bool{}
			for _, rc := range msgs[0].to {
				distinct[rcptKey(rc)] = true
			}
			if compat && len(msgs[0].to) != accepted || !compat && (len(distinct) != len(msgs[0].to) || len(msgs[0].to) > accepted) {
				t.Fatalf("compat=%v relay=%v: queued %q, accepted %d", compat, relay, msgs[0].to, accepted)
			}
			if relay {
				if accepted < len(tricks)-6 {
					t.Errorf("compat=%v: relay client got only %d of %d accepted", compat, accepted, len(tricks))
				}
				continue
			}
			for _, rc := range msgs[0].to {
				d, ok := domainOf(rc)
				if !ok {
					continue // no "@": a local address, completed by the queue
				}
				if ok, _ := local(d); !ok {
					t.Errorf("compat=%v: relayed to %q", compat, rc)
				}
			}
			if accepted == 0 {
				t.Errorf("compat=%v: nothing accepted, the test proves nothing", compat)
			}
		}
	}
}

// An Enqueuer failure is 451 (or its own reply), never 250.
func TestEnqueuerFailure(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"temporary", errTest("disk full"), "451 qq temporary problem (#4.3.0)"},
		{"permanent", permErr{}, "554 mail server permanently rejected message (#5.3.0)"},
		{"reply", Reply{452, "4.3.1", "insufficient system storage"}, "452 insufficient system storage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &sink{fail: tt.err}
			c := start(t, compatServer(k), qmailEnv())
			c.expect("220 *")
			c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
			c.expect("250 ok")
			c.expect("250 ok")
			c.expect("354 go ahead")
			c.send("x\r\n.\r\n")
			c.expect(tt.want)
			c.send("NOOP\r\n")
			c.expect("250 ok")
		})
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }

type permErr struct{}

func (permErr) Error() string   { return "permanent" }
func (permErr) Permanent() bool { return true }

// An Enqueuer that fails before reading gets qmail's "451 qqt failure"
// without a 354; one that returns success without reading all gets 451.
func TestEnqueuerEarlyReturn(t *testing.T) {
	srv := compatServer(nil)
	srv.Enqueuer = EnqueuerFunc(func(ctx context.Context, from string, to []string, r io.Reader) (string, error) {
		return "", errTest("cannot fork")
	})
	c := start(t, srv, qmailEnv())
	c.expect("220 *")
	c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
	c.expect("250 ok")
	c.expect("250 ok")
	c.expect("451 qqt failure (#4.3.0)")

	srv2 := compatServer(nil)
	srv2.Enqueuer = EnqueuerFunc(func(ctx context.Context, from string, to []string, r io.Reader) (string, error) {
		b := make([]byte, 10)
		io.ReadFull(r, b)
		return "1", nil
	})
	c = start(t, srv2, qmailEnv())
	c.expect("220 *")
	c.send("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
	c.expect("250 ok")
	c.expect("250 ok")
	c.expect("354 go ahead")
	c.send(strings.Repeat("long line\r\n", 1000) + ".\r\nNOOP\r\n")
	c.expect("451 qq read error (#4.3.0)")
	c.expect("250 ok")
}

// Bytes before the greeting are refused when GreetDelay is set.
func TestEarlyTalker(t *testing.T) {
	srv := compatServer(&sink{})
	srv.Compat = false
	srv.GreetDelay = 300 * time.Millisecond
	c := start(t, srv, qmailEnv())
	c.send("EHLO fast\r\n")
	c.expect("554 5.5.0 SMTP protocol synchronization error")
	c.expectEOF()

	c = start(t, srv, qmailEnv())
	c.expect("220 mx.example.org ESMTP")
}

// The read timeout gives qmail's 451 and ends the session.
func TestTimeout(t *testing.T) {
	srv := compatServer(&sink{})
	srv.Timeout = 100 * time.Millisecond
	c := start(t, srv, qmailEnv())
	c.expect("220 *")
	c.expect("451 timeout (#4.4.2)")
	c.expectEOF()
	if err := c.wait(); err != ErrTimeout {
		t.Fatalf("ServeConn = %v, want ErrTimeout", err)
	}
}
