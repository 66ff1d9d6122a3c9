package vmail_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/vmail"
	"github.com/qmailkit/qmailkit/vmail/sqlstore"
)

var _ auth.Authenticator = (*vmail.Manager)(nil)

type fixture struct {
	m     *vmail.Manager
	store *sqlstore.Store
	dir   string // Options.Dir
	db    string // the SQLite file
	clock *clock
}

// clock is a settable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{dir: filepath.Join(base, "domains"), db: filepath.Join(base, "vmail.db"),
		clock: &clock{t: time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)}}
	s, err := sqlstore.OpenSQLite(f.db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f.store = s
	f.m = f.manager(t, s, 0)
	return f
}

// manager returns another Manager of the fixture's directory over s.
func (f *fixture) manager(t *testing.T, s vmail.Store, ttl time.Duration) *vmail.Manager {
	t.Helper()
	m, err := vmail.New(vmail.Options{Store: s, Dir: f.dir, UID: -1, GID: -1, CacheTTL: ttl, Now: f.clock.now, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func login(user, pw string) auth.Credentials {
	return auth.Credentials{Service: auth.ServicePOP3, Method: auth.MethodUser, User: user, Secret: pw,
		Remote: netip.MustParseAddr("192.0.2.7")}
}

func TestNewOptions(t *testing.T) {
	s := newFixture(t).store
	for _, o := range []vmail.Options{{Dir: "/x"}, {Store: s}, {Store: s, Dir: "relative/dir"}} {
		if _, err := vmail.New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestAddMailboxLayout(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	d := must[vmail.Domain](t)(f.m.AddDomain(ctx, "Example.COM"))
	if d.Name != "example.com" || d.Dir != filepath.Join(f.dir, "example.com") {
		t.Fatalf("AddDomain = %+v", d)
	}
	fi, err := os.Lstat(d.Dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o750 {
		t.Fatalf("domain directory: %v %v", fi, err)
	}
	mb := must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "Joe@Example.com", "secret-pass"))
	if mb.Name != "joe" || mb.Domain != "example.com" || mb.Dir != filepath.Join(d.Dir, "joe") {
		t.Fatalf("AddMailbox = %+v", mb)
	}
	if !strings.HasPrefix(mb.Password, "{SHA512-CRYPT}$6$") || strings.Contains(mb.Password, "secret-pass") {
		t.Errorf("stored password %q", mb.Password)
	}
	if _, err := maildir.Open(mb.Maildir()); err != nil {
		t.Errorf("Maildir: %v", err)
	}
	got := must[vmail.Mailbox](t)(f.m.Mailbox(ctx, "JOE@example.com"))
	if got.Dir != mb.Dir || got.RealName != "joe" {
		t.Errorf("Mailbox = %+v", got)
	}
	_, err = f.m.AddMailbox(ctx, "joe@example.com", "secret-pass")
	if !errors.Is(err, vmail.ErrExists) {
		t.Errorf("second AddMailbox: %v", err)
	}
	// The 100th mailbox goes to the hashed directory "0".
	for i := 2; i < 100; i++ {
		must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "user"+itoa(i)+"@example.com", "secret-pass"))
	}
	mb100 := must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "hundredth@example.com", "secret-pass"))
	if want := filepath.Join(d.Dir, "0", "hundredth"); mb100.Dir != want {
		t.Errorf("100th mailbox in %s, want %s", mb100.Dir, want)
	}
	if _, err := maildir.Open(mb100.Maildir()); err != nil {
		t.Errorf("Maildir: %v", err)
	}
}

