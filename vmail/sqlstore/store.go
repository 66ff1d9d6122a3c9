// Package sqlstore keeps virtual mail domains, mailboxes and aliases (a
// [vmail.Store]) in an SQL database: an embedded SQLite file, the default,
// in pure Go (modernc.org/sqlite, no cgo), or PostgreSQL (jackc/pgx), for
// several machines sharing one user base. It is vpopmail's SQL back end
// reworked: one implementation over database/sql, two dialects.
//
// # Format
//
// The tables: domains, domain_names (every name a domain answers to, its
// own and its alias domains', so that they are unique together), locals
// (every local part of a domain, a mailbox's or an alias's, so that a name
// is never both), mailboxes, aliases, dir_control (vpopmail's hashed
// directory state: the count of mailboxes ever added per domain and the
// directory of the last), generation (one counter that every change
// increments) and schema_version. Times are Unix nanoseconds (0 for none),
// address lists JSON arrays.
//
// The schema is migrated when a store is opened: each missing step in a
// transaction; a database whose schema is newer than the program's is
// refused with an error saying so.
//
// # Concurrency
//
// A Store is safe for concurrent use and for several processes sharing the
// database (the mail server and the admin command): SQLite runs in WAL
// mode with a busy timeout, and every write transaction takes the write
// lock when it begins; PostgreSQL's own locking covers the rest. A change
// made by one process is seen by another's cache through
// [Store.Generation].
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/qmailkit/qmailkit/vmail"
)

// Store is a vmail.Store over an SQL database. Open one with [OpenSQLite]
// or [OpenPostgres].
type Store struct {
	db       *sql.DB
	postgres bool
	stmts    map[string]*sql.Stmt
	// writing serialises this process's SQLite write transactions: SQLite
	// takes one writer at a time, and writers of one process waiting on
	// its busy timeout could wait longer than it under load (other
	// processes still wait on the timeout).
	writing chan struct{}
}

// The hot lookups, prepared once.
const (
	qDomain = `SELECT d.name, d.dir, d.catchall, d.max_mailboxes, d.max_aliases, d.max_forwards,
		d.max_autoresponders, d.default_quota_bytes, d.default_quota_count, d.disabled, d.created
		FROM domain_names n JOIN domains d ON d.name = n.domain WHERE n.name = ?`
	qDomainAliases = `SELECT name FROM domain_names WHERE domain = ? AND name <> domain ORDER BY name`
	mailboxCols    = `domain, name, password, realname, dir, quota_bytes, quota_count, flags,
		forward_to, forward_keep, ar_enabled, ar_subject, ar_body, ar_interval, ar_from, ar_until,
		created, last_login, last_login_ip`
	qMailbox    = `SELECT ` + mailboxCols + ` FROM mailboxes WHERE domain = ? AND name = ?`
	qAlias      = `SELECT domain, name, targets FROM aliases WHERE domain = ? AND name = ?`
	qGeneration = `SELECT n FROM generation WHERE id = 1`
)

// OpenSQLite opens (creating it, mode 0600) the SQLite database at path and
// brings its schema up to date. The file may be shared by several
// processes. The path may not contain '?'.
func OpenSQLite(path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?\x00") {
		return nil, fmt.Errorf("sqlstore: open %q: not a usable file name", path)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		f.Close()
	case errors.Is(err, os.ErrExist):
	default:
		return nil, fmt.Errorf("sqlstore: open: %w", err)
	}
	dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)" +
		"&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	return open(context.Background(), db, false, path)
}

// OpenPostgres connects to the PostgreSQL database at url (a
// "postgres://user:password@host:port/database?sslmode=..." URL or a
// "key=value" connection string, as pgx reads them) and brings its schema
// up to date.
func OpenPostgres(ctx context.Context, url string) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open postgres: %w", err)
	}
	return open(ctx, db, true, "postgres")
}

