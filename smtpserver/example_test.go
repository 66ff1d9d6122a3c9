package smtpserver_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/qmailkit/qmailkit/smtpserver"
)

// maildirSink is an application's own Enqueuer: it streams each message to
// a writer (a real one would write a file and fsync it before returning).
type maildirSink struct{ w *bytes.Buffer }

func (s maildirSink) Enqueue(ctx context.Context, from string, to []string, msg io.Reader) (string, error) {
	if _, err := io.Copy(s.w, msg); err != nil {
		return "", err // the message broke a rule or the client left: not queued
	}
	fmt.Fprintf(s.w, "(from %s to %s)\n", from, strings.Join(to, ","))
	return "1", nil
}

// A server for example.org with a custom Enqueuer, talked to over a pipe.
func Example() {
	var stored bytes.Buffer
	srv := &smtpserver.Server{
		Hostname:         "mx.example.org",
		RcptHostsContext: smtpserver.RcptHostsHook(smtpserver.HostList([]string{"example.org"}, nil)),
		Enqueuer:         maildirSink{&stored},
		Now:              func() time.Time { return time.Date(2026, 11, 21, 22, 27, 55, 0, time.UTC) },
	}
	client, server := net.Pipe()
	env := map[string]string{"TCPREMOTEIP": "192.0.2.9", "TCPLOCALHOST": "mx.example.org"}
	go srv.ServeConn(context.Background(), server, env)

	r := bufio.NewReader(client)
	say := func(cmd string) {
		if cmd != "" {
			io.WriteString(client, cmd)
		}
		l, _ := r.ReadString('\n')
		fmt.Print("S: ", l[:len(l)-2], "\n")
	}
	say("")
	say("HELO client.example\r\n")
	say("MAIL FROM:<a@example.net>\r\n")
	say("RCPT TO:<joe@evil.example>\r\n")
	say("RCPT TO:<joe@example.org>\r\n")
	say("DATA\r\n")
	say("Subject: hi\r\n\r\n..dot-stuffed\r\n.\r\n")
	say("QUIT\r\n")
	fmt.Print(stored.String())
	// Output:
	// S: 220 mx.example.org ESMTP
	// S: 250 mx.example.org
	// S: 250 ok
	// S: 553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)
	// S: 250 ok
	// S: 354 go ahead
	// S: 250 ok 1795300075 qp 1
	// S: 221 mx.example.org
	// Received: from unknown (HELO client.example) (192.0.2.9)
	//   by mx.example.org with SMTP; 21 Nov 2026 22:27:55 -0000
	// Subject: hi
	//
	// .dot-stuffed
	// (from a@example.net to joe@example.org)
}

// New sessions take new settings while the server runs: here a reload
// (say, on SIGHUP) swaps the greeting and databytes (at first the modern
// default, 35 MiB); a session already open keeps the values it started with.
func ExampleServer_SessionSettingsContext() {
	var current atomic.Pointer[smtpserver.Settings]
	current.Store(&smtpserver.Settings{Hostname: "mx.example.org"})
	srv := &smtpserver.Server{
		SessionSettingsContext: func(context.Context, *smtpserver.Session) smtpserver.Settings { return *current.Load() },
	}
	session := func() (net.Conn, *bufio.Reader) {
		client, server := net.Pipe()
		go srv.ServeConn(context.Background(), server, nil)
		return client, bufio.NewReader(client)
	}
	say := func(c net.Conn, r *bufio.Reader, cmd string) {
		if cmd != "" {
			io.WriteString(c, cmd)
		}
		for { // every line of the reply
			l, _ := r.ReadString('\n')
			fmt.Print("S: ", l[:len(l)-2], "\n")
			if len(l) < 4 || l[3] != '-' {
				return
			}
		}
	}
	c1, r1 := session()
	say(c1, r1, "")

	// The reload.
	current.Store(&smtpserver.Settings{Hostname: "mx.example.org", Greeting: "mx.example.org NO UCE", MaxMessageBytes: 1000})

	c2, r2 := session()
	say(c2, r2, "")
	say(c1, r1, "EHLO client.example\r\n")
	say(c2, r2, "EHLO client.example\r\n")
	// Output:
	// S: 220 mx.example.org ESMTP
	// S: 220 mx.example.org NO UCE ESMTP
	// S: 250-mx.example.org
	// S: 250-PIPELINING
	// S: 250-8BITMIME
	// S: 250-SIZE 36700160
	// S: 250-ENHANCEDSTATUSCODES
	// S: 250-SMTPUTF8
	// S: 250 CHUNKING
	// S: 250-mx.example.org NO UCE
	// S: 250-PIPELINING
	// S: 250-8BITMIME
	// S: 250-SIZE 1000
	// S: 250-ENHANCEDSTATUSCODES
	// S: 250-SMTPUTF8
	// S: 250 CHUNKING
}
