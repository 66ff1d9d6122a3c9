package smtpclient_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/smtpclient"
)

// Deliver one message to the recipients at one domain, through a smarthost
// given as in qmail's control/smtproutes.
func ExampleClient_Deliver() {
	routes, err := smtpclient.ParseRoutes(strings.NewReader(":[127.0.0.1]:1\n"))
	if err != nil {
		panic(err)
	}
	c := &smtpclient.Client{Hostname: "mail.example.org", Routes: routes, QmailCompat: true}
	msg := strings.NewReader("Subject: hello\n\nHi!\n")
	res, err := c.Deliver(context.Background(), "example.net", "me@example.org", []string{"you@example.net"}, msg)
	// Nothing listens on port 1: a temporary failure, for every recipient.
	fmt.Println(qmailkit.IsPermanent(err))
	fmt.Print(smtpclient.ReportText(res.Recipients[0].Err))
	fmt.Printf("%q\n", res.Report())
	// Output:
	// false
	// Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)
	// "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\x00"
}

// Send a message to recipients at several domains and tell bounces from
// retries.
func ExampleClient_Send() {
	routes := &smtpclient.Routes{}
	routes.Set("", smtpclient.Route{Relay: "127.0.0.1", Port: 1})
	c := &smtpclient.Client{Hostname: "app.example.org", Routes: routes}
	msg := strings.NewReader("Subject: report\n\nDone.\n")
	results, _ := c.Send(context.Background(), "app@example.org", []string{"a@example.net", "b@example.com", "nodomain"}, msg)
	for _, r := range results {
		switch {
		case r.Err == nil:
			fmt.Println(r.Address, "delivered")
		case qmailkit.IsPermanent(r.Err):
			fmt.Println(r.Address, "bounce")
		default:
			fmt.Println(r.Address, "retry later")
		}
	}
	// Output:
	// a@example.net retry later
	// b@example.com retry later
	// nodomain bounce
}

// Routes follow qmail-remote's lookup order: the host, each parent suffix
// starting with a dot, then the default route.
func ExampleRoutes_Lookup() {
	routes, _ := smtpclient.ParseRoutes(strings.NewReader(
		"inside.example:firewall.example:26\n.example.org:\n:smarthost.example\n"))
	for _, host := range []string{"inside.example", "www.example.org", "elsewhere.example"} {
		rt, ok := routes.Lookup(host)
		fmt.Printf("%s: %q %d %v\n", host, rt.Relay, rt.Port, ok)
	}
	// Output:
	// inside.example: "firewall.example" 26 true
	// www.example.org: "" 0 false
	// elsewhere.example: "smarthost.example" 0 true
}
