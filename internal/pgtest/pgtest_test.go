package pgtest

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

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
		t.Errorf("not one shared cluster: %s and %s", u1, u2)
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
