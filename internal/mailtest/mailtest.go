// Package mailtest holds the SMTP and POP3 client steps that the
// end-to-end tests of several packages share: send a message, fetch a
// mailbox. It is for tests only.
package mailtest

import (
	"fmt"
	"io"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// Send sends msg from from to every address of to through the SMTP
// server at addr. It returns nil once the message is acknowledged (the
// reply to the end of DATA): QUIT's fate does not change that.
func Send(addr, from string, to []string, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	c.Quit()
	return nil
}

// Fetch logs in to the POP3 server at addr as user and returns every
// message, its lines joined by "\n"; with dele it deletes each one it
// retrieved. Any reply other than +OK fails the test. The session has 20
// seconds.
func Fetch(t testing.TB, addr, user, pass string, dele bool) []string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	c := textproto.NewConn(nc)
	cmd := func(format string, args ...any) string {
		t.Helper()
		if format != "" {
			if err := c.PrintfLine(format, args...); err != nil {
				t.Fatal(err)
			}
		}
		line, err := c.ReadLine()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(line, "+OK") {
			t.Fatalf("POP3 %q: %s", fmt.Sprintf(format, args...), line)
		}
		return line
	}
	cmd("")
	cmd("USER %s", user)
	cmd("PASS %s", pass)
	var n int
	fmt.Sscanf(cmd("STAT"), "+OK %d", &n)
	var out []string
	for i := 1; i <= n; i++ {
		cmd("RETR %d", i)
		lines, err := c.ReadDotLines()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join(lines, "\n"))
		if dele {
			cmd("DELE %d", i)
		}
	}
	cmd("QUIT")
	return out
}
