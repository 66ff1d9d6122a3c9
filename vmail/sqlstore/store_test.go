package sqlstore_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/qmailkit/qmailkit/vmail"
	"github.com/qmailkit/qmailkit/vmail/sqlstore"
	"github.com/qmailkit/qmailkit/vmail/storetest"
)

var _ vmail.Store = (*sqlstore.Store)(nil)

func openSQLite(t *testing.T) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenSQLite(filepath.Join(t.TempDir(), "vmail.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) vmail.Store { return openSQLite(t) })
}

func TestSQLiteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmail.db")
	s, err := sqlstore.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("database file mode: %v, %v", fi.Mode(), err)
	}
	var mode string
	if err := s.DB().QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v", mode, err)
	}
	var fk int
	if err := s.DB().QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v", fk, err)
	}
	if err := s.AddDomain(t.Context(), vmail.Domain{Name: "example.com"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Opening again migrates nothing and keeps the data.
	s, err = sqlstore.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Domain(t.Context(), "example.com"); err != nil {
		t.Errorf("after reopening: %v", err)
	}
	var v int
	if err := s.DB().QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil || v != sqlstore.SchemaVersion {
		t.Errorf("schema_version = %d, %v", v, err)
	}
	// A database written by a newer program is refused, untouched.
	if _, err := s.DB().Exec(`UPDATE schema_version SET version = ?`, sqlstore.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := sqlstore.OpenSQLite(path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("a newer schema: %v", err)
	}
	for _, bad := range []string{"", "a?b", "a\x00b", filepath.Join(t.TempDir(), "missing", "dir", "x.db")} {
		if s, err := sqlstore.OpenSQLite(bad); err == nil {
			s.Close()
			t.Errorf("OpenSQLite(%q) succeeded", bad)
		}
	}
	// Something that is not a database.
	junk := filepath.Join(t.TempDir(), "junk.db")
	os.WriteFile(junk, []byte(strings.Repeat("not a database\n", 100)), 0o600)
	if s, err := sqlstore.OpenSQLite(junk); err == nil {
		s.Close()
		t.Errorf("a junk file opened")
	}
	// A FIFO where the database should be is refused, without hanging.
	fifo := filepath.Join(t.TempDir(), "fifo.db")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlstore.OpenSQLite(fifo); err == nil {
		s.Close()
		t.Errorf("a FIFO opened")
	}
}

// TestSQLiteProcesses: two stores on one file (as the mail server and
// the admin command are) write at once without "database is locked", and
// each sees the other's changes and Generation.
func TestSQLiteProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vmail.db")
	var stores [2]*sqlstore.Store
	for i := range stores {
		s, err := sqlstore.OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	ctx := t.Context()
	if err := stores[0].AddDomain(ctx, vmail.Domain{Name: "example.com"}); err != nil {
		t.Fatal(err)
	}
	g0, _ := stores[1].Generation(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	dirs := make(chan string, 200)
	for i := range 2 {
		s := stores[i]
		wg.Go(func() {
			for j := range 50 {
				name := fmt.Sprintf("s%d-%d", i, j)
				if err := s.AddMailbox(ctx, vmail.Mailbox{Name: name, Domain: "example.com"}); err != nil {
					errs <- err
				}
				d, err := s.NextDir(ctx, "example.com")
				if err != nil {
					errs <- err
				}
				dirs <- d
				if _, err := s.Mailbox(ctx, "example.com", name); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	close(dirs)
	for err := range errs {
		t.Error(err)
	}
	count := map[string]int{}
	for d := range dirs {
		count[d]++
	}
	if count[""] != 99 || count["0"] != 1 {
		t.Errorf("NextDir across two stores gave %v", count)
	}
	n, err := stores[1].CountMailboxes(ctx, "example.com")
	if err != nil || n != 100 {
		t.Errorf("CountMailboxes = %d, %v", n, err)
	}
	if g1, _ := stores[1].Generation(ctx); g1 < g0+100 {
		t.Errorf("Generation went from %d to %d over 100 additions", g0, g1)
	}
}

// TestSQLiteTwoProcesses: the mail server and the admin command are two
// processes on one file. This test runs a copy of itself as the second
// process; both add mailboxes and take hashed directories at once.
func TestSQLiteTwoProcesses(t *testing.T) {
	const each = 60
	if path := os.Getenv("SQLSTORE_CHILD_DB"); path != "" {
		s, err := sqlstore.OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for j := range each {
			if err := s.AddMailbox(t.Context(), vmail.Mailbox{Name: fmt.Sprintf("child%d", j), Domain: "example.com"}); err != nil {
				t.Fatal(err)
			}
			d, err := s.NextDir(t.Context(), "example.com")
			if err != nil {
				t.Fatal(err)
			}
			fmt.Printf("dir %q\n", d)
		}
		return
	}
	if testing.Short() {
		t.Skip("runs a second process")
	}
	path := filepath.Join(t.TempDir(), "vmail.db")
	s := func() *sqlstore.Store {
		s, err := sqlstore.OpenSQLite(path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	defer s.Close()
	ctx := t.Context()
	if err := s.AddDomain(ctx, vmail.Domain{Name: "example.com"}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSQLiteTwoProcesses$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SQLSTORE_CHILD_DB="+path)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for j := range each {
		if err := s.AddMailbox(ctx, vmail.Mailbox{Name: fmt.Sprintf("parent%d", j), Domain: "example.com"}); err != nil {
			t.Error(err)
		}
		d, err := s.NextDir(ctx, "example.com")
		if err != nil {
			t.Error(err)
		}
		count[d]++
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.String())
	}
	for line := range strings.Lines(out.String()) {
		var d string
		if _, err := fmt.Sscanf(line, "dir %q", &d); err == nil {
			count[d]++
		}
	}
	if count[""] != 99 || count["0"] != 2*each-99 || len(count) != 2 {
		t.Errorf("NextDir across two processes gave %v\nchild:\n%s", count, out.String())
	}
	if n, err := s.CountMailboxes(ctx, "example.com"); err != nil || n != 2*each {
		t.Errorf("CountMailboxes = %d, %v", n, err)
	}
}