func open(ctx context.Context, db *sql.DB, postgres bool, name string) (*Store, error) {
	s := &Store{db: db, postgres: postgres, stmts: make(map[string]*sql.Stmt), writing: make(chan struct{}, 1)}
	// database/sql keeps 2 idle connections by default: under concurrent
	// lookups (RCPT time) the others would be closed and reopened, which
	// for SQLite means opening the file and running its pragmas again.
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlstore: open %s: %w", name, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	for _, q := range []string{qDomain, qDomainAliases, qMailbox, qAlias, qGeneration} {
		st, err := db.PrepareContext(ctx, s.rebind(q))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("sqlstore: open %s: prepare: %w", name, err)
		}
		s.stmts[q] = st
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	for _, st := range s.stmts {
		st.Close()
	}
	return s.db.Close()
}

// DB returns the database, for tests and tools.
func (s *Store) DB() *sql.DB { return s.db }

// classify turns the database's constraint violations into vmail's
// conditions: a duplicate key is ErrExists, a missing referenced row
// ErrNotFound.
func (s *Store) classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return fmt.Errorf("sqlstore: %s: %w", op, vmail.ErrExists)
		case "23503":
			return fmt.Errorf("sqlstore: %s: %w", op, vmail.ErrNotFound)
		}
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("sqlstore: %s: %w", op, vmail.ErrExists)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("sqlstore: %s: %w", op, vmail.ErrNotFound)
		}
	}
	return fmt.Errorf("sqlstore: %s: %w", op, err)
}

// write runs f in a transaction that also increments the generation.
func (s *Store) write(ctx context.Context, op string, f func(tx *sql.Tx) error) error {
	return s.writeGen(ctx, op, true, f)
}

