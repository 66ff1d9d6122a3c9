package smtpserver

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// sendMessage sends one message from a@example.org to rcpt over c (a client
// connection just opened) and returns the reply to RCPT and, when the
// recipient was accepted, the reply to the end of data.
func sendMessage(t *testing.T, c net.Conn, rcpt string) (rcptReply, dataReply string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	read := func() string {
		t.Helper()
		var last string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("read: %q %v", l, err)
			}
			last = strings.TrimSuffix(l, "\r\n")
			if len(last) < 4 || last[3] != '-' {
				return last
			}
		}
	}
	say := func(s string) string {
		t.Helper()
		if _, err := c.Write([]byte(s + "\r\n")); err != nil {
			t.Fatal(err)
		}
		return read()
	}
	if g := read(); !strings.HasPrefix(g, "220") {
		t.Fatalf("greeting %q", g)
	}
	say("EHLO client.example")
	if got := say("MAIL FROM:<a@example.org>"); !strings.HasPrefix(got, "250") {
		t.Fatalf("MAIL: %q", got)
	}
	rcptReply = say("RCPT TO:<" + rcpt + ">")
	if !strings.HasPrefix(rcptReply, "250") {
		say("QUIT")
		return rcptReply, ""
	}
	if got := say("DATA"); !strings.HasPrefix(got, "354") {
		t.Fatalf("DATA: %q", got)
	}
	dataReply = say("Subject: x\r\n\r\nhi\r\n.")
	say("QUIT")
	return rcptReply, dataReply
}

// The Received line's "by" names Server.Hostname (or the session's
// Settings.Hostname) in modern mode; TCPLOCALHOST (tcpserver -l) wins
// over it, and compat mode keeps qmail-smtpd's TCPLOCALHOST, else
// TCPLOCALIP, else "unknown".
func TestReceivedBy(t *testing.T) {
	ipEnv := map[string]string{"TCPREMOTEIP": "127.0.0.1", "TCPLOCALIP": "127.0.0.1"}
	for _, tc := range []struct {
		name string
		srv  *Server
		env  map[string]string // nil: served by Serve, env from the socket
		want string
	}{
		{"hostname", &Server{Hostname: "mx.example.com"}, ipEnv, "  by mx.example.com with SMTP"},
		{"hostname, served", &Server{Hostname: "mx.example.com"}, nil, "  by mx.example.com with SMTP"},
		{"session settings", &Server{Hostname: "old.example", SessionSettings: func(*Session) Settings { return Settings{Hostname: "new.example"} }}, ipEnv, "  by new.example with SMTP"},
		{"TCPLOCALHOST wins", &Server{Hostname: "mx.example.com"}, map[string]string{"TCPLOCALIP": "127.0.0.1", "TCPLOCALHOST": "tcp.example"}, "  by tcp.example with SMTP"},
		{"no hostname", &Server{}, ipEnv, "  by 127.0.0.1 with SMTP"},
		{"hostname unsafe bytes", &Server{Hostname: "mx\r\nX: y"}, ipEnv, "  by mx??X:?y with SMTP"},
		{"compat", &Server{Compat: true, Hostname: "mx.example.com"}, ipEnv, "  by 127.0.0.1 with SMTP"},
		{"compat, served", &Server{Compat: true, Hostname: "mx.example.com"}, nil, "  by 127.0.0.1 with SMTP"},
		{"compat, no address", &Server{Compat: true, Hostname: "mx.example.com"}, map[string]string{}, "  by unknown with SMTP"},
		{"compat, TCPLOCALHOST", &Server{Compat: true, Hostname: "mx.example.com"}, map[string]string{"TCPLOCALHOST": "tcp.example"}, "  by tcp.example with SMTP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &sink{}
			srv := tc.srv
			srv.Enqueuer, srv.OpenRelay, srv.Now = k, true, func() time.Time { return fixedNow }
			if tc.env == nil {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- srv.Serve(l) }()
				defer func() { srv.Close(); <-done }()
				c, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				sendMessage(t, c, "b@example.net")
			} else {
				cl := start(t, srv, tc.env)
				sendMessage(t, cl.c, "b@example.net")
				cl.wait()
			}
			msgs := k.messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages", len(msgs))
			}
			lines := strings.SplitN(msgs[0].data, "\n", 3)
			if len(lines) < 2 || !strings.HasPrefix(lines[1], tc.want) {
				t.Errorf("Received line:\n%s\nwant its second line to start %q", msgs[0].data, tc.want)
			}
		})
	}
}
