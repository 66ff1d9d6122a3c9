package smtpclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testMsg = "Subject: t\n\nhello\n"

func deliverTo(t *testing.T, c *Client, rcpts []string, msg string) *Result {
	t.Helper()
	res, err := c.Deliver(t.Context(), "example.net", "snd@example.org", rcpts, strings.NewReader(msg))
	if err != res.Err {
		t.Errorf("returned error %v differs from Result.Err %v", err, res.Err)
	}
	return res
}

func nul(s string) string { return strings.ReplaceAll(s, `\0`, "\x00") }

// Each kind of remote answer, with qmail-remote's exact report bytes.
func TestDeliverVectors(t *testing.T) {
	two := []string{"r1@example.net", "r2@example.net"}
	for _, tc := range []struct {
		name   string
		reply  func(step string, n int, line string) string
		rcpts  []string
		msg    string
		report string
		log    []string // the dialogue the server saw, when checked
	}{
		{name: "1 accept both", report: `r\0r\0K127.0.0.1 accepted message.` + "\nRemote host said: 250 ok 12345 qp 678\n" + `\0`,
			log: []string{"HELO helo.example.org", "MAIL FROM:<snd@example.org>", "RCPT TO:<r1@example.net>", "RCPT TO:<r2@example.net>", "DATA", "<data>", "QUIT"}},
		{name: "2 second recipient 550",
			reply: func(step string, n int, _ string) string {
				if step == "RCPT" && n == 2 {
					return "550 no such user"
				}
				return ""
			},
			report: `r\0h127.0.0.1 does not like recipient.` + "\nRemote host said: 550 no such user\n" + `\0K127.0.0.1 accepted message.` + "\nRemote host said: 250 ok 12345 qp 678\n" + `\0`},
		{name: "3 both rejected",
			reply: func(step string, n int, _ string) string {
				if step == "RCPT" {
					return []string{"", "550 no", "450 later"}[n]
				}
				return ""
			},
			report: `h127.0.0.1 does not like recipient.` + "\nRemote host said: 550 no\n" + `\0s127.0.0.1 does not like recipient.` + "\nRemote host said: 450 later\n" + `\0DGiving up on 127.0.0.1.` + "\n" + `\0`,
			log:    []string{"HELO helo.example.org", "MAIL FROM:<snd@example.org>", "RCPT TO:<r1@example.net>", "RCPT TO:<r2@example.net>", "QUIT"}},
		{name: "4 greeting 554", reply: step1("GREETING", "554 go away"),
			report: "ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 554 go away\n" + `\0`, log: []string{"QUIT"}},
		{name: "4 greeting 250", reply: step1("GREETING", "250 hello"),
			report: "ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 250 hello\n" + `\0`},
		{name: "4 greeting multi-line", reply: step1("GREETING", "220-hello\n220 there"),
			report: `r\0r\0K127.0.0.1 accepted message.` + "\nRemote host said: 250 ok 12345 qp 678\n" + `\0`},
		{name: "5 HELO 501", reply: step1("HELO", "501 bad helo"),
			report: "ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 501 bad helo\n" + `\0`,
			log:    []string{"HELO helo.example.org", "QUIT"}},
		{name: "6 MAIL 553", reply: step1("MAIL", "553 sender rejected"),
			report: "DConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 553 sender rejected\n" + `\0`,
			log:    []string{"HELO helo.example.org", "MAIL FROM:<snd@example.org>", "QUIT"}},
		{name: "6 MAIL 451", reply: step1("MAIL", "451 try later"),
			report: "ZConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 451 try later\n" + `\0`},
		{name: "7 DATA 554", reply: step1("DATA", "554 no data"),
			report: `r\0r\0D127.0.0.1 failed on DATA command.` + "\nRemote host said: 554 no data\n" + `\0`},
		{name: "7 DATA 451", reply: step1("DATA", "451 later"),
			report: `r\0r\0Z127.0.0.1 failed on DATA command.` + "\nRemote host said: 451 later\n" + `\0`},
		{name: "8 after dot 452", reply: step1(".", "452 full"),
			report: `r\0r\0Z127.0.0.1 failed after I sent the message.` + "\nRemote host said: 452 full\n" + `\0`},
		{name: "8 after dot multi-line 554", reply: step1(".", "554-first line\n554 second line"),
			report: `r\0r\0D127.0.0.1 failed after I sent the message.` + "\nRemote host said: 554-first line\n554 second line\n" + `\0`},
		{name: "9 close after the dot", reply: step1(".", "CLOSE"), rcpts: []string{"r1@example.net"},
			report: `r\0ZConnected to 127.0.0.1 but connection died. Possible duplicate! (#4.4.2)` + "\n" + `\0`},
		{name: "11 partial final line", msg: "Subject: t\n\nno final newline",
			report: `r\0r\0DSMTP cannot transfer messages with partial final lines. (#5.6.2)` + "\n" + `\0`,
			log:    []string{"HELO helo.example.org", "MAIL FROM:<snd@example.org>", "RCPT TO:<r1@example.net>", "RCPT TO:<r2@example.net>", "DATA", "<data cut>"}},
		// Connection drops at each step.
		{name: "drop at greeting", reply: step1("GREETING", "CLOSE"),
			report: `ZConnected to 127.0.0.1 but connection died. (#4.4.2)` + "\n" + `\0`},
		{name: "drop at HELO", reply: step1("HELO", "CLOSE"),
			report: `ZConnected to 127.0.0.1 but connection died. (#4.4.2)` + "\n" + `\0`},
		{name: "drop at MAIL", reply: step1("MAIL", "CLOSE"),
			report: `ZConnected to 127.0.0.1 but connection died. (#4.4.2)` + "\n" + `\0`},
		{name: "drop at second RCPT", reply: step1("RCPT", "", "CLOSE"),
			report: `r\0ZConnected to 127.0.0.1 but connection died. (#4.4.2)` + "\n" + `\0`},
		{name: "drop at DATA", reply: step1("DATA", "CLOSE"),
			report: `r\0r\0ZConnected to 127.0.0.1 but connection died. (#4.4.2)` + "\n" + `\0`},
		{name: "partial reply line", reply: step1("MAIL", "250 o\x00k"),
			report: `r\0r\0K127.0.0.1 accepted message.` + "\nRemote host said: 250 ok 12345 qp 678\n" + `\0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.SetReply(tc.reply)
			c := fakeClient(t, f)
			c.QmailCompat = true
			rcpts := tc.rcpts
			if rcpts == nil {
				rcpts = two
			}
			msg := tc.msg
			if msg == "" {
				msg = testMsg
			}
			res := deliverTo(t, c, rcpts, msg)
			if got, want := string(res.Report()), nul(tc.report); got != want {
				t.Errorf("report\n got %q\nwant %q", got, want)
			}
			f.Settle()
			if tc.log != nil {
				if got := f.Log(); !slices.Equal(got, tc.log) {
					t.Errorf("dialogue\n got %q\nwant %q", got, tc.log)
				}
			}
		})
	}
}

// step1 replies to the nth occurrence of step with replies[n-1] ("" for the
// default).
func step1(step string, replies ...string) func(string, int, string) string {
	return func(s string, n int, _ string) string {
		if s == step && n <= len(replies) {
			return replies[n-1]
		}
		return ""
	}
}

// Nothing listening.
func TestDeliverNoConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	c := &Client{QmailCompat: true, Routes: mustRoutes(t, ":127.0.0.1:"+strconv.Itoa(port))}
	res := deliverTo(t, c, []string{"r1@example.net"}, testMsg)
	if got, want := string(res.Report()), "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\x00"; got != want {
		t.Errorf("report %q, want %q", got, want)
	}
	if !errors.Is(res.Err, ErrNoConnection) || IsPermanent(res.Err) {
		t.Errorf("err %v", res.Err)
	}
	if res.Recipients[0].Err != res.Err {
		t.Errorf("recipient error %v", res.Recipients[0].Err)
	}
}

// Address quoting.
func TestDeliverQuoting(t *testing.T) {
	f := newFake(t)
	c := fakeClient(t, f)
	c.QmailCompat = true
	rcpts := []string{"a b@example.net", ".x@example.net", "a..b@example.net", `q"t\\@example.net`, "noat"}
	res, err := c.Deliver(t.Context(), "example.net", "", rcpts, strings.NewReader(testMsg))
	if err != nil {
		t.Fatal(err, res)
	}
	f.Settle()
	want := []string{"HELO helo.example.org", "MAIL FROM:<>", `RCPT TO:<"a b"@example.net>`, `RCPT TO:<".x"@example.net>`,
		`RCPT TO:<"a..b"@example.net>`, `RCPT TO:<"q\"t\\\\"@example.net>`, "RCPT TO:<noat>", "DATA", "<data>", "QUIT"}
	if got := f.Log(); !slices.Equal(got, want) {
		t.Errorf("dialogue\n got %q\nwant %q", got, want)
	}
}

// The bytes after 354, end to end.
func TestDeliverBlast(t *testing.T) {
	for _, tc := range []struct{ stored, sent string }{
		{"", ".\r\n"},
		{".\n", "..\r\n.\r\n"},
		{".\r\n", "..\r\n.\r\n"},
		{"cr\rlf\n", "cr\r\nlf\r\n.\r\n"},
		{"Subject: t\n\n.lead\nx\r.\nafter\n", "Subject: t\r\n\r\n..lead\r\nx\r\n..\r\nafter\r\n.\r\n"},
		{"no final newline", "no final newline\r\n.\r\n"}, // modern: the line end is added
		{"8bit \xe9\x00 nul\n", "8bit \xe9\x00 nul\r\n.\r\n"},
	} {
		f := newFake(t)
		c := fakeClient(t, f)
		if _, err := c.Deliver(t.Context(), "example.net", "s@x", []string{"r@example.net"}, strings.NewReader(tc.stored)); err != nil {
			t.Fatalf("%q: %v", tc.stored, err)
		}
		f.Settle()
		if got := f.Data(); len(got) != 1 || got[0] != tc.sent {
			t.Errorf("stored %q: sent %q, want %q", tc.stored, got, tc.sent)
		}
	}
}

// Modern mode: EHLO, and the extensions when offered.
func TestDeliverESMTP(t *testing.T) {
	f := newFake(t)
	f.SetExt([]string{"PIPELINING", "SIZE 100000", "8BITMIME", "SMTPUTF8"})
	c := fakeClient(t, f)
	msg := "Subject: caf\xc3\xa9\n\nbody\n"
	res, err := c.Deliver(t.Context(), "example.net", "snd@example.org", []string{"r1@example.net", "r2@example.net"}, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	f.Settle()
	size := strconv.Itoa(len(msg) + 3) // CRLF form
	want := []string{"EHLO helo.example.org", "MAIL FROM:<snd@example.org> SIZE=" + size + " BODY=8BITMIME",
		"RCPT TO:<r1@example.net>", "RCPT TO:<r2@example.net>", "DATA", "<data>", "QUIT"}
	if got := f.Log(); !slices.Equal(got, want) {
		t.Errorf("dialogue\n got %q\nwant %q", got, want)
	}
	for _, r := range res.Recipients {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Address, r.Err)
		}
	}
	if res.Text != "127.0.0.1 accepted message.\nRemote host said: 250 ok 12345 qp 678\n" {
		t.Errorf("text %q", res.Text)
	}
	// A 7-bit message is not declared 8BITMIME.
	if _, err := c.Deliver(t.Context(), "example.net", "s@x", []string{"r@example.net"}, strings.NewReader(testMsg)); err != nil {
		t.Fatal(err)
	}
	f.Settle()
	if want := "MAIL FROM:<s@x> SIZE=" + strconv.Itoa(len(testMsg)+3); !slices.Contains(f.Log(), want) {
		t.Errorf("dialogue %q lacks %q", f.Log(), want)
	}
}

func TestDeliverSizeLimit(t *testing.T) {
	f := newFake(t)
	f.SetExt([]string{"SIZE 10"})
	c := fakeClient(t, f)
	res := deliverTo(t, c, []string{"r@example.net"}, testMsg)
	if !errors.Is(res.Err, ErrTooBig) || !IsPermanent(res.Err) || !strings.Contains(ReportText(res.Err), "(#5.3.4)") {
		t.Errorf("err %v", res.Err)
	}
	f.Settle()
	if got := f.Log(); slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "MAIL") }) {
		t.Errorf("MAIL sent for a too-big message: %q", got)
	}
	// A message that cannot be measured (not seekable) is sent without SIZE=.
	f2 := newFake(t)
	f2.SetExt([]string{"SIZE 100000"})
	c2 := fakeClient(t, f2)
	if _, err := c2.Deliver(t.Context(), "example.net", "s@x", []string{"r@example.net"}, io.LimitReader(strings.NewReader(testMsg), 1<<20)); err != nil {
		t.Fatal(err)
	}
	f2.Settle()
	if got := f2.Log(); got[1] != "MAIL FROM:<s@x>" {
		t.Errorf("unmeasured MAIL: %q", got[1])
	}
}

