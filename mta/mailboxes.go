package mta

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/pop3"
	"github.com/qmailkit/qmailkit/queue"
)

// Mailboxes are users written in Go, by name: the local part of their
// address in every local domain, and their login name for POP3 and SMTP
// AUTH. They are both a Config's Users and its Auth. Each receives its
// mail in the Maildir "Maildir" in its Home, and so does any address of
// it with an extension (name-ext, qmail's form of plus addressing). Names
// are matched without regard to ASCII case. The System delivers to them
// itself, as the process's user, into the Maildir only: no .qmail file is
// read and no program is run, so nothing in a Home is code. A process
// meant to face the Internet should not run as root: the Maildirs would be
// root's. New makes each Home (mode 700) and its Maildir when missing.
type Mailboxes map[string]Mailbox

// Mailbox is one user of Mailboxes.
type Mailbox struct {
	// Password is the password, in one of the forms pop3.VerifyPassword
	// reads: "{PLAIN}secret", or a SHA-crypt hash such as
	// pop3.HashPassword makes ("$6$..."). Empty: the mailbox receives
	// mail but cannot log in.
	Password string
	// Home is the mailbox's directory, an absolute path.
	Home string
}

// find returns the mailbox named name, whatever its ASCII case.
func (m Mailboxes) find(name string) (string, Mailbox, bool) {
	if mb, ok := m[name]; ok {
		return name, mb, true
	}
	for k, mb := range m {
		if strings.EqualFold(k, name) {
			return k, mb, true
		}
	}
	return "", Mailbox{}, false
}

// Lookup implements dotqmail.Users: the mailbox named local, or the
// mailbox named by local's part before a '-' with the rest as the
// extension (the longest name that matches), under the process's uid and
// gid; an error wrapping ErrNoUser when none.
func (m Mailboxes) Lookup(_ context.Context, local string) (dotqmail.User, error) {
	uid, gid := os.Geteuid(), os.Getegid()
	if name, mb, ok := m.find(local); ok {
		return dotqmail.User{Name: name, UID: uid, GID: gid, Home: mb.Home}, nil
	}
	for i := len(local) - 1; i > 0; i-- {
		if local[i] != '-' {
			continue
		}
		if name, mb, ok := m.find(local[:i]); ok {
			return dotqmail.User{Name: name, UID: uid, GID: gid, Home: mb.Home, Dash: "-", Ext: local[i+1:]}, nil
		}
	}
	return dotqmail.User{}, fmt.Errorf("mta: %q: %w", local, ErrNoUser)
}

// Authenticate implements pop3.Authenticator: the user whose password
// the credentials match, with the Maildir in its Home. Names and
// passwords are checked in constant time for the stored forms
// pop3.VerifyPassword reads.
func (m Mailboxes) Authenticate(_ context.Context, c pop3.Credentials) (*pop3.User, error) {
	name, mb, ok := m.find(c.User)
	if !ok || mb.Password == "" || !pop3.VerifyPassword(mb.Password, c) {
		return nil, pop3.ErrAuthFailed
	}
	return &pop3.User{Name: name, Home: mb.Home, UID: os.Geteuid(), GID: os.Getegid(), Maildir: filepath.Join(mb.Home, "Maildir")}, nil
}

// prepare makes each mailbox's Home (mode 700) and its Maildir when
// missing (maildir.Ensure: a link planted as the Maildir is refused).
func (m Mailboxes) prepare() error {
	for name, mb := range m {
		if !filepath.IsAbs(mb.Home) {
			return fmt.Errorf("mta: mailbox %q: Home %q is not an absolute path", name, mb.Home)
		}
		if _, err := maildir.Ensure(filepath.Join(mb.Home, "Maildir")); err != nil {
			return fmt.Errorf("mta: mailbox %q: %w", name, err)
		}
	}
	return nil
}

// deliverMailbox delivers to a recipient of Mailboxes: the Maildir in its
// Home, with qmail-local's Return-Path and Delivered-To lines.
func (s *System) deliverMailbox(ctx context.Context, m Mailboxes, d queue.Delivery) queue.Result {
	rcpt := d.Recipients[0]
	at := max(strings.LastIndexByte(rcpt, '@'), 0)
	u, err := m.Lookup(ctx, rcpt[:at])
	if err != nil {
		s.Metrics.delivered(false, errNoMailbox)
		return queue.Result{Report: errNoMailbox.Text + "\n", Err: errNoMailbox}
	}
	head := dotqmail.RPLine(d.Sender) + dotqmail.DTLine(rcpt[:at], strings.TrimPrefix(rcpt[at:], "@"))
	ctx, cancel := cuttable(ctx)
	defer cancel()
	_, err = s.Local.Deliverer.Maildir.Deliver(ctx, maildir.Dir(filepath.Join(u.Home, "Maildir")), io.MultiReader(strings.NewReader(head), d.Message))
	s.Metrics.delivered(false, err)
	if err != nil {
		code := "4.3.0"
		if qmailkit.IsPermanent(err) {
			code = "5.3.0"
		}
		text := fmt.Sprintf("Unable to deliver to the Maildir of %s: %v. (#%s)", u.Name, err, code)
		return queue.Result{Report: text + "\n", Err: &dotqmail.Error{Text: text, Perm: code[0] == '5', Err: err}}
	}
	return queue.Result{Report: "did 0+0+1/\n"}
}
