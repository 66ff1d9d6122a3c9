package smtptest

import (
	"bufio"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/smtpserver"
)

func TestSendMailWithTLSAndAuth(t *testing.T) {
	srv := NewServer(t, TLS(), Users(map[string]string{"joe": "s3cret"}))
	c, err := smtp.Dial(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(srv.ClientTLSConfig()); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	if err := c.Auth(smtp.PlainAuth("", "joe", "s3cret", "127.0.0.1")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := c.Mail("joe@example.com"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"bob@example.net", "carol@example.org"} {
		if err := c.Rcpt(r); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: hello\r\nTo: bob@example.net\r\n\r\n.leading dot\r\nbye\r\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	m := srv.WaitMessages(1, 5*time.Second)[0]
	if m.From != "joe@example.com" || strings.Join(m.To, ",") != "bob@example.net,carol@example.org" || m.User != "joe" || !m.TLS {
		t.Fatalf("message %+v", m)
	}
	h, err := m.Header()
	if err != nil || h.Get("Subject") != "hello" || !strings.Contains(h.Get("Received"), "SMTPSA (TLS1.3") {
		t.Fatalf("header %v %v", h, err)
	}
	if string(m.Body()) != ".leading dot\nbye\n" {
		t.Fatalf("body %q", m.Body())
	}
}

func TestWrongPasswordAndFailures(t *testing.T) {
	srv := NewServer(t, Users(map[string]string{"joe": "s3cret"}))
	c, err := smtp.Dial(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(smtp.PlainAuth("", "joe", "wrong", "127.0.0.1")); err == nil || !strings.Contains(err.Error(), "535") {
		t.Fatalf("AUTH with a wrong password: %v", err)
	}
	c.Close()
	if c, err = smtp.Dial(srv.Addr); err != nil {
		t.Fatal(err)
	}
	srv.FailRecipient("nobody@example.com", smtpserver.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"})
	c.Mail("a@example.com")
	if err := c.Rcpt("NOBODY@example.com"); err == nil || !strings.Contains(err.Error(), "550") || !strings.Contains(err.Error(), "5.1.1 no such user") {
		t.Fatalf("failed recipient: %v", err)
	}
	srv.FailMessages(func(m Message) error {
		if strings.Contains(string(m.Body()), "spam") {
			return smtpserver.Reply{Code: 554, Enhanced: "5.7.1", Text: "looks like spam"}
		}
		return nil
	})
	c.Rcpt("ok@example.com")
	w, _ := c.Data()
	w.Write([]byte("\r\nspam spam\r\n"))
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "554") || !strings.Contains(err.Error(), "looks like spam") {
		t.Fatalf("failed message: %v", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("%d messages kept", n)
	}
}

func TestDelay(t *testing.T) {
	srv := NewServer(t)
	srv.Delay(StageRcpt, 200*time.Millisecond)
	c, err := smtp.Dial(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Mail("a@b.example")
	start := time.Now()
	if err := c.Rcpt("c@d.example"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("RCPT answered after %v", d)
	}
}

func TestLMTPPerRecipient(t *testing.T) {
	srv := NewServer(t, LMTP())
	srv.FailMessages(func(m Message) error {
		errs := make(smtpserver.RecipientErrors, len(m.To))
		for i, r := range m.To {
			if strings.HasPrefix(r, "full") {
				errs[i] = smtpserver.Reply{Code: 452, Enhanced: "4.2.2", Text: "mailbox full"}
			}
		}
		return errs
	})
	c, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	c.Write([]byte("LHLO me\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@y>\r\nRCPT TO:<full@y>\r\nDATA\r\n"))
	var got []string
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(l, "354") {
			break
		}
	}
	c.Write([]byte("hi\r\n.\r\n"))
	for range 2 {
		l, _ := r.ReadString('\n')
		got = append(got, strings.TrimSpace(l))
	}
	if got[0] != "250 2.0.0 ok" || got[1] != "452 4.2.2 mailbox full" {
		t.Fatalf("LMTP replies %q", got)
	}
	m := srv.WaitMessages(1, 5*time.Second)
	if strings.Join(m[0].To, ",") != "x@y" {
		t.Fatalf("kept %q", m[0].To)
	}
}
