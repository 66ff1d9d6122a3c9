package qmailkit_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"

	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/smtpserver"
)

// toMaildir is an smtpserver.Enqueuer that delivers every message straight
// into one Maildir: the smallest composition of two packages. (An MTA puts
// the queue package between them, so that mail for other hosts is relayed
// and a full disk means "retry later", not a lost message.)
type toMaildir struct {
	dir maildir.Dir
	dl  maildir.Deliverer
}

func (m *toMaildir) Enqueue(ctx context.Context, from string, to []string, msg io.Reader) (string, error) {
	// Deliver streams msg into tmp/, fsyncs it and links it into new/
	// before it returns, so the 250 the server then sends is honest.
	return m.dl.Deliver(ctx, m.dir, msg)
}

// An SMTP server for example.org that delivers into a Maildir, and a
// client that sends it a message.
func Example() {
	home, _ := os.MkdirTemp("", "qmailkit-example")
	defer os.RemoveAll(home)
	dir, err := maildir.Create(filepath.Join(home, "Maildir"))
	if err != nil {
		log.Fatal(err)
	}

	srv := &smtpserver.Server{
		Hostname:         "mx.example.org",
		RcptHostsContext: smtpserver.RcptHostsHook(smtpserver.HostList([]string{"example.org"}, nil)),
		Enqueuer:         &toMaildir{dir: dir},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()

	err = smtp.SendMail(l.Addr().String(), nil, "app@example.net", []string{"joe@example.org"},
		[]byte("Subject: hello\r\n\r\nHi Joe.\r\n"))
	fmt.Println("sent:", err == nil)
	srv.Shutdown(context.Background())
	<-done

	msgs, _ := dir.List()
	for _, m := range msgs {
		f, _ := dir.OpenMessage(m)
		b, _ := io.ReadAll(f)
		f.Close()
		_, body, _ := strings.Cut(string(b), "Subject:")
		fmt.Printf("%s: Subject:%s", m.Subdir, body)
	}
	// Output:
	// sent: true
	// new: Subject: hello
	//
	// Hi Joe.
}
