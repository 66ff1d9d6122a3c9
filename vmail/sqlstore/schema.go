package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// migrations are the schema's steps, in order: step i takes a database at
// version i to version i+1. A step is never changed once released; a
// change of schema is a new step. "{T}" is the dialect's text type (with
// a byte-order collation in PostgreSQL, so that names sort as in SQLite
// and as Store.Mailboxes promises).
var migrations = [][]string{
	{
		`CREATE TABLE generation (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)`,
		`INSERT INTO generation (id, n) VALUES (1, 0)`,
		`CREATE TABLE domains (
			name {T} PRIMARY KEY,
			dir {T} NOT NULL,
			catchall {T} NOT NULL,
			max_mailboxes BIGINT NOT NULL,
			max_aliases BIGINT NOT NULL,
			max_forwards BIGINT NOT NULL,
			max_autoresponders BIGINT NOT NULL,
			default_quota_bytes BIGINT NOT NULL,
			default_quota_count BIGINT NOT NULL,
			disabled BIGINT NOT NULL,
			created BIGINT NOT NULL)`,
		// Every name a domain answers to, its own and its alias domains':
		// one table, so that the primary key keeps them unique together.
		`CREATE TABLE domain_names (
			name {T} PRIMARY KEY,
			domain {T} NOT NULL REFERENCES domains (name) ON DELETE CASCADE)`,
		`CREATE INDEX domain_names_domain ON domain_names (domain)`,
		// Every local part of a domain, a mailbox's ('m') or an alias's
		// ('a'): one name cannot be both.
		`CREATE TABLE locals (
			domain {T} NOT NULL REFERENCES domains (name) ON DELETE CASCADE,
			name {T} NOT NULL,
			kind {T} NOT NULL,
			PRIMARY KEY (domain, name))`,
		`CREATE TABLE mailboxes (
			domain {T} NOT NULL,
			name {T} NOT NULL,
			password {T} NOT NULL,
			realname {T} NOT NULL,
			dir {T} NOT NULL,
			quota_bytes BIGINT NOT NULL,
			quota_count BIGINT NOT NULL,
			flags BIGINT NOT NULL,
			forward_to {T} NOT NULL,
			forward_keep BIGINT NOT NULL,
			ar_enabled BIGINT NOT NULL,
			ar_subject {T} NOT NULL,
			ar_body {T} NOT NULL,
			ar_interval BIGINT NOT NULL,
			ar_from BIGINT NOT NULL,
			ar_until BIGINT NOT NULL,
			created BIGINT NOT NULL,
			last_login BIGINT NOT NULL,
			last_login_ip {T} NOT NULL,
			PRIMARY KEY (domain, name),
			FOREIGN KEY (domain, name) REFERENCES locals (domain, name) ON DELETE CASCADE)`,
		`CREATE TABLE aliases (
			domain {T} NOT NULL,
			name {T} NOT NULL,
			targets {T} NOT NULL,
			PRIMARY KEY (domain, name),
			FOREIGN KEY (domain, name) REFERENCES locals (domain, name) ON DELETE CASCADE)`,
		// vpopmail's dir_control: the count of mailboxes ever added and
		// the hashed directory of the last.
		`CREATE TABLE dir_control (
			domain {T} PRIMARY KEY REFERENCES domains (name) ON DELETE CASCADE,
			cur_users BIGINT NOT NULL,
			the_dir {T} NOT NULL)`,
	},
}

// SchemaVersion is the version of the schema this package writes and
// reads: the number of steps in migrations.
const SchemaVersion = 1

// migrate brings the database's schema to SchemaVersion, each step in a
// transaction, and refuses a database whose schema is newer.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	defer tx.Rollback()
	if s.postgres {
		// Two processes opening a new database at once: one migrates, the
		// other waits and then finds the work done.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7263541962)`); err != nil {
			return fmt.Errorf("sqlstore: migrate: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.dialect(`CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)`)); err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	var v sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_version`).Scan(&v); err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	have := int(v.Int64)
	if have > len(migrations) {
		return fmt.Errorf("sqlstore: the database's schema is version %d, newer than this program's %d: use a newer program", have, len(migrations))
	}
	if have == len(migrations) {
		return tx.Commit()
	}
	for i := have; i < len(migrations); i++ {
		for _, q := range migrations[i] {
			if _, err := tx.ExecContext(ctx, s.dialect(q)); err != nil {
				return fmt.Errorf("sqlstore: migrate to version %d: %w", i+1, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM schema_version`); err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO schema_version (version) VALUES (?)`), len(migrations)); err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	return nil
}

// dialect fills in the dialect's types.
func (s *Store) dialect(q string) string {
	if s.postgres {
		return strings.ReplaceAll(q, "{T}", `TEXT COLLATE "C"`)
	}
	return strings.ReplaceAll(q, "{T}", "TEXT")
}

// rebind turns '?' placeholders into PostgreSQL's $1, $2, ... (the
// queries here have no '?' in a literal).
func (s *Store) rebind(q string) string {
	if !s.postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}
