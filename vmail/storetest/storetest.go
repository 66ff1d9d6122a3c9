// Package storetest is the test suite every [vmail.Store] must pass: the
// uniqueness rules (a domain name against alias domains, a mailbox name
// against aliases), alias domains, the cascade of DeleteDomain, the order
// and pagination of Mailboxes, NextDir's sequence and its atomicity, the
// Generation's changes, and errors wrapping vmail.ErrNotFound and
// vmail.ErrExists. A store's own test calls [Run]:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) vmail.Store {
//			s, err := sqlstore.OpenSQLite(filepath.Join(t.TempDir(), "vmail.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/vmail"
)

// Run runs the suite; open returns a new, empty store for each subtest
// (closing it is open's business, with t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) vmail.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, s vmail.Store)
	}{
		{"Domains", testDomains},
		{"AliasDomains", testAliasDomains},
		{"Mailboxes", testMailboxes},
		{"MailboxRoundTrip", testMailboxRoundTrip},
		{"Aliases", testAliases},
		{"NamesUnique", testNamesUnique},
		{"DeleteDomainCascades", testCascade},
		{"Pagination", testPagination},
		{"NextDirSequence", testNextDir},
		{"NextDirConcurrent", testNextDirConcurrent},
		{"Generation", testGeneration},
		{"OddNames", testOddNames},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f(t, open(t))
		})
	}
}

// is fails the test unless err wraps target (nil: unless err is nil).
func is(t *testing.T, what string, err, target error) {
	t.Helper()
	switch {
	case target == nil && err != nil:
		t.Fatalf("%s: %v", what, err)
	case target != nil && !errors.Is(err, target):
		t.Fatalf("%s: error %v, want one wrapping %v", what, err, target)
	}
}

var created = time.Date(2026, 12, 8, 1, 2, 3, 4000, time.UTC)

func domain(name string) vmail.Domain {
	return vmail.Domain{Name: name, Dir: "/var/vmail/" + name, Created: created}
}

func testDomains(t *testing.T, s vmail.Store) {
	ctx := t.Context()
	d := domain("example.com")
	d.CatchAll = "postmaster"
	d.Limits = vmail.Limits{MaxMailboxes: 10, MaxAliases: 20, MaxForwards: 3, MaxAutoresponders: 4,
		DefaultQuota: vmail.Quota{Bytes: 1 << 20, Count: 100}, Disabled: vmail.NoPOP | vmail.NoIMAP}
	is(t, "add", s.AddDomain(ctx, d), nil)
	is(t, "add again", s.AddDomain(ctx, domain("example.com")), vmail.ErrExists)
	is(t, "add other", s.AddDomain(ctx, domain("example.org")), nil)
	got, err := s.Domain(ctx, "example.com")
	is(t, "get", err, nil)
	if !got.Created.Equal(d.Created) {
		t.Errorf("Created = %v, want %v", got.Created, d.Created)
	}
	got.Created = d.Created
	if !reflect.DeepEqual(got, d) {
		t.Errorf("Domain = %+v, want %+v", got, d)
	}
	_, err = s.Domain(ctx, "example.net")
	is(t, "get missing", err, vmail.ErrNotFound)

	d.CatchAll, d.Limits = "", vmail.Limits{MaxMailboxes: 1}
	d.Dir = "/elsewhere" // not stored by UpdateDomain
	is(t, "update", s.UpdateDomain(ctx, d), nil)
	got, _ = s.Domain(ctx, "example.com")
	if got.CatchAll != "" || got.Limits != d.Limits || got.Dir != "/var/vmail/example.com" {
		t.Errorf("after update: %+v", got)
	}
	is(t, "update missing", s.UpdateDomain(ctx, domain("example.net")), vmail.ErrNotFound)

	ds, err := s.Domains(ctx)
	is(t, "list", err, nil)
	if len(ds) != 2 || ds[0].Name != "example.com" || ds[1].Name != "example.org" {
		t.Errorf("Domains = %+v", ds)
	}
	is(t, "delete", s.DeleteDomain(ctx, "example.org"), nil)
	is(t, "delete again", s.DeleteDomain(ctx, "example.org"), vmail.ErrNotFound)
	_, err = s.Domain(ctx, "example.org")
	is(t, "get deleted", err, vmail.ErrNotFound)
	is(t, "re-add deleted", s.AddDomain(ctx, domain("example.org")), nil)
}