func TestInvalid(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.com"))
	long := strings.Repeat("a", 65)
	tests := []struct {
		name string
		f    func() error
		want error
	}{
		{"domain without dot", func() error { _, err := f.m.AddDomain(ctx, "localhost"); return err }, vmail.ErrInvalid},
		{"domain ..", func() error { _, err := f.m.AddDomain(ctx, "a..example"); return err }, vmail.ErrInvalid},
		{"domain ../", func() error { _, err := f.m.AddDomain(ctx, "../etc"); return err }, vmail.ErrInvalid},
		{"domain slash", func() error { _, err := f.m.AddDomain(ctx, "a/b.example"); return err }, vmail.ErrInvalid},
		{"domain NUL", func() error { _, err := f.m.AddDomain(ctx, "a\x00b.example"); return err }, vmail.ErrInvalid},
		{"domain huge", func() error { _, err := f.m.AddDomain(ctx, strings.Repeat("a.", 5000)+"com"); return err }, vmail.ErrInvalid},
		{"domain exists", func() error { _, err := f.m.AddDomain(ctx, "EXAMPLE.com"); return err }, vmail.ErrExists},
		{"mailbox ../", func() error { _, err := f.m.AddMailbox(ctx, "../x@example.com", "secret-pass"); return err }, vmail.ErrInvalid},
		{"mailbox slash", func() error { _, err := f.m.AddMailbox(ctx, "a/b@example.com", "secret-pass"); return err }, vmail.ErrInvalid},
		{"mailbox dot", func() error { _, err := f.m.AddMailbox(ctx, ".x@example.com", "secret-pass"); return err }, vmail.ErrInvalid},
		{"mailbox dash", func() error { _, err := f.m.AddMailbox(ctx, "-x@example.com", "secret-pass"); return err }, vmail.ErrInvalid},
		{"mailbox NUL", func() error { _, err := f.m.AddMailbox(ctx, "a\x00b@example.com", "secret-pass"); return err }, vmail.ErrInvalid},
		{"mailbox one byte", func() error { _, err := f.m.AddMailbox(ctx, "a@example.com", "secret-pass"); return err }, vmail.ErrInvalid},
		{"mailbox 65 bytes", func() error { _, err := f.m.AddMailbox(ctx, long+"@example.com", "secret-pass"); return err }, vmail.ErrInvalid},
		{"mailbox no domain", func() error { _, err := f.m.AddMailbox(ctx, "joe", "secret-pass"); return err }, vmail.ErrInvalid},
		{"mailbox missing domain", func() error { _, err := f.m.AddMailbox(ctx, "joe@example.org", "secret-pass"); return err }, vmail.ErrNotFound},
		{"password short", func() error { _, err := f.m.AddMailbox(ctx, "joe@example.com", "short"); return err }, vmail.ErrInvalid},
		{"password LF", func() error { _, err := f.m.AddMailbox(ctx, "joe@example.com", "secret\npass"); return err }, vmail.ErrInvalid},
		{"password NUL", func() error { _, err := f.m.AddMailbox(ctx, "joe@example.com", "secret\x00pass"); return err }, vmail.ErrInvalid},
		{"password huge", func() error {
			_, err := f.m.AddMailbox(ctx, "joe@example.com", strings.Repeat("p", auth.MaxPasswordLength+1))
			return err
		}, vmail.ErrInvalid},
		{"alias target bad", func() error { return f.m.AddAlias(ctx, "sales@example.com", "a b@example.org") }, vmail.ErrInvalid},
		{"alias target program", func() error { return f.m.AddAlias(ctx, "sales@example.com", "|/bin/sh") }, vmail.ErrInvalid},
		{"alias no target", func() error { return f.m.AddAlias(ctx, "sales@example.com") }, vmail.ErrInvalid},
		{"alias too many targets", func() error {
			var ts []string
			for i := range vmail.MaxTargets + 1 {
				ts = append(ts, "t"+strings.Repeat("x", i%50)+"@example.org")
			}
			return f.m.AddAlias(ctx, "sales@example.com", ts...)
		}, vmail.ErrLimit},
		{"catch-all bad", func() error { return f.m.SetCatchAll(ctx, "example.com", "../x") }, vmail.ErrInvalid},
		{"catch-all missing domain", func() error { return f.m.SetCatchAll(ctx, "example.org", "") }, vmail.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.f(); !errors.Is(err, tt.want) {
				t.Errorf("error %v, want one wrapping %v", err, tt.want)
			}
		})
	}
	// Nothing was made for any of them.
	entries, _ := os.ReadDir(filepath.Join(f.dir, "example.com"))
	if len(entries) != 0 {
		t.Errorf("the domain directory holds %v", entries)
	}
}

func TestMailboxOrAlias(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.com"))
	must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "joe@example.com", "secret-pass"))
	if err := f.m.AddAlias(ctx, "joe@example.com", "bob@example.org"); !errors.Is(err, vmail.ErrExists) {
		t.Errorf("alias named as a mailbox: %v", err)
	}
	check(t, f.m.AddAlias(ctx, "Sales@example.com", "joe", "Bob@Example.org"))
	check(t, f.m.AddAlias(ctx, "sales@example.com", "joe@example.com", "carol@example.org"))
	a := must[vmail.Alias](t)(f.m.Alias(ctx, "sales@example.com"))
	if want := []string{"joe@example.com", "bob@example.org", "carol@example.org"}; !slices.Equal(a.Targets, want) {
		t.Errorf("Targets = %v, want %v", a.Targets, want)
	}
	if _, err := f.m.AddMailbox(ctx, "sales@example.com", "secret-pass"); !errors.Is(err, vmail.ErrExists) {
		t.Errorf("mailbox named as an alias: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(f.dir, "example.com", "sales")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a directory was made for the refused mailbox: %v", err)
	}
	check(t, f.m.DeleteAlias(ctx, "sales@example.com", "bob@example.org"))
	a = must[vmail.Alias](t)(f.m.Alias(ctx, "sales@example.com"))
	if want := []string{"joe@example.com", "carol@example.org"}; !slices.Equal(a.Targets, want) {
		t.Errorf("Targets after delete = %v, want %v", a.Targets, want)
	}
	if err := f.m.DeleteAlias(ctx, "sales@example.com", "nobody@example.org"); !errors.Is(err, vmail.ErrNotFound) {
		t.Errorf("deleting a target not there: %v", err)
	}
	check(t, f.m.DeleteAlias(ctx, "sales@example.com", "joe@example.com", "carol@example.org"))
	if _, err := f.m.Alias(ctx, "sales@example.com"); !errors.Is(err, vmail.ErrNotFound) {
		t.Errorf("alias left with no target: %v", err)
	}
}

