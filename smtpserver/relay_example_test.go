package smtpserver_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/smtpserver"
)

// Relaying for the office network, from Go values: no rules cdb, no
// RELAYCLIENT in the environment. A client elsewhere may send only to
// example.org.
func ExampleServer_RelayFrom() {
	srv := &smtpserver.Server{
		Hostname:         "mx.example.org",
		RcptHostsContext: smtpserver.RcptHostsHook(smtpserver.HostList([]string{"example.org"}, nil)),
		RelayFrom:        []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("127.0.0.0/8")},
	}
	for _, ip := range []string{"192.168.1.5", "203.0.113.9"} {
		client, server := net.Pipe()
		go srv.ServeConn(context.Background(), server, map[string]string{"TCPREMOTEIP": ip})
		r := bufio.NewReader(client)
		say := func(cmd string) string {
			io.WriteString(client, cmd)
			l, _ := r.ReadString('\n')
			return l[:len(l)-2]
		}
		r.ReadString('\n') // the greeting
		say("HELO client.example\r\n")
		say("MAIL FROM:<a@example.org>\r\n")
		fmt.Println(ip+":", say("RCPT TO:<bob@example.net>\r\n"))
		say("QUIT\r\n")
		client.Close()
	}
	// Output:
	// 192.168.1.5: 250 ok
	// 203.0.113.9: 553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)
}

// A server on the submissions port (implicit TLS, RFC 8314) with a
// certificate from files that are re-read when they are renewed.
func ExampleServer_ListenAndServeTLS() {
	srv := &smtpserver.Server{
		Hostname: "mail.example.org",
		Auth: auth.Func(func(ctx context.Context, c auth.Credentials) (*auth.User, error) {
			return nil, auth.ErrFailed // check c.User and c.Secret here
		}),
	}
	go srv.ListenAndServe(":587") // STARTTLS is offered when TLSConfig is set
	if err := srv.ListenAndServeTLS(":465", "/etc/ssl/mail.pem", "/etc/ssl/mail.key"); err != nil {
		fmt.Println(err)
	}
}
