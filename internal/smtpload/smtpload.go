// Package smtpload is the client side of qmailkit's SMTP ingest benchmarks:
// one session as Postfix's smtp-source runs it, so that the in-process
// benchmarks load a server as the external smtp-source benchmark does, one
// message per connection.
package smtpload

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"
)

// Send delivers body (CRLF lines, already dot-stuffed) to rcpt over a new
// connection to addr: EHLO, then MAIL, RCPT and DATA pipelined, the body,
// the final dot and QUIT, every reply checked. The session has 30 seconds.
func Send(addr, from, rcpt string, body []byte) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	expect := func(code string) error {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(l, code) || len(l) < 4 {
				return fmt.Errorf("got %q, want %s", l, code)
			}
			if l[3] == ' ' {
				return nil
			}
		}
	}
	if err := expect("220"); err != nil {
		return err
	}
	w := bufio.NewWriter(c)
	w.WriteString("EHLO bench\r\n")
	w.Flush()
	if err := expect("250"); err != nil {
		return err
	}
	w.WriteString("MAIL FROM:<" + from + ">\r\nRCPT TO:<" + rcpt + ">\r\nDATA\r\n")
	w.Flush()
	for _, code := range []string{"250", "250", "354"} {
		if err := expect(code); err != nil {
			return err
		}
	}
	w.Write(body)
	w.WriteString(".\r\nQUIT\r\n")
	w.Flush()
	if err := expect("250"); err != nil {
		return err
	}
	return expect("221")
}