func TestResolve(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.com"))
	must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.org"))
	check(t, f.m.AddAliasDomain(ctx, "example.net", "example.com"))
	must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "joe@example.com", "secret-pass"))
	check(t, f.m.AddAlias(ctx, "sales@example.com", "joe", "bob@example.org"))

	tests := []struct {
		catchAll, addr string
		kind           vmail.Kind
		address        string
		targets        []string
	}{
		{"", "JOE@example.com", vmail.IsMailbox, "joe@example.com", nil},
		{"", "joe@EXAMPLE.NET", vmail.IsMailbox, "joe@example.com", nil},
		{"", "sales@example.net", vmail.IsAlias, "sales@example.com", []string{"joe@example.com", "bob@example.org"}},
		{"", "nobody@example.com", vmail.Unknown, "nobody@example.com", nil},
		{"", "joe-ext@example.com", vmail.Unknown, "joe-ext@example.com", nil},
		{"", "../x@example.com", vmail.Unknown, "../x@example.com", nil},
		{"delete", "nobody@example.com", vmail.IsCatchAll, "nobody@example.com", nil},
		{"joe", "nobody@example.net", vmail.IsCatchAll, "nobody@example.com", []string{"joe@example.com"}},
		{"bob@example.org", "nobody@example.com", vmail.IsCatchAll, "nobody@example.com", []string{"bob@example.org"}},
		{"@example.org", "Nobody@example.com", vmail.IsCatchAll, "nobody@example.com", []string{"nobody@example.org"}},
		{"joe", "joe@example.com", vmail.IsMailbox, "joe@example.com", nil},
	}
	for _, tt := range tests {
		t.Run(tt.catchAll+"/"+tt.addr, func(t *testing.T) {
			check(t, f.m.SetCatchAll(ctx, "example.com", tt.catchAll))
			r, err := f.m.Resolve(ctx, tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			if r.Kind != tt.kind || r.Address != tt.address || !slices.Equal(r.Targets, tt.targets) {
				t.Errorf("Resolve = kind %d %q %v, want %d %q %v", r.Kind, r.Address, r.Targets, tt.kind, tt.address, tt.targets)
			}
			if r.Kind == vmail.IsMailbox && r.Mailbox.Name != "joe" {
				t.Errorf("Mailbox = %+v", r.Mailbox)
			}
		})
	}
	for _, addr := range []string{"joe@example.edu", "joe@", "joe", "@example.com", "joe@../../etc"} {
		if _, err := f.m.Resolve(ctx, addr); !errors.Is(err, vmail.ErrNotFound) && !errors.Is(err, vmail.ErrInvalid) {
			t.Errorf("Resolve(%q): %v", addr, err)
		}
	}
	for domain, want := range map[string]bool{"example.com": true, "EXAMPLE.NET": true, "example.edu": false, "..": false} {
		if got, err := f.m.IsDomain(ctx, domain); got != want || err != nil {
			t.Errorf("IsDomain(%q) = %v, %v", domain, got, err)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.com"))
	check(t, f.m.AddAliasDomain(ctx, "example.net", "example.com"))
	joe := must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "joe@example.com", "right-pass"))
	must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "nopop@example.com", "right-pass"))
	check(t, f.m.SetFlags(ctx, "nopop@example.com", vmail.NoPOP))
	check(t, f.m.Import(ctx, vmail.Mailbox{Name: "apop@example.com", Password: "{PLAIN}clear-text"}))

	u, err := f.m.Authenticate(ctx, login("JOE%Example.com", "right-pass"))
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "joe@example.com" || u.Home != joe.Dir || u.Maildir != joe.Maildir() || u.UID != -1 {
		t.Errorf("User = %+v", u)
	}
	m := must[vmail.Mailbox](t)(f.m.Mailbox(ctx, "joe@example.com"))
	if !m.LastLogin.Equal(f.clock.now()) || m.LastLoginIP != "192.0.2.7" {
		t.Errorf("last login %v %q", m.LastLogin, m.LastLoginIP)
	}

	apop := login("apop@example.com", auth.APOPDigest("<1.2@host>", "clear-text"))
	apop.Method, apop.Challenge = auth.MethodAPOP, "<1.2@host>"
	joeAPOP := login("joe@example.com", auth.APOPDigest("<1.2@host>", "right-pass"))
	joeAPOP.Method, joeAPOP.Challenge = auth.MethodAPOP, "<1.2@host>"
	smtp := login("nopop@example.com", "right-pass")
	smtp.Service = auth.ServiceSMTP
	must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "locked@example.com", "right-pass"))
	check(t, f.m.SetFlags(ctx, "locked@example.com", vmail.NoSMTP|vmail.NoIMAP|vmail.NoWebmail))
	as := func(s auth.Service, remote string) auth.Credentials {
		c := login("locked@example.com", "right-pass")
		c.Service, c.Remote = s, netip.MustParseAddr(remote)
		return c
	}

	tests := []struct {
		name string
		c    auth.Credentials
		ok   bool
	}{
		{"at", login("joe@example.com", "right-pass"), true},
		{"slash", login("joe/example.com", "right-pass"), true},
		{"alias domain", login("joe@example.net", "right-pass"), true},
		{"wrong password", login("joe@example.com", "wrong-pass"), false},
		{"empty password", login("joe@example.com", ""), false},
		{"no domain", login("joe", "right-pass"), false},
		{"unknown user", login("bob@example.com", "right-pass"), false},
		{"unknown domain", login("joe@example.org", "right-pass"), false},
		{"NUL", login("joe\x00@example.com", "right-pass"), false},
		{"huge", login(strings.Repeat("j", 10000)+"@example.com", "right-pass"), false},
		{"NoPOP", login("nopop@example.com", "right-pass"), false},
		{"NoPOP, SMTP", smtp, true},
		{"NoSMTP", as(auth.ServiceSMTP, "192.0.2.1"), false},
		{"NoIMAP", as(auth.ServiceIMAP, "192.0.2.1"), false},
		{"NoSMTP, POP3", as(auth.ServicePOP3, "192.0.2.1"), true},
		{"NoWebmail, POP3 from 127.0.0.1", as(auth.ServicePOP3, "127.0.0.1"), false},
		{"NoWebmail, POP3 from ::ffff:127.0.0.1", as(auth.ServicePOP3, "::ffff:127.0.0.1"), false},
		{"NoWebmail, web", as(auth.ServiceWeb, "127.0.0.1"), true},
		{"APOP plain", apop, true},
		{"APOP hashed", joeAPOP, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := f.m.Authenticate(ctx, tt.c)
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok && (!errors.Is(err, auth.ErrFailed) || u != nil) {
				t.Fatalf("Authenticate = %v, %v; want auth.ErrFailed", u, err)
			}
		})
	}

	// The domain's Disabled flags, unless Override.
	check(t, f.m.SetLimits(ctx, "example.com", vmail.Limits{Disabled: vmail.NoPOP}))
	if _, err := f.m.Authenticate(ctx, login("joe@example.com", "right-pass")); !errors.Is(err, auth.ErrFailed) {
		t.Errorf("domain without POP: %v", err)
	}
	check(t, f.m.SetFlags(ctx, "joe@example.com", vmail.Override))
	if _, err := f.m.Authenticate(ctx, login("joe@example.com", "right-pass")); err != nil {
		t.Errorf("Override: %v", err)
	}
	// A new password works at once through the same Manager.
	check(t, f.m.SetPassword(ctx, "joe@example.com", "new-password"))
	if _, err := f.m.Authenticate(ctx, login("joe@example.com", "right-pass")); !errors.Is(err, auth.ErrFailed) {
		t.Errorf("old password: %v", err)
	}
	if _, err := f.m.Authenticate(ctx, login("joe@example.com", "new-password")); err != nil {
		t.Errorf("new password: %v", err)
	}
}