func testAliasDomains(t *testing.T, s vmail.Store) {
	ctx := t.Context()
	is(t, "add", s.AddDomain(ctx, domain("example.com")), nil)
	is(t, "add other", s.AddDomain(ctx, domain("example.org")), nil)
	is(t, "alias", s.AddAliasDomain(ctx, "example.net", "example.com"), nil)
	is(t, "alias 2", s.AddAliasDomain(ctx, "example.info", "example.com"), nil)
	is(t, "alias to missing", s.AddAliasDomain(ctx, "example.biz", "example.missing"), vmail.ErrNotFound)
	is(t, "alias twice", s.AddAliasDomain(ctx, "example.net", "example.org"), vmail.ErrExists)
	is(t, "alias named as a domain", s.AddAliasDomain(ctx, "example.org", "example.com"), vmail.ErrExists)
	is(t, "domain named as an alias", s.AddDomain(ctx, domain("example.net")), vmail.ErrExists)

	d, err := s.Domain(ctx, "example.net")
	is(t, "get by alias", err, nil)
	if d.Name != "example.com" || !slices.Equal(d.Aliases, []string{"example.info", "example.net"}) {
		t.Errorf("Domain(alias) = %+v", d)
	}
	ds, _ := s.Domains(ctx)
	if len(ds) != 2 || !slices.Equal(ds[0].Aliases, []string{"example.info", "example.net"}) || len(ds[1].Aliases) != 0 {
		t.Errorf("Domains = %+v", ds)
	}
	is(t, "delete alias domain of a domain", s.DeleteAliasDomain(ctx, "example.com"), vmail.ErrNotFound)
	is(t, "delete domain by alias", s.DeleteDomain(ctx, "example.net"), vmail.ErrNotFound)
	is(t, "delete alias", s.DeleteAliasDomain(ctx, "example.net"), nil)
	is(t, "delete alias again", s.DeleteAliasDomain(ctx, "example.net"), vmail.ErrNotFound)
	_, err = s.Domain(ctx, "example.net")
	is(t, "get deleted alias", err, vmail.ErrNotFound)
	if _, err := s.Domain(ctx, "example.com"); err != nil {
		t.Fatalf("domain gone with its alias: %v", err)
	}
}

func mailbox(domain, name string) vmail.Mailbox {
	return vmail.Mailbox{Name: name, Domain: domain, Password: "{PLAIN}x", Dir: "/var/vmail/" + domain + "/" + name, Created: created}
}

func testMailboxes(t *testing.T, s vmail.Store) {
	ctx := t.Context()
	is(t, "add domain", s.AddDomain(ctx, domain("example.com")), nil)
	is(t, "add", s.AddMailbox(ctx, mailbox("example.com", "joe")), nil)
	is(t, "add again", s.AddMailbox(ctx, mailbox("example.com", "joe")), vmail.ErrExists)
	is(t, "add to missing domain", s.AddMailbox(ctx, mailbox("example.org", "joe")), vmail.ErrNotFound)
	_, err := s.Mailbox(ctx, "example.com", "bob")
	is(t, "get missing", err, vmail.ErrNotFound)
	_, err = s.Mailbox(ctx, "example.org", "joe")
	is(t, "get in missing domain", err, vmail.ErrNotFound)
	n, err := s.CountMailboxes(ctx, "example.com")
	if err != nil || n != 1 {
		t.Errorf("CountMailboxes = %d, %v", n, err)
	}
	is(t, "update missing", s.UpdateMailbox(ctx, mailbox("example.com", "bob")), vmail.ErrNotFound)
	at := time.Date(2026, 12, 8, 2, 0, 0, 0, time.UTC)
	is(t, "record login", s.RecordLogin(ctx, "example.com", "joe", at, "192.0.2.1"), nil)
	is(t, "record login missing", s.RecordLogin(ctx, "example.com", "bob", at, ""), vmail.ErrNotFound)
	m, _ := s.Mailbox(ctx, "example.com", "joe")
	if !m.LastLogin.Equal(at) || m.LastLoginIP != "192.0.2.1" {
		t.Errorf("last login %v %q", m.LastLogin, m.LastLoginIP)
	}
	is(t, "delete", s.DeleteMailbox(ctx, "example.com", "joe"), nil)
	is(t, "delete again", s.DeleteMailbox(ctx, "example.com", "joe"), vmail.ErrNotFound)
	n, _ = s.CountMailboxes(ctx, "example.com")
	if n != 0 {
		t.Errorf("CountMailboxes after delete = %d", n)
	}
	is(t, "re-add", s.AddMailbox(ctx, mailbox("example.com", "joe")), nil)
}

