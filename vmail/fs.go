package vmail

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/qmailkit/qmailkit/maildir"
)

// The directories a Manager makes: vpopmail's mode for domain, hash and
// mailbox directories (the Maildir itself is maildir.Ensure's 0700).
const dirMode = 0o750

// openBase opens Options.Dir as an os.Root, making it first when missing
// (then given to Options.UID and GID as root, as every directory under it
// is: the deliveries, which run as them, go through it).
func (m *Manager) openBase() (*os.Root, error) {
	_, err := os.Lstat(m.opts.Dir)
	missing := errors.Is(err, fs.ErrNotExist)
	if missing {
		// Parents searchable by the account; the directory its own.
		if err := os.MkdirAll(filepath.Dir(m.opts.Dir), 0o755); err != nil {
			return nil, fmt.Errorf("vmail: %w", err)
		}
		if err := os.Mkdir(m.opts.Dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("vmail: %w", err)
		}
	}
	r, err := os.OpenRoot(m.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("vmail: %w", err)
	}
	if missing {
		if err := m.chown(r, "."); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

// chown gives a path under the root to Options.UID and GID, when the
// process runs as root and they are set, without following a link.
func (m *Manager) chown(root *os.Root, rel string) error {
	if os.Geteuid() != 0 || (m.opts.UID < 0 && m.opts.GID < 0) {
		return nil
	}
	if err := root.Lchown(rel, m.opts.UID, m.opts.GID); err != nil {
		return fmt.Errorf("vmail: %w", err)
	}
	return nil
}

// realDir checks that every component of rel, a slash-separated path under
// the root, is a directory and none a symbolic link.
func realDir(root *os.Root, rel string) error {
	parts := strings.Split(rel, "/")
	for i := range parts {
		if err := lstatDir(root, strings.Join(parts[:i+1], "/")); err != nil {
			return err
		}
	}
	return nil
}

// lstatDir checks that p, under the root, is a directory and not a
// symbolic link (its parents are not looked at).
func lstatDir(root *os.Root, p string) error {
	fi, err := root.Lstat(p)
	if err != nil {
		return fmt.Errorf("vmail: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 || !fi.IsDir() {
		return fmt.Errorf("vmail: %s/%s is not a directory (a symbolic link?): refused", root.Name(), p)
	}
	return nil
}

// mkdirs makes each missing component of rel (slash-separated, under the
// root) with dirMode, chowned, and checks that none is a symbolic link.
// It reports whether it made the last component.
func (m *Manager) mkdirs(root *os.Root, rel string) (made bool, err error) {
	parts := strings.Split(rel, "/")
	if slices.ContainsFunc(parts, func(p string) bool { return p == "" || p == "." || p == ".." }) {
		return false, fmt.Errorf("vmail: %q is not a directory under %s", rel, m.opts.Dir)
	}
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		err := root.Mkdir(p, dirMode)
		switch {
		case err == nil:
			made = i == len(parts)-1
			if err := m.chown(root, p); err != nil {
				return made, err
			}
		case errors.Is(err, fs.ErrExist):
			made = false
		default:
			return false, fmt.Errorf("vmail: %w", err)
		}
		// The components before p were checked in the turns before.
		if err := lstatDir(root, p); err != nil {
			return made, err
		}
	}
	return made, nil
}

// relDir returns dir relative to Options.Dir, slash-separated, and
// whether it lies strictly inside the directory of domain.
func (m *Manager) relDir(dir, domain string) (string, bool) {
	rel, err := filepath.Rel(m.opts.Dir, dir)
	if err != nil || !filepath.IsAbs(dir) {
		return "", false
	}
	rel = filepath.ToSlash(rel)
	return rel, strings.HasPrefix(rel, domain+"/") && !strings.Contains(rel, "..")
}

// makeMailboxDir makes the mailbox directory rel (relative to Options.Dir)
// and its Maildir, owned by UID and GID. A directory already there is
// refused: it would be another mailbox's mail.
func (m *Manager) makeMailboxDir(rel string) error {
	root, err := m.openBase()
	if err != nil {
		return err
	}
	defer root.Close()
	made, err := m.mkdirs(root, rel)
	if err != nil {
		if made {
			root.RemoveAll(rel)
		}
		return err
	}
	if !made {
		return fmt.Errorf("%w: vmail: directory %s/%s exists already", ErrExists, m.opts.Dir, rel)
	}
	if err := m.ensureMaildir(root, rel); err != nil {
		root.RemoveAll(rel)
		return err
	}
	return nil
}

// ensureMaildir makes (or completes) the Maildir of the mailbox directory
// rel, which mkdirs has just made and checked, and gives it to UID and GID.
func (m *Manager) ensureMaildir(root *os.Root, rel string) error {
	if _, err := maildir.Ensure(filepath.Join(m.opts.Dir, rel, "Maildir")); err != nil {
		return fmt.Errorf("vmail: %w", err)
	}
	for _, sub := range []string{"Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"} {
		if err := m.chown(root, rel+"/"+sub); err != nil {
			return err
		}
	}
	return nil
}

// removeDir removes rel (relative to Options.Dir) and everything in it,
// after checking that no component of rel is a symbolic link; inside, a
// link is removed, never followed, and nothing outside Options.Dir is
// touched (os.Root). A directory already gone is no error.
func (m *Manager) removeDir(rel string) error {
	if rel == "" || rel == "." || strings.Contains(rel, "..") || strings.HasPrefix(rel, "/") {
		return fmt.Errorf("vmail: remove %q: not a directory under %s", rel, m.opts.Dir)
	}
	root, err := os.OpenRoot(m.opts.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vmail: %w", err)
	}
	defer root.Close()
	if err := realDir(root, rel); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if err := root.RemoveAll(rel); err != nil {
		return fmt.Errorf("vmail: %w", err)
	}
	return nil
}

// writeQuota rewrites the maildirsize file of a mailbox's Maildir for q:
// removed for no quota, else recounted (as vsetuserquota does).
func (m *Manager) writeQuota(mb Mailbox) error {
	md := mb.Maildir()
	fi, err := os.Lstat(md)
	if err != nil {
		return fmt.Errorf("vmail: quota: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("vmail: quota: %s is not a directory (a symbolic link?): refused", md)
	}
	if mb.Quota == (Quota{}) {
		if err := os.Remove(md + "/maildirsize"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("vmail: quota: %w", err)
		}
		return nil
	}
	if _, err := maildir.Dir(md).RecalculateQuota(maildir.Quota{Bytes: mb.Quota.Bytes, Count: mb.Quota.Count}); err != nil {
		return fmt.Errorf("vmail: quota: %w", err)
	}
	if os.Geteuid() == 0 && (m.opts.UID >= 0 || m.opts.GID >= 0) {
		if err := os.Lchown(md+"/maildirsize", m.opts.UID, m.opts.GID); err != nil {
			return fmt.Errorf("vmail: quota: %w", err)
		}
	}
	return nil
}
