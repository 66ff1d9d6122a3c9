package vimport_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/vmail"
	"github.com/qmailkit/qmailkit/vmail/sqlstore"
	"github.com/qmailkit/qmailkit/vmail/vimport"
)

// quiet drops the Manager's log lines.
var quiet = slog.New(slog.DiscardHandler)

func newManager(t *testing.T) *vmail.Manager {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlstore.OpenSQLite(filepath.Join(dir, "vmail.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := vmail.New(vmail.Options{Store: st, Dir: filepath.Join(dir, "domains"), UID: -1, GID: -1, CacheTTL: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// write makes a file (and its directory) under root.
func write(t *testing.T, root, name, content string) string {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func maildir(t *testing.T, dir string) {
	t.Helper()
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, "Maildir", sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

// The hashes: MD5-crypt from openssl passwd -1 -salt abcdefgh password;
// SHA512-crypt of "ann-secret" made by the test.
const md5Joe = "$1$abcdefgh$G//4keteveJp0qb8z2DxG/"

// vpophome makes a vpopmail installation: a domain with mailboxes in the
// domain directory and in a hash directory, aliases, a list, a catch-all;
// a second domain in a domain hash directory; an alias domain (a link);
// and things to skip.
func vpophome(t *testing.T) string {
	t.Helper()
	vp := t.TempDir()
	d := filepath.Join(vp, "domains")
	ex := filepath.Join(d, "example.com")
	annHash, err := auth.HashPassword("ann-secret")
	if err != nil {
		t.Fatal(err)
	}
	write(t, d, ".dir-control", "1\n0\n3\n0 0 0\n61 61 61\n0 2 4\n0 0 0\n\n")
	write(t, ex, "vpasswd", strings.Join([]string{
		"joe:" + md5Joe + ":1:0:Joe User:" + ex + "/joe:NOQUOTA",
		"ann:" + annHash + ":1:2:Ann Example:" + ex + "/0/ann:52428800S,1000C",
		"broken:line",
		"a/b:" + md5Joe + ":1:0:Slash:" + ex + "/a/b:NOQUOTA",
		"old:abJnggxhB/yWI:1:0:Old DES:" + ex + "/old:NOQUOTA",
		"",
	}, "\n"))
	maildir(t, filepath.Join(ex, "joe"))
	maildir(t, filepath.Join(ex, "0", "ann"))
	write(t, ex, ".qmail-default", "| "+vp+"/bin/vdelivermail '' delete\n")
	write(t, ex, ".qmail-info", "&joe@example.com\nbob@other.example\n")
	write(t, ex, ".qmail-john:smith", "&joe@example.com\n")
	write(t, ex, ".qmail-list", "|/usr/bin/ezmlm-send '"+ex+"/list'\n")
	write(t, ex, ".qmail-list-default", "|/usr/bin/ezmlm-manage '"+ex+"/list'\n")
	write(t, ex, ".qmail-joe", "&ann@example.com\n") // joe is a mailbox
	if err := syscall.Mkfifo(filepath.Join(ex, ".qmail-fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(ex, ".qmail-link")); err != nil {
		t.Fatal(err)
	}

	write(t, ex, ".qmailadmin-limits", "maxpopaccounts 500\ndisable_smtp\nmaxaliases 0\n")
	write(t, vp, "etc/vlimits.default", "default_quota 1048576\n")

	big := filepath.Join(d, "0", "big.example")
	write(t, big, "vpasswd", "zed:"+md5Joe+":1:0:Zed:"+big+"/zed:1000C\n")
	maildir(t, filepath.Join(big, "zed"))
	write(t, big, ".qmail-default", "| "+vp+"/bin/vdelivermail '' "+big+"/zed\n")

	if err := os.Symlink(ex, filepath.Join(d, "alias.example")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent", filepath.Join(d, "dangling.example")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(d, "notadomain"), 0o755); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(d, "linked.example")
	if err := os.MkdirAll(linked, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(linked, "vpasswd")); err != nil {
		t.Fatal(err)
	}
	return vp
}

// skipped reports whether the report skipped something of file (a
// suffix of the path) at line.
func skipped(r *vimport.Report, file string, line int) bool {
	return slices.ContainsFunc(r.Skipped, func(p vimport.Problem) bool {
		return strings.HasSuffix(p.File, file) && p.Line == line
	})
}

func TestVpopmail(t *testing.T) {
	ctx := t.Context()
	m := newManager(t)
	vp := vpophome(t)
	// VPOPHOME reached through a link: the alias domain's link, to the
	// real path, is still recognised.
	viaLink := filepath.Join(t.TempDir(), "vpopmail")
	if err := os.Symlink(vp, viaLink); err != nil {
		t.Fatal(err)
	}
	ex := filepath.Join(vp, "domains", "example.com")
	r, err := vimport.Vpopmail(ctx, m, viaLink)
	if err != nil {
		t.Fatalf("Vpopmail: %v\n%s", err, r)
	}
	t.Logf("report:\n%s", r)

	slices.Sort(r.Domains)
	if !slices.Equal(r.Domains, []string{"big.example", "example.com"}) {
		t.Errorf("domains %q", r.Domains)
	}
	if !slices.Equal(r.AliasDomains, []string{"alias.example -> example.com"}) {
		t.Errorf("alias domains %q", r.AliasDomains)
	}
	if r.Mailboxes != 4 || r.Aliases != 2 || r.CatchAlls != 2 {
		t.Errorf("imported %d mailboxes, %d aliases, %d catch-alls; want 4, 2, 2", r.Mailboxes, r.Aliases, r.CatchAlls)
	}
	for _, s := range []struct {
		file string
		line int
	}{
		{"example.com/vpasswd", 3},     // too few fields
		{"example.com/vpasswd", 4},     // a '/' in the name
		{"example.com/.qmail-list", 0}, // a program
		{"example.com/.qmail-list-default", 0},
		{"example.com/.qmail-joe", 0},   // a mailbox's name
		{"example.com/.qmail-fifo", 0},  // not a regular file
		{"example.com/.qmail-link", 0},  // a link
		{"domains/dangling.example", 0}, // a link to no domain
		{"domains/notadomain", 0},       // no vpasswd
		{"domains/linked.example", 0},   // vpasswd a link
	} {
		if !skipped(r, s.file, s.line) {
			t.Errorf("%s:%d not reported skipped", s.file, s.line)
		}
	}
	if !slices.ContainsFunc(r.Warnings, func(p vimport.Problem) bool { return p.Line == 5 && strings.Contains(p.Reason, "old@example.com") }) {
		t.Errorf("the DES hash of old@example.com not reported: %v", r.Warnings)
	}

	// Limits: the domain's own, else vlimits.default.
	if d, err := m.Domain(ctx, "example.com"); err != nil || d.Limits != (vmail.Limits{MaxMailboxes: 500, Disabled: vmail.NoSMTP}) {
		t.Errorf("example.com's limits: %+v, %v", d.Limits, err)
	}
	if d, err := m.Domain(ctx, "big.example"); err != nil || d.Limits != (vmail.Limits{DefaultQuota: vmail.Quota{Bytes: 1048576}}) {
		t.Errorf("big.example's limits: %+v, %v", d.Limits, err)
	}
	if !slices.ContainsFunc(r.Warnings, func(p vimport.Problem) bool {
		return strings.HasSuffix(p.File, ".qmailadmin-limits") && p.Line == 3
	}) {
		t.Errorf("maxaliases 0 not reported: %v", r.Warnings)
	}

	// The mailboxes keep their hashes, flags, quotas, names and directories.
	joe, err := m.Mailbox(ctx, "joe@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if joe.Password != md5Joe || joe.Dir != ex+"/joe" || joe.RealName != "Joe User" || joe.Quota != (vmail.Quota{}) {
		t.Errorf("joe = %+v", joe)
	}
	ann, err := m.Mailbox(ctx, "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if ann.Flags != vmail.NoPOP || ann.Quota != (vmail.Quota{Bytes: 52428800, Count: 1000}) || ann.Dir != ex+"/0/ann" {
		t.Errorf("ann = %+v", ann)
	}
	logins := []struct {
		user, pass string
		service    auth.Service
		ok         bool
	}{
		{"joe@example.com", "password", auth.ServicePOP3, true}, // MD5-crypt
		{"joe@example.com", "Password", auth.ServicePOP3, false},
		{"joe@alias.example", "password", auth.ServiceIMAP, true},
		{"ann@example.com", "ann-secret", auth.ServiceIMAP, true},
		{"ann@example.com", "ann-secret", auth.ServicePOP3, false}, // NoPOP kept
		{"zed@big.example", "password", auth.ServiceSMTP, true},
		{"joe@example.com", "password", auth.ServiceSMTP, false}, // disable_smtp
	}
	for _, l := range logins {
		u, err := m.Authenticate(ctx, auth.Credentials{Service: l.service, Method: auth.MethodPlain, User: l.user, Secret: l.pass})
		if l.ok != (err == nil) {
			t.Errorf("Authenticate(%s, %q, %s) = %v, %v", l.user, l.pass, l.service, u, err)
		}
		if err != nil && !l.ok && !errors.Is(err, auth.ErrFailed) {
			t.Errorf("Authenticate(%s): %v, want ErrFailed", l.user, err)
		}
	}

	resolves := []struct {
		addr    string
		kind    vmail.Kind
		targets []string
	}{
		{"joe@example.com", vmail.IsMailbox, nil},
		{"info@example.com", vmail.IsAlias, []string{"joe@example.com", "bob@other.example"}},
		{"john.smith@example.com", vmail.IsAlias, []string{"joe@example.com"}},
		{"list@example.com", vmail.IsCatchAll, nil}, // skipped: the catch-all "delete" takes it
		{"zed@big.example", vmail.IsMailbox, nil},
		{"nobody@big.example", vmail.IsCatchAll, []string{"zed@big.example"}},
		{"ann@alias.example", vmail.IsMailbox, nil},
	}
	for _, c := range resolves {
		rc, err := m.Resolve(ctx, c.addr)
		if err != nil || rc.Kind != c.kind || c.targets != nil && !slices.Equal(rc.Targets, c.targets) {
			t.Errorf("Resolve(%s) = %+v, %v; want kind %v targets %q", c.addr, rc, err, c.kind, c.targets)
		}
	}

	// Again: nothing new, everything there reported, no error.
	r2, err := vimport.Vpopmail(ctx, m, vp)
	if err != nil {
		t.Fatalf("second Vpopmail: %v", err)
	}
	if r2.Mailboxes != 0 || !skipped(r2, "example.com/vpasswd", 1) {
		t.Errorf("second import: %s", r2)
	}
}

func TestVpopmailErrors(t *testing.T) {
	m := newManager(t)
	if _, err := vimport.Vpopmail(t.Context(), m, filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("a missing VPOPHOME imported")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := vimport.Vpopmail(ctx, m, vpophome(t)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	// Alias files too large, or holding a NUL, are skipped.
	vp := t.TempDir()
	ex := filepath.Join(vp, "domains", "example.net")
	write(t, ex, "vpasswd", "a:x:1:0:A:"+ex+"/a:NOQUOTA\n")
	write(t, ex, ".qmail-big", strings.Repeat("&a@example.net\n", 80000))
	write(t, ex, ".qmail-nul", "&a@example.net\x00\n")
	write(t, ex, ".qmail-empty", "")
	r, err := vimport.Vpopmail(t.Context(), m, vp)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{".qmail-big", ".qmail-nul", ".qmail-empty"} {
		if !skipped(r, f, 0) {
			t.Errorf("%s not skipped: %s", f, r)
		}
	}
	// A vpasswd line longer than 64 KB ends the import naming the line.
	vp = t.TempDir()
	write(t, filepath.Join(vp, "domains", "long.example"), "vpasswd", "a:x:1:0:A:/v/a:NOQUOTA\n"+strings.Repeat("b", 70000)+"\n")
	if _, err := vimport.Vpopmail(t.Context(), m, vp); err == nil || !strings.Contains(err.Error(), "vpasswd:2") {
		t.Errorf("a 70 KB line: %v", err)
	}
}

func TestPoppasswd(t *testing.T) {
	ctx := t.Context()
	m := newManager(t)
	dir := t.TempDir()
	hash, err := auth.HashPassword("bob-secret")
	if err != nil {
		t.Fatal(err)
	}
	path := write(t, dir, "poppasswd", strings.Join([]string{
		"# the POP3 users",
		"bob:" + hash + ":1001:1001:Bob B:" + dir + "/bob:/bin/false",
		"Carol:" + md5Joe + ":1002:1002:Carol:" + dir + "/carol:/bin/false",
		"bob:{PLAIN}other:1003:1003:Second Bob:" + dir + "/bob2:/bin/false",
		"short:x:1:2",
		"rel:x:1:1:Rel:relative/home:/bin/false",
	}, "\n")+"\n")
	maildir(t, filepath.Join(dir, "bob"))
	r, err := vimport.Poppasswd(ctx, m, "Example.ORG", path)
	if err != nil {
		t.Fatalf("Poppasswd: %v\n%s", err, r)
	}
	if r.Mailboxes != 2 || !skipped(r, "poppasswd", 4) || !skipped(r, "poppasswd", 5) || !skipped(r, "poppasswd", 6) {
		t.Errorf("report:\n%s", r)
	}
	bob, err := m.Mailbox(ctx, "bob@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if bob.Maildir() != dir+"/bob/Maildir" || bob.RealName != "Bob B" {
		t.Errorf("bob = %+v", bob)
	}
	for _, l := range []struct{ user, pass string }{{"bob@example.org", "bob-secret"}, {"carol@example.org", "password"}} {
		if _, err := m.Authenticate(ctx, auth.Credentials{Service: auth.ServicePOP3, Method: auth.MethodUser, User: l.user, Secret: l.pass}); err != nil {
			t.Errorf("Authenticate(%s): %v", l.user, err)
		}
	}
	if _, err := vimport.Poppasswd(ctx, m, "example.org", filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file imported")
	}
}

func TestAssign(t *testing.T) {
	ctx := t.Context()
	m := newManager(t)
	if _, err := m.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	path := write(t, t.TempDir(), "assign", strings.Join([]string{
		"=joe:joe:1000:1000:/home/joe:::",
		"+joe-:joe:1000:1000:/home/joe:-::",
		"+example.com-:example.com:89:89:/home/vpopmail/domains/example.com:-::",
		"+alias.net-:example.com:89:89:/home/vpopmail/domains/example.com:-::",
		"+other.example-:other.example:89:89:/home/vpopmail/domains/other.example:-::",
		"+orphan.example-:other.example:89:89:/home/vpopmail/domains/other.example:-::",
		"+bad.example-:x",
		".",
	}, "\n")+"\n")
	r, err := vimport.Assign(ctx, m, path)
	if err != nil {
		t.Fatalf("Assign: %v\n%s", err, r)
	}
	if !slices.Equal(r.AliasDomains, []string{"alias.net -> example.com"}) || !skipped(r, "assign", 5) || !skipped(r, "assign", 6) || !skipped(r, "assign", 7) {
		t.Errorf("report:\n%s", r)
	}
	if d, err := m.Domain(ctx, "alias.net"); err != nil || d.Name != "example.com" {
		t.Errorf("Domain(alias.net) = %+v, %v", d, err)
	}
}