// TestCacheTwoManagers: a change made by another Manager (the admin
// command, another process) is seen within CacheTTL, not before the
// Generation is checked again.
func TestCacheTwoManagers(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	server := f.manager(t, f.store, time.Minute)
	s2, err := sqlstore.OpenSQLite(f.db) // the admin command's own connection
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	admin := f.manager(t, s2, -1)

	must[vmail.Domain](t)(admin.AddDomain(ctx, "example.com"))
	if ok, _ := server.IsDomain(ctx, "example.com"); !ok {
		t.Fatal("server does not see the first domain")
	}
	if r, _ := server.Resolve(ctx, "joe@example.com"); r.Kind != vmail.Unknown {
		t.Fatalf("Resolve before = %v", r.Kind)
	}
	must[vmail.Mailbox](t)(admin.AddMailbox(ctx, "joe@example.com", "right-pass"))
	// Within the TTL the cached answer may stand...
	f.clock.add(30 * time.Second)
	if r, _ := server.Resolve(ctx, "joe@example.com"); r.Kind != vmail.Unknown {
		t.Fatalf("Resolve within the TTL = %v: the cache was not used", r.Kind)
	}
	// ...and after it the change is seen.
	f.clock.add(31 * time.Second)
	if r, _ := server.Resolve(ctx, "joe@example.com"); r.Kind != vmail.IsMailbox {
		t.Fatalf("Resolve after the TTL = %v", r.Kind)
	}
	if _, err := server.Authenticate(ctx, login("joe@example.com", "right-pass")); err != nil {
		t.Fatal(err)
	}
	check(t, admin.SetPassword(ctx, "joe@example.com", "other-pass"))
	f.clock.add(61 * time.Second)
	if _, err := server.Authenticate(ctx, login("joe@example.com", "other-pass")); err != nil {
		t.Fatalf("the new password after the TTL: %v", err)
	}
	check(t, admin.DeleteDomain(ctx, "example.com"))
	f.clock.add(61 * time.Second)
	if ok, _ := server.IsDomain(ctx, "example.com"); ok {
		t.Fatal("server still sees the deleted domain")
	}
}

