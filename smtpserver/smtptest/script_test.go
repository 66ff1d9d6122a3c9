package smtptest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/smtpserver"
)

// sendWithRetry is the code under test of several tests: an application's
// send function that retries a temporary failure (4xx, or a connection
// lost) up to tries times, as mail-sending code must.
func sendWithRetry(addr, from string, to []string, msg []byte, tries int) (attempts int, err error) {
	for attempts = 1; ; attempts++ {
		err = smtp.SendMail(addr, nil, from, to, msg)
		var te *textproto.Error
		temporary := err != nil && (!errors.As(err, &te) || te.Code < 500)
		if !temporary || attempts == tries {
			return attempts, err
		}
	}
}

// session talks to the server with raw lines: each line is sent and the
// reply read (the whole of a multi-line reply, joined by "\n"); a line
// "<data>" sends the message body, dot-stuffed, with its final dot.
type session struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *session {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &session{t: t, c: c, br: bufio.NewReader(c)}
}

// read returns the next reply, or "EOF" when the server closed the
// connection.
func (s *session) read() string {
	var lines []string
	for {
		l, err := s.br.ReadString('\n')
		if err != nil {
			if len(lines) == 0 && (errors.Is(err, io.EOF) || isReset(err)) {
				return "EOF"
			}
			s.t.Fatalf("reading a reply: %v (after %q)", err, lines)
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

func (s *session) cmd(line string) string {
	s.t.Helper()
	if _, err := io.WriteString(s.c, line+"\r\n"); err != nil {
		return "EOF"
	}
	return s.read()
}

func (s *session) data(raw string) string {
	s.t.Helper()
	var b strings.Builder
	for _, l := range strings.SplitAfter(raw, "\r\n") {
		if strings.HasPrefix(l, ".") {
			b.WriteString(".")
		}
		b.WriteString(l)
	}
	b.WriteString(".\r\n")
	io.WriteString(s.c, b.String())
	return s.read()
}

func code(reply string) string {
	if len(reply) < 3 {
		return reply
	}
	return reply[:3]
}

// TestScript scripts each stage and checks what the client is told and
// what the attempt records.
func TestScript(t *testing.T) {
	const msg = "Subject: x\r\n\r\nhello\r\n"
	for _, tc := range []struct {
		name   string
		rules  []Rule
		dialog []string // command, then the reply's first line (or "EOF")
		record string   // the attempt's String()
	}{
		{
			name:   "no script",
			dialog: []string{"EHLO c.example", "250", "MAIL FROM:<a@example.com>", "250 2.1.0 ok", "RCPT TO:<b@example.org>", "250 2.1.5 ok", "DATA", "354", "<data>", "250", "QUIT", "221"},
			record: "#1 220; MAIL <a@example.com> 250; RCPT <b@example.org> 250; DATA 250",
		},
		{
			name:   "554 greeting: 503 until QUIT",
			rules:  []Rule{At(StageConnect).Reply(554, "5.7.1", "go away")},
			dialog: []string{"", "554 5.7.1 go away", "EHLO c.example", "503 5.5.1 bad sequence of commands", "MAIL FROM:<a@example.com>", "503", "QUIT", "221", "", "EOF"},
			record: "#1 554 5.7.1 go away",
		},
		{
			name:   "421 greeting and close",
			rules:  []Rule{At(StageConnect).Reply(421, "4.3.2", "not now")},
			dialog: []string{"", "421 4.3.2 not now", "", "EOF"},
			record: "#1 421 4.3.2 not now",
		},
		{
			name:   "dropped before the greeting",
			rules:  []Rule{At(StageConnect).Drop()},
			dialog: []string{"", "EOF"},
			record: "#1 dropped",
		},
		{
			name:   "MAIL refused",
			rules:  []Rule{At(StageMail, "A@example.com").Reply(553, "5.7.1", "not you")},
			dialog: []string{"EHLO c.example", "250", "MAIL FROM:<a@example.com>", "553 5.7.1 not you", "MAIL FROM:<other@example.com>", "250", "QUIT", "221"},
			record: "#1 220; MAIL <a@example.com> 553 5.7.1 not you; MAIL <other@example.com> 250",
		},
		{
			name:   "MAIL after HELO: no enhanced code on the wire",
			rules:  []Rule{At(StageMail).Reply(451, "4.3.0", "try later")},
			dialog: []string{"HELO c.example", "250", "MAIL FROM:<a@example.com>", "451 try later"},
			record: "#1 220; MAIL <a@example.com> 451 4.3.0 try later",
		},
		{
			name:   "421 at MAIL closes",
			rules:  []Rule{At(StageMail).Reply(421, "4.3.2", "shutting down")},
			dialog: []string{"EHLO c.example", "250", "MAIL FROM:<a@example.com>", "421 4.3.2 shutting down", "NOOP", "EOF"},
			record: "#1 220; MAIL <a@example.com> 421 4.3.2 shutting down",
		},
		{
			name:   "dropped at MAIL",
			rules:  []Rule{At(StageMail).Drop()},
			dialog: []string{"EHLO c.example", "250", "MAIL FROM:<a@example.com>", "EOF"},
			record: "#1 220; MAIL <a@example.com> dropped",
		},
		{
			name:   "550 for one recipient only",
			rules:  []Rule{At(StageRcpt, "bob@example.org").Reply(550, "5.1.1", "no such user")},
			dialog: []string{"EHLO c.example", "250", "MAIL FROM:<a@example.com>", "250", "RCPT TO:<Bob@Example.org>", "550 5.1.1 no such user", "RCPT TO:<carol@example.org>", "250", "DATA", "354", "<data>", "250"},
			record: "#1 220; MAIL <a@example.com> 250; RCPT <Bob@Example.org> 550 5.1.1 no such user; RCPT <carol@example.org> 250; DATA 250",
		},
		{
			name:   "refused DATA command",
			rules:  []Rule{At(StageDataCommand).Reply(554, "5.7.1", "no data today")},
			dialog: []string{"EHLO c.example", "250", "MAIL FROM:<a@example.com>", "250", "RCPT TO:<b@example.org>", "250", "DATA", "554 5.7.1 no data today", "RSET", "250"},
			record: "#1 220; MAIL <a@example.com> 250; RCPT <b@example.org> 250; DATA 554 5.7.1 no data today",
		},
		{
			name:   "451 after the data, once",
			rules:  []Rule{At(StageData).Reply(451, "4.3.0", "try later").Times(1)},
			dialog: []string{"EHLO c.example", "250", "MAIL FROM:<a@example.com>", "250", "RCPT TO:<b@example.org>", "250", "DATA", "354", "<data>", "451 4.3.0 try later", "MAIL FROM:<a@example.com>", "250", "RCPT TO:<b@example.org>", "250", "DATA", "354", "<data>", "250"},
			record: "#1 220; MAIL <a@example.com> 250; RCPT <b@example.org> 250; DATA 451 4.3.0 try later; MAIL <a@example.com> 250; RCPT <b@example.org> 250; DATA 250",
		},
		{
			name:   "dropped after the data",
			rules:  []Rule{At(StageData).Drop()},
			dialog: []string{"EHLO c.example", "250", "MAIL FROM:<a@example.com>", "250", "RCPT TO:<b@example.org>", "250", "DATA", "354", "<data>", "EOF"},
			record: "#1 220; MAIL <a@example.com> 250; RCPT <b@example.org> 250; DATA dropped after the message",
		},
		{
			name:   "a rule for another attempt does not apply",
			rules:  []Rule{OnAttempt(2).At(StageMail).Reply(451, "4.3.0", "second")},
			dialog: []string{"EHLO c.example", "250", "MAIL FROM:<a@example.com>", "250"},
			record: "#1 220; MAIL <a@example.com> 250",
		},
		{
			name:   "the first deciding rule wins",
			rules:  []Rule{At(StageRcpt, "x@example.org").Reply(550, "5.1.1", "first"), At(StageRcpt).Reply(450, "4.2.0", "second")},
			dialog: []string{"EHLO c.example", "250", "MAIL FROM:<a@example.com>", "250", "RCPT TO:<x@example.org>", "550 5.1.1 first", "RCPT TO:<y@example.org>", "450 4.2.0 second"},
			record: "#1 220; MAIL <a@example.com> 250; RCPT <x@example.org> 550 5.1.1 first; RCPT <y@example.org> 450 4.2.0 second",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := NewServer(t)
			srv.Script(tc.rules...)
			s := dial(t, srv.Addr)
			if tc.dialog[0] != "" {
				if got := code(s.read()); got != "220" {
					t.Fatalf("greeting %q", got)
				}
			}
			for i := 0; i < len(tc.dialog); i += 2 {
				var got string
				switch line := tc.dialog[i]; line {
				case "":
					got = s.read()
				case "<data>":
					got = s.data(msg)
				default:
					got = s.cmd(line)
				}
				if want := tc.dialog[i+1]; !strings.HasPrefix(got, want) {
					t.Fatalf("%q: got %q, want %q", tc.dialog[i], got, want)
				}
			}
			s.c.Close()
			atts := srv.Attempts()
			if len(atts) != 1 {
				t.Fatalf("%d attempts", len(atts))
			}
			if got := atts[0].String(); got != tc.record {
				t.Errorf("attempt\n got %s\nwant %s", got, tc.record)
			}
		})
	}
}

// TestRetryAfter451 is the acceptance test of a client that retries: the
// first attempt gets 451 after the data, the second succeeds, and the
// attempts record both with their replies.
func TestRetryAfter451(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rule   Rule
		tries  int
		want   []string
		failed bool
	}{
		{
			name:  "451 after the data",
			rule:  OnAttempt(1).At(StageData).Reply(451, "4.3.0", "try later"),
			tries: 3,
			want: []string{
				"#1 220; MAIL <app@example.com> 250; RCPT <bob@example.org> 250; DATA 451 4.3.0 try later",
				"#2 220; MAIL <app@example.com> 250; RCPT <bob@example.org> 250; DATA 250",
			},
		},
		{
			name:  "421 greeting",
			rule:  OnAttempt(1).At(StageConnect).Reply(421, "4.3.2", "busy"),
			tries: 3,
			want: []string{
				"#1 421 4.3.2 busy",
				"#2 220; MAIL <app@example.com> 250; RCPT <bob@example.org> 250; DATA 250",
			},
		},
		{
			name:  "451 at MAIL",
			rule:  OnAttempt(1).At(StageMail).Reply(451, "4.3.0", "greylisted"),
			tries: 3,
			want: []string{
				"#1 220; MAIL <app@example.com> 451 4.3.0 greylisted",
				"#2 220; MAIL <app@example.com> 250; RCPT <bob@example.org> 250; DATA 250",
			},
		},
		{
			name:  "three attempts: a greeting refusal, a dropped connection, then success",
			rule:  OnAttempt(2).At(StageData).Drop(),
			tries: 3,
			want: []string{
				"#1 421 4.3.2 busy",
				"#2 220; MAIL <app@example.com> 250; RCPT <bob@example.org> 250; DATA dropped after the message",
				"#3 220; MAIL <app@example.com> 250; RCPT <bob@example.org> 250; DATA 250",
			},
		},
		{
			name:   "a permanent failure is not retried",
			rule:   At(StageData).Reply(554, "5.7.1", "refused"),
			tries:  3,
			failed: true,
			want: []string{
				"#1 220; MAIL <app@example.com> 250; RCPT <bob@example.org> 250; DATA 554 5.7.1 refused",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := NewServer(t)
			if strings.HasPrefix(tc.name, "three") {
				srv.Script(OnAttempt(1).At(StageConnect).Reply(421, "4.3.2", "busy"))
			}
			srv.Script(tc.rule)
			msg := []byte("Subject: retry\r\n\r\nagain\r\n")
			n, err := sendWithRetry(srv.Addr, "app@example.com", []string{"bob@example.org"}, msg, tc.tries)
			if (err != nil) != tc.failed || n != len(tc.want) {
				t.Fatalf("sent after %d attempts, err %v", n, err)
			}
			var got []string
			for _, a := range srv.Attempts() {
				got = append(got, a.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("attempts\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tc.want, "\n     "))
			}
			msgs := srv.Messages()
			if tc.failed {
				if len(msgs) != 0 {
					t.Errorf("%d messages accepted", len(msgs))
				}
				return
			}
			if len(msgs) != 1 || !bytes.Equal(msgs[0].Raw, msg) || msgs[0].Attempt != len(tc.want) {
				t.Fatalf("messages %+v", msgs)
			}
			// The accepted message is also the last attempt's.
			last := srv.Attempts()[len(tc.want)-1].Transactions[0]
			if last.Message == nil || last.Message.ID != msgs[0].ID || !bytes.Equal(last.Message.Raw, msg) {
				t.Errorf("last attempt's message %+v", last.Message)
			}
			if !strings.HasSuffix(last.Data.Text, " qp "+msgs[0].ID) || last.Data.Code != 250 {
				t.Errorf("DATA reply %+v", last.Data)
			}
		})
	}
}

// TestRawMessage checks that Raw is byte for byte what the client sent
// after DATA (or in BDAT chunks), dot-stuffing undone.
func TestRawMessage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		raw    string
		compat bool
		bdat   []string // chunks, instead of DATA
	}{
		{name: "plain", raw: "Subject: hi\r\nFrom: a@example.com\r\n\r\nbody\r\n"},
		{name: "leading dots and a lone dot line", raw: "Subject: dots\r\n\r\n.hidden\r\n..two\r\n.\r\nend\r\n"},
		{name: "empty", raw: ""},
		{name: "no header", raw: "just a body line\r\n"},
		{name: "first line starts with a space", raw: " looks like a continuation\r\n\tand a tab\r\n\r\nbody\r\n"},
		{name: "Received line of its own", raw: "Received: from elsewhere\r\n  by here; today\r\nSubject: x\r\n\r\nx\r\n"},
		{name: "8-bit and NUL bytes", raw: "Subject: caf\xc3\xa9\r\n\r\nnul\x00byte\r\n\xff\r\n"},
		{name: "long line", raw: "Subject: long\r\n\r\n" + strings.Repeat("x", 20000) + "\r\n"},
		{name: "bare CR kept in compat", raw: "Subject: cr\r\n\r\na\rb\r\r\n", compat: true},
		{name: "BDAT", bdat: []string{"Subject: chunks\r\n\r\n", ".no stuffing\r\nlast line without CRLF"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []Option
			if tc.compat {
				opts = append(opts, Compat())
			}
			srv := NewServer(t, opts...)
			s := dial(t, srv.Addr)
			s.read()
			s.cmd("EHLO c.example")
			s.cmd("MAIL FROM:<a@example.com>")
			s.cmd("RCPT TO:<b@example.org>")
			want := tc.raw
			if tc.bdat != nil {
				want = strings.Join(tc.bdat, "")
				for i, ch := range tc.bdat {
					last := ""
					if i == len(tc.bdat)-1 {
						last = " LAST"
					}
					fmt.Fprintf(s.c, "BDAT %d%s\r\n%s", len(ch), last, ch)
					if r := s.read(); code(r) != "250" {
						t.Fatalf("BDAT: %q", r)
					}
				}
			} else {
				if r := s.cmd("DATA"); code(r) != "354" {
					t.Fatalf("DATA: %q", r)
				}
				if r := s.data(tc.raw); code(r) != "250" {
					t.Fatalf("after the data: %q", r)
				}
			}
			m := srv.WaitMessages(1, 5*time.Second)[0]
			if string(m.Raw) != want {
				t.Errorf("Raw\n got %q\nwant %q", m.Raw, want)
			}
			if !bytes.HasPrefix(m.Data, []byte("Received: ")) {
				t.Errorf("Data does not start with the server's Received line: %q", m.Data)
			}
			if strings.HasPrefix(want, "Subject:") || strings.HasPrefix(want, "Received:") {
				if p, err := m.Parse(); err != nil {
					t.Errorf("Parse: %v", err)
				} else if body, _ := io.ReadAll(p.Body); !strings.HasSuffix(want, string(body)) {
					t.Errorf("parsed body %q", body)
				}
			}
		})
	}
}

// TestRefusedGreetingAbuse: a client that keeps talking after a 554
// greeting is answered a bounded number of times, and one that sends an
// endless line is cut off.
func TestRefusedGreetingAbuse(t *testing.T) {
	srv := NewServer(t)
	srv.Script(At(StageConnect).Reply(554, "", "no"))
	s := dial(t, srv.Addr)
	if r := s.read(); r != "554 no" {
		t.Fatalf("greeting %q", r)
	}
	n := 0
	for ; n < 300; n++ {
		if r := s.cmd("NOOP"); r == "EOF" {
			break
		}
	}
	if n != 100 {
		t.Errorf("%d replies to a client after a 554 greeting, want 100", n)
	}
	s2 := dial(t, srv.Addr)
	s2.read()
	go io.WriteString(s2.c, strings.Repeat("x", 1<<20))
	if r := s2.read(); r != "EOF" {
		t.Errorf("reply to an endless line: %q", r)
	}
}

// TestScriptMisuse: rules that cannot apply are a mistake in the test.
func TestScriptMisuse(t *testing.T) {
	for _, r := range []Rule{
		OnAttempt(1).Reply(451, "", "no stage"),
		At(StageData).Reply(250, "", "not a failure"),
		At(StageConnect, "a@b").Drop(),
		At(StageMail),
		At(StageMail).Drop().Times(-1),
	} {
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

// TestTimesAndDelay: Times uses a rule up, and a delay-only rule slows a
// stage without deciding it.
func TestTimesAndDelay(t *testing.T) {
	srv := NewServer(t)
	srv.Script(
		At(StageRcpt).Delay(100*time.Millisecond).Times(1),
		At(StageRcpt).Reply(452, "4.2.2", "full").Times(2),
	)
	s := dial(t, srv.Addr)
	s.read()
	s.cmd("EHLO c")
	s.cmd("MAIL FROM:<a@b.example>")
	start := time.Now()
	var got []string
	for range 4 {
		got = append(got, code(s.cmd("RCPT TO:<x@y.example>")))
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("RCPTs answered after %v", d)
	}
	if strings.Join(got, " ") != "452 452 250 250" {
		t.Errorf("replies %v", got)
	}
}

// TestGreetingDelay: a delay at StageConnect delays the 220.
func TestGreetingDelay(t *testing.T) {
	srv := NewServer(t)
	srv.Delay(StageConnect, 150*time.Millisecond)
	start := time.Now()
	s := dial(t, srv.Addr)
	if r := code(s.read()); r != "220" {
		t.Fatalf("greeting %q", r)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("greeting after %v", d)
	}
	if a := srv.Attempts()[0]; a.Greeting.Code != 220 || a.Greeting.Text != "localhost ESMTP" {
		t.Errorf("greeting recorded %+v", a.Greeting)
	}
}

// TestUserHooksAfterScript: hooks set with Configure decide what the
// script leaves, and their replies are recorded as sent.
func TestUserHooksAfterScript(t *testing.T) {
	srv := NewServer(t, Configure(func(e *smtpserver.Server) {
		e.CheckRecipient = func(ctx context.Context, s *smtpserver.Session, to string) error {
			switch to {
			case "perm@example.org":
				return permErr{}
			case "temp@example.org":
				return errors.New("database down")
			case "reply@example.org":
				return fmt.Errorf("wrapped: %w", smtpserver.Reply{Code: 552, Enhanced: "5.2.2", Text: "over quota"})
			}
			return nil
		}
	}))
	srv.Script(At(StageRcpt, "scripted@example.org").Reply(550, "5.7.1", "scripted"))
	// The replies recorded must be those the client read.
	var wire []string
	s2 := dial(t, srv.Addr)
	s2.read()
	s2.cmd("EHLO c")
	s2.cmd("MAIL FROM:<a@b.example>")
	for _, rc := range []string{"perm", "temp", "reply", "scripted", "ok"} {
		wire = append(wire, s2.cmd("RCPT TO:<"+rc+"@example.org>"))
	}
	a := srv.Attempts()[0]
	for i, r := range a.Transactions[0].Rcpts {
		rec := r.Reply
		want := fmt.Sprintf("%d %s %s", rec.Code, rec.Enhanced, rec.Text)
		if rec.Enhanced == "" {
			want = fmt.Sprintf("%d %s", rec.Code, rec.Text)
		}
		if wire[i] != want {
			t.Errorf("RCPT %s: wire %q, recorded %q", r.Addr, wire[i], want)
		}
	}
}

type permErr struct{}

func (permErr) Error() string   { return "no such user" }
func (permErr) Permanent() bool { return true }

// TestManyAttempts: attempts are numbered in order and Reset starts again.
func TestManyAttempts(t *testing.T) {
	srv := NewServer(t)
	srv.Script(OnAttempt(3, 5).At(StageConnect).Reply(421, "", "busy"))
	var greetings []string
	for range 6 {
		s := dial(t, srv.Addr)
		greetings = append(greetings, code(s.read()))
		s.cmd("QUIT")
	}
	if strings.Join(greetings, " ") != "220 220 421 220 421 220" {
		t.Errorf("greetings %v", greetings)
	}
	atts := srv.Attempts()
	for i, a := range atts {
		if a.Number != i+1 || !strings.HasPrefix(a.Client, "127.0.0.1:") {
			t.Errorf("attempt %d: %+v", i, a)
		}
	}
	srv.Reset()
	s := dial(t, srv.Addr)
	s.read()
	s.cmd("EHLO after.reset")
	s.cmd("QUIT")
	if atts := srv.Attempts(); len(atts) != 1 || atts[0].Number != 1 || atts[0].Helo != "after.reset" {
		t.Errorf("after Reset: %+v", atts)
	}
}

func TestHostPort(t *testing.T) {
	srv := NewServer(t)
	if srv.Host() != "127.0.0.1" || fmt.Sprintf("%s:%d", srv.Host(), srv.Port()) != srv.Addr {
		t.Errorf("Host %q Port %d Addr %q", srv.Host(), srv.Port(), srv.Addr)
	}
}

// TestUnstarted: a server without a testing.TB.
func TestUnstarted(t *testing.T) {
	srv := NewUnstarted()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	if msgs := srv.WaitMessages(1, 50*time.Millisecond); len(msgs) != 0 {
		t.Errorf("messages %v", msgs)
	}
	srv.Close()
	srv.Close()
	if _, err := net.DialTimeout("tcp", srv.Addr, time.Second); err == nil {
		t.Error("server still listening after Close")
	}
}

// TestScriptUnderTLS: the script and the record work after STARTTLS and
// AUTH, where the test server no longer sees the bytes.
func TestScriptUnderTLS(t *testing.T) {
	srv := NewServer(t, TLS(), Users(map[string]string{"joe": "s3cret"}))
	srv.Script(At(StageRcpt, "gone@example.org").Reply(550, "5.1.1", "no such user"))
	c, err := smtp.Dial(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("clear.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(srv.ClientTLSConfig()); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(smtp.PlainAuth("", "joe", "s3cret", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	c.Mail("joe@example.com")
	if err := c.Rcpt("gone@example.org"); err == nil || !strings.Contains(err.Error(), "5.1.1 no such user") {
		t.Fatalf("RCPT: %v", err)
	}
	c.Rcpt("here@example.org")
	w, _ := c.Data()
	io.WriteString(w, "Subject: tls\r\n\r\nsecret\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	a := srv.Attempts()[0]
	if !a.TLS || a.User != "joe" || a.Helo != "clear.example" {
		t.Errorf("attempt %+v", a)
	}
	want := "#1 220; MAIL <joe@example.com> 250; RCPT <gone@example.org> 550 5.1.1 no such user; RCPT <here@example.org> 250; DATA 250"
	if a.String() != want {
		t.Errorf("attempt\n got %s\nwant %s", a, want)
	}
	if m := srv.Messages()[0]; string(m.Raw) != "Subject: tls\r\n\r\nsecret\r\n" || !m.TLS {
		t.Errorf("message %+v", m)
	}
}

// TestConcurrentAttempts: many clients at once, each attempt recorded with
// its own message.
func TestConcurrentAttempts(t *testing.T) {
	srv := NewServer(t)
	srv.Script(At(StageRcpt, "r7@example.org").Reply(450, "4.2.0", "busy"))
	const n = 30
	errs := make(chan error, n)
	for i := range n {
		go func() {
			to := fmt.Sprintf("r%d@example.org", i)
			errs <- smtp.SendMail(srv.Addr, nil, "s@example.com", []string{to}, []byte("Subject: "+to+"\r\n\r\nx\r\n"))
		}()
	}
	failed := 0
	for range n {
		if err := <-errs; err != nil {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("%d sends failed, want 1", failed)
	}
	atts := srv.Attempts()
	if len(atts) != n || len(srv.Messages()) != n-1 {
		t.Fatalf("%d attempts, %d messages", len(atts), len(srv.Messages()))
	}
	for _, a := range atts {
		tx := a.Transactions[0]
		to := tx.Rcpts[0].Addr
		switch {
		case to == "r7@example.org":
			if tx.Rcpts[0].Reply.Code != 450 || tx.Message != nil {
				t.Errorf("attempt %v", a)
			}
		case tx.Message == nil || !strings.HasPrefix(string(tx.Message.Raw), "Subject: "+to+"\r\n") || tx.Message.Attempt != a.Number:
			t.Errorf("attempt %v: message %+v", a, tx.Message)
		}
	}
}
