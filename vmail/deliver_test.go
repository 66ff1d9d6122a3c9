package vmail_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/vmail"
	"github.com/qmailkit/qmailkit/vmail/sqlstore"
)

// injector records the forwards.
type injector struct {
	mu    sync.Mutex
	calls []forward
	err   error
}

type forward struct {
	sender string
	rcpts  []string
	body   string
}

func (in *injector) Forward(_ context.Context, sender string, rcpts []string, r io.Reader) (string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.err != nil {
		return "", in.err
	}
	in.calls = append(in.calls, forward{sender, rcpts, string(b)})
	return "42", nil
}

// responder records the automatic replies asked for.
type responder struct {
	mu    sync.Mutex
	calls []vmail.Response
}

func (r *responder) Respond(_ context.Context, resp vmail.Response, _ vmail.Injector) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, resp)
	return nil
}

type dfixture struct {
	m   *vmail.Manager
	d   *vmail.Deliverer
	in  *injector
	ar  *responder
	joe vmail.Mailbox
	dir string
}

const message = "Subject: hello\n\nbody\n"

func newDeliverFixture(t *testing.T) *dfixture {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlstore.OpenSQLite(filepath.Join(dir, "vmail.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := vmail.New(vmail.Options{Store: st, Dir: filepath.Join(dir, "domains"), UID: -1, GID: -1, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := m.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	joe, err := m.AddMailbox(ctx, "joe@example.com", "secret-password-1")
	if err != nil {
		t.Fatal(err)
	}
	f := &dfixture{m: m, in: &injector{}, ar: &responder{}, joe: joe, dir: dir}
	f.d = &vmail.Deliverer{Manager: m, Injector: f.in, Responder: f.ar}
	return f
}

func (f *dfixture) deliver(t *testing.T, rcpt, msg string) (vmail.Result, error) {
	t.Helper()
	return f.d.Deliver(t.Context(), "a@b.example", rcpt, io.NewSectionReader(strings.NewReader(msg), 0, int64(len(msg))))
}

// files returns the contents of the messages in a Maildir's new/.
func files(t *testing.T, maildir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(maildir, "new"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(maildir, "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// wantFail checks a delivery's error: its report text and permanence.
func wantFail(t *testing.T, err error, text string, perm bool) {
	t.Helper()
	var de *vmail.DeliveryError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T), want a *DeliveryError", err, err)
	}
	if !strings.Contains(de.Text, text) || qmailkit.IsPermanent(err) != perm {
		t.Fatalf("error %q (permanent %v), want %q (permanent %v)", de.Text, qmailkit.IsPermanent(err), text, perm)
	}
}

func TestDeliverMailbox(t *testing.T) {
	f := newDeliverFixture(t)
	res, err := f.deliver(t, "Joe@Example.COM", message)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 1 || res.Report != "did 1+0+0\n" {
		t.Fatalf("result %+v", res)
	}
	got := files(t, f.joe.Maildir())
	want := "Return-Path: <a@b.example>\nDelivered-To: joe@example.com\n" + message
	if len(got) != 1 || got[0] != want {
		t.Fatalf("Maildir holds %q, want [%q]", got, want)
	}
	if !strings.HasPrefix(f.joe.Maildir(), filepath.Join(f.dir, "domains", "example.com")+"/") {
		t.Fatalf("Maildir %s is not under the domain's directory", f.joe.Maildir())
	}
	if len(f.ar.calls) != 0 {
		t.Fatalf("autoresponder called without being enabled")
	}
}

// A mailbox whose directory was removed gets it again, as vdelivermail
// makes it.
func TestDeliverRemadeDirectory(t *testing.T) {
	f := newDeliverFixture(t)
	if err := os.RemoveAll(f.joe.Dir); err != nil {
		t.Fatal(err)
	}
	if _, err := f.deliver(t, "joe@example.com", message); err != nil {
		t.Fatal(err)
	}
	if got := files(t, f.joe.Maildir()); len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
}

func TestDeliverAliasDomain(t *testing.T) {
	f := newDeliverFixture(t)
	if err := f.m.AddAliasDomain(t.Context(), "example.net", "example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.deliver(t, "joe@example.net", message); err != nil {
		t.Fatal(err)
	}
	got := files(t, f.joe.Maildir())
	if len(got) != 1 || !strings.Contains(got[0], "\nDelivered-To: joe@example.com\n") {
		t.Fatalf("Maildir holds %q", got)
	}
}

func TestDeliverRefusals(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, f *dfixture)
		rcpt  string
		msg   string
		text  string
		perm  bool
	}{
		{"unknown", nil, "nobody@example.com", message, "Sorry, no mailbox here by that name. (#5.1.1)", true},
		{"not a virtual domain", nil, "joe@other.example", message, "Sorry, no mailbox here by that name. (#5.1.1)", true},
		{"loop", nil, "joe@example.com", "Delivered-To: JOE@example.com\nSubject: x\n\nbody\n", "mail is looping", true},
		{"loop after other lines", nil, "joe@example.com", "Received: x\nDelivered-To: someone@else\nDelivered-To:  joe@EXAMPLE.com \n\nbody\n", "mail is looping", true},
		{"bounce mail", func(t *testing.T, f *dfixture) {
			if err := f.m.SetFlags(t.Context(), "joe@example.com", vmail.BounceMail); err != nil {
				t.Fatal(err)
			}
		}, "joe@example.com", message, "account is locked email bounced joe@example.com", true},
		{"over quota", func(t *testing.T, f *dfixture) {
			if err := f.m.SetQuota(t.Context(), "joe@example.com", vmail.Quota{Bytes: 60}); err != nil {
				t.Fatal(err)
			}
		}, "joe@example.com", message + strings.Repeat("x", 100) + "\n", "user is over quota (#5.2.2)", true},
		{"over quota by count", func(t *testing.T, f *dfixture) {
			if err := f.m.SetQuota(t.Context(), "joe@example.com", vmail.Quota{Count: 1}); err != nil {
				t.Fatal(err)
			}
			if _, err := f.deliver(t, "joe@example.com", message); err != nil {
				t.Fatal(err)
			}
		}, "joe@example.com", message, "user is over quota (#5.2.2)", true},
		{"over quota message of the domain", func(t *testing.T, f *dfixture) {
			if err := f.m.SetQuota(t.Context(), "joe@example.com", vmail.Quota{Bytes: 60}); err != nil {
				t.Fatal(err)
			}
			d, err := f.m.Domain(t.Context(), "example.com")
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(d.Dir, ".over-quota.msg"), []byte("Joe's mailbox is full; call him.\n"), 0o644)
		}, "joe@example.com", message + strings.Repeat("x", 100) + "\n", "Joe's mailbox is full; call him.", true},
		{"over quota message a FIFO", func(t *testing.T, f *dfixture) {
			if err := f.m.SetQuota(t.Context(), "joe@example.com", vmail.Quota{Bytes: 60}); err != nil {
				t.Fatal(err)
			}
			d, err := f.m.Domain(t.Context(), "example.com")
			if err != nil {
				t.Fatal(err)
			}
			if err := mkfifo(filepath.Join(d.Dir, ".over-quota.msg")); err != nil {
				t.Skip(err)
			}
		}, "joe@example.com", message + strings.Repeat("x", 100) + "\n", "user is over quota (#5.2.2)", true},
		{"over quota message a link", func(t *testing.T, f *dfixture) {
			if err := f.m.SetQuota(t.Context(), "joe@example.com", vmail.Quota{Bytes: 60}); err != nil {
				t.Fatal(err)
			}
			d, err := f.m.Domain(t.Context(), "example.com")
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(t.TempDir(), "secret")
			os.WriteFile(p, []byte("a secret of another file\n"), 0o644)
			os.Symlink(p, filepath.Join(d.Dir, ".over-quota.msg"))
		}, "joe@example.com", message + strings.Repeat("x", 100) + "\n", "user is over quota (#5.2.2)", true},
		{"program line", func(t *testing.T, f *dfixture) {
			os.WriteFile(filepath.Join(f.joe.Dir, ".qmail"), []byte("&bob@b.example\n| /bin/true\n"), 0o644)
		}, "joe@example.com", message, "/.qmail line 2: program deliveries are not run", true},
		{"mbox line", func(t *testing.T, f *dfixture) {
			os.WriteFile(filepath.Join(f.joe.Dir, ".qmail"), []byte("./Mailbox\n"), 0o644)
		}, "joe@example.com", message, "can't handle mbox delivery for ./Mailbox", false},
		{"maildir outside", func(t *testing.T, f *dfixture) {
			os.WriteFile(filepath.Join(f.joe.Dir, ".qmail"), []byte("/tmp/\n"), 0o644)
		}, "joe@example.com", message, "outside the mailbox's directory", false},
		{"maildir escaping", func(t *testing.T, f *dfixture) {
			os.WriteFile(filepath.Join(f.joe.Dir, ".qmail"), []byte("./Maildir/../../../\n"), 0o644)
		}, "joe@example.com", message, "outside the mailbox's directory", false},
		{"maildir through a link", func(t *testing.T, f *dfixture) {
			other := t.TempDir()
			os.Symlink(other, filepath.Join(f.joe.Dir, "elsewhere"))
			os.WriteFile(filepath.Join(f.joe.Dir, ".qmail"), []byte("./elsewhere/\n"), 0o644)
		}, "joe@example.com", message, "is a symbolic link", false},
		{".qmail a link", func(t *testing.T, f *dfixture) {
			p := filepath.Join(t.TempDir(), "x")
			os.WriteFile(p, []byte("&evil@b.example\n"), 0o644)
			os.Symlink(p, filepath.Join(f.joe.Dir, ".qmail"))
		}, "joe@example.com", message, "Unable to read", false},
		{".qmail a FIFO", func(t *testing.T, f *dfixture) {
			if err := mkfifo(filepath.Join(f.joe.Dir, ".qmail")); err != nil {
				t.Skip(err)
			}
		}, "joe@example.com", message, "Unable to read", false},
		{".qmail huge", func(t *testing.T, f *dfixture) {
			os.WriteFile(filepath.Join(f.joe.Dir, ".qmail"), []byte(strings.Repeat("&a@b.example\n", 10000)), 0o644)
		}, "joe@example.com", message, "Unable to read", false},
		{".qmail long line", func(t *testing.T, f *dfixture) {
			os.WriteFile(filepath.Join(f.joe.Dir, ".qmail"), []byte("&"+strings.Repeat("a", 2000)+"@b.example\n"), 0o644)
		}, "joe@example.com", message, "line 1 is too long", false},
		{".qmail NUL", func(t *testing.T, f *dfixture) {
			os.WriteFile(filepath.Join(f.joe.Dir, ".qmail"), []byte("&a@b.example\x00&c@d.example\n"), 0o644)
		}, "joe@example.com", message, "has a NUL byte", false},
		{"forward loop", func(t *testing.T, f *dfixture) {
			if err := f.m.SetForward(t.Context(), "joe@example.com", vmail.Forward{To: []string{"bob@b.example"}}); err != nil {
				t.Fatal(err)
			}
		}, "joe@example.com", "Delivered-To: bob@b.example\n\nbody\n", "mail is looping", true},
		{"queue refuses", func(t *testing.T, f *dfixture) {
			f.in.err = errors.New("qq write error or disk full (#4.3.0)")
			if err := f.m.SetForward(t.Context(), "joe@example.com", vmail.Forward{To: []string{"bob@b.example"}}); err != nil {
				t.Fatal(err)
			}
		}, "joe@example.com", message, "Unable to forward message: qq write error or disk full (#4.3.0).", false},
		{"no queue", func(t *testing.T, f *dfixture) {
			f.d.Injector = nil
			if err := f.m.AddAlias(t.Context(), "info@example.com", "bob@b.example"); err != nil {
				t.Fatal(err)
			}
		}, "info@example.com", message, "no queue to forward through", false},
		{"store down", func(t *testing.T, f *dfixture) {
			f.m.Store().Close()
		}, "joe@example.com", message, "temporary failure looking up the mailbox", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newDeliverFixture(t)
			if tt.setup != nil {
				tt.setup(t, f)
			}
			before := len(files(t, f.joe.Maildir()))
			_, err := f.deliver(t, tt.rcpt, tt.msg)
			wantFail(t, err, tt.text, tt.perm)
			if got := files(t, f.joe.Maildir()); len(got) != before {
				t.Fatalf("a refused delivery left %d messages (before: %d)", len(got), before)
			}
			if len(f.in.calls) != 0 {
				t.Fatalf("a refused delivery forwarded: %+v", f.in.calls)
			}
		})
	}
}