// TestDeleteNeverFollowsLinks: a symbolic link planted in a mailbox's
// directory, or in its place, or in the domain's, is removed, never
// followed.
func TestDeleteNeverFollowsLinks(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	outside := t.TempDir()
	victim := filepath.Join(outside, "precious")
	check(t, os.WriteFile(victim, []byte("keep me"), 0o600))

	d := must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.com"))
	joe := must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "joe@example.com", "right-pass"))
	bob := must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "bob@example.com", "right-pass"))
	// A link inside joe's Maildir to the outside: removed, not followed.
	check(t, os.Symlink(outside, filepath.Join(joe.Maildir(), "cur", "link")))
	check(t, f.m.DeleteMailbox(ctx, "joe@example.com"))
	if _, err := os.Lstat(joe.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("joe's directory left: %v", err)
	}
	// bob's directory replaced by a link to the outside: refused.
	check(t, os.RemoveAll(bob.Dir))
	check(t, os.Symlink(outside, bob.Dir))
	if err := f.m.DeleteMailbox(ctx, "bob@example.com"); err == nil {
		t.Errorf("deleting through a planted link succeeded")
	}
	// An imported mailbox whose directory is reached through a link in
	// the domain's directory to the outside: refused, the outside kept.
	check(t, os.MkdirAll(filepath.Join(outside, "carol", "Maildir"), 0o700))
	check(t, os.Symlink(outside, filepath.Join(d.Dir, "0")))
	check(t, f.m.Import(ctx, vmail.Mailbox{Name: "carol@example.com", Dir: filepath.Join(d.Dir, "0", "carol")}))
	if err := f.m.DeleteMailbox(ctx, "carol@example.com"); err == nil {
		t.Errorf("deleting through a linked hash directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "carol", "Maildir")); err != nil {
		t.Fatalf("a directory outside was removed through a link: %v", err)
	}
	// The domain's directory holding a link to the outside.
	check(t, os.Symlink(outside, filepath.Join(d.Dir, "escape")))
	check(t, f.m.DeleteDomain(ctx, "example.com"))
	if b, err := os.ReadFile(victim); err != nil || string(b) != "keep me" {
		t.Fatalf("the file outside: %q, %v", b, err)
	}
	if _, err := os.Lstat(d.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("domain directory left: %v", err)
	}
	// A domain whose directory is a link: the records go, the link's
	// target stays.
	d2 := must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.org"))
	check(t, os.Remove(d2.Dir))
	check(t, os.Symlink(outside, d2.Dir))
	if err := f.m.DeleteDomain(ctx, "example.org"); err == nil {
		t.Errorf("deleting a linked domain directory reported no error")
	}
	if _, err := os.ReadFile(victim); err != nil {
		t.Fatalf("the file outside: %v", err)
	}
}

func TestImportDirOutside(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.com"))
	old := filepath.Join(t.TempDir(), "home", "vpopmail", "domains", "example.com", "joe")
	check(t, os.MkdirAll(old, 0o750))
	check(t, f.m.Import(ctx, vmail.Mailbox{Name: "joe", Domain: "example.com", Password: "$6$abcdefgh$H", Dir: old, Flags: vmail.NoIMAP, Quota: vmail.Quota{Bytes: 1000}}))
	mb := must[vmail.Mailbox](t)(f.m.Mailbox(ctx, "joe@example.com"))
	if mb.Dir != old || mb.Flags != vmail.NoIMAP || mb.Quota.Bytes != 1000 || mb.Password != "$6$abcdefgh$H" {
		t.Errorf("imported %+v", mb)
	}
	if err := f.m.Import(ctx, vmail.Mailbox{Name: "bob@example.com", Dir: "relative"}); !errors.Is(err, vmail.ErrInvalid) {
		t.Errorf("relative Dir: %v", err)
	}
	// Deleting it leaves a directory outside the domain's alone.
	check(t, f.m.DeleteMailbox(ctx, "joe@example.com"))
	if _, err := os.Stat(old); err != nil {
		t.Errorf("imported directory removed: %v", err)
	}
}

