package moduletest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/smtp"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/mta"
	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/smtpclient"
	"github.com/qmailkit/qmailkit/smtpserver"
	"github.com/qmailkit/qmailkit/smtpserver/smtptest"
)

// tickets is the application's own delivery: mail to support@app.test
// opens a ticket; any other local address does not exist (a permanent
// failure, so the sender gets a bounce).
type tickets struct {
	mu     sync.Mutex
	opened []string
}

func (tk *tickets) deliver(ctx context.Context, d queue.Delivery) queue.Result {
	rcpt := d.Recipients[0]
	if !strings.HasPrefix(rcpt, "support@") {
		return queue.Result{Report: "No such ticket queue. (#5.1.1)\n", Err: qmailkit.Permanent(errors.New("no such queue"))}
	}
	body, err := io.ReadAll(d.Message)
	if err != nil {
		return queue.Result{Err: err} // temporary: the queue tries again
	}
	tk.mu.Lock()
	tk.opened = append(tk.opened, string(body))
	tk.mu.Unlock()
	return queue.Result{Report: "ticket opened\n"}
}

func (tk *tickets) count() int {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return len(tk.opened)
}

// TestCustomMTA builds an MTA from the packages, as an application that
// handles its own domain would: an SMTP server into a queue whose
// scheduler gives mail for app.test to a Go function and relays the rest
// through a smarthost; a local failure bounces to the sender through the
// same smarthost.
func TestCustomMTA(t *testing.T) {
	smarthost := smtptest.NewServer(t)
	q, err := queue.Open(filepath.Join(t.TempDir(), "queue"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	routes := &smtpclient.Routes{}
	routes.Set("", smtpclient.Route{Relay: smarthost.Host(), Port: smarthost.Port()}) // every remote domain
	tk := &tickets{}
	sched := &queue.Scheduler{
		Queue:   q,
		Routing: queue.Routing{Locals: []string{"app.test"}, EnvNoAtHost: "app.test"},
		Local:   queue.LocalFunc(tk.deliver),
		Remote:  mta.RemoteDeliverer(&smtpclient.Client{Hostname: "mx.app.test", Routes: routes}),
		Bounce:  queue.Bounce{Host: "mx.app.test", DoubleHost: "mx.app.test", DoubleTo: "postmaster"},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sched.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &smtpserver.Server{
		Hostname:         "mx.app.test",
		Enqueuer:         q,
		RcptHostsContext: smtpserver.RcptHostsHook(smtpserver.HostList([]string{"app.test"}, nil)),
	}
	go srv.Serve(l)
	defer srv.Close()

	send := func(from, to, msg string) {
		t.Helper()
		if err := smtp.SendMail(l.Addr().String(), nil, from, []string{to}, []byte(msg)); err != nil {
			t.Fatalf("to %s: %v", to, err)
		}
	}
	send("ann@customer.test", "support@app.test", "Subject: help\r\n\r\nmy printer\r\n")
	send("ann@customer.test", "nobody@app.test", "Subject: lost\r\n\r\nwhere does this go\r\n")
	// A stranger may not relay through it.
	if err := smtp.SendMail(l.Addr().String(), nil, "ann@customer.test", []string{"bob@elsewhere.test"}, []byte("Subject: x\r\n\r\nx\r\n")); err == nil {
		t.Fatal("relayed for a stranger")
	}

	deadline := time.Now().Add(30 * time.Second)
	for tk.count() < 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if tk.count() != 1 || !strings.Contains(tk.opened[0], "my printer") {
		t.Fatalf("tickets: %q", tk.opened)
	}
	// The bounce of nobody@app.test went to ann through the smarthost.
	msgs := smarthost.WaitMessages(1, 30*time.Second)
	if len(msgs) != 1 || msgs[0].From != "" || msgs[0].To[0] != "ann@customer.test" {
		t.Fatalf("smarthost got %+v", msgs)
	}
	if b := string(msgs[0].Data); !strings.Contains(b, "No such ticket queue. (#5.1.1)") || !strings.Contains(b, "MAILER-DAEMON@mx.app.test") {
		t.Errorf("bounce:\n%s", b)
	}
}