func (s *Store) writeGen(ctx context.Context, op string, bump bool, f func(tx *sql.Tx) error) error {
	if !s.postgres {
		select {
		case s.writing <- struct{}{}:
			defer func() { <-s.writing }()
		case <-ctx.Done():
			return s.classify(op, ctx.Err())
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.classify(op, err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return s.classify(op, err)
	}
	if bump {
		if _, err := tx.ExecContext(ctx, `UPDATE generation SET n = n + 1 WHERE id = 1`); err != nil {
			return s.classify(op, err)
		}
	}
	return s.classify(op, tx.Commit())
}

func (s *Store) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (int64, error) {
	r, err := tx.ExecContext(ctx, s.rebind(q), args...)
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

// notFound is a condition: what was asked for is not there.
func notFound(what string) error { return fmt.Errorf("%s: %w", what, vmail.ErrNotFound) }

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func bool64(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func list(v []string) string {
	if len(v) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func unlist(s string) ([]string, error) {
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("sqlstore: bad address list %q: %w", s, err)
	}
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}

// AddDomain stores a new domain.
func (s *Store) AddDomain(ctx context.Context, d vmail.Domain) error {
	return s.write(ctx, "add domain "+d.Name, func(tx *sql.Tx) error {
		var n int
		err := tx.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM domain_names WHERE name = ?`), d.Name).Scan(&n)
		if err != nil {
			return err
		}
		if n > 0 {
			return vmail.ErrExists
		}
		l := d.Limits
		if _, err := s.exec(ctx, tx, `INSERT INTO domains (name, dir, catchall, max_mailboxes, max_aliases,
			max_forwards, max_autoresponders, default_quota_bytes, default_quota_count, disabled, created)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.Name, d.Dir, d.CatchAll, l.MaxMailboxes, l.MaxAliases, l.MaxForwards, l.MaxAutoresponders,
			l.DefaultQuota.Bytes, l.DefaultQuota.Count, int64(l.Disabled), unixNano(d.Created)); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, `INSERT INTO domain_names (name, domain) VALUES (?, ?)`, d.Name, d.Name); err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, `INSERT INTO dir_control (domain, cur_users, the_dir) VALUES (?, 0, '')`, d.Name)
		return err
	})
}

type scanner interface{ Scan(dest ...any) error }

func scanDomain(r scanner) (vmail.Domain, error) {
	var d vmail.Domain
	var disabled, created int64
	err := r.Scan(&d.Name, &d.Dir, &d.CatchAll, &d.Limits.MaxMailboxes, &d.Limits.MaxAliases,
		&d.Limits.MaxForwards, &d.Limits.MaxAutoresponders, &d.Limits.DefaultQuota.Bytes,
		&d.Limits.DefaultQuota.Count, &disabled, &created)
	d.Limits.Disabled, d.Created = vmail.Flags(disabled), fromNano(created)
	return d, err
}

// Domain returns a domain by its name or an alias domain's.
func (s *Store) Domain(ctx context.Context, name string) (vmail.Domain, error) {
	d, err := scanDomain(s.stmts[qDomain].QueryRowContext(ctx, name))
	if errors.Is(err, sql.ErrNoRows) {
		return vmail.Domain{}, notFound("sqlstore: domain " + name)
	}
	if err != nil {
		return vmail.Domain{}, s.classify("domain "+name, err)
	}
	rows, err := s.stmts[qDomainAliases].QueryContext(ctx, d.Name)
	if err != nil {
		return vmail.Domain{}, s.classify("domain "+name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return vmail.Domain{}, s.classify("domain "+name, err)
		}
		d.Aliases = append(d.Aliases, a)
	}
	if err := rows.Err(); err != nil {
		return vmail.Domain{}, s.classify("domain "+name, err)
	}
	return d, nil
}

// UpdateDomain stores d's CatchAll and Limits.
func (s *Store) UpdateDomain(ctx context.Context, d vmail.Domain) error {
	return s.write(ctx, "update domain "+d.Name, func(tx *sql.Tx) error {
		l := d.Limits
		n, err := s.exec(ctx, tx, `UPDATE domains SET catchall = ?, max_mailboxes = ?, max_aliases = ?,
			max_forwards = ?, max_autoresponders = ?, default_quota_bytes = ?, default_quota_count = ?,
			disabled = ? WHERE name = ?`,
			d.CatchAll, l.MaxMailboxes, l.MaxAliases, l.MaxForwards, l.MaxAutoresponders,
			l.DefaultQuota.Bytes, l.DefaultQuota.Count, int64(l.Disabled), d.Name)
		if err == nil && n == 0 {
			err = vmail.ErrNotFound
		}
		return err
	})
}

// DeleteDomain removes a domain with its mailboxes, aliases and alias
// domains.
func (s *Store) DeleteDomain(ctx context.Context, name string) error {
	return s.write(ctx, "delete domain "+name, func(tx *sql.Tx) error {
		n, err := s.exec(ctx, tx, `DELETE FROM domains WHERE name = ?`, name)
		if err == nil && n == 0 {
			err = vmail.ErrNotFound
		}
		return err
	})
}

// Domains lists the domains by name.
func (s *Store) Domains(ctx context.Context) ([]vmail.Domain, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, dir, catchall, max_mailboxes, max_aliases, max_forwards,
		max_autoresponders, default_quota_bytes, default_quota_count, disabled, created FROM domains ORDER BY name`)
	if err != nil {
		return nil, s.classify("domains", err)
	}
	defer rows.Close()
	var ds []vmail.Domain
	index := make(map[string]int)
	for rows.Next() {
		d, err := scanDomain(rows)
		if err != nil {
			return nil, s.classify("domains", err)
		}
		index[d.Name] = len(ds)
		ds = append(ds, d)
	}
	if err := rows.Err(); err != nil {
		return nil, s.classify("domains", err)
	}
	rows.Close()
	arows, err := s.db.QueryContext(ctx, `SELECT name, domain FROM domain_names WHERE name <> domain ORDER BY name`)
	if err != nil {
		return nil, s.classify("domains", err)
	}
	defer arows.Close()
	for arows.Next() {
		var a, d string
		if err := arows.Scan(&a, &d); err != nil {
			return nil, s.classify("domains", err)
		}
		if i, ok := index[d]; ok {
			ds[i].Aliases = append(ds[i].Aliases, a)
		}
	}
	return ds, s.classify("domains", arows.Err())
}

// AddAliasDomain makes alias an alias domain of domain.
func (s *Store) AddAliasDomain(ctx context.Context, alias, domain string) error {
	return s.write(ctx, "add alias domain "+alias, func(tx *sql.Tx) error {
		if ok, err := s.hasDomain(ctx, tx, domain); err != nil {
			return err
		} else if !ok {
			return notFound("domain " + domain)
		}
		var n int
		if err := tx.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM domain_names WHERE name = ?`), alias).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return vmail.ErrExists
		}
		_, err := s.exec(ctx, tx, `INSERT INTO domain_names (name, domain) VALUES (?, ?)`, alias, domain)
		return err
	})
}

