package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLinkPrograms: bin/ gets links to the program, replacing earlier
// links but never a file an administrator put there; as root, a bin/ that
// is not root's, is writable by others, or is a link is refused, since
// users' forwards run what is in it.
func TestLinkPrograms(t *testing.T) {
	home := t.TempDir()
	kept, err := linkPrograms(home, "/old/mta")
	if err != nil || len(kept) != 0 {
		t.Fatalf("first: %v, kept %v", err, kept)
	}
	own := filepath.Join(home, "bin", "sendmail")
	os.Remove(own)
	if err := os.WriteFile(own, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	kept, err = linkPrograms(home, "/new/mta")
	if err != nil || len(kept) != 1 || kept[0] != own {
		t.Fatalf("second: %v, kept %v", err, kept)
	}
	for _, name := range []string{"qmail-queue", "qmail-inject", "fastforward"} {
		if to, err := os.Readlink(filepath.Join(home, "bin", name)); err != nil || to != "/new/mta" {
			t.Errorf("bin/%s -> %q, %v", name, to, err)
		}
	}
	if b, err := os.ReadFile(own); err != nil || string(b) != "#!/bin/sh\n" {
		t.Errorf("the administrator's bin/sendmail was changed: %q, %v", b, err)
	}
	if os.Geteuid() != 0 {
		t.Skip("the ownership checks need root")
	}
	for name, setup := range map[string]func(bin string) error{
		"another uid's":  func(bin string) error { return os.Chown(bin, 65534, 65534) },
		"group-writable": func(bin string) error { return os.Chmod(bin, 0o775) },
		"a link": func(bin string) error {
			os.Remove(bin)
			return os.Symlink(t.TempDir(), bin)
		},
	} {
		home := t.TempDir()
		bin := filepath.Join(home, "bin")
		if err := os.Mkdir(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := setup(bin); err != nil {
			t.Fatal(err)
		}
		if _, err := linkPrograms(home, "/new/mta"); err == nil {
			t.Errorf("bin/ %s: accepted", name)
		}
		if _, err := os.Lstat(filepath.Join(bin, "qmail-queue")); err == nil {
			t.Errorf("bin/ %s: a link was made in it", name)
		}
	}
}

// TestAliasDefault: alias/.qmail-default is made when missing; anything
// already there (another file, a link, a FIFO that would block a reader)
// is reported and left alone, at once.
func TestAliasDefault(t *testing.T) {
	const db = "/etc/aliases.cdb"
	cases := []struct {
		name  string
		setup func(path string) error
		warn  bool
	}{
		{"missing", func(string) error { return nil }, false},
		{"another file", func(p string) error { return os.WriteFile(p, []byte("./Maildir/\n"), 0o644) }, true},
		{"a link", func(p string) error { return os.Symlink("/etc/passwd", p) }, true},
		{"a FIFO", func(p string) error { return syscall.Mkfifo(p, 0o644) }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			path := filepath.Join(home, "alias", ".qmail-default")
			if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := tc.setup(path); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Lstat(path)
			var logs bytes.Buffer
			done := make(chan error, 1)
			go func() { done <- aliasDefault(home, db, slog.New(slog.NewTextHandler(&logs, nil))) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("aliasDefault blocked")
			}
			if warned := strings.Contains(logs.String(), "left as it is"); warned != tc.warn {
				t.Errorf("warned %v, want %v: %s", warned, tc.warn, logs.String())
			}
			after, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if before == nil {
				want := "|" + filepath.Join(home, "bin", "fastforward") + " -d " + db + "\n"
				if b, err := os.ReadFile(path); err != nil || string(b) != want {
					t.Errorf("made %q, %v; want %q", b, err, want)
				}
				// A second start finds its own file and says nothing.
				logs.Reset()
				if err := aliasDefault(home, db, slog.New(slog.NewTextHandler(&logs, nil))); err != nil || logs.Len() != 0 {
					t.Errorf("second start: %v, %s", err, logs.String())
				}
			} else if !os.SameFile(before, after) || before.Mode() != after.Mode() {
				t.Errorf("%s was replaced", tc.name)
			}
		})
	}
}