func TestDeliverEHLOFallback(t *testing.T) {
	for _, tc := range []struct {
		ehlo   string
		want   []string
		report string
	}{
		{"502 no", []string{"EHLO helo.example.org", "HELO helo.example.org", "MAIL FROM:<snd@example.org>"}, "K"},
		{"500 what", []string{"EHLO helo.example.org", "HELO helo.example.org"}, "K"},
		{"504 hmm", []string{"EHLO helo.example.org", "HELO helo.example.org"}, "K"},
		{"550 go away", []string{"EHLO helo.example.org", "QUIT"}, "ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 550 go away\n"},
	} {
		f := newFake(t)
		f.SetExt([]string{})
		f.SetReply(step1("EHLO", tc.ehlo))
		res := deliverTo(t, fakeClient(t, f), []string{"r@example.net"}, testMsg)
		f.Settle()
		got := f.Log()
		if len(got) < len(tc.want) || !slices.Equal(got[:len(tc.want)], tc.want) {
			t.Errorf("EHLO %s: dialogue %q", tc.ehlo, got)
		}
		rep := string(res.Report())
		if tc.report == "K" && !strings.Contains(rep, "\x00K127.0.0.1 accepted") || tc.report != "K" && rep != tc.report+"\x00" {
			t.Errorf("EHLO %s: report %q", tc.ehlo, rep)
		}
	}
}