func TestDeliverForwards(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(t *testing.T, f *dfixture)
		rcpt      string
		forwarded []string // the one forward's recipients; nil: none
		dt        string   // its Delivered-To line
		files     int      // messages in joe's Maildir
		discarded bool
	}{
		{"alias", func(t *testing.T, f *dfixture) {
			if err := f.m.AddAlias(t.Context(), "info@example.com", "bob@b.example", "joe@example.com"); err != nil {
				t.Fatal(err)
			}
		}, "info@example.com", []string{"bob@b.example", "joe@example.com"}, "info@example.com", 0, false},
		{"catch-all", func(t *testing.T, f *dfixture) {
			if err := f.m.SetCatchAll(t.Context(), "example.com", "joe@example.com"); err != nil {
				t.Fatal(err)
			}
		}, "whoever@example.com", []string{"joe@example.com"}, "whoever@example.com", 0, false},
		{"catch-all delete", func(t *testing.T, f *dfixture) {
			if err := f.m.SetCatchAll(t.Context(), "example.com", "delete"); err != nil {
				t.Fatal(err)
			}
		}, "whoever@example.com", nil, "", 0, true},
		{"forward", func(t *testing.T, f *dfixture) {
			if err := f.m.SetForward(t.Context(), "joe@example.com", vmail.Forward{To: []string{"bob@b.example"}}); err != nil {
				t.Fatal(err)
			}
		}, "joe@example.com", []string{"bob@b.example"}, "joe@example.com", 0, false},
		{"forward with a copy", func(t *testing.T, f *dfixture) {
			if err := f.m.SetForward(t.Context(), "joe@example.com", vmail.Forward{To: []string{"bob@b.example", "carol@c.example"}, KeepCopy: true}); err != nil {
				t.Fatal(err)
			}
		}, "joe@example.com", []string{"bob@b.example", "carol@c.example"}, "joe@example.com", 1, false},
		{".qmail delete", func(t *testing.T, f *dfixture) {
			os.WriteFile(filepath.Join(f.joe.Dir, ".qmail"), []byte("# delete\n"), 0o644)
		}, "joe@example.com", nil, "", 0, true},
		{".qmail forwards and Maildir", func(t *testing.T, f *dfixture) {
			line := f.joe.Maildir() + "/\n"
			os.WriteFile(filepath.Join(f.joe.Dir, ".qmail"), []byte("# qmailadmin\n&bob@b.example\ncarol@c.example\n\n"+line), 0o644)
		}, "joe@example.com", []string{"bob@b.example", "carol@c.example"}, "joe@example.com", 1, false},
		{".qmail relative Maildir", func(t *testing.T, f *dfixture) {
			os.WriteFile(filepath.Join(f.joe.Dir, ".qmail"), []byte("./Maildir/\n"), 0o644)
		}, "joe@example.com", nil, "", 1, false},
		{".qmail over Forward", func(t *testing.T, f *dfixture) {
			if err := f.m.SetForward(t.Context(), "joe@example.com", vmail.Forward{To: []string{"bob@b.example"}}); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(f.joe.Dir, ".qmail"), []byte("./Maildir/\n"), 0o644)
		}, "joe@example.com", nil, "", 1, false},
		{"empty .qmail", func(t *testing.T, f *dfixture) {
			os.WriteFile(filepath.Join(f.joe.Dir, ".qmail"), []byte("\n\n"), 0o644)
		}, "joe@example.com", nil, "", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newDeliverFixture(t)
			tt.setup(t, f)
			res, err := f.deliver(t, tt.rcpt, message)
			if err != nil {
				t.Fatal(err)
			}
			if res.Discarded != tt.discarded || res.Files != tt.files || res.Forwards != len(tt.forwarded) {
				t.Fatalf("result %+v", res)
			}
			if got := files(t, f.joe.Maildir()); len(got) != tt.files {
				t.Fatalf("%d messages in the Maildir, want %d", len(got), tt.files)
			}
			if tt.forwarded == nil {
				if len(f.in.calls) != 0 {
					t.Fatalf("forwarded: %+v", f.in.calls)
				}
				return
			}
			if len(f.in.calls) != 1 {
				t.Fatalf("%d forwards, want 1", len(f.in.calls))
			}
			c := f.in.calls[0]
			if c.sender != "a@b.example" || strings.Join(c.rcpts, " ") != strings.Join(tt.forwarded, " ") || c.body != "Delivered-To: "+tt.dt+"\n"+message {
				t.Fatalf("forward %+v", c)
			}
			if !strings.Contains(res.Report, "qp 42\n") {
				t.Fatalf("report %q", res.Report)
			}
		})
	}
}

