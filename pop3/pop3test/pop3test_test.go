package pop3test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// line reads one line, "EOF" at the end of the connection.
func (c *client) line() string {
	l, err := c.br.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset") {
			return "EOF"
		}
		c.t.Fatal(err)
	}
	return strings.TrimRight(l, "\r\n")
}

func (c *client) cmd(line string) string {
	if _, err := io.WriteString(c.c, line+"\r\n"); err != nil {
		return "EOF"
	}
	return c.line()
}

// multi reads a multi-line response's body, up to the dot.
func (c *client) multi() string {
	var b strings.Builder
	for {
		l := c.line()
		if l == "." || l == "EOF" {
			return b.String()
		}
		b.WriteString(strings.TrimPrefix(l, ".") + "\r\n")
	}
}

func TestSessionAndScript(t *testing.T) {
	const m1 = "Subject: one\r\n\r\nfirst\r\n.dot line\r\n"
	const m2 = "Subject: two\n\nsecond, stored with LF\n"
	for _, tc := range []struct {
		name   string
		rules  []Rule
		dialog []string // command, then the reply's start ("" reads the greeting)
		record string
		left   int
	}{
		{
			name:   "retrieve and delete",
			dialog: []string{"", "+OK", "USER bob", "+OK", "PASS secret", "+OK 2 messages", "RETR 1", "+OK", "DELE 1", "+OK", "QUIT", "+OK"},
			record: "#1 +OK POP3 server ready; USER bob: +OK send PASS; PASS secret: +OK 2 messages; RETR 1: +OK 34 octets; DELE 1: +OK message 1 deleted; QUIT: +OK bye",
			left:   1,
		},
		{
			name:   "bad password",
			dialog: []string{"", "+OK", "USER bob", "+OK", "PASS wrong", "-ERR [AUTH]", "QUIT", "+OK"},
			record: "#1 +OK POP3 server ready; USER bob: +OK send PASS; PASS wrong: -ERR [AUTH] authentication failed; QUIT: +OK bye",
			left:   2,
		},
		{
			name:   "scripted login refusal",
			rules:  []Rule{At("PASS").Err("[SYS/TEMP] try later")},
			dialog: []string{"", "+OK", "USER bob", "+OK", "PASS secret", "-ERR [SYS/TEMP] try later", "QUIT", "+OK"},
			record: "#1 +OK POP3 server ready; USER bob: +OK send PASS; PASS secret: -ERR [SYS/TEMP] try later; QUIT: +OK bye",
			left:   2,
		},
		{
			name:   "-ERR at RETR 2 only, nothing deleted without QUIT",
			rules:  []Rule{At("RETR", "2").Err("[SYS/TEMP] unable to read")},
			dialog: []string{"", "+OK", "USER bob", "+OK", "PASS secret", "+OK", "DELE 1", "+OK", "RETR 2", "-ERR [SYS/TEMP] unable to read", "RETR 1", "-ERR"},
			record: "#1 +OK POP3 server ready; USER bob: +OK send PASS; PASS secret: +OK 2 messages; DELE 1: +OK message 1 deleted; RETR 2: -ERR [SYS/TEMP] unable to read; RETR 1: -ERR message already deleted",
			left:   2,
		},
		{
			name:   "dropped at RETR",
			rules:  []Rule{At("RETR").Drop()},
			dialog: []string{"", "+OK", "USER bob", "+OK", "PASS secret", "+OK", "DELE 2", "+OK", "RETR 1", "EOF"},
			record: "#1 +OK POP3 server ready; USER bob: +OK send PASS; PASS secret: +OK 2 messages; DELE 2: +OK message 2 deleted; RETR 1: (no reply)",
			left:   2,
		},
		{
			name:   "refused greeting",
			rules:  []Rule{At(Connect).Err("[SYS/TEMP] maintenance")},
			dialog: []string{"", "-ERR [SYS/TEMP] maintenance", "", "EOF"},
			record: "#1 -ERR [SYS/TEMP] maintenance",
			left:   2,
		},
		{
			name:   "dropped before the greeting",
			rules:  []Rule{At(Connect).Drop()},
			dialog: []string{"", "EOF"},
			record: "#1 dropped",
			left:   2,
		},
		{
			name:   "a rule for the second attempt",
			rules:  []Rule{OnAttempt(2).At("USER").Err("no")},
			dialog: []string{"", "+OK", "USER bob", "+OK"},
			record: "#1 +OK POP3 server ready; USER bob: +OK send PASS",
			left:   2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := NewServer(t, User("bob", "secret", m1, m2))
			srv.Script(tc.rules...)
			c := dial(t, srv.Addr)
			for i := 0; i < len(tc.dialog); i += 2 {
				var got string
				if tc.dialog[i] == "" {
					got = c.line()
				} else {
					got = c.cmd(tc.dialog[i])
				}
				if !strings.HasPrefix(got, tc.dialog[i+1]) {
					t.Fatalf("%q: got %q, want %q", tc.dialog[i], got, tc.dialog[i+1])
				}
				if tc.dialog[i] == "RETR 1" && strings.HasPrefix(got, "+OK") {
					if body := c.multi(); body != m1 {
						t.Errorf("RETR 1 gave %q, want %q", body, m1)
					}
				}
			}
			c.c.Close()
			// The session ends after the client closes: wait for QUIT's
			// update (or its absence) to be visible.
			deadline := time.Now().Add(5 * time.Second)
			for len(srv.Mailbox("bob")) != tc.left && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := len(srv.Mailbox("bob")); n != tc.left {
				t.Errorf("%d messages left, want %d", n, tc.left)
			}
			atts := srv.Attempts()
			if len(atts) != 1 || atts[0].String() != tc.record {
				t.Errorf("attempts\n got %v\nwant %s", atts, tc.record)
			}
		})
	}
}