func testMailboxRoundTrip(t *testing.T, s vmail.Store) {
	ctx := t.Context()
	is(t, "add domain", s.AddDomain(ctx, domain("example.com")), nil)
	m := vmail.Mailbox{
		Name: "joe", Domain: "example.com", Password: "{SHA512-CRYPT}$6$salt$hash", RealName: "Joe \"User\" 'ü'",
		Dir: "/var/vmail/example.com/0/joe", Quota: vmail.Quota{Bytes: 52428800, Count: 1000},
		Flags:         vmail.NoPOP | vmail.DomainAdmin | vmail.SystemAdmin,
		Forward:       vmail.Forward{To: []string{"bob@example.org", "carol@example.com"}, KeepCopy: true},
		Autoresponder: vmail.Autoresponder{Enabled: true, Subject: "Away", Body: "Back\nMonday.\n", Interval: 24 * time.Hour, From: created, Until: created.Add(48 * time.Hour)},
		Created:       created, LastLogin: created.Add(time.Hour), LastLoginIP: "2001:db8::1",
	}
	is(t, "add", s.AddMailbox(ctx, m), nil)
	got, err := s.Mailbox(ctx, "example.com", "joe")
	is(t, "get", err, nil)
	if !equalMailbox(got, m) {
		t.Errorf("Mailbox =\n%+v\nwant\n%+v", got, m)
	}
	m.Password, m.RealName, m.Quota, m.Flags = "{PLAIN}new", "", vmail.Quota{}, 0
	m.Forward, m.Autoresponder = vmail.Forward{}, vmail.Autoresponder{}
	m.Dir = "/var/vmail/example.com/1/joe"
	is(t, "update", s.UpdateMailbox(ctx, m), nil)
	got, _ = s.Mailbox(ctx, "example.com", "joe")
	if !equalMailbox(got, m) {
		t.Errorf("after update =\n%+v\nwant\n%+v", got, m)
	}
	changed := m
	changed.Created = created.Add(time.Hour)
	is(t, "update created", s.UpdateMailbox(ctx, changed), nil)
	got, _ = s.Mailbox(ctx, "example.com", "joe")
	if !got.Created.Equal(created) {
		t.Errorf("UpdateMailbox changed Created to %v", got.Created)
	}
}

// equalMailbox compares mailboxes, times by Equal.
func equalMailbox(a, b vmail.Mailbox) bool {
	eq := func(x, y time.Time) bool { return x.Equal(y) }
	if !eq(a.Created, b.Created) || !eq(a.LastLogin, b.LastLogin) ||
		!eq(a.Autoresponder.From, b.Autoresponder.From) || !eq(a.Autoresponder.Until, b.Autoresponder.Until) {
		return false
	}
	a.Created, a.LastLogin, a.Autoresponder.From, a.Autoresponder.Until = b.Created, b.LastLogin, b.Autoresponder.From, b.Autoresponder.Until
	if len(a.Forward.To) == 0 && len(b.Forward.To) == 0 {
		a.Forward.To = b.Forward.To
	}
	return reflect.DeepEqual(a, b)
}