// Pipelining: MAIL and every RCPT in one write; per-recipient results.
func TestDeliverPipelining(t *testing.T) {
	f := newFake(t)
	f.SetExt([]string{"PIPELINING"})
	f.SetReply(func(step string, n int, line string) string {
		if step == "RCPT" && strings.Contains(line, "bad") {
			return "550 5.1.1 no such user"
		}
		if step == "RCPT" && strings.Contains(line, "later") {
			return "451 4.3.0 try later"
		}
		return ""
	})
	c := fakeClient(t, f)
	rcpts := []string{"a@example.net", "bad@example.net", "later@example.net", "b@example.net"}
	res := deliverTo(t, c, rcpts, testMsg)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	want := []struct {
		ok, perm bool
		enh      string
	}{{true, false, ""}, {false, true, "5.1.1"}, {false, false, "4.3.0"}, {true, false, ""}}
	for i, w := range want {
		r := res.Recipients[i]
		if (r.Err == nil) != w.ok || (r.Err != nil && IsPermanent(r.Err) != w.perm) {
			t.Errorf("%s: %v", r.Address, r.Err)
		}
		var e *Error
		if !w.ok && (!errors.As(r.Err, &e) || e.Enhanced != w.enh || e.Code == 0 || e.Host != "127.0.0.1") {
			t.Errorf("%s: error %+v", r.Address, e)
		}
	}
	// MAIL fails under pipelining: the RCPT replies are read and dropped.
	f.SetReply(step1("MAIL", "452 4.3.1 no space"))
	res = deliverTo(t, c, rcpts, testMsg)
	if res.Err == nil || IsPermanent(res.Err) || res.Recipients[0].Err != res.Err || !strings.HasPrefix(string(res.Report()), "ZConnected to 127.0.0.1 but sender was rejected.") {
		t.Errorf("MAIL 452 pipelined: %q %v", res.Report(), res.Err)
	}
}

