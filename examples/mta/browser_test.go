package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/qmailkit/qmailkit/maildir"
)

// TestBrowserEndToEnd is the browser acceptance test through the
// real mta, never restarted: in a headless Chromium over the web admin's
// HTTPS (the mta's self-signed certificate), the administrator logs in
// with the banner's password and creates the domains example.com and
// example.net, a domain administrator, the mailbox joe@example.com and
// the mailboxes archive@example.com and sender@example.net; the domain
// administrator sets joe's forward (to archive@, keeping a copy) and
// autoresponder; joe changes the password. Then mail from
// sender@example.net to joe over SMTP is delivered to joe's Maildir,
// fetched by POP3 with the new password (the old one refused), copied to
// archive@ by the forward, and answered by the autoresponder, whose reply
// (empty envelope sender, Auto-Submitted: auto-replied, the subject set
// in the browser) reaches sender@'s Maildir; a second message is
// delivered and forwarded but not answered again. A screenshot of each page is
// written to $QMAILKIT_SCREENSHOTS (else a new temporary directory, kept
// and logged) for a person to look at.
func TestBrowserEndToEnd(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (Debian's chromium package): the browser test needs it")
	}
	if testing.Short() {
		t.Skip("starts the mta and a browser")
	}
	shots := os.Getenv("QMAILKIT_SCREENSHOTS")
	if shots == "" {
		shots, err = os.MkdirTemp("", "mta-browser-screenshots-")
	} else {
		err = os.MkdirAll(shots, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)

	home := filepath.Join(scratch(t), "home")
	p := startMTA(t, home)
	if !strings.HasPrefix(p.admin, "https://") || p.adminPassword == "" {
		t.Fatalf("no HTTPS web admin with a password in the banner:\n%s", p.banner)
	}
	base := strings.TrimSuffix(p.admin, "/")

	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(),
		append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(chromium),
			chromedp.NoSandbox, // as root
			chromedp.IgnoreCertErrors,
			chromedp.WindowSize(1100, 900),
			chromedp.UserDataDir(t.TempDir()),
		)...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil { // start the browser, without a timeout
		t.Fatalf("starting chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()

	n := 0
	shot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		n++
		if err := os.WriteFile(filepath.Join(shots, fmt.Sprintf("%02d-%s.png", n, name)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			t.Fatalf("%s: %v\nat %s:\n%s\nmta's stderr:\n%s", what, err, loc, body, p.stderr)
		}
	}
	// waitFor waits for a page whose h1 and (if set) flash message are
	// these, evaluated again and again (a poll ends with an error when
	// the page navigates, as after a POST's redirect).
	waitFor := func(h1, flash string) chromedp.Action[chromedp.Void] {
		js := fmt.Sprintf(`document.readyState === "complete" && document.querySelector("h1") && document.querySelector("h1").textContent === %q`, h1)
		if flash != "" {
			js += fmt.Sprintf(` && document.querySelector("p.flash") && document.querySelector("p.flash").textContent === %q`, flash)
		}
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			deadline := time.Now().Add(10 * time.Second)
			for {
				ok, err := chromedp.Evaluate[bool](js)(ctx, tg)
				if err == nil && ok {
					return nil
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("waiting for %q (%q): %v", h1, flash, err)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}
	login := func(user, pass, h1 string) {
		t.Helper()
		do("log in as "+user,
			chromedp.Navigate(base+"/login"),
			waitFor("Log in", ""),
			chromedp.SendKeys(chromedp.ID("login-user"), user),
			chromedp.SendKeys(chromedp.ID("login-password"), pass),
			chromedp.Click(chromedp.CSS(`form[action="/login"] button`)),
			waitFor(h1, ""),
		)
	}
	logout := func() {
		t.Helper()
		do("log out", chromedp.Click(chromedp.CSS(`form.logout button`)), waitFor("Log in", ""))
	}
	addDomain := func(name string) {
		t.Helper()
		do("add domain "+name,
			chromedp.Navigate(base+"/domains"),
			waitFor("Domains", ""),
			chromedp.SendKeys(chromedp.ID("add-name"), name),
			chromedp.Click(chromedp.CSS(`form[action="/domains"] button`)),
			waitFor(name, "Domain "+name+" added."),
		)
		shot("domain-" + name)
	}
	addMailbox := func(local, domain, pass string, domainAdmin bool) {
		t.Helper()
		addr := local + "@" + domain
		steps := []chromedp.Action[chromedp.Void]{
			chromedp.Navigate(base + "/d/" + domain + "/"),
			waitFor(domain, ""),
			chromedp.SendKeys(chromedp.ID("mb-name"), local),
			chromedp.SendKeys(chromedp.ID("mb-password"), pass),
			chromedp.SendKeys(chromedp.ID("mb-password2"), pass),
		}
		if domainAdmin {
			steps = append(steps, chromedp.Click(chromedp.ID("mb-domainadmin")))
		}
		steps = append(steps,
			chromedp.Click(chromedp.CSS(`form[action$="/mailboxes"] button`)),
			waitFor(addr, "Mailbox "+addr+" added."),
		)
		do("add mailbox "+addr, steps...)
		shot("mailbox-" + addr)
	}

	// The administrator, with the banner's password.
	do("login page", chromedp.Navigate(base+"/"), waitFor("Log in", ""))
	shot("login")
	login("admin", p.adminPassword, "Domains")
	shot("domains-empty")
	addDomain("example.com")
	addMailbox("postmaster", "example.com", "Chief-pass-2026", true)
	addMailbox("joe", "example.com", "Green-tea-2026", false)
	addMailbox("archive", "example.com", "Filing-cab-2026", false)
	addDomain("example.net")
	addMailbox("sender", "example.net", "Letter-post-2026", false)
	do("domains", chromedp.Navigate(base+"/domains"), waitFor("Domains", ""))
	shot("domains")
	logout()

	// The domain administrator: joe's forward and autoresponder.
	login("postmaster@example.com", "Chief-pass-2026", "example.com")
	shot("domain-admin-home")
	do("joe's page", chromedp.Click(chromedp.CSS(`a[href="/d/example.com/m/joe"]`)), waitFor("joe@example.com", ""))
	do("forward",
		chromedp.SendKeys(chromedp.ID("fwd-to"), "archive@example.com"),
		chromedp.Click(chromedp.ID("fwd-keep")),
		chromedp.Click(chromedp.CSS(`form[action$="/forward"] button`)),
		waitFor("joe@example.com", "Forwarding saved."),
	)
	shot("forward-set")
	do("autoresponder",
		chromedp.Click(chromedp.ID("ar-enabled")),
		chromedp.SendKeys(chromedp.ID("ar-subject"), "Joe is on holiday"),
		chromedp.SendKeys(chromedp.ID("ar-body"), "I am away until January.\nYour mail will be read then."),
		chromedp.SendKeys(chromedp.ID("ar-days"), "3"),
		chromedp.Click(chromedp.CSS(`form[action$="/autoresponder"] button`)),
		waitFor("joe@example.com", "Autoresponder on."),
	)
	shot("autoresponder-set")
	do("another domain", chromedp.Navigate(base+"/d/example.net/"), waitFor("Forbidden", ""))
	shot("forbidden")
	logout()

	// Joe: a new password.
	login("joe@example.com", "Green-tea-2026", "joe@example.com")
	shot("user-home")
	do("change password",
		chromedp.SendKeys(chromedp.ID("pw-old"), "Green-tea-2026"),
		chromedp.SendKeys(chromedp.ID("pw-new"), "Black-coffee-2027"),
		chromedp.SendKeys(chromedp.ID("pw-new2"), "Black-coffee-2027"),
		chromedp.Click(chromedp.CSS(`form[action="/me/password"] button`)),
		waitFor("joe@example.com", "Password changed."),
	)
	shot("password-changed")
	logout()

	// The same mta, neither restarted nor signalled: mail from
	// sender@example.net to joe.
	msg := "From: Sender <sender@example.net>\r\nTo: joe@example.com\r\nSubject: lunch on Friday\r\n" +
		"Message-ID: <e2e-1@example.net>\r\nDate: Tue, 08 Dec 2026 02:00:00 +0000\r\n\r\nShall we have lunch on Friday?\r\n"
	if err := sendFrom(p.smtp, "sender@example.net", "joe@example.com", msg); err != nil {
		t.Fatalf("SMTP to joe@example.com: %v\n%s", err, p.stderr)
	}
	vm := filepath.Join(home, "vmail", "domains")
	joe := oneMessage(t, p, filepath.Join(vm, "example.com", "joe", "Maildir"))
	archive := oneMessage(t, p, filepath.Join(vm, "example.com", "archive", "Maildir"))
	reply := oneMessage(t, p, filepath.Join(vm, "example.net", "sender", "Maildir"))
	t.Logf("the autoresponder's reply, in sender@example.net's Maildir:\n%s", reply)
	for name, m := range map[string]string{"joe's copy": joe, "archive's copy": archive} {
		if !strings.Contains(m, "Subject: lunch on Friday") || !strings.Contains(m, "Shall we have lunch on Friday?") {
			t.Errorf("%s is not the message sent:\n%s", name, m)
		}
	}
	if !strings.Contains(archive, "Return-Path: <sender@example.net>\nDelivered-To: archive@example.com\n") ||
		!strings.Contains(archive, "Delivered-To: joe@example.com\n") {
		t.Errorf("archive's copy is not joe's forward (the sender kept, Delivered-To joe then archive):\n%s", archive)
	}
	for _, want := range []string{
		"Return-Path: <>\nDelivered-To: sender@example.net\n",
		"From: <joe@example.com>\n",
		"To: <sender@example.net>\n",
		"Auto-Submitted: auto-replied\n",
		"Subject: Joe is on holiday\n",
		"In-Reply-To: <e2e-1@example.net>\n",
		"I am away until January.\n",
	} {
		if !strings.Contains(reply, want) {
			t.Errorf("the autoresponder's reply has no %q:\n%s", want, reply)
		}
	}

	// A second message: delivered and forwarded again, but not answered
	// again within the autoresponder's 3 days.
	if err := sendFrom(p.smtp, "sender@example.net", "joe@example.com", strings.Replace(msg, "e2e-1@", "e2e-2@", 1)); err != nil {
		t.Fatalf("SMTP to joe@example.com: %v\n%s", err, p.stderr)
	}
	waitCount(t, filepath.Join(vm, "example.com", "joe", "Maildir"), 2, p)
	waitCount(t, filepath.Join(vm, "example.com", "archive", "Maildir"), 2, p)
	for deadline := time.Now().Add(20 * time.Second); ; {
		out, errOut, code := mtaQueue(t, home, "list")
		if code == 0 && out == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue is not empty after 20 s: exit %d, %s%s", code, out, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := countMaildir(t, filepath.Join(vm, "example.net", "sender", "Maildir")); n != 1 {
		t.Errorf("%d autoresponder replies to the same sender, want 1", n)
	}

	// POP3: the old password refused, the new one fetches the message.
	if _, err := pop3Login(t, p.pop3, "joe@example.com", "Green-tea-2026"); err == nil {
		t.Error("POP3 accepts joe's old password after the change in the browser")
	}
	s, err := pop3Login(t, p.pop3, "joe@example.com", "Black-coffee-2027")
	if err != nil {
		t.Fatalf("POP3 with joe's new password: %v\n%s", err, p.stderr)
	}
	if r, err := s.cmd("STAT"); err != nil || !strings.HasPrefix(r, "+OK 2 ") {
		t.Errorf("STAT = %q, %v; want two messages", r, err)
	}
	lines, err := s.multi("RETR 1")
	if err != nil {
		t.Fatalf("RETR 1: %v", err)
	}
	if got := strings.Join(lines, "\n"); !strings.Contains(got, "Subject: lunch on Friday") || !strings.Contains(got, "Shall we have lunch on Friday?") ||
		!strings.Contains(got, "Message-ID: <e2e-") {
		t.Errorf("RETR 1 is not the message sent:\n%s", got)
	}
	s.cmd("QUIT")
	p.stop(t)
}

// sendFrom sends msg from sender to rcpt over SMTP without STARTTLS.
func sendFrom(addr, sender, rcpt, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail(sender); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// oneMessage waits up to 20 s for one message in the Maildir md and
// returns it; more than one fails the test.
func oneMessage(t *testing.T, p *proc, md string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs, err := maildir.Dir(md).List()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if len(msgs) > 1 {
			t.Fatalf("%d messages in %s, want 1", len(msgs), md)
		}
		if len(msgs) == 1 {
			b, err := os.ReadFile(filepath.Join(md, msgs[0].Subdir, msgs[0].Name))
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message in %s after 20 s\nmta's stderr:\n%s", md, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