func TestSetQuota(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.com"))
	check(t, f.m.SetLimits(ctx, "example.com", vmail.Limits{DefaultQuota: vmail.Quota{Bytes: 1 << 20}}))
	joe := must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "joe@example.com", "right-pass"))
	if joe.Quota.Bytes != 1<<20 {
		t.Errorf("default quota not applied: %+v", joe.Quota)
	}
	md := maildir.Dir(joe.Maildir())
	if q, _, err := md.ReadQuota(); err != nil || q.Bytes != 1<<20 {
		t.Errorf("maildirsize after add: %+v %v", q, err)
	}
	check(t, os.WriteFile(filepath.Join(joe.Maildir(), "new", "1.2.host,S=300"), make([]byte, 300), 0o600))
	check(t, f.m.SetQuota(ctx, "joe@example.com", vmail.Quota{Bytes: 5000, Count: 10}))
	q, u, err := md.ReadQuota()
	if err != nil || q != (maildir.Quota{Bytes: 5000, Count: 10}) || u.Bytes != 300 || u.Count != 1 {
		t.Errorf("maildirsize: %+v %+v %v", q, u, err)
	}
	check(t, f.m.SetQuota(ctx, "joe@example.com", vmail.Quota{}))
	if _, err := os.Stat(filepath.Join(joe.Maildir(), "maildirsize")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("maildirsize left for no quota: %v", err)
	}
	if err := f.m.SetQuota(ctx, "joe@example.com", vmail.Quota{Bytes: -1}); !errors.Is(err, vmail.ErrInvalid) {
		t.Errorf("negative quota: %v", err)
	}
}

func TestLimits(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.com"))
	check(t, f.m.SetLimits(ctx, "example.com", vmail.Limits{MaxMailboxes: 2, MaxAliases: 1, MaxForwards: 2, MaxAutoresponders: 1}))
	must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "joe@example.com", "right-pass"))
	must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "bob@example.com", "right-pass"))
	if _, err := f.m.AddMailbox(ctx, "carol@example.com", "right-pass"); !errors.Is(err, vmail.ErrLimit) {
		t.Errorf("third mailbox: %v", err)
	}
	check(t, f.m.AddAlias(ctx, "sales@example.com", "joe"))
	check(t, f.m.AddAlias(ctx, "sales@example.com", "bob")) // the same alias grows
	if err := f.m.AddAlias(ctx, "info@example.com", "joe"); !errors.Is(err, vmail.ErrLimit) {
		t.Errorf("second alias: %v", err)
	}
	check(t, f.m.SetForward(ctx, "joe@example.com", vmail.Forward{To: []string{"a@example.org", "b@example.org"}}))
	if err := f.m.SetForward(ctx, "joe@example.com", vmail.Forward{To: []string{"a@example.org", "b@example.org", "c@example.org"}}); !errors.Is(err, vmail.ErrLimit) {
		t.Errorf("third forward: %v", err)
	}
	check(t, f.m.SetAutoresponder(ctx, "joe@example.com", vmail.Autoresponder{Enabled: true, Subject: "Away"}))
	check(t, f.m.SetAutoresponder(ctx, "joe@example.com", vmail.Autoresponder{Enabled: true, Subject: "Still away"}))
	if err := f.m.SetAutoresponder(ctx, "bob@example.com", vmail.Autoresponder{Enabled: true}); !errors.Is(err, vmail.ErrLimit) {
		t.Errorf("second autoresponder: %v", err)
	}
	if err := f.m.SetAutoresponder(ctx, "bob@example.com", vmail.Autoresponder{Subject: "a\r\nBcc: x@y"}); !errors.Is(err, vmail.ErrInvalid) {
		t.Errorf("subject with CRLF: %v", err)
	}
	if err := f.m.DeleteMailbox(ctx, "joe@example.com"); err != nil {
		t.Fatal(err)
	}
	must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "carol@example.com", "right-pass"))
}

func TestCatchAllCannotBeDeleted(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.com"))
	must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "postmaster@example.com", "right-pass"))
	check(t, f.m.SetCatchAll(ctx, "example.com", "postmaster"))
	if err := f.m.DeleteMailbox(ctx, "postmaster@example.com"); !errors.Is(err, vmail.ErrInvalid) {
		t.Errorf("deleting the catch-all: %v", err)
	}
	check(t, f.m.SetCatchAll(ctx, "example.com", ""))
	check(t, f.m.DeleteMailbox(ctx, "postmaster@example.com"))
}

func TestAliasDomains(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.com"))
	check(t, f.m.AddAliasDomain(ctx, "Example.NET", "example.com"))
	if err := f.m.AddAliasDomain(ctx, "example.org", "example.edu"); !errors.Is(err, vmail.ErrNotFound) {
		t.Errorf("alias of a missing domain: %v", err)
	}
	if _, err := f.m.AddDomain(ctx, "example.net"); !errors.Is(err, vmail.ErrExists) {
		t.Errorf("domain named as an alias domain: %v", err)
	}
	if err := f.m.DeleteDomain(ctx, "example.net"); !errors.Is(err, vmail.ErrInvalid) {
		t.Errorf("DeleteDomain of an alias domain: %v", err)
	}
	if err := f.m.DeleteAliasDomain(ctx, "example.com"); !errors.Is(err, vmail.ErrInvalid) {
		t.Errorf("DeleteAliasDomain of a domain: %v", err)
	}
	mb := must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "joe@example.net", "right-pass"))
	if mb.Domain != "example.com" {
		t.Errorf("a mailbox added through an alias domain is in %s", mb.Domain)
	}
	check(t, f.m.DeleteAliasDomain(ctx, "example.net"))
	if ok, _ := f.m.IsDomain(ctx, "example.net"); ok {
		t.Errorf("deleted alias domain still a domain")
	}
	if _, err := os.Stat(filepath.Join(f.dir, "example.com")); err != nil {
		t.Errorf("the domain's directory: %v", err)
	}
}

