package mta

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/vmail"
	"github.com/qmailkit/qmailkit/vmail/sqlstore"
)

// OpenVirtual opens the virtual domains and mailboxes of a qmail home:
//
//	control/vmaildb      one line, a PostgreSQL URL ("postgres://..."): the store is
//	                     that database, shared by several machines
//	vmail/vmail.db       otherwise the store is this SQLite database, made on first use
//	vmail/domains/       the domains' directories (opts.Dir when empty)
//
// opts.Store is set here; other fields are the Manager's (see
// vmail.Options). UID and GID both 0, the zero value, mean the mail
// system's account: when the process is root, the owner of home/queue
// (the account examples/mta runs as), which then owns vmail/, the
// database file and every directory the Manager makes; otherwise, or when
// queue/ is root's, -1 (the process's own). Root never gets the virtual
// Maildirs: the mta's deliveries and POP3, which run as the account, must
// write them.
//
// The caller closes the store (Manager.Store().Close()) when done; a
// System made from LoadHome's Config closes the one LoadHome opened.
func OpenVirtual(ctx context.Context, home string, opts vmail.Options) (*vmail.Manager, error) {
	home, err := filepath.Abs(home)
	if err != nil {
		return nil, fmt.Errorf("mta: %w", err)
	}
	root := os.Geteuid() == 0
	if opts.UID == 0 && opts.GID == 0 {
		opts.UID, opts.GID = -1, -1
		if fi, err := os.Stat(filepath.Join(home, "queue")); root && err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
				opts.UID, opts.GID = int(st.Uid), int(st.Gid)
			}
		}
	}
	vdir := filepath.Join(home, "vmail")
	if err := MakeVirtualDir(home, opts.UID, opts.GID); err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		opts.Dir = filepath.Join(vdir, "domains")
	}
	url, ok, err := control.Dir{Home: home}.Line("vmaildb")
	if err != nil {
		return nil, fmt.Errorf("mta: %w", err)
	}
	var st *sqlstore.Store
	if ok && strings.TrimSpace(url) != "" {
		if st, err = sqlstore.OpenPostgres(ctx, strings.TrimSpace(url)); err != nil {
			// The URL may hold a password: the error does not repeat it.
			return nil, fmt.Errorf("mta: control/vmaildb: %w", err)
		}
	} else {
		db := filepath.Join(vdir, "vmail.db")
		if fi, err := os.Lstat(db); err == nil && !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("mta: %s is not a regular file", db)
		}
		if st, err = sqlstore.OpenSQLite(db); err != nil {
			return nil, fmt.Errorf("mta: %w", err)
		}
		if root && opts.UID > 0 {
			// SQLite's files must be the account's too, or it could not
			// write the database once root made them.
			for _, name := range []string{db, db + "-wal", db + "-shm", db + "-journal"} {
				if err := os.Lchown(name, opts.UID, opts.GID); err != nil && !errors.Is(err, fs.ErrNotExist) {
					st.Close()
					return nil, fmt.Errorf("mta: %w", err)
				}
			}
		}
	}
	opts.Store = st
	m, err := vmail.New(opts)
	if err != nil {
		st.Close()
		return nil, err
	}
	return m, nil
}

// MakeVirtualDir makes home's vmail/ and vmail/domains/ (mode 750) when
// missing, the account's (uid, gid) when the process is root. A program
// that drops root before it opens its home (examples/mta, after
// privsep.Drop) calls it first, as root: the home is root's, so the
// account could not make vmail/ itself.
func MakeVirtualDir(home string, uid, gid int) error {
	root := os.Geteuid() == 0
	vdir := filepath.Join(home, "vmail")
	if err := makeOwnedDir(vdir, root, uid, gid); err != nil {
		return err
	}
	return makeOwnedDir(filepath.Join(vdir, "domains"), root, uid, gid)
}

// makeOwnedDir makes dir (mode 750) when missing, the account's (uid,
// gid) when the process is root; an existing link there is refused.
func makeOwnedDir(dir string, root bool, uid, gid int) error {
	fi, err := os.Lstat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("mta: %s is not a directory", dir)
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("mta: %w", err)
	}
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("mta: %w", err)
	}
	if root && uid > 0 {
		if err := os.Lchown(dir, uid, gid); err != nil {
			return fmt.Errorf("mta: %w", err)
		}
	}
	return nil
}

// openHomeVirtual is OpenVirtual for LoadHome and Open, which have no
// context: a PostgreSQL server gets a minute to answer. The Manager logs
// to logger (nil: nowhere, as Options.Logger).
func openHomeVirtual(home string, logger *slog.Logger) (*vmail.Manager, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return OpenVirtual(ctx, home, vmail.Options{Logger: logger.With("part", "vmail")})
}

// hasVirtual reports whether home has virtual mailboxes: a vmail/
// directory (OpenVirtual and MakeVirtualDir make it) or control/vmaildb.
func hasVirtual(home string) bool {
	for _, p := range []string{filepath.Join(home, "vmail"), filepath.Join(home, "control", "vmaildb")} {
		if _, err := os.Lstat(p); err == nil {
			return true
		}
	}
	return false
}
