package mta

import (
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/smtpserver"
)

var _ smtpserver.DSNEnqueuer = (*queue.Queue)(nil)

// dsnReport is an RFC 3464 report read from a Maildir message.
type dsnReport struct {
	fields map[string]string   // per-message fields
	rcpts  []map[string]string // per-recipient fields
	third  string              // the third part's content type
	body   string              // and its content
}

// parseDSN parses msg as a multipart/report of type delivery-status; ok is
// false when it is another message.
func parseDSN(t *testing.T, msg string) (rep dsnReport, ok bool) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" {
		return rep, false
	}
	if params["report-type"] != "delivery-status" {
		t.Fatalf("report-type %q", params["report-type"])
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types, parts []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		types = append(types, p.Header.Get("Content-Type"))
		parts = append(parts, string(b))
	}
	if len(parts) != 3 || types[1] != "message/delivery-status" {
		t.Fatalf("report parts %q", types)
	}
	field := func(g string) map[string]string {
		out := map[string]string{}
		for l := range strings.SplitSeq(g, "\n") {
			k, v, _ := strings.Cut(l, ":")
			out[k] = strings.TrimSpace(v)
		}
		return out
	}
	groups := strings.Split(strings.TrimSpace(strings.ReplaceAll(parts[1], "\r\n", "\n")), "\n\n")
	rep.fields = field(groups[0])
	for _, g := range groups[1:] {
		rep.rcpts = append(rep.rcpts, field(g))
	}
	rep.third, rep.body = types[2], parts[2]
	return rep, true
}

// TestDSNEndToEnd sends over SMTP, with the DSN extension, a message to a
// recipient whose delivery fails (RET=HDRS, ENVID, NOTIFY=FAILURE, ORCPT)
// and one to a local mailbox with NOTIFY=SUCCESS, and reads the RFC 3464
// reports that arrive in the sender's Maildir.
func TestDSNEndToEnd(t *testing.T) {
	r := start(t, "example.test")
	userHome := filepath.Dir(r.demo.Maildir)
	if err := os.WriteFile(filepath.Join(userHome, ".qmail-fail"), []byte("|exit 100\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := textproto.Dial("tcp", r.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	step := func(code int, format string, args ...any) string {
		t.Helper()
		if format != "" {
			if _, err := c.Cmd(format, args...); err != nil {
				t.Fatal(err)
			}
		}
		_, msg, err := c.ReadResponse(code)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		return msg
	}
	step(220, "")
	if ext := step(250, "EHLO client.example"); !strings.Contains(ext, "\nDSN") {
		t.Fatalf("EHLO without DSN: %q", ext)
	}
	step(250, "MAIL FROM:<demo@example.test> RET=HDRS ENVID=x+2B1")
	step(250, "RCPT TO:<demo-fail@example.test> NOTIFY=FAILURE ORCPT=rfc822;a@b")
	step(354, "DATA")
	step(250, "Subject: doomed\r\n\r\nsecret body\r\n.")
	step(250, "MAIL FROM:<demo@example.test> ENVID=y")
	step(250, "RCPT TO:<demo@example.test> NOTIFY=SUCCESS")
	step(354, "DATA")
	step(250, "Subject: welcome\r\n\r\nhello\r\n.")
	step(221, "QUIT")

	// The failure report, the message itself and the success report.
	got := waitMaildir(t, r.demo.Maildir, 3)
	var failed, delivered *dsnReport
	plain := 0
	for _, msg := range got {
		rep, ok := parseDSN(t, msg)
		switch {
		case !ok:
			plain++
			if !strings.Contains(msg, "Subject: welcome") {
				t.Errorf("unexpected message:\n%s", msg)
			}
		case len(rep.rcpts) == 1 && rep.rcpts[0]["Action"] == "failed":
			failed = &rep
		case len(rep.rcpts) == 1 && rep.rcpts[0]["Action"] == "delivered":
			delivered = &rep
		default:
			t.Errorf("unexpected report %+v", rep)
		}
	}
	if failed == nil || delivered == nil || plain != 1 {
		t.Fatalf("failed %v, delivered %v, plain %d:\n%s", failed, delivered, plain, strings.Join(got, "\n----\n"))
	}
	if failed.fields["Original-Envelope-Id"] != "x+1" || failed.fields["Reporting-MTA"] != "dns; example.test" {
		t.Errorf("failure report fields %v", failed.fields)
	}
	if f := failed.rcpts[0]; f["Original-Recipient"] != "rfc822;a@b" || f["Final-Recipient"] != "rfc822; demo-fail@example.test" || f["Status"][0] != '5' {
		t.Errorf("failure report recipient %v", f)
	}
	if failed.third != "text/rfc822-headers" || strings.Contains(failed.body, "secret body") || !strings.Contains(failed.body, "Subject: doomed") {
		t.Errorf("RET=HDRS gave %s:\n%s", failed.third, failed.body)
	}
	if delivered.fields["Original-Envelope-Id"] != "y" {
		t.Errorf("success report fields %v", delivered.fields)
	}
	if d := delivered.rcpts[0]; d["Final-Recipient"] != "rfc822; demo@example.test" || d["Status"] != "2.0.0" {
		t.Errorf("success report recipient %v", d)
	}
}

// TestDSNRelayedToSecondSystem sends with NOTIFY=SUCCESS to a second
// system that offers DSN: the request is passed on (RET, ENVID, NOTIFY,
// ORCPT), so the second system reports the delivery, not the first.
func TestDSNRelayedToSecondSystem(t *testing.T) {
	there := start(t, "there.test")
	here := start(t, "here.test")
	route := func(from, to *running, domain string) {
		host, port, _ := net.SplitHostPort(to.smtp)
		if err := os.WriteFile(from.sys.Home.Path("smtproutes"), []byte(domain+":"+host+":"+port+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := from.sys.ReloadHome(); err != nil {
			t.Fatal(err)
		}
	}
	route(here, there, "there.test")
	route(there, here, "here.test")
	c, err := textproto.Dial("tcp", here.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, s := range []struct {
		code int
		cmd  string
	}{
		{220, ""},
		{250, "EHLO client.example"},
		{250, "MAIL FROM:<demo@here.test> ENVID=z"},
		{250, "RCPT TO:<demo@there.test> NOTIFY=SUCCESS ORCPT=rfc822;orig+2Bx@here.test"},
		{354, "DATA"},
		{250, "Subject: across\r\n\r\nfrom here to there\r\n."},
		{221, "QUIT"},
	} {
		if s.cmd != "" {
			if _, err := c.Cmd("%s", s.cmd); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := c.ReadResponse(s.code); err != nil {
			t.Fatalf("%s: %v", s.cmd, err)
		}
	}
	waitMaildir(t, there.demo.Maildir, 1)
	got := waitMaildir(t, here.demo.Maildir, 1)
	rep, ok := parseDSN(t, got[0])
	if !ok || len(rep.rcpts) != 1 {
		t.Fatalf("not a report:\n%s", got[0])
	}
	if rep.fields["Reporting-MTA"] != "dns; there.test" || rep.fields["Original-Envelope-Id"] != "z" {
		t.Errorf("report fields %v", rep.fields)
	}
	if r := rep.rcpts[0]; r["Action"] != "delivered" || r["Original-Recipient"] != "rfc822;orig+x@here.test" {
		t.Errorf("report recipient %v", r)
	}
}
