package pgtest

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMain runs the tests under Main, or without it (each Start with a
// cluster of its own) when TestUnmanaged runs the binary again.
func TestMain(m *testing.M) {
	if os.Getenv("PGTEST_UNMANAGED") == "1" {
		os.Exit(m.Run())
	}
	Main(m)
}

// TestUnmanaged runs TestStart in a test binary without Main: each Start
// has its own cluster, and every cluster is gone when the test ends.
func TestUnmanaged(t *testing.T) {
	if os.Getenv("PGTEST_UNMANAGED") == "1" {
		t.Skip("already unmanaged")
	}
	if _, err := binDir(); err != nil {
		t.Skip(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStart$", "-test.v")
	cmd.Env = append(os.Environ(), "PGTEST_UNMANAGED=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "not one shared cluster") {
		t.Errorf("two Starts without Main shared a cluster:\n%s", out)
	}
	// The clusters' directories, named in the URLs logged, are gone.
	hosts := regexp.MustCompile(`host=([^&\s]+)`).FindAllStringSubmatch(string(out), -1)
	if len(hosts) != 2 {
		t.Fatalf("no two hosts in the output:\n%s", out)
	}
	for _, h := range hosts {
		dir, err := url.QueryUnescape(h[1])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", dir, err)
		}
	}
}

// psql runs one query on the database at u and returns its output.
func psql(t *testing.T, u, query string) string {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		t.Skip(err)
	}
	out, err := exec.Command(filepath.Join(bin, "psql"), "-X", "-A", "-t", "-d", u, "-c", query).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v: %s", query, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestStart(t *testing.T) {
	u1, u2 := Start(t), Start(t)
	if u1 == u2 {
		t.Fatalf("two Starts gave one database: %s", u1)
	}
	p1, err := url.Parse(u1)
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := url.Parse(u2)
	host := p1.Query().Get("host")
	if host == "" || host != p2.Query().Get("host") {
		// TestUnmanaged looks for this line.
		if os.Getenv("PGTEST_UNMANAGED") == "1" {
			t.Logf("not one shared cluster: %s and %s", u1, u2)
		} else {
			t.Errorf("not one shared cluster: %s and %s", u1, u2)
		}
	}
	if fi, err := os.Stat(filepath.Join(host, ".s.PGSQL."+p1.Query().Get("port"))); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("no socket in %s: %v", host, err)
	}
	tests := []struct{ url, query, want string }{
		{u1, "select current_database()", strings.TrimPrefix(p1.Path, "/")},
		{u2, "select current_database()", strings.TrimPrefix(p2.Path, "/")},
		{u1, "show fsync", "off"},
		{u1, "show listen_addresses", ""},
		{u1, "select current_user", "postgres"},
	}
	for _, tt := range tests {
		if got := psql(t, tt.url, tt.query); got != tt.want {
			t.Errorf("%s on %s = %q, want %q", tt.query, tt.url, got, tt.want)
		}
	}
	// A fresh database: a table made in one is not in the other.
	psql(t, u1, "create table t (x int); insert into t values (1)")
	if got := psql(t, u2, "select count(*) from pg_tables where tablename = 't'"); got != "0" {
		t.Errorf("table of %s seen in %s", u1, u2)
	}
}

// TestStop checks that a cluster stops and its directory goes.
func TestStop(t *testing.T) {
	bin, err := binDir()
	if err != nil {
		t.Skip(err)
	}
	c, err := start(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", c.dir, err)
	}
	select {
	case <-c.done:
	default:
		t.Error("postgres still running")
	}
}
