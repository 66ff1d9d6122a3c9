package mta_test

import (
	"context"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"time"

	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/mta"
	"github.com/qmailkit/qmailkit/queue"
)

// Make a home with a demo mailbox, open it, and see how it routes mail.
func Example() {
	dir, err := os.MkdirTemp("", "system-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	home := filepath.Join(dir, "qmail")
	demo, created, err := mta.Init(home, mta.InitOptions{Domain: "example.test", Password: "secret"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(demo.Address(), demo.Password, created)

	sys, err := mta.Open(home, mta.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sys.Close()
	// sys.Serve(ctx, servers, listeners) would serve; here, just routing.
	r, _ := mta.Routing(sys.Home)
	for _, rcpt := range []string{"demo@example.test", "joe@example.org"} {
		addr, remote := r.Route(rcpt)
		fmt.Println(addr, remote)
	}
	// Output:
	// demo@example.test secret true
	// demo@example.test false
	// joe@example.org true
}

// A whole mail system written in Go: one local domain with one mailbox,
// SMTP on a loopback port; a message sent to it lands in the Maildir.
func ExampleNew() {
	dir, err := os.MkdirTemp("", "mta-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	sys, err := mta.New(mta.Config{
		Hostname:  "mx.example.test",
		QueueDir:  filepath.Join(dir, "queue"),
		Routing:   queue.Routing{Locals: []string{"example.test"}},
		Users:     mta.Mailboxes{"joe": {Password: "{PLAIN}secret", Home: filepath.Join(dir, "joe")}},
		Listeners: mta.Listeners{SMTP: l},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sys.Close()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sys.Run(ctx) }()

	err = smtp.SendMail(l.Addr().String(), nil, "ann@example.org", []string{"joe@example.test"},
		[]byte("Subject: hello\r\n\r\nHello, Joe.\r\n"))
	fmt.Println("sent:", err)

	md := maildir.Dir(filepath.Join(dir, "joe", "Maildir"))
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if names, _ := md.List(); len(names) > 0 {
			fmt.Println("in joe's Maildir:", len(names))
			break
		}
	}
	stop()
	fmt.Println("stopped:", <-done)
	// Output:
	// sent: <nil>
	// in joe's Maildir: 1
	// stopped: <nil>
}