// TestRetrieveExactly: a message comes back as given, with CRLF, whatever
// its line ends, dots and 8-bit bytes.
func TestRetrieveExactly(t *testing.T) {
	msgs := []string{
		"Subject: a\r\n\r\nbody\r\n",
		"Subject: b\n\n.starts with a dot\n..two\n",
		"Subject: c\r\n\r\ncaf\xc3\xa9 \x00 nul\r\n" + strings.Repeat("y", 10000) + "\r\n",
	}
	srv := NewServer(t, User("joe", "pw", msgs...))
	c := dial(t, srv.Addr)
	c.line()
	c.cmd("USER joe")
	c.cmd("PASS pw")
	for i, m := range msgs {
		want := strings.ReplaceAll(strings.ReplaceAll(m, "\r\n", "\n"), "\n", "\r\n")
		if r := c.cmd("RETR " + string(rune('1'+i))); !strings.HasPrefix(r, "+OK") {
			t.Fatalf("RETR: %q", r)
		}
		if got := c.multi(); got != want {
			t.Errorf("message %d: got %q, want %q", i+1, got, want)
		}
		if raw := string(srv.Mailbox("joe")[i].Raw); raw != want {
			t.Errorf("Mailbox: %q", raw)
		}
	}
	if r := c.cmd("UIDL 3"); r != "+OK 3 pop3test.3" {
		t.Errorf("UIDL 3: %q", r)
	}
}

// TestInUseAndLimits: a second session of a mailbox is refused, and a
// client's endless line or flood of commands is bounded by the server.
func TestInUseAndLimits(t *testing.T) {
	srv := NewServer(t, User("bob", "secret", "Subject: x\r\n\r\nx\r\n"))
	c1 := dial(t, srv.Addr)
	c1.line()
	c1.cmd("USER bob")
	if r := c1.cmd("PASS secret"); !strings.HasPrefix(r, "+OK") {
		t.Fatal(r)
	}
	c2 := dial(t, srv.Addr)
	c2.line()
	c2.cmd("USER bob")
	if r := c2.cmd("PASS secret"); !strings.HasPrefix(r, "-ERR [IN-USE]") {
		t.Errorf("second session: %q", r)
	}
	// A line longer than the server allows: refused by the server.
	if r := c2.cmd(strings.Repeat("x", 100000)); r != "-ERR line too long" {
		t.Errorf("long line: %q", r)
	}
	// Many commands: each recorded with its reply.
	for range 500 {
		c2.cmd("NOOP")
	}
	a := srv.Attempts()[1]
	if n := len(a.Commands); n != 503 || a.Commands[502].Reply == "" {
		t.Errorf("%d commands recorded, last %+v", n, a.Commands[n-1])
	}
	// An unknown user, a user without a password.
	srv.Deliver("nopass", "x\r\n")
	for _, u := range []string{"nobody", "nopass"} {
		c := dial(t, srv.Addr)
		c.line()
		c.cmd("USER " + u)
		if r := c.cmd("PASS "); !strings.HasPrefix(r, "-ERR") {
			t.Errorf("%s logged in: %q", u, r)
		}
	}
}

func TestAuthPlainAndCompat(t *testing.T) {
	srv := NewServer(t, Compat(), User("bob", "secret", "x\n"))
	c := dial(t, srv.Addr)
	if g := c.line(); !strings.HasPrefix(g, "+OK <") {
		t.Errorf("compat greeting %q", g)
	}
	c.cmd("USER bob")
	if r := c.cmd("PASS secret"); r != "+OK " {
		t.Errorf("compat PASS: %q", r)
	}
	srv2 := NewServer(t, User("bob", "secret"))
	c2 := dial(t, srv2.Addr)
	c2.line()
	if r := c2.cmd("AUTH PLAIN AGJvYgBzZWNyZXQ="); !strings.HasPrefix(r, "+OK") {
		t.Errorf("AUTH PLAIN: %q", r)
	}
	if a := srv2.Attempts()[0]; a.User != "bob" {
		t.Errorf("user %q", a.User)
	}
}

func TestScriptMisuse(t *testing.T) {
	for _, r := range []Rule{OnAttempt(1).Err("x"), At("RETR"), At("RETR 1").Drop(), At("RETR").Err("a\r\nb")} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Script(%v) did not panic", r)
				}
			}()
			NewUnstarted().Script(r)
		}()
	}
}

func TestTimesDelayAndReset(t *testing.T) {
	srv := NewServer(t, User("bob", "secret"))
	srv.Script(At("NOOP").Delay(100*time.Millisecond).Times(1), At("NOOP").Err("busy").Times(1))
	c := dial(t, srv.Addr)
	c.line()
	c.cmd("USER bob")
	c.cmd("PASS secret")
	start := time.Now()
	if r := c.cmd("NOOP"); r != "-ERR busy" {
		t.Errorf("first NOOP %q", r)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Error("no delay")
	}
	if r := c.cmd("NOOP"); !strings.HasPrefix(r, "+OK") {
		t.Errorf("second NOOP %q", r)
	}
	srv.Reset()
	c2 := dial(t, srv.Addr)
	c2.line()
	if a := srv.Attempts(); len(a) != 1 || a[0].Number != 1 {
		t.Errorf("after Reset %v", a)
	}
	if srv.Host() != "127.0.0.1" || srv.Port() == 0 {
		t.Errorf("Host %q Port %d", srv.Host(), srv.Port())
	}
}
