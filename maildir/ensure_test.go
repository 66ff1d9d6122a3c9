package maildir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Ensure makes a Maildir ready whatever is there already: it makes missing
// parents, keeps an existing Maildir and its mail, completes a half-made one,
// and refuses, changing nothing outside, a symbolic link or a non-directory
// in the place of the Maildir or of tmp/, new/ or cur/.
func TestEnsure(t *testing.T) {
	mkdirs := func(t *testing.T, root string, dirs ...string) {
		for _, d := range dirs {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		path  string                          // the Maildir, relative to the test's root
		setup func(t *testing.T, root string) // what is there before
		err   string                          // "" for success, else part of the error
	}{
		{name: "new", path: "Maildir"},
		{name: "missing parents", path: "a/b/c/Maildir"},
		{name: "trailing slash", path: "home/joe/Maildir/"},
		{name: "existing", path: "Maildir", setup: func(t *testing.T, root string) {
			mkdirs(t, root, "Maildir/tmp", "Maildir/new", "Maildir/cur")
		}},
		{name: "existing with mail", path: "Maildir", setup: func(t *testing.T, root string) {
			if _, err := Create(filepath.Join(root, "Maildir")); err != nil {
				t.Fatal(err)
			}
			if _, err := Dir(filepath.Join(root, "Maildir")).Deliver(t.Context(), strings.NewReader("Subject: kept\n\nx\n")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "half made", path: "Maildir", setup: func(t *testing.T, root string) {
			mkdirs(t, root, "Maildir/new")
		}},
		{name: "empty directory", path: "Maildir", setup: func(t *testing.T, root string) {
			mkdirs(t, root, "Maildir")
		}},
		{name: "maildir is a file", path: "Maildir", err: "not a directory", setup: func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "Maildir"), "x")
		}},
		{name: "parent is a file", path: "home/Maildir", err: "not a directory", setup: func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "home"), "x")
		}},
		{name: "maildir is a symlink", path: "Maildir", err: "symbolic link", setup: func(t *testing.T, root string) {
			mkdirs(t, root, "elsewhere")
			symlink(t, "elsewhere", filepath.Join(root, "Maildir"))
		}},
		{name: "maildir is a dangling symlink", path: "Maildir", err: "symbolic link", setup: func(t *testing.T, root string) {
			symlink(t, "elsewhere", filepath.Join(root, "Maildir"))
		}},
		{name: "new is a symlink", path: "Maildir", err: "symbolic link", setup: func(t *testing.T, root string) {
			mkdirs(t, root, "Maildir/tmp", "Maildir/cur", "elsewhere")
			symlink(t, "../elsewhere", filepath.Join(root, "Maildir/new"))
		}},
		{name: "tmp is a dangling symlink", path: "Maildir", err: "symbolic link", setup: func(t *testing.T, root string) {
			mkdirs(t, root, "Maildir")
			symlink(t, "../elsewhere", filepath.Join(root, "Maildir/tmp"))
		}},
		{name: "cur is a file", path: "Maildir", err: "not a directory", setup: func(t *testing.T, root string) {
			mkdirs(t, root, "Maildir/tmp", "Maildir/new")
			writeFile(t, filepath.Join(root, "Maildir/cur"), "x")
		}},
		{name: "tmp is a fifo", path: "Maildir", err: "not a directory", setup: func(t *testing.T, root string) {
			mkdirs(t, root, "Maildir")
			if err := syscall.Mkfifo(filepath.Join(root, "Maildir/tmp"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "empty path", path: "", err: "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.setup != nil {
				tc.setup(t, root)
			}
			path := filepath.Join(root, tc.path)
			if tc.path == "" {
				path = ""
			}
			before := tree(t, root)
			done := make(chan struct{})
			var d Dir
			var err error
			go func() { defer close(done); d, err = Ensure(path) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Ensure blocked")
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Ensure(%q) = %q, %v; want an error with %q", path, d, err, tc.err)
				}
				if after := tree(t, root); after != before {
					t.Errorf("a refused Ensure changed the tree:\nbefore:\n%s\nafter:\n%s", before, after)
				}
				return
			}
			if err != nil {
				t.Fatalf("Ensure(%q): %v", path, err)
			}
			if d != Dir(path) {
				t.Errorf("Ensure(%q) = %q", path, d)
			}
			if _, err := Open(path); err != nil {
				t.Errorf("not a Maildir afterwards: %v", err)
			}
			// Everything Ensure made is mode 0700; what was there keeps its mode.
			for _, s := range []string{"", "tmp", "new", "cur"} {
				p := filepath.Join(path, s)
				fi, err := os.Lstat(p)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(before, relTo(root, p)+" ") && fi.Mode().Perm() != 0o700 {
					t.Errorf("%s: mode %v, want 0700", p, fi.Mode().Perm())
				}
			}
			if tc.name == "existing with mail" {
				msgs, err := d.List()
				if err != nil || len(msgs) != 1 {
					t.Errorf("mail lost: %v %v", msgs, err)
				}
			}
			// Idempotent: a second call succeeds and changes nothing.
			again := tree(t, root)
			if _, err := Ensure(path); err != nil {
				t.Errorf("second Ensure: %v", err)
			}
			if after := tree(t, root); after != again {
				t.Errorf("second Ensure changed the tree:\n%s\n%s", again, after)
			}
		})
	}
}

// Made parents are mode 0700 whatever the umask allows (the umask may
// only take bits away).
func TestEnsureParentModes(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	root := t.TempDir()
	if _, err := Ensure(filepath.Join(root, "a/b/Maildir")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "a/b", "a/b/Maildir", "a/b/Maildir/tmp", "a/b/Maildir/new", "a/b/Maildir/cur"} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", p, fi.Mode().Perm())
		}
	}
}

// Ensure under a root of its own: concurrent calls for one path all succeed.
func TestEnsureConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x/y/Maildir")
	errs := make(chan error, 8)
	for range 8 {
		go func() { _, err := Ensure(path); errs <- err }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if _, err := Open(path); err != nil {
		t.Error(err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

func relTo(root, p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return p
	}
	return r
}

// tree lists every file under root with its type and mode, one a line.
func tree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		b.WriteString(relTo(root, p) + " " + fi.Mode().String() + "\n")
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return b.String()
}
