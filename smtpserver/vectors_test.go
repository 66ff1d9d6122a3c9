package smtpserver

import (
	"net/netip"
	"testing"
)

type netipAddr = netip.Addr

// An EHLO session and the exact bytes queued.
func TestVector1EHLOSession(t *testing.T) {
	k := &sink{id: "15604"}
	c := start(t, compatServer(k), qmailEnv())
	c.expect("220 mx.example.org ESMTP")
	c.send("EHLO client.example\r\n")
	c.expect("250-mx.example.org")
	c.expect("250-PIPELINING")
	c.expect("250 8BITMIME")
	c.send("MAIL FROM:<a@b.example>\r\n")
	c.expect("250 ok")
	c.send("RCPT TO:<c@d.example>\r\n")
	c.expect("250 ok")
	c.send("DATA\r\n")
	c.expect("354 go ahead")
	c.send("Subject: hi\r\n\r\n..dot\r\n.x\r\nbody\rbare cr\r\n.\r\n")
	c.expect("250 ok 1795300075 qp 15604")
	c.send("QUIT\r\n")
	c.expect("221 mx.example.org")
	if err := c.wait(); err != nil {
		t.Fatalf("ServeConn after QUIT = %v, want nil", err)
	}
	msgs := k.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	want := "Received: from client.example (192.0.2.9)\n  by mx.example.org with SMTP; 21 Nov 2026 22:27:55 -0000\nSubject: hi\n\n.dot\nx\nbody\rbare cr\n"
	if msgs[0].data != want {
		t.Errorf("queued\n%q\nwant\n%q", msgs[0].data, want)
	}
	if msgs[0].from != "a@b.example" || len(msgs[0].to) != 1 || msgs[0].to[0] != "c@d.example" {
		t.Errorf("envelope %q %q", msgs[0].from, msgs[0].to)
	}
}