func testAliases(t *testing.T, s vmail.Store) {
	ctx := t.Context()
	is(t, "add domain", s.AddDomain(ctx, domain("example.com")), nil)
	a := vmail.Alias{Name: "sales", Domain: "example.com", Targets: []string{"joe@example.com", "bob@example.org"}}
	is(t, "put", s.PutAlias(ctx, a), nil)
	got, err := s.Alias(ctx, "example.com", "sales")
	is(t, "get", err, nil)
	if !reflect.DeepEqual(got, a) {
		t.Errorf("Alias = %+v, want %+v", got, a)
	}
	a.Targets = []string{"carol@example.com"}
	is(t, "replace", s.PutAlias(ctx, a), nil)
	got, _ = s.Alias(ctx, "example.com", "sales")
	if !reflect.DeepEqual(got, a) {
		t.Errorf("replaced Alias = %+v, want %+v", got, a)
	}
	is(t, "put in missing domain", s.PutAlias(ctx, vmail.Alias{Name: "x", Domain: "example.org", Targets: []string{"a@b.example"}}), vmail.ErrNotFound)
	is(t, "put info", s.PutAlias(ctx, vmail.Alias{Name: "info", Domain: "example.com", Targets: []string{"a@b.example"}}), nil)
	as, err := s.Aliases(ctx, "example.com")
	is(t, "list", err, nil)
	if len(as) != 2 || as[0].Name != "info" || as[1].Name != "sales" {
		t.Errorf("Aliases = %+v", as)
	}
	_, err = s.Aliases(ctx, "example.org")
	is(t, "list missing domain", err, vmail.ErrNotFound)
	is(t, "delete", s.DeleteAlias(ctx, "example.com", "sales"), nil)
	is(t, "delete again", s.DeleteAlias(ctx, "example.com", "sales"), vmail.ErrNotFound)
	_, err = s.Alias(ctx, "example.com", "sales")
	is(t, "get deleted", err, vmail.ErrNotFound)
}

func testNamesUnique(t *testing.T, s vmail.Store) {
	ctx := t.Context()
	is(t, "add domain", s.AddDomain(ctx, domain("example.com")), nil)
	is(t, "add domain 2", s.AddDomain(ctx, domain("example.org")), nil)
	is(t, "mailbox", s.AddMailbox(ctx, mailbox("example.com", "joe")), nil)
	is(t, "alias", s.PutAlias(ctx, vmail.Alias{Name: "sales", Domain: "example.com", Targets: []string{"joe@example.com"}}), nil)
	is(t, "alias named as a mailbox", s.PutAlias(ctx, vmail.Alias{Name: "joe", Domain: "example.com", Targets: []string{"x@y.example"}}), vmail.ErrExists)
	is(t, "mailbox named as an alias", s.AddMailbox(ctx, mailbox("example.com", "sales")), vmail.ErrExists)
	// The same names in another domain are other addresses.
	is(t, "same mailbox name elsewhere", s.AddMailbox(ctx, mailbox("example.org", "sales")), nil)
	is(t, "same alias name elsewhere", s.PutAlias(ctx, vmail.Alias{Name: "joe", Domain: "example.org", Targets: []string{"x@y.example"}}), nil)
	// Deleting the one makes room for the other.
	is(t, "delete mailbox as an alias", s.DeleteAlias(ctx, "example.com", "joe"), vmail.ErrNotFound)
	is(t, "delete alias as a mailbox", s.DeleteMailbox(ctx, "example.com", "sales"), vmail.ErrNotFound)
	is(t, "delete mailbox", s.DeleteMailbox(ctx, "example.com", "joe"), nil)
	is(t, "alias where the mailbox was", s.PutAlias(ctx, vmail.Alias{Name: "joe", Domain: "example.com", Targets: []string{"x@y.example"}}), nil)
	if _, err := s.Mailbox(ctx, "example.com", "joe"); !errors.Is(err, vmail.ErrNotFound) {
		t.Errorf("Mailbox of an alias: %v", err)
	}
}