func TestDeliverAutoresponder(t *testing.T) {
	now := time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		ar   vmail.Autoresponder
		want bool
	}{
		{"off", vmail.Autoresponder{Body: "away"}, false},
		{"on", vmail.Autoresponder{Enabled: true, Body: "away"}, true},
		{"in period", vmail.Autoresponder{Enabled: true, Body: "away", From: now.Add(-time.Hour), Until: now.Add(time.Hour)}, true},
		{"before", vmail.Autoresponder{Enabled: true, Body: "away", From: now.Add(time.Hour)}, false},
		{"after", vmail.Autoresponder{Enabled: true, Body: "away", Until: now}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newDeliverFixture(t)
			f.d.Now = func() time.Time { return now }
			if err := f.m.SetAutoresponder(t.Context(), "joe@example.com", tt.ar); err != nil {
				t.Fatal(err)
			}
			if _, err := f.deliver(t, "joe@example.com", message); err != nil {
				t.Fatal(err)
			}
			if got := len(f.ar.calls) == 1; got != tt.want {
				t.Fatalf("autoresponder called %d times", len(f.ar.calls))
			}
			if tt.want {
				c := f.ar.calls[0]
				b, _ := io.ReadAll(c.Message)
				if c.Sender != "a@b.example" || c.Recipient != "joe@example.com" || string(b) != message || c.Mailbox.Name != "joe" {
					t.Fatalf("response %+v %q", c, b)
				}
			}
		})
	}
}

