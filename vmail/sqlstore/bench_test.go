package sqlstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/internal/pgtest"
	"github.com/qmailkit/qmailkit/vmail"
	"github.com/qmailkit/qmailkit/vmail/sqlstore"
)

// The benchmarks run on a store of benchMailboxes mailboxes in one
// domain, made once per test binary and store kind (making them takes
// longer than the benchmarks):
//
//	go test -run '^$' -bench . -count 5 ./vmail/sqlstore/
//
// Each reports its rate as a metric (resolves/s, logins/s, adds/s), the
// figures the issue asks for.
const (
	benchMailboxes = 100_000
	benchDomain    = "example.com"
	benchPassword  = "correct horse battery staple"
)

// fixture is a populated store.
type fixture struct {
	store *sqlstore.Store
	dir   string // the Managers' Dir
	// warm is a Manager with its cache (the default TTL) that has
	// resolved every address once, as an mta's does after a while.
	warm *vmail.Manager
}

// fixtures holds the populated stores of this test binary, by kind;
// TestMain removes them.
var fixtures struct {
	sync.Mutex
	m    map[string]*fixture
	dirs []string
}

func removeFixtures() {
	fixtures.Lock()
	defer fixtures.Unlock()
	for _, f := range fixtures.m {
		f.store.Close()
	}
	for _, d := range fixtures.dirs {
		os.RemoveAll(d)
	}
	fixtures.m = nil
}

// benchStore returns the fixture of a kind ("sqlite" or "postgres"),
// making it the first time.
func benchStore(b *testing.B, kind string) *fixture {
	b.Helper()
	fixtures.Lock()
	defer fixtures.Unlock()
	if f := fixtures.m[kind]; f != nil {
		return f
	}
	dir, err := os.MkdirTemp("", "vmailbench-")
	if err != nil {
		b.Fatal(err)
	}
	fixtures.dirs = append(fixtures.dirs, dir)
	vdir := filepath.Join(dir, "domains")
	start := time.Now()
	var s *sqlstore.Store
	switch kind {
	case "sqlite":
		s, err = sqliteFixture(dir, vdir)
	case "postgres":
		s, err = sqlstore.OpenPostgres(context.Background(), pgtest.Start(b))
		if err == nil {
			err = populate(context.Background(), s, vdir, 4)
		}
	}
	if err != nil {
		if s != nil {
			s.Close()
		}
		b.Fatal(err)
	}
	b.Logf("%s: %d mailboxes stored in %v", kind, benchMailboxes, time.Since(start).Round(time.Millisecond))
	f := &fixture{store: s, dir: vdir}
	if fixtures.m == nil {
		fixtures.m = map[string]*fixture{}
	}
	fixtures.m[kind] = f
	return f
}

// sqliteFixture makes the SQLite database of the benchmarks in dir. It is
// filled on /dev/shm, where a commit costs no fsync (each of 100,000
// would), and then copied to dir, on disk, where the benchmarks use it.
func sqliteFixture(dir, vdir string) (*sqlstore.Store, error) {
	fill := dir
	if shm, err := os.MkdirTemp("/dev/shm", "vmailbench-"); err == nil {
		defer os.RemoveAll(shm)
		fill = shm
	}
	s, err := sqlstore.OpenSQLite(filepath.Join(fill, "fill.db"))
	if err != nil {
		return nil, err
	}
	err = populate(context.Background(), s, vdir, 1)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(fill, "fill.db"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "vmail.db"), b, 0o600); err != nil {
		return nil, err
	}
	return sqlstore.OpenSQLite(filepath.Join(dir, "vmail.db"))
}

