package moduletest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/smtpclient"
	"github.com/qmailkit/qmailkit/smtpserver/smtptest"
)

// Mailer is an application's mail-sending code, the code under test: it
// sends account notices through a smarthost and retries temporary
// failures, as a program without a mail queue of its own must.
type Mailer struct {
	Client   *smtpclient.Client
	From     string
	Attempts int           // tries per message
	Backoff  time.Duration // wait between tries
}

// SendWelcome sends the welcome notice to a new user.
func (m *Mailer) SendWelcome(ctx context.Context, to, name string) error {
	msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: Welcome, %s\r\n\r\nYour account is ready.\r\n.\r\nThe team\r\n", m.From, to, name)
	var err error
	for i := range m.Attempts {
		if i > 0 {
			select {
			case <-time.After(m.Backoff):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		_, err = m.Client.Send(ctx, m.From, []string{to}, strings.NewReader(msg))
		if err == nil || qmailkit.IsPermanent(err) {
			return err
		}
	}
	return fmt.Errorf("giving up after %d attempts: %w", m.Attempts, err)
}

// TestApplicationSendsMail tests Mailer against smtptest, as the
// application's own test would: the message it sends, and how it behaves
// when the server fails in each way a real one does.
func TestApplicationSendsMail(t *testing.T) {
	const want = "From: app@example.com\r\nTo: ann@example.org\r\nSubject: Welcome, Ann\r\n\r\nYour account is ready.\r\n.\r\nThe team\r\n"
	for _, tc := range []struct {
		name      string
		script    []smtptest.Rule
		attempts  int  // connections the server saw
		delivered bool // the message arrived (once)
		permanent bool // SendWelcome's error is permanent
	}{
		{name: "accepted", attempts: 1, delivered: true},
		{
			name:     "451 after the data, then accepted",
			script:   []smtptest.Rule{smtptest.OnAttempt(1).At(smtptest.StageData).Reply(451, "4.3.0", "queue full, try later")},
			attempts: 2, delivered: true,
		},
		{
			name:     "421 at the greeting, then accepted",
			script:   []smtptest.Rule{smtptest.OnAttempt(1).At(smtptest.StageConnect).Reply(421, "4.3.2", "too busy")},
			attempts: 2, delivered: true,
		},
		{
			name:     "greylisted at RCPT twice",
			script:   []smtptest.Rule{smtptest.OnAttempt(1, 2).At(smtptest.StageRcpt).Reply(450, "4.7.1", "greylisted")},
			attempts: 3, delivered: true,
		},
		{
			name:     "dropped after the data, then accepted",
			script:   []smtptest.Rule{smtptest.OnAttempt(1).At(smtptest.StageData).Drop()},
			attempts: 2, delivered: true,
		},
		{
			name:      "unknown user: not retried",
			script:    []smtptest.Rule{smtptest.At(smtptest.StageRcpt, "ann@example.org").Reply(550, "5.1.1", "no such user")},
			attempts:  1,
			permanent: true,
		},
		{
			name:     "always 451: gives up",
			script:   []smtptest.Rule{smtptest.At(smtptest.StageMail).Reply(451, "4.3.0", "try later")},
			attempts: 3,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := smtptest.NewServer(t)
			srv.Script(tc.script...)
			routes := &smtpclient.Routes{}
			routes.Set("", smtpclient.Route{Relay: srv.Host(), Port: srv.Port()})
			m := &Mailer{
				Client:   &smtpclient.Client{Hostname: "app.example.com", Routes: routes},
				From:     "app@example.com",
				Attempts: 3,
				Backoff:  10 * time.Millisecond,
			}
			err := m.SendWelcome(t.Context(), "ann@example.org", "Ann")
			switch {
			case tc.delivered && err != nil:
				t.Fatalf("SendWelcome: %v", err)
			case !tc.delivered && err == nil:
				t.Fatal("SendWelcome succeeded")
			case !tc.delivered && qmailkit.IsPermanent(err) != tc.permanent:
				t.Errorf("error %v: permanent %v, want %v", err, qmailkit.IsPermanent(err), tc.permanent)
			}
			atts := srv.Attempts()
			if len(atts) != tc.attempts {
				for _, a := range atts {
					t.Log(a)
				}
				t.Fatalf("%d attempts, want %d", len(atts), tc.attempts)
			}
			for _, a := range atts {
				if a.Helo != "app.example.com" && a.Greeting.Code == 220 {
					t.Errorf("attempt %d: HELO %q", a.Number, a.Helo)
				}
			}
			msgs := srv.Messages()
			if !tc.delivered {
				if len(msgs) != 0 {
					t.Errorf("%d messages accepted", len(msgs))
				}
				return
			}
			if len(msgs) != 1 {
				t.Fatalf("%d messages accepted", len(msgs))
			}
			got := msgs[0]
			if got.From != "app@example.com" || strings.Join(got.To, ",") != "ann@example.org" || got.Attempt != tc.attempts {
				t.Errorf("envelope %q %q, attempt %d", got.From, got.To, got.Attempt)
			}
			if string(got.Raw) != want {
				t.Errorf("message\n got %q\nwant %q", got.Raw, want)
			}
			p, err := got.Parse()
			if err != nil || p.Header.Get("Subject") != "Welcome, Ann" {
				t.Errorf("parsed: %v %v", p, err)
			}
			// The last attempt's record holds the accepted message.
			last := atts[len(atts)-1]
			if tx := last.Transactions[len(last.Transactions)-1]; tx.Data.Code != 250 || tx.Message == nil || string(tx.Message.Raw) != want {
				t.Errorf("last attempt: %v", last)
			}
		})
	}
}
