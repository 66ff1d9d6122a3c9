package mta

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/mailtest"
	"github.com/qmailkit/qmailkit/pop3"
	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/tcprules"
	"github.com/qmailkit/qmailkit/vmail"
)

// startVirtual is start with a virtual domain virtual.test holding the
// mailbox joe (password "joe-password-1") in the home's store.
func startVirtual(t *testing.T) (*running, *vmail.Manager, vmail.Mailbox) {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	demo, _, err := Init(home, InitOptions{Domain: "example.test", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	if err := MakeVirtualDir(home, -1, -1); err != nil {
		t.Fatal(err)
	}
	r := startHome(t, home, demo)
	// 127.0.0.1 relays; 127.0.0.2 is a stranger.
	cdb := filepath.Join(r.sys.Home.Home, "control", "tcp.smtp.cdb")
	if err := tcprules.CompileFile(cdb, cdb+".tmp", strings.NewReader("127.0.0.1:allow,RELAYCLIENT=\"\"\n:allow\n")); err != nil {
		t.Fatal(err)
	}
	m := r.sys.Virtual()
	if m == nil {
		t.Fatal("Open gave no virtual mailboxes")
	}
	ctx := t.Context()
	if _, err := m.AddDomain(ctx, "virtual.test"); err != nil {
		t.Fatal(err)
	}
	joe, err := m.AddMailbox(ctx, "joe@virtual.test", "joe-password-1")
	if err != nil {
		t.Fatal(err)
	}
	return r, m, joe
}

// rcpt says what the SMTP server at addr answers to RCPT TO:<to>, from a
// client at local (which tcp.smtp lets relay when it is 127.0.0.1): 0
// when accepted, else the reply code and text.
func rcpt(t *testing.T, addr, local, to string) (int, string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClient(nc, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("bob@example.org"); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt(to)
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code, te.Msg
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, ""
}

func TestVirtualRCPT(t *testing.T) {
	r, m, _ := startVirtual(t)
	if err := m.AddAlias(t.Context(), "info@virtual.test", "demo@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := m.AddAliasDomain(t.Context(), "alias.test", "virtual.test"); err != nil {
		t.Fatal(err)
	}
	locked, err := m.AddMailbox(t.Context(), "locked@virtual.test", "locked-password-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetFlags(t.Context(), locked.Address(), vmail.BounceMail); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		local, to string
		code      int
		text      string
	}{
		{"127.0.0.2", "joe@virtual.test", 0, ""},
		{"127.0.0.2", "JOE@Virtual.Test", 0, ""},
		{"127.0.0.2", "joe@alias.test", 0, ""},
		{"127.0.0.2", "info@virtual.test", 0, ""},
		{"127.0.0.2", "nobody@virtual.test", 550, "5.1.1 sorry, no mailbox here by that name"},
		{"127.0.0.2", "joe-ext@virtual.test", 550, "5.1.1 sorry, no mailbox here by that name"},
		{"127.0.0.2", "locked@virtual.test", 550, "5.2.1 account is locked email bounced locked@virtual.test"},
		{"127.0.0.2", "joe@elsewhere.test", 553, ""}, // not in rcpthosts: no relay from 127.0.0.2
		{"127.0.0.1", "nobody@virtual.test", 550, "5.1.1"},
		{"127.0.0.1", "joe@virtual.test", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.local+" "+tt.to, func(t *testing.T) {
			code, text := rcpt(t, r.smtp, tt.local, tt.to)
			if code != tt.code || !strings.HasPrefix(text, tt.text) {
				t.Fatalf("RCPT %s from %s: %d %q, want %d %q", tt.to, tt.local, code, text, tt.code, tt.text)
			}
		})
	}
}

// A domain another Manager adds to the same store (the admin command,
// while the mta runs) is accepted without a restart, and its mail
// delivered.
func TestVirtualDomainAddedElsewhere(t *testing.T) {
	r, _, _ := startVirtual(t)
	if code, _ := rcpt(t, r.smtp, "127.0.0.2", "ann@later.test"); code != 553 {
		t.Fatalf("RCPT to a domain not yet added: %d, want 553", code)
	}
	other, err := OpenVirtual(t.Context(), r.sys.Home.Home, vmail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Store().Close()
	if _, err := other.AddDomain(t.Context(), "later.test"); err != nil {
		t.Fatal(err)
	}
	ann, err := other.AddMailbox(t.Context(), "ann@later.test", "ann-password-1")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, text := rcpt(t, r.smtp, "127.0.0.2", "ann@later.test")
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("RCPT to the new domain still %d %s", code, text)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := sendFrom(t, r.smtp, "127.0.0.2", "bob@example.org", "ann@later.test", "Subject: new\r\n\r\nwelcome\r\n"); err != nil {
		t.Fatal(err)
	}
	got := waitMaildir(t, ann.Maildir(), 1)
	if !strings.Contains(got[0], "Delivered-To: ann@later.test\n") {
		t.Fatalf("delivered:\n%s", got[0])
	}
}

// sendFrom sends a message through the SMTP server at addr from a client
// at local.
func sendFrom(t *testing.T, addr, local, from, to, msg string) error {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	c, err := smtp.NewClient(nc, "127.0.0.1")
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprint(w, msg)
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func TestVirtualDelivery(t *testing.T) {
	r, m, joe := startVirtual(t)
	ctx := t.Context()
	// joe's Maildir is in the domain's hashed layout, not in a home.
	if !strings.HasPrefix(joe.Maildir(), filepath.Join(r.sys.Home.Home, "vmail", "domains", "virtual.test")+"/") {
		t.Fatalf("Maildir %s", joe.Maildir())
	}
	if err := sendFrom(t, r.smtp, "127.0.0.2", "bob@example.org", "joe@virtual.test", "Subject: hi\r\n\r\nto joe\r\n"); err != nil {
		t.Fatal(err)
	}
	got := waitMaildir(t, joe.Maildir(), 1)
	for _, want := range []string{"Return-Path: <bob@example.org>\nDelivered-To: joe@virtual.test\n", "Received: (qmail ", "Subject: hi\n\nto joe\n"} {
		if !strings.Contains(got[0], want) {
			t.Fatalf("delivered message lacks %q:\n%s", want, got[0])
		}
	}

	// An alias and the catch-all forward to the local demo mailbox: the
	// forwards go through the queue, with the original sender.
	if err := m.AddAlias(ctx, "info@virtual.test", "demo@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := m.SetCatchAll(ctx, "virtual.test", "demo@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := mailtest.Send(r.smtp, "bob@example.org", []string{"info@virtual.test", "whoever@virtual.test"}, "Subject: fw\r\n\r\nforwarded\r\n"); err != nil {
		t.Fatal(err)
	}
	got = waitMaildir(t, r.demo.Maildir, 2)
	dts := map[string]bool{}
	for _, msg := range got {
		if !strings.HasPrefix(msg, "Return-Path: <bob@example.org>\nDelivered-To: demo@example.test\n") || !strings.Contains(msg, "forwarded") {
			t.Fatalf("forwarded message:\n%s", msg)
		}
		for _, l := range strings.Split(msg, "\n") {
			if strings.HasPrefix(l, "Delivered-To: ") {
				dts[strings.TrimPrefix(l, "Delivered-To: ")] = true
			}
		}
	}
	if !dts["info@virtual.test"] || !dts["whoever@virtual.test"] {
		t.Fatalf("Delivered-To lines %v", dts)
	}
}

// bounceFor injects a message from the local demo mailbox to rcpt and
// returns the bounce that comes back to demo.
func bounceFor(t *testing.T, r *running, rcpt, msg string) string {
	t.Helper()
	_, err := r.sys.Queue.Inject(t.Context(), queue.Envelope{Sender: "demo@example.test", Recipients: []string{rcpt}}, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	got := waitMaildir(t, r.demo.Maildir, 1)
	os.Remove(filepath.Join(r.demo.Maildir, "new", filepath.Base(firstFile(t, r.demo.Maildir))))
	return got[0]
}

func firstFile(t *testing.T, md string) string {
	ents, err := os.ReadDir(filepath.Join(md, "new"))
	if err != nil || len(ents) == 0 {
		t.Fatalf("no message in %s: %v", md, err)
	}
	return ents[0].Name()
}

func TestVirtualBounces(t *testing.T) {
	r, m, joe := startVirtual(t)
	ctx := t.Context()
	if err := m.SetQuota(ctx, joe.Address(), vmail.Quota{Bytes: 100}); err != nil {
		t.Fatal(err)
	}
	b := bounceFor(t, r, "joe@virtual.test", "Subject: big\n\n"+strings.Repeat("x", 500)+"\n")
	if !strings.Contains(b, "<joe@virtual.test>:\nuser is over quota (#5.2.2)") {
		t.Fatalf("over-quota bounce:\n%s", b)
	}
	if err := m.SetQuota(ctx, joe.Address(), vmail.Quota{}); err != nil {
		t.Fatal(err)
	}
	b = bounceFor(t, r, "joe@virtual.test", "Delivered-To: joe@virtual.test\nSubject: loop\n\nagain\n")
	if !strings.Contains(b, "<joe@virtual.test>:\nmail is looping (#5.4.6)") {
		t.Fatalf("loop bounce:\n%s", b)
	}
	if err := m.SetFlags(ctx, joe.Address(), vmail.BounceMail); err != nil {
		t.Fatal(err)
	}
	b = bounceFor(t, r, "joe@virtual.test", "Subject: locked\n\nhello\n")
	if !strings.Contains(b, "<joe@virtual.test>:\naccount is locked email bounced joe@virtual.test (#5.2.1)") {
		t.Fatalf("BounceMail bounce:\n%s", b)
	}
	b = bounceFor(t, r, "nobody@virtual.test", "Subject: lost\n\nhello\n")
	if !strings.Contains(b, "<nobody@virtual.test>:\nSorry, no mailbox here by that name. (#5.1.1)") {
		t.Fatalf("unknown bounce:\n%s", b)
	}
	if msgs := waitMaildir(t, joe.Maildir(), 0); len(msgs) != 0 {
		t.Fatalf("joe's Maildir holds %d messages", len(msgs))
	}
}

// The mailbox's own .qmail: a forward and its Maildir; a program line is
// refused.
func TestVirtualDotQmail(t *testing.T) {
	r, _, joe := startVirtual(t)
	if err := os.WriteFile(filepath.Join(joe.Dir, ".qmail"), []byte("&demo@example.test\n./Maildir/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := mailtest.Send(r.smtp, "bob@example.org", []string{"joe@virtual.test"}, "Subject: dq\r\n\r\nboth\r\n"); err != nil {
		t.Fatal(err)
	}
	waitMaildir(t, joe.Maildir(), 1)
	got := waitMaildir(t, r.demo.Maildir, 1)
	if !strings.Contains(got[0], "Delivered-To: joe@virtual.test\n") {
		t.Fatalf("forwarded:\n%s", got[0])
	}
	os.Remove(filepath.Join(r.demo.Maildir, "new", firstFile(t, r.demo.Maildir)))
	if err := os.WriteFile(filepath.Join(joe.Dir, ".qmail"), []byte("|/bin/touch /tmp/pwned\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := bounceFor(t, r, "joe@virtual.test", "Subject: prog\n\nrun\n")
	if !strings.Contains(b, "/.qmail line 1: program deliveries are not run for virtual mailboxes (#5.7.1)") {
		t.Fatalf("bounce:\n%s", b)
	}
}

// popLogin logs in to the POP3 server at addr and returns the reply to
// PASS.
func popLogin(t *testing.T, addr, user, pass string) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(nc)
	line := func() string {
		s, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimRight(s, "\r\n")
	}
	line()
	fmt.Fprintf(nc, "USER %s\r\n", user)
	line()
	fmt.Fprintf(nc, "PASS %s\r\n", pass)
	reply := line()
	fmt.Fprintf(nc, "QUIT\r\n")
	return reply
}

// smtpAuth tries AUTH PLAIN on the submission server at addr.
func smtpAuth(t *testing.T, addr, user, pass string) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	return c.Auth(smtp.PlainAuth("", user, pass, "127.0.0.1"))
}

func TestVirtualLogins(t *testing.T) {
	r, m, joe := startVirtual(t)
	ctx := t.Context()
	if err := mailtest.Send(r.smtp, "bob@example.org", []string{"joe@virtual.test"}, "Subject: pop\r\n\r\nfetch me\r\n"); err != nil {
		t.Fatal(err)
	}
	waitMaildir(t, joe.Maildir(), 1)
	time.Sleep(1100 * time.Millisecond) // listed from the second after delivery
	got := mailtest.Fetch(t, r.pop3, "joe@virtual.test", "joe-password-1", false)
	if len(got) != 1 || !strings.Contains(got[0], "fetch me") {
		t.Fatalf("POP3 gave %q", got)
	}
	// vpopmail's other forms of the address.
	for _, login := range []string{"JOE@virtual.test", "joe%virtual.test"} {
		if reply := popLogin(t, r.pop3, login, "joe-password-1"); !strings.HasPrefix(reply, "+OK") {
			t.Fatalf("POP3 login %s: %s", login, reply)
		}
	}
	// users/poppasswd still logs in, and first.
	if reply := popLogin(t, r.pop3, "demo", "secret"); !strings.HasPrefix(reply, "+OK") {
		t.Fatalf("POP3 login demo: %s", reply)
	}
	if err := smtpAuth(t, r.submission, "joe@virtual.test", "joe-password-1"); err != nil {
		t.Fatalf("SMTP AUTH: %v", err)
	}
	if reply := popLogin(t, r.pop3, "joe@virtual.test", "wrong-password"); !strings.HasPrefix(reply, "-ERR") {
		t.Fatalf("POP3 with a wrong password: %s", reply)
	}
	// A flag refuses one service and not the other.
	if err := m.SetFlags(ctx, joe.Address(), vmail.NoPOP); err != nil {
		t.Fatal(err)
	}
	if reply := popLogin(t, r.pop3, "joe@virtual.test", "joe-password-1"); !strings.HasPrefix(reply, "-ERR") {
		t.Fatalf("POP3 login with NoPOP: %s", reply)
	}
	if err := smtpAuth(t, r.submission, "joe@virtual.test", "joe-password-1"); err != nil {
		t.Fatalf("SMTP AUTH with NoPOP: %v", err)
	}
	if err := m.SetFlags(ctx, joe.Address(), vmail.NoSMTP); err != nil {
		t.Fatal(err)
	}
	if err := smtpAuth(t, r.submission, "joe@virtual.test", "joe-password-1"); err == nil {
		t.Fatal("SMTP AUTH with NoSMTP accepted")
	}
}

// A delivery to a virtual domain that the scheduler's routing did not yet
// have as local (it reached the remote channel) is still delivered here.
func TestVirtualRemoteChannel(t *testing.T) {
	r, _, joe := startVirtual(t)
	d := queue.Delivery{Sender: "bob@example.org", Recipients: []string{"joe@virtual.test"}, Message: newSection("Subject: r\n\nremote\n")}
	out := r.sys.deliverRemote(context.Background(), d)
	if len(out) != 1 || out[0].Err != nil {
		t.Fatalf("results %+v", out)
	}
	waitMaildir(t, joe.Maildir(), 1)
}

func newSection(s string) *io.SectionReader {
	return io.NewSectionReader(strings.NewReader(s), 0, int64(len(s)))
}

// refuseOpener is an Options.Mailboxes that opens nothing, as a delivery
// helper that knows no virtual mailbox would.
type refuseOpener struct{}

func (refuseOpener) OpenMailbox(*pop3.Server) func(context.Context, *pop3.User) (pop3.Mailbox, error) {
	return func(context.Context, *pop3.User) (pop3.Mailbox, error) {
		return nil, errors.New("refuseOpener: not mine")
	}
}

// refuseDeliverer is an Options.LocalDeliverer that delivers nothing, as
// the root helper would defer a user it does not know.
type refuseDeliverer struct{}

func (refuseDeliverer) Deliver(context.Context, string, string, io.Reader) (dotqmail.Result, error) {
	return dotqmail.Result{}, errors.New("refuseDeliverer: not mine")
}

// With Options.Mailboxes and LocalDeliverer (the root helper of
// examples/mta), a virtual mailbox's mail is still delivered, and its
// Maildir opened, in this process: they are the account's.
func TestVirtualPOP3BesideHelper(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	if _, _, err := Init(home, InitOptions{Domain: "example.test", Password: "secret"}); err != nil {
		t.Fatal(err)
	}
	// The domain exists before the System starts: its mail is routed to
	// the local channel, where the helper would take it.
	ctx := t.Context()
	m, err := OpenVirtual(ctx, home, vmail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddDomain(ctx, "virtual.test"); err != nil {
		t.Fatal(err)
	}
	joe, err := m.AddMailbox(ctx, "joe@virtual.test", "joe-password-1")
	if err != nil {
		t.Fatal(err)
	}
	m.Store().Close()
	sys, err := Open(home, Options{Mailboxes: refuseOpener{}, LocalDeliverer: refuseDeliverer{}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sys.POP3(nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sys.Serve(sctx, Servers{POP3: srv}, Listeners{POP3: l}) }()
	defer func() {
		cancel()
		<-done
		sys.Close()
	}()
	if _, err := sys.Queue.Inject(ctx, queue.Envelope{Sender: "bob@example.org", Recipients: []string{"joe@virtual.test"}}, strings.NewReader("Subject: x\n\nin joe's Maildir\n")); err != nil {
		t.Fatal(err)
	}
	waitMaildir(t, joe.Maildir(), 1)
	time.Sleep(1100 * time.Millisecond) // listed from the second after delivery
	got := mailtest.Fetch(t, l.Addr().String(), "joe@virtual.test", "joe-password-1", false)
	if len(got) != 1 || !strings.Contains(got[0], "in joe's Maildir") {
		t.Fatalf("POP3 gave %q", got)
	}
	// users/poppasswd's demo goes to the helper, which refuses.
	if reply := popLogin(t, l.Addr().String(), "demo", "secret"); strings.HasPrefix(reply, "+OK") {
		t.Fatalf("demo's mailbox opened in-process: %s", reply)
	}
}

// The mailbox's autoresponder answers the sender once, with an empty
// envelope sender, and keeps its log in USERDIR/vacation.
func TestVirtualAutoresponder(t *testing.T) {
	r, m, joe := startVirtual(t)
	if err := m.SetAutoresponder(t.Context(), joe.Address(), vmail.Autoresponder{Enabled: true, Subject: "Away", Body: "Back on Monday."}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		msg := fmt.Sprintf("From: demo@example.test\r\nTo: joe@virtual.test\r\nSubject: question %d\r\nMessage-ID: <q%d@example.test>\r\n\r\nAre you there?\r\n", i, i)
		if err := mailtest.Send(r.smtp, "demo@example.test", []string{"joe@virtual.test"}, msg); err != nil {
			t.Fatal(err)
		}
		waitMaildir(t, joe.Maildir(), i+1)
	}
	got := waitMaildir(t, r.demo.Maildir, 1)
	for _, want := range []string{"Return-Path: <>\n", "Auto-Submitted: auto-replied", "Subject: Away", "Back on Monday.", "In-Reply-To: <q0@example.test>"} {
		if !strings.Contains(got[0], want) {
			t.Fatalf("reply lacks %q:\n%s", want, got[0])
		}
	}
	if ents, err := os.ReadDir(filepath.Join(joe.Dir, "vacation")); err != nil || len(ents) == 0 {
		t.Fatalf("vacation log: %v, %d entries", err, len(ents))
	}
	time.Sleep(500 * time.Millisecond)
	waitMaildir(t, r.demo.Maildir, 1) // still one: the second question got no reply
}

// A qmail home without vmail/ (the qmail-send drop-in's) gets no virtual
// mailboxes, and no vmail/ is made in it.
func TestVirtualNotInAQmailHome(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	if _, _, err := Init(home, InitOptions{Domain: "example.test", Password: "secret"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadHome(home, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Virtual != nil {
		t.Fatal("LoadHome opened virtual mailboxes in a home without vmail/")
	}
	if _, err := os.Lstat(filepath.Join(home, "vmail")); err == nil {
		t.Fatal("LoadHome made vmail/")
	}
}

// The store failing at RCPT defers the recipient, never refuses it: 451
// for a client that may relay (the recipient check), and qmail's 421
// "unable to read controls" for one that may not (smtpserver's answer to
// an rcpthosts failure, which ends the session).
func TestVirtualStoreDownAtRCPT(t *testing.T) {
	r, m, _ := startVirtual(t)
	m.Store().Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Past the Manager's cache (a second by default).
		code, text := rcpt(t, r.smtp, "127.0.0.1", "joe@virtual.test")
		if code == 451 {
			break
		}
		if code != 0 || time.Now().After(deadline) {
			t.Fatalf("RCPT with the store closed: %d %s, want 451", code, text)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, to := range []string{"joe@virtual.test", "ann@unknown.test"} {
		if code, _ := rcpt(t, r.smtp, "127.0.0.2", to); code != 421 {
			t.Fatalf("RCPT %s from a stranger with the store closed: %d, want 421", to, code)
		}
	}
	// The local users' mail does not depend on the virtual store.
	if err := mailtest.Send(r.smtp, "bob@example.org", []string{"demo@example.test"}, "Subject: local\r\n\r\nstill here\r\n"); err != nil {
		t.Fatal(err)
	}
	waitMaildir(t, r.demo.Maildir, 1)
}

// A home that gets vmail/ while the System runs has virtual mailboxes
// from the next ReloadHome.
func TestVirtualAfterReloadHome(t *testing.T) {
	r := start(t, "example.test")
	if r.sys.Virtual() != nil {
		t.Fatal("virtual mailboxes without vmail/")
	}
	m, err := OpenVirtual(t.Context(), r.sys.Home.Home, vmail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Store().Close()
	if _, err := m.AddDomain(t.Context(), "virtual.test"); err != nil {
		t.Fatal(err)
	}
	joe, err := m.AddMailbox(t.Context(), "joe@virtual.test", "joe-password-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.sys.ReloadHome(); err != nil {
		t.Fatal(err)
	}
	if r.sys.Virtual() == nil {
		t.Fatal("no virtual mailboxes after ReloadHome")
	}
	if err := mailtest.Send(r.smtp, "bob@example.org", []string{"joe@virtual.test"}, "Subject: r\r\n\r\nafter reload\r\n"); err != nil {
		t.Fatal(err)
	}
	waitMaildir(t, joe.Maildir(), 1)
}

// Open failing after the virtual store is opened closes it, and does not
// fail on a home without one.
func TestVirtualOpenFails(t *testing.T) {
	for _, virtual := range []bool{false, true} {
		home := filepath.Join(t.TempDir(), "home")
		if _, _, err := Init(home, InitOptions{Domain: "example.test", Password: "secret"}); err != nil {
			t.Fatal(err)
		}
		if virtual {
			if err := MakeVirtualDir(home, -1, -1); err != nil {
				t.Fatal(err)
			}
		}
		// A queue New cannot open: a file where queue/ should be.
		os.RemoveAll(filepath.Join(home, "queue"))
		os.WriteFile(filepath.Join(home, "queue"), []byte("not a directory\n"), 0o644)
		if sys, err := Open(home, Options{}); err == nil {
			sys.Close()
			t.Fatalf("virtual %v: Open with a broken queue succeeded", virtual)
		}
	}
}

// LMTP takes the recipients of a virtual domain added while it runs: its
// routing check makes the domain local by looking it up, as rcpthosts does
// for SMTP.
func TestVirtualLMTPDomainAddedElsewhere(t *testing.T) {
	r, _, _ := startVirtual(t)
	srv, err := r.sys.LMTP()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	lmtpRcpt := func(to string) string {
		c, err := textproto.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.ReadResponse(220)
		c.PrintfLine("LHLO test")
		c.ReadResponse(250)
		c.PrintfLine("MAIL FROM:<bob@example.org>")
		c.ReadResponse(250)
		c.PrintfLine("RCPT TO:<%s>", to)
		code, msg, _ := c.ReadResponse(0)
		return fmt.Sprintf("%d %s", code, msg)
	}
	if got := lmtpRcpt("joe@virtual.test"); !strings.HasPrefix(got, "250") {
		t.Fatalf("LMTP RCPT to a virtual mailbox: %s", got)
	}
	other, err := OpenVirtual(t.Context(), r.sys.Home.Home, vmail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Store().Close()
	if _, err := other.AddDomain(t.Context(), "later.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.AddMailbox(t.Context(), "ann@later.test", "ann-password-1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := lmtpRcpt("ann@later.test")
		if strings.HasPrefix(got, "250") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("LMTP RCPT to the new domain's mailbox still %s", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fwdCounter is a vmail.Injector that counts what it is asked to queue.
type fwdCounter struct{ n int }

func (f *fwdCounter) Forward(context.Context, string, []string, io.Reader) (string, error) {
	f.n++
	return "1", nil
}

// A mailbox's owner cannot make the autoresponder write elsewhere or
// hang: USERDIR/vacation as a link to another directory, a file or a
// FIFO is refused, and nothing is written through it nor replied.
func TestVirtualAutoresponderHostileVacation(t *testing.T) {
	msg := "From: demo@example.test\r\nTo: joe@virtual.test\r\nSubject: q\r\nMessage-ID: <q@example.test>\r\n\r\nthere?\r\n"
	for _, tc := range []struct {
		name string
		make func(t *testing.T, vac, elsewhere string) error
	}{
		{"symlink to a directory", func(t *testing.T, vac, elsewhere string) error { return os.Symlink(elsewhere, vac) }},
		{"dangling symlink", func(t *testing.T, vac, elsewhere string) error {
			return os.Symlink(filepath.Join(elsewhere, "none"), vac)
		}},
		{"regular file", func(t *testing.T, vac, elsewhere string) error { return os.WriteFile(vac, nil, 0o600) }},
		{"fifo", func(t *testing.T, vac, elsewhere string) error { return syscall.Mkfifo(vac, 0o600) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, elsewhere := t.TempDir(), t.TempDir()
			if err := tc.make(t, filepath.Join(dir, "vacation"), elsewhere); err != nil {
				t.Fatal(err)
			}
			mb := vmail.Mailbox{Name: "joe", Domain: "virtual.test", Dir: dir,
				Autoresponder: vmail.Autoresponder{Enabled: true, Subject: "Away", Body: "Back."}}
			var inj fwdCounter
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			err := vacation{logger: slog.New(slog.DiscardHandler)}.Respond(ctx, vmail.Response{
				Mailbox: mb, Sender: "demo@example.test", Recipient: "joe@virtual.test",
				Message: io.NewSectionReader(strings.NewReader(msg), 0, int64(len(msg))),
			}, &inj)
			if err == nil {
				t.Fatal("Respond accepted a hostile vacation directory")
			}
			if inj.n != 0 {
				t.Fatalf("%d replies queued", inj.n)
			}
			if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
				t.Fatalf("written through the link: %v", ents)
			}
		})
	}
}

// OpenVirtual refuses a store file or a vmail/ directory that is not
// what it should be, rather than follow a link or open a FIFO (which
// would hang).
func TestVirtualOpenHostileFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(home, elsewhere string) error
	}{
		{"vmail.db symlink", func(home, elsewhere string) error {
			if err := os.MkdirAll(filepath.Join(home, "vmail"), 0o750); err != nil {
				return err
			}
			return os.Symlink(filepath.Join(elsewhere, "x.db"), filepath.Join(home, "vmail", "vmail.db"))
		}},
		{"vmail.db fifo", func(home, elsewhere string) error {
			if err := os.MkdirAll(filepath.Join(home, "vmail"), 0o750); err != nil {
				return err
			}
			return syscall.Mkfifo(filepath.Join(home, "vmail", "vmail.db"), 0o600)
		}},
		{"vmail symlink", func(home, elsewhere string) error {
			if err := os.MkdirAll(home, 0o755); err != nil {
				return err
			}
			return os.Symlink(elsewhere, filepath.Join(home, "vmail"))
		}},
		{"domains symlink", func(home, elsewhere string) error {
			if err := os.MkdirAll(filepath.Join(home, "vmail"), 0o750); err != nil {
				return err
			}
			return os.Symlink(elsewhere, filepath.Join(home, "vmail", "domains"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home, elsewhere := filepath.Join(t.TempDir(), "home"), t.TempDir()
			if err := tc.make(home, elsewhere); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			m, err := OpenVirtual(ctx, home, vmail.Options{})
			if err == nil {
				m.Store().Close()
				t.Fatal("OpenVirtual accepted it")
			}
			if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
				t.Fatalf("written through the link: %v", ents)
			}
		})
	}
}