// DeleteAliasDomain removes an alias domain.
func (s *Store) DeleteAliasDomain(ctx context.Context, alias string) error {
	return s.write(ctx, "delete alias domain "+alias, func(tx *sql.Tx) error {
		n, err := s.exec(ctx, tx, `DELETE FROM domain_names WHERE name = ? AND name <> domain`, alias)
		if err == nil && n == 0 {
			err = vmail.ErrNotFound
		}
		return err
	})
}

// claim takes a local part of a domain for a mailbox ('m') or an alias
// ('a'); for an alias, a name it holds already is kept.
func (s *Store) claim(ctx context.Context, tx *sql.Tx, domain, name, kind string) error {
	if ok, err := s.hasDomain(ctx, tx, domain); err != nil {
		return err
	} else if !ok {
		return notFound("domain " + domain)
	}
	var have string
	err := tx.QueryRowContext(ctx, s.rebind(`SELECT kind FROM locals WHERE domain = ? AND name = ?`), domain, name).Scan(&have)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = s.exec(ctx, tx, `INSERT INTO locals (domain, name, kind) VALUES (?, ?, ?)`, domain, name, kind)
		return err
	case err != nil:
		return err
	case have == "a" && kind == "a":
		return nil
	case have == "a":
		return fmt.Errorf("%s@%s is an alias: %w", name, domain, vmail.ErrExists)
	default:
		return fmt.Errorf("%s@%s is a mailbox: %w", name, domain, vmail.ErrExists)
	}
}

// AddMailbox stores a new mailbox.
func (s *Store) AddMailbox(ctx context.Context, m vmail.Mailbox) error {
	return s.write(ctx, "add mailbox "+m.Name+"@"+m.Domain, func(tx *sql.Tx) error {
		if err := s.claim(ctx, tx, m.Domain, m.Name, "m"); err != nil {
			return err
		}
		_, err := s.exec(ctx, tx, `INSERT INTO mailboxes (`+mailboxCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, mailboxArgs(m)...)
		return err
	})
}

func mailboxArgs(m vmail.Mailbox) []any {
	a := m.Autoresponder
	return []any{m.Domain, m.Name, m.Password, m.RealName, m.Dir, m.Quota.Bytes, m.Quota.Count,
		int64(m.Flags), list(m.Forward.To), bool64(m.Forward.KeepCopy), bool64(a.Enabled), a.Subject,
		a.Body, int64(a.Interval), unixNano(a.From), unixNano(a.Until), unixNano(m.Created),
		unixNano(m.LastLogin), m.LastLoginIP}
}

func scanMailbox(r scanner) (vmail.Mailbox, error) {
	var m vmail.Mailbox
	var flags, keep, enabled, interval, from, until, created, last int64
	var to string
	err := r.Scan(&m.Domain, &m.Name, &m.Password, &m.RealName, &m.Dir, &m.Quota.Bytes, &m.Quota.Count,
		&flags, &to, &keep, &enabled, &m.Autoresponder.Subject, &m.Autoresponder.Body, &interval,
		&from, &until, &created, &last, &m.LastLoginIP)
	if err != nil {
		return m, err
	}
	m.Flags = vmail.Flags(flags)
	m.Forward.KeepCopy = keep != 0
	m.Autoresponder.Enabled = enabled != 0
	m.Autoresponder.Interval = time.Duration(interval)
	m.Autoresponder.From, m.Autoresponder.Until = fromNano(from), fromNano(until)
	m.Created, m.LastLogin = fromNano(created), fromNano(last)
	m.Forward.To, err = unlist(to)
	return m, err
}

// Mailbox returns a mailbox of a domain.
func (s *Store) Mailbox(ctx context.Context, domain, name string) (vmail.Mailbox, error) {
	m, err := scanMailbox(s.stmts[qMailbox].QueryRowContext(ctx, domain, name))
	if errors.Is(err, sql.ErrNoRows) {
		return vmail.Mailbox{}, notFound("sqlstore: mailbox " + name + "@" + domain)
	}
	if err != nil {
		return vmail.Mailbox{}, s.classify("mailbox "+name+"@"+domain, err)
	}
	return m, nil
}

