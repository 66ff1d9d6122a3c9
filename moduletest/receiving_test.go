package moduletest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/smtpserver"
)

// maildirs is an application's Enqueuer: each recipient's mail goes to
// the Maildir of the user named by its local part, under root. A message
// is acknowledged only once every copy is on disk.
type maildirs struct {
	root string
}

func (m maildirs) dir(rcpt string) maildir.Dir {
	local := strings.ToLower(rcpt[:strings.LastIndexByte(rcpt, '@')])
	return maildir.Dir(filepath.Join(m.root, local, "Maildir"))
}

// exists is the CheckRecipient hook: a user is a directory under root.
func (m maildirs) exists(ctx context.Context, s *smtpserver.Session, rcpt string) error {
	i := strings.LastIndexByte(rcpt, '@')
	local := strings.ToLower(rcpt[:max(i, 0)])
	if i <= 0 || strings.ContainsAny(local, "/.") {
		return smtpserver.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user here"}
	}
	if _, err := os.Stat(filepath.Join(m.root, local, "Maildir")); err != nil {
		return smtpserver.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user here"}
	}
	return nil
}

func (m maildirs) Enqueue(ctx context.Context, from string, to []string, msg io.Reader) (string, error) {
	data, err := io.ReadAll(msg)
	if err != nil {
		return "", err // the server refused the message: store nothing
	}
	var names []string
	for _, rcpt := range to {
		name, err := m.dir(rcpt).Deliver(ctx, bytes.NewReader(data))
		if err != nil {
			return "", err // temporary: the client retries
		}
		names = append(names, name)
	}
	return names[0], nil
}

var _ smtpserver.Enqueuer = maildirs{}

// TestReceiveIntoMaildir is an application that receives mail for its
// users into their Maildirs: smtpserver with a tiny Enqueuer.
func TestReceiveIntoMaildir(t *testing.T) {
	root := t.TempDir()
	for _, u := range []string{"ann", "bob"} {
		// maildir.Create makes the Maildir, not its parents.
		if err := os.MkdirAll(filepath.Join(root, u), 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := maildir.Create(filepath.Join(root, u, "Maildir")); err != nil {
			t.Fatal(err)
		}
	}
	boxes := maildirs{root: root}
	srv := &smtpserver.Server{
		Hostname: "mx.example.test",
		RcptHostsContext: func(ctx context.Context, s *smtpserver.Session, domain string) (bool, error) {
			return domain == "example.test", nil
		},
		CheckRecipient: boxes.exists,
		Enqueuer:       boxes,
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	addr := l.Addr().String()

	for _, tc := range []struct {
		name string
		to   []string
		code int // the first failure's code, 0 for none
	}{
		{name: "one user", to: []string{"ann@example.test"}},
		{name: "two users, domain in capitals", to: []string{"ann@EXAMPLE.test", "bob@example.test"}},
		{name: "unknown user", to: []string{"carol@example.test"}, code: 550},
		{name: "another domain: no relaying", to: []string{"ann@elsewhere.test"}, code: 553},
		{name: "a path in the local part", to: []string{"../ann@example.test"}, code: 550},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := map[string]int{}
			for _, u := range []string{"ann", "bob"} {
				before[u] = len(list(t, boxes.dir(u+"@x")))
			}
			body := "Subject: " + tc.name + "\r\n\r\nhello\r\n.dot\r\n"
			err := smtp.SendMail(addr, nil, "sender@example.org", tc.to, []byte(body))
			var te *textproto.Error
			if tc.code != 0 {
				if !errors.As(err, &te) || te.Code != tc.code {
					t.Fatalf("SendMail: %v, want %d", err, tc.code)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			for _, u := range []string{"ann", "bob"} {
				msgs := list(t, boxes.dir(u+"@x"))
				want := before[u]
				for _, r := range tc.to {
					if tc.code == 0 && strings.HasPrefix(r, u+"@") {
						want++
					}
				}
				if len(msgs) != want {
					t.Fatalf("%s has %d messages, want %d", u, len(msgs), want)
				}
				if want > before[u] {
					got := msgs[len(msgs)-1]
					if !strings.HasPrefix(got, "Received: from ") || !strings.HasSuffix(got, "\n\nhello\n.dot\n") || !strings.Contains(got, "Subject: "+tc.name+"\n") {
						t.Errorf("%s's message:\n%s", u, got)
					}
				}
			}
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, smtpserver.ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

// list returns the messages of a Maildir, oldest first.
func list(t *testing.T, d maildir.Dir) []string {
	t.Helper()
	names, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		f, err := d.OpenMessage(n)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}