// TestPaginationMany: 2,500 mailboxes, listed a page at a time (each SQLite commit is fsynced: more would be slow under -race).
func TestPaginationMany(t *testing.T) {
	if testing.Short() {
		t.Skip("adds 2,500 mailboxes")
	}
	f := newFixture(t)
	ctx := t.Context()
	must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.com"))
	const n = 2500
	for i := range n {
		// Import with a ready hash: hashing 2,500 passwords would be the test.
		name := "u" + strings.Repeat("0", 5-len(itoa(i))) + itoa(i)
		check(t, f.m.Import(ctx, vmail.Mailbox{Name: name + "@example.com", Password: "{PLAIN}x", Dir: "/nonexistent/" + name}))
	}
	seen, after := 0, ""
	for pages := 0; pages < n; pages++ {
		page, err := f.m.Mailboxes(ctx, "example.com", after, 500)
		check(t, err)
		for _, mb := range page {
			if mb.Name <= after {
				t.Fatalf("%q after %q", mb.Name, after)
			}
			after = mb.Name
			seen++
		}
		if len(page) < 500 {
			break
		}
	}
	if seen != n {
		t.Errorf("listed %d mailboxes, want %d", seen, n)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// TestConcurrentAdds: mailboxes added at once from several goroutines get
// distinct directories and all exist afterwards.
func TestConcurrentAdds(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.com"))
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			_, err := f.m.AddMailbox(context.WithoutCancel(ctx), "user"+itoa(i)+"@example.com", "right-pass")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		check(t, err)
	}
	mbs := must[[]vmail.Mailbox](t)(f.m.Mailboxes(ctx, "example.com", "", 0))
	dirs := make(map[string]bool)
	for _, mb := range mbs {
		if dirs[mb.Dir] {
			t.Errorf("directory %s given twice", mb.Dir)
		}
		dirs[mb.Dir] = true
	}
	if len(mbs) != 40 {
		t.Errorf("%d mailboxes", len(mbs))
	}
}

// TestOwnership: run as root, the Manager gives what it makes to UID and
// GID.
func TestOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another uid")
	}
	f := newFixture(t)
	ctx := t.Context()
	m, err := vmail.New(vmail.Options{Store: f.store, Dir: f.dir, UID: 65534, GID: 65534, Logger: quiet()})
	check(t, err)
	d := must[vmail.Domain](t)(m.AddDomain(ctx, "example.com"))
	check(t, m.SetLimits(ctx, "example.com", vmail.Limits{DefaultQuota: vmail.Quota{Count: 100}}))
	mb := must[vmail.Mailbox](t)(m.AddMailbox(ctx, "joe@example.com", "right-pass"))
	for _, p := range []string{d.Dir, mb.Dir, mb.Maildir(), mb.Maildir() + "/new", mb.Maildir() + "/cur", mb.Maildir() + "/tmp", mb.Maildir() + "/maildirsize"} {
		fi, err := os.Lstat(p)
		check(t, err)
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 65534 || st.Gid != 65534 {
			t.Errorf("%s owned by %d:%d", p, st.Uid, st.Gid)
		}
	}
	u, err := m.Authenticate(ctx, login("joe@example.com", "right-pass"))
	check(t, err)
	if u.UID != 65534 || u.GID != 65534 {
		t.Errorf("User ids %d:%d", u.UID, u.GID)
	}

	// A Dir that does not exist yet is made the account's too, its
	// parents searchable: a delivery as the account goes through it.
	base := filepath.Join(t.TempDir(), "var", "vmail")
	m2, err := vmail.New(vmail.Options{Store: f.store, Dir: base, UID: 65534, GID: 65534, Logger: quiet()})
	check(t, err)
	must[vmail.Domain](t)(m2.AddDomain(ctx, "example.net"))
	fi, err := os.Lstat(base)
	check(t, err)
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65534 {
		t.Errorf("%s (made by the Manager) owned by %d:%d", base, st.Uid, st.Gid)
	}
	if fi, err := os.Stat(filepath.Dir(base)); err != nil || fi.Mode().Perm()&0o005 != 0o005 {
		t.Errorf("the parent the Manager made: %v %v; want searchable by others", fi.Mode(), err)
	}
}

// failing is a Store whose lookups or RecordLogin fail, as a database
// that went away.
type failing struct {
	vmail.Store
	lookups, record bool
}

var errDown = errors.New("database down")

func (s *failing) Domain(ctx context.Context, name string) (vmail.Domain, error) {
	if s.lookups {
		return vmail.Domain{}, errDown
	}
	return s.Store.Domain(ctx, name)
}

func (s *failing) Generation(ctx context.Context) (int64, error) {
	if s.lookups {
		return 0, errDown
	}
	return s.Store.Generation(ctx)
}

