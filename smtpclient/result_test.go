package smtpclient

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

// qmail-rspawn's combination of qmail-remote's per-recipient letters and
// the message line into one result for a single recipient.
func TestRspawnResult(t *testing.T) {
	const h = "h127.0.0.1 does not like recipient.\nRemote host said: 550 no\n"
	const s = "s127.0.0.1 does not like recipient.\nRemote host said: 450 later\n"
	for _, tc := range []struct{ in, want string }{
		{"r\x00K1.2.3.4 accepted message.\nRemote host said: 250 ok\n\x00", "K1.2.3.4 accepted message.\nRemote host said: 250 ok\n"},
		{h + "\x00DGiving up on 127.0.0.1.\n\x00", "D" + h[1:] + "Giving up on 127.0.0.1.\n"},
		{s + "\x00DGiving up on 127.0.0.1.\n\x00", "Z" + s[1:] + "Giving up on 127.0.0.1.\n"},
		{"ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 554 go away\n\x00", "ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 554 go away\n"},
		{"r\x00ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n\x00", "ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n"},
		{"", "Zqmail-remote produced no output.\n"},
		{"x\x00", "Dx"[0:1]},
	} {
		if got := string(RspawnResult([]byte(tc.in))); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestReadReply(t *testing.T) {
	for _, tc := range []struct {
		in    string
		code  int
		lines []string
		enh   string
		err   error
	}{
		{"250 ok\r\n", 250, []string{"250 ok"}, "", nil},
		{"250-a\r\n250-b\r\n250 c\r\nnext", 250, []string{"250-a", "250-b", "250 c"}, "", nil},
		{"550 5.1.1 no such user\r\n", 550, []string{"550 5.1.1 no such user"}, "5.1.1", nil},
		{"550 4.1.1 class mismatch\r\n", 550, []string{"550 4.1.1 class mismatch"}, "", nil},
		{"250\n", 250, []string{"250"}, "", nil},
		{"554 a\x00b\rc\r\n", 554, []string{"554 a?bc"}, "", nil},
		{"220-x\r\n220", 220, []string{"220-x"}, "", errUnexpectedEOF},
		{"abc hi\r\n", 0, []string{"abc hi"}, "", errMalformed},
		{"650 no\r\n", 0, []string{"650 no"}, "", errMalformed},
		{"", 0, nil, "", errUnexpectedEOF},
	} {
		r, err := readReply(bufio.NewReader(strings.NewReader(tc.in)))
		if !errors.Is(err, tc.err) || r.Code != tc.code || strings.Join(r.Lines, "|") != strings.Join(tc.lines, "|") || r.Enhanced() != tc.enh {
			t.Errorf("%q: %d %q %q %v", tc.in, r.Code, r.Lines, r.Enhanced(), err)
		}
	}
	// At most 5000 bytes of text are kept, but the whole reply is read.
	long := strings.Repeat("250-"+strings.Repeat("x", 996)+"\r\n", 10) + "250 end\r\nNEXT"
	br := bufio.NewReader(strings.NewReader(long))
	r, err := readReply(br)
	if err != nil || len(r.Text()) > 5000 {
		t.Errorf("long reply: %d bytes kept, %v", len(r.Text()), err)
	}
	if rest, _ := br.ReadString(0); rest != "NEXT" {
		t.Errorf("after long reply: %q", rest)
	}
	// An endless reply is cut.
	endless := strings.Repeat("250-"+strings.Repeat("y", 1000)+"\r\n", 2000)
	if _, err := readReply(bufio.NewReader(strings.NewReader(endless))); !errors.Is(err, errMalformed) {
		t.Errorf("endless reply: %v", err)
	}
}

func TestRecipientReport(t *testing.T) {
	f := newFake(t)
	f.SetReply(func(step string, n int, line string) string {
		if step == "RCPT" && strings.Contains(line, "bad") {
			return "550 no such user"
		}
		return ""
	})
	c := fakeClient(t, f)
	c.QmailCompat = true
	res, _ := c.Deliver(t.Context(), "example.net", "s@x", []string{"ok@example.net", "bad@example.net"}, strings.NewReader(testMsg))
	const k = "127.0.0.1 accepted message.\nRemote host said: 250 ok 12345 qp 678\n"
	if got := res.RecipientReport(0); got != k {
		t.Errorf("accepted: %q", got)
	}
	if got := res.RecipientReport(1); got != "127.0.0.1 does not like recipient.\nRemote host said: 550 no such user\n" {
		t.Errorf("rejected: %q", got)
	}
	// All rejected: the refusal and "Giving up".
	res, _ = c.Deliver(t.Context(), "example.net", "s@x", []string{"bad@example.net"}, strings.NewReader(testMsg))
	if got := res.RecipientReport(0); got != "127.0.0.1 does not like recipient.\nRemote host said: 550 no such user\nGiving up on 127.0.0.1.\n" {
		t.Errorf("all rejected: %q", got)
	}
	// A failure after the dot: accepted recipients get the message's text.
	f.SetReply(step1(".", "451 disk full"))
	res, _ = c.Deliver(t.Context(), "example.net", "s@x", []string{"ok@example.net"}, strings.NewReader(testMsg))
	if got := res.RecipientReport(0); got != "127.0.0.1 failed after I sent the message.\nRemote host said: 451 disk full\n" {
		t.Errorf("after dot: %q", got)
	}
	// No connection: the message's text.
	c.Routes = mustRoutes(t, ":127.0.0.1:1")
	res, _ = c.Deliver(t.Context(), "example.net", "s@x", []string{"ok@example.net"}, strings.NewReader(testMsg))
	if got := res.RecipientReport(0); got != "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n" {
		t.Errorf("no connection: %q", got)
	}
}