// UpdateMailbox stores every field of m but Name, Domain and Created.
func (s *Store) UpdateMailbox(ctx context.Context, m vmail.Mailbox) error {
	return s.write(ctx, "update mailbox "+m.Name+"@"+m.Domain, func(tx *sql.Tx) error {
		args := mailboxArgs(m)
		// domain, name and created move to the WHERE clause or go.
		set := append([]any{}, args[2:16]...)
		set = append(set, args[17:]...)
		set = append(set, m.Domain, m.Name)
		n, err := s.exec(ctx, tx, `UPDATE mailboxes SET password = ?, realname = ?, dir = ?, quota_bytes = ?,
			quota_count = ?, flags = ?, forward_to = ?, forward_keep = ?, ar_enabled = ?, ar_subject = ?,
			ar_body = ?, ar_interval = ?, ar_from = ?, ar_until = ?, last_login = ?, last_login_ip = ?
			WHERE domain = ? AND name = ?`, set...)
		if err == nil && n == 0 {
			err = vmail.ErrNotFound
		}
		return err
	})
}

// DeleteMailbox removes a mailbox.
func (s *Store) DeleteMailbox(ctx context.Context, domain, name string) error {
	return s.write(ctx, "delete mailbox "+name+"@"+domain, func(tx *sql.Tx) error {
		n, err := s.exec(ctx, tx, `DELETE FROM locals WHERE domain = ? AND name = ? AND kind = 'm'`, domain, name)
		if err == nil && n == 0 {
			err = vmail.ErrNotFound
		}
		return err
	})
}

// domainExists reports ErrNotFound for a name that is not a domain's.
func (s *Store) domainExists(ctx context.Context, domain string) error {
	ok, err := s.hasDomain(ctx, s.db, domain)
	if err != nil {
		return s.classify("domain "+domain, err)
	}
	if !ok {
		return notFound("sqlstore: domain " + domain)
	}
	return nil
}

// hasDomain reports whether domain is a domain's own name (not an alias
// domain's), asked of q: the database or a transaction.
func (s *Store) hasDomain(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, domain string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM domains WHERE name = ?`), domain).Scan(&n)
	return n > 0, err
}

// Mailboxes lists a domain's mailboxes in name order, at most limit (0:
// all) of those whose name sorts after after; ErrNotFound for no such
// domain.
func (s *Store) Mailboxes(ctx context.Context, domain, after string, limit int) ([]vmail.Mailbox, error) {
	if err := s.domainExists(ctx, domain); err != nil {
		return nil, err
	}
	n := int64(limit)
	if limit <= 0 {
		n = math.MaxInt64
	}
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT `+mailboxCols+` FROM mailboxes
		WHERE domain = ? AND name > ? ORDER BY name LIMIT ?`), domain, after, n)
	if err != nil {
		return nil, s.classify("mailboxes of "+domain, err)
	}
	defer rows.Close()
	var ms []vmail.Mailbox
	for rows.Next() {
		m, err := scanMailbox(rows)
		if err != nil {
			return nil, s.classify("mailboxes of "+domain, err)
		}
		ms = append(ms, m)
	}
	return ms, s.classify("mailboxes of "+domain, rows.Err())
}

