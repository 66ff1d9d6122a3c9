package lspawn

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer collects a logger's lines (text format) for the tests.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// count counts the lines holding every one of parts.
func (l *logBuffer) count(parts ...string) int {
	n := 0
	for line := range strings.Lines(l.String()) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// refusingOpener refuses every mailbox with err.
type refusingOpener struct{ err error }

func (r refusingOpener) OpenMailbox(context.Context, string, bool) (*os.File, error) {
	return nil, r.err
}

// TestRefusalsLogged: each refusal of the helper's Server is logged once,
// at Warn, with its reason and the user: a mailbox agent refused (uid 0,
// too many agents) and a delivery killed at its time limit.
func TestRefusalsLogged(t *testing.T) {
	root := &Agents{
		Lookup:  func(name string) (MailboxUser, error) { return MailboxUser{Name: name, Maildir: "/nonexistent"}, nil },
		Command: func(MailboxUser, bool) *exec.Cmd { t.Error("an agent was started"); return exec.Command("/bin/false") },
	}
	for _, tt := range []struct {
		name  string
		srv   Server
		call  func(c *Client) error
		parts []string
	}{
		{"agent for uid 0", Server{Mailboxes: root}, func(c *Client) error {
			_, err := c.OpenMailbox(t.Context(), "toor", false)
			return err
		}, []string{"level=WARN", "mailbox agent refused", "user=toor", "uid 0"}},
		{"too many agents", Server{Mailboxes: refusingOpener{ErrTooManyAgents}}, func(c *Client) error {
			_, err := c.OpenMailbox(t.Context(), "alice", false)
			return err
		}, []string{"level=WARN", "mailbox agent refused", "user=alice", "too many mailbox agents"}},
		{"delivery time limit", Server{DeliveryTimeout: 50 * time.Millisecond}, func(c *Client) error {
			_, err := c.Deliver(t.Context(), "a@b", "slow@a", strings.NewReader("x"))
			return err
		}, []string{"level=WARN", "delivery killed at its time limit", "recipient=slow@a", "limit=50ms"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logBuffer{}
			srv := tt.srv
			srv.Local = newFake()
			srv.Logger = logs.logger()
			a, b := socketpair(t)
			done := make(chan error, 1)
			go func() { done <- srv.ServeConn(context.Background(), b) }()
			c := NewClient(a)
			c.TempDir = t.TempDir()
			err := tt.call(c)
			var e *Error
			if err == nil || (errors.As(err, &e) && e.Perm) {
				t.Errorf("call: %v, want a temporary failure", err)
			}
			c.Close()
			<-done
			if n := logs.count(tt.parts...); n != 1 {
				t.Errorf("%d log lines with %q, want 1:\n%s", n, tt.parts, logs)
			}
		})
	}
}