func testCascade(t *testing.T, s vmail.Store) {
	ctx := t.Context()
	is(t, "add domain", s.AddDomain(ctx, domain("example.com")), nil)
	is(t, "alias domain", s.AddAliasDomain(ctx, "example.net", "example.com"), nil)
	is(t, "mailbox", s.AddMailbox(ctx, mailbox("example.com", "joe")), nil)
	is(t, "alias", s.PutAlias(ctx, vmail.Alias{Name: "sales", Domain: "example.com", Targets: []string{"joe@example.com"}}), nil)
	for range 150 {
		if _, err := s.NextDir(ctx, "example.com"); err != nil {
			t.Fatal(err)
		}
	}
	is(t, "delete domain", s.DeleteDomain(ctx, "example.com"), nil)
	_, err := s.Domain(ctx, "example.net")
	is(t, "alias domain after", err, vmail.ErrNotFound)
	_, err = s.Mailbox(ctx, "example.com", "joe")
	is(t, "mailbox after", err, vmail.ErrNotFound)
	_, err = s.Alias(ctx, "example.com", "sales")
	is(t, "alias after", err, vmail.ErrNotFound)
	// Everything is free again, and the directory sequence starts anew.
	is(t, "re-add domain", s.AddDomain(ctx, domain("example.com")), nil)
	is(t, "re-add alias domain", s.AddAliasDomain(ctx, "example.net", "example.com"), nil)
	is(t, "re-add mailbox", s.AddMailbox(ctx, mailbox("example.com", "joe")), nil)
	is(t, "re-add alias", s.PutAlias(ctx, vmail.Alias{Name: "sales", Domain: "example.com", Targets: []string{"x@y.example"}}), nil)
	if as, _ := s.Aliases(ctx, "example.com"); len(as) != 1 || !slices.Equal(as[0].Targets, []string{"x@y.example"}) {
		t.Errorf("Aliases after re-adding = %+v", as)
	}
	dir, err := s.NextDir(ctx, "example.com")
	if err != nil || dir != "" {
		t.Errorf("NextDir after re-adding = %q, %v", dir, err)
	}
}

func testPagination(t *testing.T, s vmail.Store) {
	ctx := t.Context()
	is(t, "add domain", s.AddDomain(ctx, domain("example.com")), nil)
	is(t, "add domain 2", s.AddDomain(ctx, domain("example.org")), nil)
	var names []string
	// Names that sort differently by byte and by a locale's rules.
	for i := range 250 {
		names = append(names, fmt.Sprintf("user%03d", i))
	}
	names = append(names, "a.b", "a_b", "a-b", "a+b", "zz", "Zz-upper", "b=c", "b&c")
	for _, n := range names {
		is(t, "add "+n, s.AddMailbox(ctx, mailbox("example.com", n)), nil)
	}
	is(t, "other domain", s.AddMailbox(ctx, mailbox("example.org", "aaa")), nil)
	slices.Sort(names) // byte order
	for _, limit := range []int{1, 7, 100, 1000} {
		var got []string
		after := ""
		for range len(names) + 2 {
			page, err := s.Mailboxes(ctx, "example.com", after, limit)
			is(t, "page", err, nil)
			if len(page) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(page))
			}
			for _, m := range page {
				got = append(got, m.Name)
			}
			if len(page) < limit {
				break
			}
			after = page[len(page)-1].Name
		}
		if !slices.Equal(got, names) {
			t.Errorf("limit %d: pages gave %d names %v...", limit, len(got), head(got))
		}
	}
	all, err := s.Mailboxes(ctx, "example.com", "", 0)
	is(t, "all", err, nil)
	if len(all) != len(names) {
		t.Errorf("limit 0 gave %d mailboxes, want %d", len(all), len(names))
	}
	rest, _ := s.Mailboxes(ctx, "example.com", "user248", 0)
	if len(rest) != 2 || rest[0].Name != "user249" || rest[1].Name != "zz" {
		t.Errorf("after user248: %v", rest)
	}
	_, err = s.Mailboxes(ctx, "example.net", "", 0)
	is(t, "missing domain", err, vmail.ErrNotFound)
	_, err = s.CountMailboxes(ctx, "example.net")
	is(t, "count missing domain", err, vmail.ErrNotFound)
}

func head(v []string) []string {
	if len(v) > 10 {
		return v[:10]
	}
	return v
}

func testNextDir(t *testing.T, s vmail.Store) {
	ctx := t.Context()
	is(t, "add domain", s.AddDomain(ctx, domain("example.com")), nil)
	is(t, "add domain 2", s.AddDomain(ctx, domain("example.org")), nil)
	_, err := s.NextDir(ctx, "example.net")
	is(t, "missing domain", err, vmail.ErrNotFound)
	for n := 1; n <= 1300; n++ {
		dir, err := s.NextDir(ctx, "example.com")
		is(t, "next", err, nil)
		if want := vmail.HashDir(n); dir != want {
			t.Fatalf("NextDir #%d = %q, want %q", n, dir, want)
		}
	}
	// Each domain has its own sequence.
	if dir, _ := s.NextDir(ctx, "example.org"); dir != "" {
		t.Errorf("first NextDir of another domain = %q", dir)
	}
}