func (s *failing) RecordLogin(ctx context.Context, domain, name string, at time.Time, ip string) error {
	if s.record {
		return errDown
	}
	return s.Store.RecordLogin(ctx, domain, name, at, ip)
}

// TestStoreFailures: a store that fails makes Resolve and Authenticate
// fail temporarily (never a wrong password, never an unknown user), and a
// login that cannot be recorded still succeeds.
func TestStoreFailures(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.com"))
	must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "joe@example.com", "right-pass"))
	fs := &failing{Store: f.store}
	m := f.manager(t, fs, time.Minute)

	fs.record = true
	if _, err := m.Authenticate(ctx, login("joe@example.com", "right-pass")); err != nil {
		t.Errorf("login not recorded made it fail: %v", err)
	}
	fs.record, fs.lookups = false, true
	f.clock.add(2 * time.Minute) // past the cache
	_, err := m.Authenticate(ctx, login("joe@example.com", "right-pass"))
	if err == nil || errors.Is(err, auth.ErrFailed) || !errors.Is(err, errDown) {
		t.Errorf("Authenticate with the store down: %v; want a temporary error", err)
	}
	if _, err := m.Resolve(ctx, "joe@example.com"); err == nil || errors.Is(err, vmail.ErrNotFound) {
		t.Errorf("Resolve with the store down: %v", err)
	}
	if ok, err := m.IsDomain(ctx, "example.com"); err == nil {
		t.Errorf("IsDomain with the store down = %v, nil", ok)
	}
	// Back up: answers again.
	fs.lookups = false
	if _, err := m.Authenticate(ctx, login("joe@example.com", "right-pass")); err != nil {
		t.Errorf("after the store came back: %v", err)
	}
}

// BenchmarkResolveCached: RCPT-time lookups answered from the cache.
func BenchmarkResolveCached(b *testing.B) {
	base := b.TempDir()
	s, err := sqlstore.OpenSQLite(filepath.Join(base, "vmail.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	m, err := vmail.New(vmail.Options{Store: s, Dir: filepath.Join(base, "domains"), UID: -1, GID: -1, CacheTTL: time.Hour, Logger: quiet()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.AddDomain(ctx, "example.com"); err != nil {
		b.Fatal(err)
	}
	const n = 1000
	for i := range n {
		if err := m.Import(ctx, vmail.Mailbox{Name: "user" + itoa(i) + "@example.com", Password: "{PLAIN}x", Dir: "/nonexistent"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r, err := m.Resolve(ctx, "user"+itoa(i%n)+"@example.com")
			if err != nil || r.Kind != vmail.IsMailbox {
				b.Fatal(r.Kind, err)
			}
			i++
		}
	})
}

// badDirs is a Store whose NextDir gives a path that would leave the
// domain's directory.
type badDirs struct{ vmail.Store }

func (badDirs) NextDir(context.Context, string) (string, error) { return "../other.example", nil }

func TestBadNextDir(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.com"))
	must[vmail.Domain](t)(f.m.AddDomain(ctx, "other.example"))
	m := f.manager(t, badDirs{f.store}, -1)
	if _, err := m.AddMailbox(ctx, "joe@example.com", "right-pass"); err == nil {
		t.Fatal("a mailbox was made in the directory the store named")
	}
	if _, err := os.Lstat(filepath.Join(f.dir, "other.example", "joe")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a directory was made in another domain's: %v", err)
	}
}

func TestSetForward(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	must[vmail.Domain](t)(f.m.AddDomain(ctx, "example.com"))
	must[vmail.Mailbox](t)(f.m.AddMailbox(ctx, "joe@example.com", "right-pass"))
	check(t, f.m.SetForward(ctx, "joe@example.com", vmail.Forward{To: []string{"Bob", " Carol@Example.ORG ", "bob@example.com"}, KeepCopy: true}))
	mb := must[vmail.Mailbox](t)(f.m.Mailbox(ctx, "joe@example.com"))
	if want := []string{"bob@example.com", "carol@example.org"}; !slices.Equal(mb.Forward.To, want) || !mb.Forward.KeepCopy {
		t.Errorf("Forward = %+v, want %v kept", mb.Forward, want)
	}
	for _, bad := range []string{"|/bin/sh", "/var/mail/x", "a b@example.org", "x@localhost", "x@", "a\nb@example.org"} {
		if err := f.m.SetForward(ctx, "joe@example.com", vmail.Forward{To: []string{bad}}); !errors.Is(err, vmail.ErrInvalid) {
			t.Errorf("forward to %q: %v", bad, err)
		}
	}
	check(t, f.m.SetForward(ctx, "joe@example.com", vmail.Forward{KeepCopy: true}))
	mb = must[vmail.Mailbox](t)(f.m.Mailbox(ctx, "joe@example.com"))
	if len(mb.Forward.To) != 0 || mb.Forward.KeepCopy {
		t.Errorf("Forward switched off = %+v", mb.Forward)
	}
}