// Concurrent deliveries into one mailbox under a quota: none is lost,
// none goes beyond the quota's count.
func TestDeliverConcurrentQuota(t *testing.T) {
	f := newDeliverFixture(t)
	if err := f.m.SetQuota(t.Context(), "joe@example.com", vmail.Quota{Count: 1000}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := f.deliver(t, "joe@example.com", message); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := files(t, f.joe.Maildir()); len(got) != 20 {
		t.Fatalf("%d messages, want 20", len(got))
	}
}

func mkfifo(path string) error { return syscall.Mkfifo(path, 0o644) }

// A Maildir left 90 % full gets the domain's .quotawarn.msg, once a day.
func TestDeliverQuotaWarning(t *testing.T) {
	for _, withFile := range []bool{true, false} {
		f := newDeliverFixture(t)
		now := time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)
		f.d.Now = func() time.Time { return now }
		if err := f.m.SetQuota(t.Context(), "joe@example.com", vmail.Quota{Bytes: 10000}); err != nil {
			t.Fatal(err)
		}
		if withFile {
			d, err := f.m.Domain(t.Context(), "example.com")
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(d.Dir, ".quotawarn.msg"), []byte("From: postmaster@example.com\nSubject: Mailbox nearly full\n\nYour mailbox is 90% full.\n"), 0o644)
		}
		warnings := func() int {
			n := 0
			for _, m := range files(t, f.joe.Maildir()) {
				if strings.HasPrefix(m, "Delivered-To: joe@example.com\nDate: ") && strings.Contains(m, "Mailbox nearly full") {
					n++
				}
			}
			return n
		}
		steps := []struct {
			body     int           // bytes of the message's body
			advance  time.Duration // of the clock before the delivery
			warnings int
		}{
			{100, 0, 0},         // 10 % full
			{9000, 0, 1},        // 91 %
			{100, time.Hour, 1}, // a warning a day
			{100, 25 * time.Hour, 2},
		}
		for i, st := range steps {
			now = now.Add(st.advance)
			if _, err := f.deliver(t, "joe@example.com", "Subject: x\n\n"+strings.Repeat("x", st.body)+"\n"); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			want := st.warnings
			if !withFile {
				want = 0
			}
			if got := warnings(); got != want {
				t.Fatalf("file %v, step %d: %d warnings, want %d", withFile, i, got, want)
			}
		}
	}
}