// populate stores benchMailboxes mailboxes, all with one password hash
// (hashing 100,000 passwords would take minutes and measure nothing),
// straight into the store, by workers at once: their directories are not
// made.
func populate(ctx context.Context, s vmail.Store, dir string, workers int) error {
	if err := os.MkdirAll(filepath.Join(dir, benchDomain), 0o750); err != nil {
		return err
	}
	if err := s.AddDomain(ctx, vmail.Domain{Name: benchDomain, Dir: filepath.Join(dir, benchDomain), Created: time.Now()}); err != nil {
		return err
	}
	hash, err := auth.HashPassword(benchPassword)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < benchMailboxes; i += workers {
				name := benchName(i)
				err := s.AddMailbox(ctx, vmail.Mailbox{
					Name: name, Domain: benchDomain, Password: hash, RealName: name,
					Dir: filepath.Join(dir, benchDomain, vmail.HashDir(i+1), name), Created: time.Now(),
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func benchName(i int) string { return fmt.Sprintf("user%06d", i) }

func benchManager(b *testing.B, f *fixture, ttl time.Duration) *vmail.Manager {
	b.Helper()
	m, err := vmail.New(vmail.Options{Store: f.store, Dir: f.dir, UID: -1, GID: -1, CacheTTL: ttl, Logger: pgLog})
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// perSecond reports the benchmark's rate as a metric.
func perSecond(b *testing.B, unit string) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, unit)
	}
}

var kinds = []string{"sqlite", "postgres"}

// warmManager returns the fixture's Manager whose cache has seen every
// address (and the unknown ones the benchmark asks for), making it the
// first time.
func warmManager(b *testing.B, f *fixture) *vmail.Manager {
	fixtures.Lock()
	defer fixtures.Unlock()
	if f.warm != nil {
		return f.warm
	}
	m := benchManager(b, f, 0)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < benchMailboxes*10/9; i += 4 {
				if _, err := m.Resolve(context.Background(), benchName(i)+"@"+benchDomain); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.Logf("cache warmed in %v", time.Since(start).Round(time.Millisecond))
	f.warm = m
	return m
}

// BenchmarkResolve resolves random addresses of the 100,000 as the mta
// does at RCPT time, from SMTP sessions running at once: "warm", through
// a Manager with its cache (the default TTL, one second) that has seen
// every address, as an mta's has after a while; "cold", through a new
// Manager with its cache, whose first lookup of each address asks the
// store; "uncached", with CacheTTL < 0, every call asking the store. One
// address in ten is unknown.
func BenchmarkResolve(b *testing.B) {
	for _, kind := range kinds {
		for _, c := range []string{"warm", "cold", "uncached"} {
			b.Run(kind+"/"+c, func(b *testing.B) {
				f := benchStore(b, kind)
				var m *vmail.Manager
				switch c {
				case "warm":
					m = warmManager(b, f)
				case "cold":
					m = benchManager(b, f, 0)
				default:
					m = benchManager(b, f, -1)
				}
				var seed atomic.Uint64
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					r := rand.New(rand.NewPCG(seed.Add(1), 1))
					ctx := context.Background()
					for pb.Next() {
						i := r.IntN(benchMailboxes * 10 / 9)
						want := vmail.IsMailbox
						if i >= benchMailboxes {
							want = vmail.Unknown
						}
						rc, err := m.Resolve(ctx, benchName(i)+"@"+benchDomain)
						if err != nil || rc.Kind != want {
							b.Errorf("Resolve(%s) = %v, %v", benchName(i), rc.Kind, err)
							return
						}
					}
				})
				perSecond(b, "resolves/s")
			})
		}
	}
}

// BenchmarkAuthenticate logs random mailboxes in with their password
// (SHA512-CRYPT, 5000 rounds, as AddMailbox hashes it).
func BenchmarkAuthenticate(b *testing.B) {
	for _, kind := range kinds {
		b.Run(kind, func(b *testing.B) {
			f := benchStore(b, kind)
			m := benchManager(b, f, 0)
			var seed atomic.Uint64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				r := rand.New(rand.NewPCG(seed.Add(1), 2))
				ctx := context.Background()
				for pb.Next() {
					name := benchName(r.IntN(benchMailboxes))
					_, err := m.Authenticate(ctx, auth.Credentials{Service: auth.ServicePOP3, Method: auth.MethodUser, User: name + "@" + benchDomain, Secret: benchPassword})
					if err != nil {
						b.Errorf("Authenticate(%s): %v", name, err)
						return
					}
				}
			})
			perSecond(b, "logins/s")
		})
	}
}

// BenchmarkAddMailbox adds mailboxes to the domain of 100,000 through the
// Manager: validation, hashing the password, the hashed directory and
// its Maildir, and the record.
func BenchmarkAddMailbox(b *testing.B) {
	for _, kind := range kinds {
		b.Run(kind, func(b *testing.B) {
			f := benchStore(b, kind)
			m := benchManager(b, f, 0)
			ctx := context.Background()
			prefix := fmt.Sprintf("new%x", rand.Uint32())
			var n atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					addr := fmt.Sprintf("%s.%d@%s", prefix, n.Add(1), benchDomain)
					if _, err := m.AddMailbox(ctx, addr, benchPassword); err != nil {
						b.Errorf("AddMailbox(%s): %v", addr, err)
						return
					}
				}
			})
			perSecond(b, "adds/s")
		})
	}
}
