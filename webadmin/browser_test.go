package webadmin

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/vmail"
)

// TestBrowser drives the real pages in a headless Chromium over HTTPS:
// the administrator logs in and creates a domain, a domain administrator
// and a mailbox; the domain administrator logs in and sets the mailbox's
// forward and autoresponder; the user logs in and changes the password.
// The Manager's records are checked after each step, and a screenshot of
// each page is written to $QMAILKIT_SCREENSHOTS (else a new temporary
// directory, kept and logged) for a person to look at.
func TestBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (Debian's chromium package): the browser test needs it")
	}
	if testing.Short() {
		t.Skip("starts a browser")
	}
	shots := os.Getenv("QMAILKIT_SCREENSHOTS")
	if shots == "" {
		shots, err = os.MkdirTemp("", "webadmin-screenshots-")
	} else {
		err = os.MkdirAll(shots, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)

	mgr := newManager(t, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	srv, err := New(Options{
		Manager: mgr,
		Admins: auth.Func(func(ctx context.Context, c auth.Credentials) (*auth.User, error) {
			if c.User == "admin" && c.Secret == adminPassword {
				return &auth.User{Name: "admin"}, nil
			}
			return nil, auth.ErrFailed
		}),
		Queue: func(ctx context.Context) (QueueStatus, error) {
			return QueueStatus{Messages: 3, Oldest: time.Now().Add(-time.Hour), ByState: map[string]int{"local": 1, "remote": 2}}, nil
		},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(srv) // Secure __Host- cookies, as the mta serves it
	defer ts.Close()

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
			t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, body)
		}
	}
	// waitFor waits for a page whose h1 and (if set) flash message are
	// these.
	waitFor := func(h1, flash string) chromedp.Action[chromedp.Void] {
		js := fmt.Sprintf(`document.readyState === "complete" && document.querySelector("h1") && document.querySelector("h1").textContent === %q`, h1)
		if flash != "" {
			js += fmt.Sprintf(` && document.querySelector("p.flash") && document.querySelector("p.flash").textContent === %q`, flash)
		}
		// Evaluated again and again, not chromedp.Poll: a page that
		// navigates (the POST's redirect) ends a poll with an error.
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
			chromedp.Navigate(ts.URL+"/login"),
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
	bg := context.Background()

	// The administrator: a domain, its administrator and a mailbox.
	do("login page", chromedp.Navigate(ts.URL+"/"), waitFor("Log in", ""))
	shot("login")
	login("admin", adminPassword, "Domains")
	shot("domains-empty")
	do("add domain",
		chromedp.SendKeys(chromedp.ID("add-name"), "shop.example"),
		chromedp.Click(chromedp.CSS(`form[action="/domains"] button`)),
		waitFor("shop.example", "Domain shop.example added."),
	)
	if _, err := mgr.Domain(bg, "shop.example"); err != nil {
		t.Fatalf("domain not added: %v", err)
	}
	shot("domain-added")
	do("add domain administrator",
		chromedp.SendKeys(chromedp.ID("mb-name"), "boss"),
		chromedp.SendKeys(chromedp.ID("mb-realname"), "The Boss"),
		chromedp.SendKeys(chromedp.ID("mb-password"), "Chief-pass-2026"),
		chromedp.SendKeys(chromedp.ID("mb-password2"), "Chief-pass-2026"),
		chromedp.Click(chromedp.ID("mb-domainadmin")),
		chromedp.Click(chromedp.CSS(`form[action$="/mailboxes"] button`)),
		waitFor("boss@shop.example", "Mailbox boss@shop.example added."),
	)
	if m, err := mgr.Mailbox(bg, "boss@shop.example"); err != nil || m.Flags&vmail.DomainAdmin == 0 || m.RealName != "The Boss" {
		t.Fatalf("boss@shop.example: %+v, %v", m, err)
	}
	shot("boss-added")
	do("domain page", chromedp.Navigate(ts.URL+"/d/shop.example/"), waitFor("shop.example", ""))
	do("weak password",
		chromedp.SendKeys(chromedp.ID("mb-name"), "alice"),
		chromedp.SendKeys(chromedp.ID("mb-password"), "alice"),
		chromedp.SendKeys(chromedp.ID("mb-password2"), "alice"),
		chromedp.SendKeys(chromedp.ID("mb-quota"), "50X"),
		chromedp.Click(chromedp.CSS(`form[action$="/mailboxes"] button`)),
		chromedp.WaitVisible(chromedp.ID("mb-quota-err")),
		chromedp.WaitVisible(chromedp.ID("mb-password-err")),
	)
	shot("mailbox-refused")
	if _, err := mgr.Mailbox(bg, "alice@shop.example"); err == nil {
		t.Fatal("alice added with a weak password")
	}
	do("add mailbox",
		chromedp.Clear(chromedp.ID("mb-quota")),
		chromedp.SendKeys(chromedp.ID("mb-quota"), "50M"),
		chromedp.SendKeys(chromedp.ID("mb-password"), "Wonder-land-2026"),
		chromedp.SendKeys(chromedp.ID("mb-password2"), "Wonder-land-2026"),
		chromedp.Click(chromedp.CSS(`form[action$="/mailboxes"] button`)),
		waitFor("alice@shop.example", "Mailbox alice@shop.example added."),
	)
	if m, err := mgr.Mailbox(bg, "alice@shop.example"); err != nil || m.Quota != (vmail.Quota{Bytes: 50 << 20}) || m.Flags&vmail.DomainAdmin != 0 {
		t.Fatalf("alice@shop.example: %+v, %v", m, err)
	}
	shot("alice-added")
	do("queue page", chromedp.Navigate(ts.URL+"/queue"), waitFor("Queue", ""))
	shot("queue")
	logout()

	// The domain administrator: alice's forward and autoresponder.
	login("boss@shop.example", "Chief-pass-2026", "shop.example")
	shot("domain-admin-home")
	do("alice's page", chromedp.Click(chromedp.CSS(`a[href="/d/shop.example/m/alice"]`)), waitFor("alice@shop.example", ""))
	do("forward",
		chromedp.SendKeys(chromedp.ID("fwd-to"), "alice.archive@other.example"),
		chromedp.Click(chromedp.ID("fwd-keep")),
		chromedp.Click(chromedp.CSS(`form[action$="/forward"] button`)),
		waitFor("alice@shop.example", "Forwarding saved."),
	)
	if m, _ := mgr.Mailbox(bg, "alice@shop.example"); strings.Join(m.Forward.To, ",") != "alice.archive@other.example" || !m.Forward.KeepCopy {
		t.Fatalf("forward: %+v", m.Forward)
	}
	shot("forward-set")
	do("autoresponder",
		chromedp.Click(chromedp.ID("ar-enabled")),
		chromedp.SendKeys(chromedp.ID("ar-subject"), "On holiday"),
		chromedp.SendKeys(chromedp.ID("ar-body"), "I am away until January.\nYour mail will be read then."),
		chromedp.SendKeys(chromedp.ID("ar-days"), "3"),
		chromedp.Click(chromedp.CSS(`form[action$="/autoresponder"] button`)),
		waitFor("alice@shop.example", "Autoresponder on."),
	)
	if m, _ := mgr.Mailbox(bg, "alice@shop.example"); !m.Autoresponder.Enabled || m.Autoresponder.Subject != "On holiday" ||
		m.Autoresponder.Body != "I am away until January.\nYour mail will be read then." || m.Autoresponder.Interval != 3*24*time.Hour {
		t.Fatalf("autoresponder: %+v", m.Autoresponder)
	}
	shot("autoresponder-set")
	do("another domain", chromedp.Navigate(ts.URL+"/domains"), waitFor("Forbidden", ""))
	shot("forbidden")
	logout()

	// The user: a new password.
	login("alice@shop.example", "Wonder-land-2026", "alice@shop.example")
	shot("user-home")
	do("change password",
		chromedp.SendKeys(chromedp.ID("pw-old"), "Wonder-land-2026"),
		chromedp.SendKeys(chromedp.ID("pw-new"), "Rabbit-hole-2027"),
		chromedp.SendKeys(chromedp.ID("pw-new2"), "Rabbit-hole-2027"),
		chromedp.Click(chromedp.CSS(`form[action="/me/password"] button`)),
		waitFor("alice@shop.example", "Password changed."),
	)
	shot("password-changed")
	for pass, want := range map[string]bool{"Rabbit-hole-2027": true, "Wonder-land-2026": false} {
		_, err := mgr.Authenticate(bg, auth.Credentials{Service: auth.ServicePOP3, Method: auth.MethodUser, User: "alice@shop.example", Secret: pass})
		if (err == nil) != want {
			t.Errorf("POP3 login with %s: %v", pass, err)
		}
	}
	logout()
	login("alice@shop.example", "Rabbit-hole-2027", "alice@shop.example")
	shot("user-new-password")
}