func testNextDirConcurrent(t *testing.T, s vmail.Store) {
	ctx := t.Context()
	is(t, "add domain", s.AddDomain(ctx, domain("example.com")), nil)
	const workers, each = 8, 40
	var mu sync.Mutex
	count := make(map[string]int)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range each {
				dir, err := s.NextDir(ctx, "example.com")
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				count[dir]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// 320 allocations: 99 in "", 100 in "0", 100 in "1", 21 in "2".
	want := map[string]int{"": 99, "0": 100, "1": 100, "2": 21}
	if !reflect.DeepEqual(count, want) {
		t.Errorf("directories given = %v, want %v", count, want)
	}
}

func testGeneration(t *testing.T, s vmail.Store) {
	ctx := t.Context()
	g, err := s.Generation(ctx)
	is(t, "generation", err, nil)
	changes := []struct {
		name string
		f    func() error
	}{
		{"AddDomain", func() error { return s.AddDomain(ctx, domain("example.com")) }},
		{"UpdateDomain", func() error { d := domain("example.com"); d.CatchAll = "x"; return s.UpdateDomain(ctx, d) }},
		{"AddAliasDomain", func() error { return s.AddAliasDomain(ctx, "example.net", "example.com") }},
		{"DeleteAliasDomain", func() error { return s.DeleteAliasDomain(ctx, "example.net") }},
		{"AddMailbox", func() error { return s.AddMailbox(ctx, mailbox("example.com", "joe")) }},
		{"UpdateMailbox", func() error {
			m := mailbox("example.com", "joe")
			m.Password = "{PLAIN}y"
			return s.UpdateMailbox(ctx, m)
		}},
		{"DeleteMailbox", func() error { return s.DeleteMailbox(ctx, "example.com", "joe") }},
		{"PutAlias", func() error {
			return s.PutAlias(ctx, vmail.Alias{Name: "a1", Domain: "example.com", Targets: []string{"x@y.example"}})
		}},
		{"DeleteAlias", func() error { return s.DeleteAlias(ctx, "example.com", "a1") }},
		{"DeleteDomain", func() error { return s.DeleteDomain(ctx, "example.com") }},
	}
	for _, c := range changes {
		is(t, c.name, c.f(), nil)
		g2, err := s.Generation(ctx)
		is(t, "generation after "+c.name, err, nil)
		if g2 == g {
			t.Errorf("Generation unchanged (%d) by %s", g, c.name)
		}
		g = g2
	}
	// A refused change leaves it alone.
	is(t, "refused", s.DeleteDomain(ctx, "example.com"), vmail.ErrNotFound)
	if g2, _ := s.Generation(ctx); g2 != g {
		t.Errorf("Generation changed by a refused change")
	}
}

// testOddNames: the store keeps names as given, whatever bytes they hold
// (the Manager validates), and a quote or a LIKE wildcard is no syntax.
func testOddNames(t *testing.T, s vmail.Store) {
	ctx := t.Context()
	is(t, "add domain", s.AddDomain(ctx, domain("example.com")), nil)
	names := []string{"o'brien", `a"b`, "50%", "a_b", "x;DROP TABLE mailboxes;--", "ü", "a\\b", strings.Repeat("x", 200)}
	for _, n := range names {
		is(t, "add "+n, s.AddMailbox(ctx, mailbox("example.com", n)), nil)
		m, err := s.Mailbox(ctx, "example.com", n)
		if err != nil || m.Name != n {
			t.Errorf("Mailbox(%q) = %q, %v", n, m.Name, err)
		}
	}
	if _, err := s.Mailbox(ctx, "example.com", "5%"); !errors.Is(err, vmail.ErrNotFound) {
		t.Errorf("a pattern matched: %v", err)
	}
	n, _ := s.CountMailboxes(ctx, "example.com")
	if n != len(names) {
		t.Errorf("CountMailboxes = %d, want %d", n, len(names))
	}
}