// More than 100 recipients: several transactions on one connection; a 452
// defers the rest to the next transaction.
func TestDeliverManyRecipients(t *testing.T) {
	f := newFake(t)
	f.SetExt([]string{})
	perTx := 0
	f.SetReply(func(step string, n int, line string) string {
		switch step {
		case "MAIL":
			perTx = 0
		case "RCPT":
			perTx++
			if perTx > 60 {
				return "452 4.5.3 too many recipients"
			}
		}
		return ""
	})
	c := fakeClient(t, f)
	var rcpts []string
	for i := range 150 {
		rcpts = append(rcpts, "r"+strconv.Itoa(i)+"@example.net")
	}
	res := deliverTo(t, c, rcpts, testMsg)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	for _, r := range res.Recipients {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Address, r.Err)
		}
	}
	f.Settle()
	if f.Conns() != 1 || len(f.Data()) != 3 {
		t.Errorf("%d connections, %d transactions; want 1 and 3", f.Conns(), len(f.Data()))
	}
	// Not seekable: only the first transaction; the rest are deferred.
	res, err := c.Deliver(t.Context(), "example.net", "s@x", rcpts, io.LimitReader(strings.NewReader(testMsg), 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for _, r := range res.Recipients {
		if r.Err == nil {
			ok++
		} else if IsPermanent(r.Err) {
			t.Errorf("%s: permanent %v", r.Address, r.Err)
		}
	}
	if ok != 60 {
		t.Errorf("%d delivered without rewinding, want 60", ok)
	}
}

// Modern mode moves on to the next address when the greeting or EHLO fails
// or the connection drops before MAIL (RFC 5321 section 5.1); qmail-remote
// reports a temporary failure at the first.
func TestDeliverNextHost(t *testing.T) {
	bad := newFake(t)
	bad.SetReply(step1("GREETING", "554 go away"))
	drop := newFake(t)
	drop.SetExt([]string{})
	drop.SetReply(step1("EHLO", "CLOSE"))
	good := newFake(t)
	good.SetExt([]string{})
	// Three addresses on loopback, each with its own port: route through a
	// Dialer that maps them.
	ports := map[string]int{"127.0.0.2": bad.Port, "127.0.0.3": drop.Port, "127.0.0.4": good.Port}
	c := &Client{
		Hostname:   "h",
		Resolver:   staticResolver{mx: []*net.MX{{Host: "a.", Pref: 10}}, ip: map[string][]netip.Addr{"a": addrs("127.0.0.2", "127.0.0.3", "127.0.0.4")}},
		Dialer:     portDialer(ports),
		LocalAddrs: noLocal,
	}
	res := deliverTo(t, c, []string{"r@example.net"}, testMsg)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Host.Addr.String() != "127.0.0.4" || !strings.HasPrefix(res.Text, "127.0.0.4 accepted message.") {
		t.Errorf("delivered at %v: %q", res.Host, res.Text)
	}
	// All fail: the last host's error is reported.
	delete(ports, "127.0.0.4")
	res = deliverTo(t, c, []string{"r@example.net"}, testMsg)
	if got := string(res.Report()); got != "ZConnected to 127.0.0.3 but connection died. (#4.4.2)\n\x00" {
		t.Errorf("report %q", got)
	}
	// Compat mode reports at the first host that answered.
	c.QmailCompat = true
	res = deliverTo(t, c, []string{"r@example.net"}, testMsg)
	if got := string(res.Report()); got != "ZConnected to 127.0.0.2 but greeting failed.\nRemote host said: 554 go away\n\x00" {
		t.Errorf("compat report %q", got)
	}
}

type staticResolver struct {
	mx []*net.MX
	ip map[string][]netip.Addr
}

func (r staticResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	if r.mx == nil {
		return nil, notFound(name, "")
	}
	return r.mx, nil
}

func (r staticResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := r.ip[host]; ok {
		return a, nil
	}
	return nil, notFound(host, "")
}

// portDialer dials 127.0.0.1 at the port mapped for the address asked;
// unmapped addresses are refused.
type portDialer map[string]int

func (p portDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, _, _ := net.SplitHostPort(address)
	port, ok := p[host]
	if !ok {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused")}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, "127.0.0.1:"+strconv.Itoa(port))
}

func TestDeliverUTF8(t *testing.T) {
	f := newFake(t)
	f.SetExt([]string{})
	c := fakeClient(t, f)
	res := deliverTo(t, c, []string{"j\xc3\xb6rg@example.net", "ascii@example.net"}, testMsg)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if e := res.Recipients[0].Err; !errors.Is(e, ErrUTF8) || !IsPermanent(e) || !strings.Contains(ReportText(e), "(#5.6.7)") {
		t.Errorf("non-ASCII recipient without SMTPUTF8: %v", e)
	}
	if res.Recipients[1].Err != nil {
		t.Errorf("ASCII recipient: %v", res.Recipients[1].Err)
	}
	f.SetExt([]string{"SMTPUTF8"})
	res = deliverTo(t, c, []string{"j\xc3\xb6rg@example.net"}, testMsg)
	f.Settle()
	if res.Err != nil || !slices.Contains(f.Log(), "MAIL FROM:<snd@example.org> SMTPUTF8") {
		t.Errorf("SMTPUTF8: %v %q", res.Err, f.Log())
	}
}

// Replies outside 200–599, malformed ones, and 421 are temporary.
func TestDeliverBadReplies(t *testing.T) {
	for _, tc := range []struct {
		step, reply string
	}{
		{"MAIL", "xyz garbage"},
		{"MAIL", "650 out of range"},
		{"MAIL", "421 4.3.2 shutting down"},
		{"RCPT", "421 shutting down"},
		{".", "199 what"},
		{"DATA", "250 not 354"},
		{"DATA", "999 what"},
	} {
		f := newFake(t)
		f.SetExt([]string{})
		f.SetReply(step1(tc.step, tc.reply))
		res := deliverTo(t, fakeClient(t, f), []string{"r@example.net"}, testMsg)
		if res.Err == nil || IsPermanent(res.Err) {
			t.Errorf("%s %q: err %v", tc.step, tc.reply, res.Err)
		}
		for _, r := range res.Recipients {
			if r.Err == nil || IsPermanent(r.Err) {
				t.Errorf("%s %q: recipient %v", tc.step, tc.reply, r.Err)
			}
		}
	}
}

func TestDeliverContext(t *testing.T) {
	f := newFake(t)
	f.SetExt([]string{})
	block := make(chan struct{})
	defer close(block)
	f.SetReply(func(step string, n int, line string) string {
		if step == "MAIL" {
			<-block
		}
		return ""
	})
	c := fakeClient(t, f)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := c.Deliver(ctx, "example.net", "s@x", []string{"r@example.net"}, strings.NewReader(testMsg))
	if err == nil || IsPermanent(err) || !errors.Is(err, ErrConnectionDied) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled delivery: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
	_ = res
	// The remote timeout applies too.
	c.Timeouts.Remote = 200 * time.Millisecond
	res, err = c.Deliver(t.Context(), "example.net", "s@x", []string{"r@example.net"}, strings.NewReader(testMsg))
	if !errors.Is(err, ErrConnectionDied) || !strings.Contains(string(res.Report()), "connection died") {
		t.Errorf("timeout: %v", err)
	}
}

func TestDeliverMessageReadError(t *testing.T) {
	f := newFake(t)
	c := fakeClient(t, f)
	r := &failReader{data: "Subject: x\n\npart", err: errors.New("disk on fire")}
	res, err := c.Deliver(t.Context(), "example.net", "s@x", []string{"r@example.net"}, r)
	if !errors.Is(err, ErrMessageRead) || IsPermanent(err) || string(res.Report()) != "r\x00ZUnable to read message. (#4.3.0)\n\x00" {
		t.Errorf("%q %v", res.Report(), err)
	}
}

type failReader struct {
	data string
	err  error
	done bool
}

func (r *failReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, r.err
	}
	r.done = true
	return copy(p, r.data), nil
}

// copyData alone, for the encoding rules and chunk boundaries.
func TestCopyData(t *testing.T) {
	in := "a\r\n.b\r\rc\n\n..d\re"
	want := "a\r\n..b\r\n\r\nc\r\n\r\n...d\r\ne\r\n.\r\n"
	for chunk := 1; chunk <= len(in); chunk++ {
		var out bytes.Buffer
		bw := bufioWriter(&out)
		readErr, writeErr := copyData(bw, &chunkReader{s: in, n: chunk}, false, make([]byte, 7))
		if readErr != nil || writeErr != nil {
			t.Fatal(readErr, writeErr)
		}
		if out.String() != want {
			t.Errorf("chunk %d: %q, want %q", chunk, out.String(), want)
		}
	}
	var out bytes.Buffer
	if readErr, _ := copyData(bufioWriter(&out), strings.NewReader("x\nno lf"), true, make([]byte, 7)); readErr != errPartial {
		t.Errorf("strict partial line: %v", readErr)
	}
	if readErr, _ := copyData(bufioWriter(&out), strings.NewReader("x\r"), true, make([]byte, 7)); readErr != nil {
		t.Errorf("final bare CR: %v", readErr)
	}
	size, eight, err := measure(strings.NewReader(in), make([]byte, 5))
	// RFC 1870 section 3: neither the final ".\r\n" nor the two stuffed dots count.
	if err != nil || size != int64(len(want)-3-2) || eight {
		t.Errorf("measure: %d %v %v", size, eight, err)
	}
}

type chunkReader struct {
	s string
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, ioEOF
	}
	n := min(r.n, len(p), len(r.s))
	copy(p, r.s[:n])
	r.s = r.s[n:]
	return n, nil
}