// CountMailboxes returns the number of a domain's mailboxes.
func (s *Store) CountMailboxes(ctx context.Context, domain string) (int, error) {
	if err := s.domainExists(ctx, domain); err != nil {
		return 0, err
	}
	var n int
	err := s.db.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM mailboxes WHERE domain = ?`), domain).Scan(&n)
	return n, s.classify("count mailboxes of "+domain, err)
}

// RecordLogin stores a successful login's time and address. It does not
// change the Generation: no cached answer depends on it.
func (s *Store) RecordLogin(ctx context.Context, domain, name string, at time.Time, ip string) error {
	return s.writeGen(ctx, "record login of "+name+"@"+domain, false, func(tx *sql.Tx) error {
		n, err := s.exec(ctx, tx, `UPDATE mailboxes SET last_login = ?, last_login_ip = ? WHERE domain = ? AND name = ?`,
			unixNano(at), ip, domain, name)
		if err == nil && n == 0 {
			err = vmail.ErrNotFound
		}
		return err
	})
}

// PutAlias stores an alias, replacing one of the same name.
func (s *Store) PutAlias(ctx context.Context, a vmail.Alias) error {
	return s.write(ctx, "put alias "+a.Name+"@"+a.Domain, func(tx *sql.Tx) error {
		if err := s.claim(ctx, tx, a.Domain, a.Name, "a"); err != nil {
			return err
		}
		_, err := s.exec(ctx, tx, `INSERT INTO aliases (domain, name, targets) VALUES (?, ?, ?)
			ON CONFLICT (domain, name) DO UPDATE SET targets = excluded.targets`, a.Domain, a.Name, list(a.Targets))
		return err
	})
}

func scanAlias(r scanner) (vmail.Alias, error) {
	var a vmail.Alias
	var t string
	if err := r.Scan(&a.Domain, &a.Name, &t); err != nil {
		return a, err
	}
	var err error
	a.Targets, err = unlist(t)
	return a, err
}

// Alias returns an alias of a domain.
func (s *Store) Alias(ctx context.Context, domain, name string) (vmail.Alias, error) {
	a, err := scanAlias(s.stmts[qAlias].QueryRowContext(ctx, domain, name))
	if errors.Is(err, sql.ErrNoRows) {
		return vmail.Alias{}, notFound("sqlstore: alias " + name + "@" + domain)
	}
	if err != nil {
		return vmail.Alias{}, s.classify("alias "+name+"@"+domain, err)
	}
	return a, nil
}

// DeleteAlias removes an alias.
func (s *Store) DeleteAlias(ctx context.Context, domain, name string) error {
	return s.write(ctx, "delete alias "+name+"@"+domain, func(tx *sql.Tx) error {
		n, err := s.exec(ctx, tx, `DELETE FROM locals WHERE domain = ? AND name = ? AND kind = 'a'`, domain, name)
		if err == nil && n == 0 {
			err = vmail.ErrNotFound
		}
		return err
	})
}

// Aliases lists a domain's aliases in name order; ErrNotFound for no such
// domain.
func (s *Store) Aliases(ctx context.Context, domain string) ([]vmail.Alias, error) {
	if err := s.domainExists(ctx, domain); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT domain, name, targets FROM aliases WHERE domain = ? ORDER BY name`), domain)
	if err != nil {
		return nil, s.classify("aliases of "+domain, err)
	}
	defer rows.Close()
	var as []vmail.Alias
	for rows.Next() {
		a, err := scanAlias(rows)
		if err != nil {
			return nil, s.classify("aliases of "+domain, err)
		}
		as = append(as, a)
	}
	return as, s.classify("aliases of "+domain, rows.Err())
}

// NextDir allocates the hashed directory for a domain's next mailbox: the
// domain's counter of mailboxes ever added goes up by one, atomically, and
// the directory is vmail.HashDir of it. Unlike vpopmail the counter never
// goes down when a mailbox is deleted, so every directory receives 100
// mailboxes. It does not change the Generation.
func (s *Store) NextDir(ctx context.Context, domain string) (string, error) {
	var dir string
	err := s.writeGen(ctx, "next dir of "+domain, false, func(tx *sql.Tx) error {
		var n int64
		err := tx.QueryRowContext(ctx, s.rebind(`UPDATE dir_control SET cur_users = cur_users + 1
			WHERE domain = ? RETURNING cur_users`), domain).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("domain " + domain)
		}
		if err != nil {
			return err
		}
		dir = vmail.HashDir(int(n))
		_, err = s.exec(ctx, tx, `UPDATE dir_control SET the_dir = ? WHERE domain = ?`, dir, domain)
		return err
	})
	return dir, err
}

// Generation returns the number every change increments.
func (s *Store) Generation(ctx context.Context) (int64, error) {
	var n int64
	if err := s.stmts[qGeneration].QueryRowContext(ctx).Scan(&n); err != nil {
		return 0, s.classify("generation", err)
	}
	return n, nil
}
