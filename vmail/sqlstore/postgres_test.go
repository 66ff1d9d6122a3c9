package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/internal/pgtest"
	"github.com/qmailkit/qmailkit/vmail"
	"github.com/qmailkit/qmailkit/vmail/sqlstore"
	"github.com/qmailkit/qmailkit/vmail/storetest"
)

// TestMain shares one PostgreSQL cluster between the tests and
// benchmarks (a fresh database for each), and removes the benchmarks'
// fixtures.
// pgLog drops the Manager's log lines.
var pgLog = slog.New(slog.DiscardHandler)

func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	removeFixtures()
	os.Exit(code)
}

func openPostgresURL(t testing.TB, url string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t testing.TB) *sqlstore.Store {
	t.Helper()
	return openPostgresURL(t, pgtest.Start(t))
}

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) vmail.Store { return openPostgres(t) })
}

// TestPostgresShared has two stores on one database, as two machines
// sharing a user base: what one writes the other reads, uniqueness and
// NextDir hold between them, and Generation tells the other of a change.
func TestPostgresShared(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	a, b := openPostgresURL(t, url), openPostgresURL(t, url)

	g0, err := b.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddDomain(ctx, vmail.Domain{Name: "example.com", Dir: "/v/example.com"}); err != nil {
		t.Fatal(err)
	}
	if d, err := b.Domain(ctx, "example.com"); err != nil || d.Dir != "/v/example.com" {
		t.Fatalf("the other store: Domain = %+v, %v", d, err)
	}
	if g1, err := b.Generation(ctx); err != nil || g1 == g0 {
		t.Errorf("the other store's Generation %d, %v: unchanged by a write", g1, err)
	}
	if err := b.AddDomain(ctx, vmail.Domain{Name: "example.com"}); !errors.Is(err, vmail.ErrExists) {
		t.Errorf("AddDomain of a domain the other store added: %v, want ErrExists", err)
	}

	// Ten writers on each store race to add the same names: each name is
	// added once, the others get ErrExists (not a serialization failure).
	const names = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	added := map[string]int{}
	var failures []error
	for i := range 20 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range names {
				name := fmt.Sprintf("user%d", n)
				err := s.AddMailbox(ctx, vmail.Mailbox{Name: name, Domain: "example.com", Dir: "/v/" + name})
				mu.Lock()
				switch {
				case err == nil:
					added[name]++
				case !errors.Is(err, vmail.ErrExists):
					failures = append(failures, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range failures {
		t.Errorf("racing AddMailbox: %v", err)
	}
	for n := range names {
		if name := fmt.Sprintf("user%d", n); added[name] != 1 {
			t.Errorf("%s added %d times", name, added[name])
		}
	}
	if n, err := b.CountMailboxes(ctx, "example.com"); err != nil || n != names {
		t.Errorf("CountMailboxes = %d, %v; want %d", n, err, names)
	}

	// NextDir from both stores at once hands out vpopmail's sequence, each
	// slot once.
	const dirs = 250
	got := make([]string, 0, dirs)
	for i := range 10 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range dirs / 10 {
				d, err := s.NextDir(ctx, "example.com")
				mu.Lock()
				if err != nil {
					failures = append(failures, err)
				}
				got = append(got, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range failures {
		t.Errorf("racing NextDir: %v", err)
	}
	var want []string
	for n := 1; n <= dirs; n++ {
		want = append(want, vmail.HashDir(n))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("racing NextDir gave %q\nwant %q", got, want)
	}
}

// TestPostgresMigrate opens a new database from several processes' worth
// of stores at once (one migrates, the others wait for it), then refuses a
// database whose schema is newer than the code.
func TestPostgresMigrate(t *testing.T) {
	url := pgtest.Start(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := sqlstore.OpenPostgres(t.Context(), url)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
		}
	}
	s := openPostgresURL(t, url)
	if _, err := s.DB().ExecContext(t.Context(), `UPDATE schema_version SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	if s2, err := sqlstore.OpenPostgres(t.Context(), url); err == nil || !strings.Contains(err.Error(), "newer") {
		if s2 != nil {
			s2.Close()
		}
		t.Errorf("a database of a newer schema opened: %v", err)
	}
}

// TestPostgresDown: a store whose server is unreachable fails to open
// with an error, quickly, and does not hang.
func TestPostgresDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := sqlstore.OpenPostgres(ctx, "postgres://postgres@/none?host=/nonexistent-dir&port=1&sslmode=disable&connect_timeout=2")
	if err == nil {
		s.Close()
		t.Fatal("opened a store on no server")
	}
	if ctx.Err() != nil {
		t.Fatalf("open took the whole timeout: %v", err)
	}
}

// TestPostgresManager runs two Managers over one PostgreSQL database, as
// the mta and the admin command on two machines: a mailbox one adds, the
// other resolves and authenticates within its cache's TTL.
func TestPostgresManager(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Start(t)
	dir := t.TempDir()
	newManager := func(ttl time.Duration) *vmail.Manager {
		m, err := vmail.New(vmail.Options{Store: openPostgresURL(t, url), Dir: dir, UID: -1, GID: -1, CacheTTL: ttl, Logger: pgLog})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	admin, mta := newManager(-1), newManager(50*time.Millisecond)
	if _, err := admin.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if r, err := mta.Resolve(ctx, "joe@example.com"); err != nil || r.Kind != vmail.Unknown {
		t.Fatalf("Resolve before the mailbox = %+v, %v", r, err)
	}
	if _, err := admin.AddMailbox(ctx, "joe@example.com", "correct horse"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := mta.Resolve(ctx, "joe@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind == vmail.IsMailbox {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other Manager never saw the new mailbox")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Addresses PostgreSQL cannot store (a NUL, bytes that are not UTF-8)
	// come from SMTP clients: they are no one, not a failure of the store.
	for _, a := range []string{"jo\x00e@example.com", "\xffjoe@example.com", "joe@exa\xffmple.com"} {
		r, err := mta.Resolve(ctx, a)
		if err != nil && !errors.Is(err, vmail.ErrNotFound) && !errors.Is(err, vmail.ErrInvalid) || err == nil && r.Kind != vmail.Unknown {
			t.Errorf("Resolve(%q) = %+v, %v; want Unknown or a permanent error", a, r, err)
		}
		// And a login with them is a wrong login, not a failure.
		if _, err := mta.Authenticate(ctx, auth.Credentials{Service: auth.ServicePOP3, Method: auth.MethodUser, User: a, Secret: "correct horse"}); !errors.Is(err, auth.ErrFailed) {
			t.Errorf("Authenticate(%q) = %v, want ErrFailed", a, err)
		}
	}
	if _, err := mta.Authenticate(ctx, auth.Credentials{Service: auth.ServicePOP3, Method: auth.MethodUser, User: "joe@example.com", Secret: "correct horse"}); err != nil {
		t.Errorf("Authenticate(joe@example.com): %v", err)
	}
}
