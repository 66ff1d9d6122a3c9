// Package pgtest runs a throwaway PostgreSQL cluster for tests: Debian's
// postgresql binaries (initdb and postgres under /usr/lib/postgresql/*/bin,
// or on $PATH), a data directory in a new temporary directory, a server
// listening only on a unix socket in that directory, with fsync off. Each
// [Start] makes a fresh database in it and returns its URL, in the form
// pgx and libpq read:
//
//	postgres://postgres@/pgtest3?host=/tmp/pgtest-123&port=5432&sslmode=disable
//
// A test binary that calls [Main] (or [Run]) from its TestMain shares one
// cluster between all its tests and stops it (and removes its directory)
// when they are done; without them every Start has a cluster of its own,
// stopped in the test's cleanup.
//
// # Security
//
// The server trusts every connection on its socket, whose directory only
// the cluster's owner and root can enter. PostgreSQL refuses to run as
// root: as root the cluster runs as the "postgres" account (else
// "nobody"), which owns the directory.
//
// When the binaries are missing Start skips the test, naming the package
// to install.
package pgtest

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// shared is the cluster a test binary under Main shares. A test helper
// needs this one piece of package state: the tests of a binary have
// nothing else in common.
var shared struct {
	mu      sync.Mutex
	managed bool     // Main is running the tests
	c       *cluster // started by the first Start under Main
	err     error    // the first start's failure, repeated to every test
	n       int      // databases made
}

// Main runs the tests of m with one cluster shared by them, started by
// the first Start, then stops it and exits with m.Run's status. Call it
// from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main without the exit: it returns the status, for a TestMain
// with more to do after the tests.
func Run(m *testing.M) int {
	shared.mu.Lock()
	shared.managed = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	c := shared.c
	shared.c, shared.managed = nil, false
	shared.mu.Unlock()
	if c != nil {
		if err := c.stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Start returns the URL of a new, empty database owned by the superuser
// "postgres" in a throwaway cluster. It skips the test when PostgreSQL's
// binaries are not installed and fails it when the cluster cannot start.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		t.Skipf("pgtest: %v (install Debian's postgresql package)", err)
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	var c *cluster
	switch {
	case !shared.managed:
		c, err = start(bin)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := c.stop(); err != nil {
				t.Error(err)
			}
		})
	case shared.err != nil:
		t.Fatal(shared.err)
	case shared.c == nil:
		c, err = start(bin)
		if err != nil {
			shared.err = err
			t.Fatal(err)
		}
		shared.c = c
	default:
		c = shared.c
	}
	shared.n++
	name := "pgtest" + strconv.Itoa(shared.n)
	if err := c.run(10*time.Second, "createdb", "-h", c.dir, "-p", c.port, "-U", "postgres", name); err != nil {
		t.Fatal(err)
	}
	return c.url(name)
}

// binDir finds the directory of initdb and postgres: the newest
// /usr/lib/postgresql/N/bin, else the directory of initdb on $PATH.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if executable(filepath.Join(d, "initdb")) && executable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if executable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("no initdb and postgres in /usr/lib/postgresql/*/bin or on $PATH")
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// cluster is a running postgres.
type cluster struct {
	bin  string // the binaries' directory
	dir  string // the temporary directory: data/, the socket, the log
	port string // names the socket, .s.PGSQL.<port>
	cred *syscall.Credential
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	werr error         // cmd.Wait's result, once done is closed
}

// start makes and starts a cluster in a new temporary directory.
func start(bin string) (*cluster, error) {
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &cluster{bin: bin, dir: dir, port: "5432", done: make(chan struct{})}
	if err := c.init(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func (c *cluster) init() error {
	if os.Geteuid() == 0 {
		cred, err := account()
		if err != nil {
			return err
		}
		c.cred = cred
		if err := os.Chown(c.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	data := filepath.Join(c.dir, "data")
	if err := c.run(2*time.Minute, "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(c.dir, "log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	c.cmd = exec.Command(filepath.Join(c.bin, "postgres"), "-D", data, "-k", c.dir, "-p", c.port,
		"-c", "listen_addresses=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB")
	c.cmd.Dir = c.dir
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	// If the test binary dies (a timeout's panic), the server gets
	// SIGQUIT and leaves instead of running on: only the temporary
	// directory is left behind.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	go func() {
		c.werr = c.cmd.Wait()
		close(c.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.run(5*time.Second, "pg_isready", "-q", "-h", c.dir, "-p", c.port, "-U", "postgres")
		if err == nil {
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("pgtest: postgres exited: %v: %s", c.werr, c.log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			return fmt.Errorf("pgtest: postgres not ready after 30s: %s", c.log())
		}
	}
}

// account returns the credentials of the account a root process runs
// PostgreSQL as: "postgres", else "nobody".
func account() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("pgtest: running as root and no postgres or nobody account to run PostgreSQL as")
}

// run runs one of the cluster's programs as the cluster's owner.
func (c *cluster) run(timeout time.Duration, prog string, args ...string) error {
	cmd := exec.Command(filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=5")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: %s: %w", prog, err)
	}
	t := time.AfterFunc(timeout, func() { cmd.Process.Kill() })
	defer t.Stop()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("pgtest: %s: %w: %s", prog, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// log returns the end of the server's log.
func (c *cluster) log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// stop shuts the server down (fast shutdown: sessions are ended) and
// removes the directory.
func (c *cluster) stop() error {
	var err error
	if c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
			err = fmt.Errorf("pgtest: postgres did not stop in 30s: %s", c.log())
		}
	}
	if rerr := os.RemoveAll(c.dir); rerr != nil && err == nil {
		err = fmt.Errorf("pgtest: %w", rerr)
	}
	return err
}

// url returns the URL of database name.
func (c *cluster) url(name string) string {
	q := url.Values{"host": {c.dir}, "port": {c.port}, "sslmode": {"disable"}}
	return (&url.URL{Scheme: "postgres", User: url.User("postgres"), Host: "", Path: "/" + name, RawQuery: q.Encode()}).String()
}