// A hostile .quotawarn.msg (a FIFO, a link to another file) or a quotawarn
// stamp that is a link sends no warning, does not hang the delivery and
// touches nothing outside the Maildir.
func TestDeliverQuotaWarningHostile(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret")
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		setup func(t *testing.T, domainDir, maildir string)
	}{
		{"message a FIFO", func(t *testing.T, domainDir, _ string) {
			if err := mkfifo(filepath.Join(domainDir, ".quotawarn.msg")); err != nil {
				t.Skip(err)
			}
		}},
		{"message a link", func(t *testing.T, domainDir, _ string) {
			check(t, os.Symlink(outside, filepath.Join(domainDir, ".quotawarn.msg")))
		}},
		{"stamp a link", func(t *testing.T, domainDir, maildir string) {
			check(t, os.WriteFile(filepath.Join(domainDir, ".quotawarn.msg"), []byte("Subject: Mailbox nearly full\n\nfull\n"), 0o644))
			check(t, os.Symlink(outside, filepath.Join(maildir, "quotawarn")))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, os.WriteFile(outside, []byte("Subject: Mailbox nearly full\n\nnot for joe\n"), 0o644))
			check(t, os.Chtimes(outside, old, old))
			f := newDeliverFixture(t)
			// Two days on: the stamp link, made now, is no warning of today.
			later := time.Now().Add(48 * time.Hour)
			f.d.Now = func() time.Time { return later }
			if err := f.m.SetQuota(t.Context(), "joe@example.com", vmail.Quota{Bytes: 10000}); err != nil {
				t.Fatal(err)
			}
			d, err := f.m.Domain(t.Context(), "example.com")
			check(t, err)
			tt.setup(t, d.Dir, f.joe.Maildir())
			if _, err := f.deliver(t, "joe@example.com", "Subject: x\n\n"+strings.Repeat("x", 9500)+"\n"); err != nil {
				t.Fatal(err)
			}
			for _, m := range files(t, f.joe.Maildir()) {
				if strings.Contains(m, "Mailbox nearly full") {
					t.Fatalf("a warning was delivered: %q", m)
				}
			}
			fi, err := os.Stat(outside)
			check(t, err)
			if !fi.ModTime().Equal(old) || fi.Size() != int64(len("Subject: Mailbox nearly full\n\nnot for joe\n")) {
				t.Fatalf("the file outside was touched: %v, %d bytes", fi.ModTime(), fi.Size())
			}
		})
	}
}
