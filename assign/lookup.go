package assign

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"unsafe"

	"github.com/qmailkit/qmailkit/internal/cdb"
)

// Errors of a lookup. Each is temporary (qmail-lspawn reports them with a
// Z, and the queue retries); [ExitCode] gives qmail-lspawn's exit code.
var (
	// ErrNotFound: users/cdb has no record for the address. [Users] then
	// asks the password database; [DB.Lookup] returns it as is.
	ErrNotFound = errors.New("assign: no assignment")

	// ErrRoot: the assignment's uid reads as 0 ("Not allowed to perform
	// deliveries as root."). A uid that is not a number reads as 0.
	ErrRoot = errors.New("assign: not allowed to perform deliveries as root")

	// ErrCDB: users/cdb exists but cannot be read, is corrupt or lacks its
	// empty-key record ("Trouble reading users/cdb in qmail-lspawn.").
	ErrCDB = errors.New("assign: trouble reading users/cdb")

	// ErrShortValue: a users/cdb value with fewer than six fields
	// ("Internal qmail-lspawn bug.").
	ErrShortValue = errors.New("assign: users/cdb value has fewer than six fields")

	// ErrHome: stat of a candidate's home directory failed with a
	// temporary error ("NFS failure in qmail-local.").
	ErrHome = errors.New("assign: temporary failure checking a home directory")

	// ErrNoAlias: no assignment, no password-database user, and no alias
	// account ("Unable to find alias user!").
	ErrNoAlias = errors.New("assign: unable to find alias user")

	// ErrPasswd: the password database failed ("Temporary failure in
	// qmail-lspawn.").
	ErrPasswd = errors.New("assign: temporary failure reading the password database")
)

// ExitCode returns the exit code with which qmail-lspawn's child would have
// reported err (qmail's qlx.h): 0 for nil, 112 for [ErrShortValue], 113
// [ErrRoot], 115 [ErrHome], 116 [ErrNoAlias], 117 [ErrCDB] and 118 for
// anything else ([ErrPasswd], a cancelled context, ...). dotqmail maps these
// to qmail-lspawn's report texts (116: "Unable to find alias user!").
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrShortValue):
		return 112
	case errors.Is(err, ErrRoot):
		return 113
	case errors.Is(err, ErrHome):
		return 115
	case errors.Is(err, ErrNoAlias):
		return 116
	case errors.Is(err, ErrCDB):
		return 117
	}
	return 118
}

// Match says how a [User] was found.
type Match uint8

const (
	MatchExact    Match = iota + 1 // a simple ('=') users/cdb record
	MatchWildcard                  // a wildcard ('+') users/cdb record
	MatchPasswd                    // a password-database account (qmail-getpw)
	MatchAlias                     // the alias account, nothing else matched (qmail-getpw)
)

// String names the kind of match: exact, wildcard, passwd or alias.
func (m Match) String() string {
	switch m {
	case MatchExact:
		return "exact"
	case MatchWildcard:
		return "wildcard"
	case MatchPasswd:
		return "passwd"
	case MatchAlias:
		return "alias"
	}
	return "Match(" + strconv.Itoa(int(m)) + ")"
}

// User is the answer to a lookup: who receives the mail, under which ids,
// and which .qmail file decides (home + "/.qmail" + Dash + Ext). The fields
// are the arguments qmail-lspawn gives qmail-local, and what
// dotqmail needs.
type User struct {
	Name string // the account name (qmail-local's USER)

	// UID and GID as qmail-lspawn reads them: the leading decimal digits
	// of the field (none: 0), modulo 2^32. A uid of 0 is refused.
	UID, GID int

	// RawUID and RawGID are the fields as stored ("abc" for a uid that
	// reads as 0).
	RawUID, RawGID string

	Home string // home directory
	Dash string // "" or "-"
	Ext  string // extension (for a wildcard: the prefix's ext + the rest of the address, original case)

	Match Match

	// Prefix is the part of the local part that decided: the whole local
	// part for an exact match, the wildcard's prefix (original case), the
	// password account's candidate name before lower-casing; "" for alias.
	Prefix string
}

// DB is one users/cdb, opened: an immutable snapshot that answers the cdb
// half of qmail-lspawn's lookup. It is safe for concurrent use; Close it
// when no lookup is running.
type DB struct {
	c    *cdb.CDB
	wild [256]bool // the bytes of the empty key's value
}

// Open opens the users/cdb at path (memory-mapped). A missing file gives an
// error wrapping fs.ErrNotExist; any other failure, including a file without
// the empty-key record, wraps [ErrCDB].
func Open(path string) (*DB, error) {
	c, err := cdb.Open(path)
	if err != nil {
		return nil, openError(err)
	}
	return dbOf(c, path)
}

// openError is Open's error for a file it could not open: wrapping
// fs.ErrNotExist for a missing one, else ErrCDB.
func openError(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("assign: %w", err)
	}
	return fmt.Errorf("%w: %w", ErrCDB, err)
}

// openFile is Open for the file open as f.
func openFile(f *os.File) (*DB, error) {
	c, err := cdb.OpenFile(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCDB, err)
	}
	return dbOf(c, f.Name())
}

func dbOf(c *cdb.CDB, path string) (*DB, error) {
	d, err := newDB(c)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return d, nil
}

// Bytes reads a users/cdb held in memory; data must not change while the
// DB is in use.
func Bytes(data []byte) (*DB, error) {
	c, err := cdb.Bytes(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCDB, err)
	}
	return newDB(c)
}

func newDB(c *cdb.CDB) (d *DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer recoverFault(&err)
	// qmail-lspawn: r = cdb_seek(fd,"",0,&dlen); if (r != 1) _exit(QLX_CDB);
	w, err := c.Get(nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCDB, err)
	}
	if w == nil {
		return nil, fmt.Errorf("%w: no empty-key (wildcard characters) record", ErrCDB)
	}
	d = &DB{c: c}
	for _, b := range w {
		d.wild[b] = true
	}
	return d, nil
}

// Close unmaps the database.
func (d *DB) Close() error { return d.c.Close() }

// recoverFault turns a fault while reading a memory-mapped file (a users/cdb
// truncated in place under us: someone ran cp over it rather than rename)
// into ErrCDB instead of a crash of the whole process.
func recoverFault(err *error) {
	if r := recover(); r != nil {
		if re, ok := r.(runtime.Error); ok {
			if _, ok := r.(interface{ Addr() uintptr }); ok {
				*err = fmt.Errorf("%w: fault reading the mapped file: %v", ErrCDB, re)
				return
			}
		}
		panic(r)
	}
}

// Lookup answers for local (the local part of a recipient, original case)
// from users/cdb alone, exactly as qmail-lspawn does (qmail-users(5)): the
// exact key "!"+lower(local)+"\0"; then, longest first, the prefixes
// "!"+lower(local[:i]) whose last byte is one of the empty key's wildcard
// characters, and finally "!". ErrNotFound when nothing matches. A uid of 0
// is not refused here (see [Users.Lookup]). A local part is read up to its
// first NUL byte, as C strings are.
func (d *DB) Lookup(local string) (u User, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer recoverFault(&err)
	if i := strings.IndexByte(local, 0); i >= 0 {
		local = local[:i]
	}
	var buf [128]byte
	key := buf[:0]
	if len(local)+2 > len(buf) {
		key = make([]byte, 0, len(local)+2)
	}
	key = append(key, '!')
	key = appendLower(key, local)
	key = append(key, 0)
	for i := len(key); i >= 1; i-- {
		wild := i < len(key)
		if wild && i != 1 && !d.wild[key[i-1]] {
			continue
		}
		v, err := d.c.Get(key[:i])
		if err != nil {
			return User{}, fmt.Errorf("%w: %w", ErrCDB, err)
		}
		if v == nil {
			continue
		}
		if !wild {
			return parseValue(v, "", local, MatchExact)
		}
		return parseValue(v, local[i-1:], local[:i-1], MatchWildcard)
	}
	return User{}, ErrNotFound
}

// parseValue splits a record's value (which it takes over) as qmail-lspawn
// does: append rest (for a wildcard) and a NUL, then take six NUL-terminated
// fields; bytes after the sixth NUL are ignored.
func parseValue(v []byte, rest, prefix string, m Match) (User, error) {
	if bytes.Count(v, []byte{0})+1 < 6 {
		return User{}, fmt.Errorf("%w: %q", ErrShortValue, v)
	}
	// v is the cdb's fresh copy of the value, ours alone and never written
	// after this: it becomes the string the fields share, without another
	// copy (as strings.Builder does).
	v = append(v, rest...)
	s := unsafe.String(unsafe.SliceData(v), len(v))
	var f [6]string
	for i := range 5 {
		j := strings.IndexByte(s, 0)
		f[i], s = s[:j], s[j+1:]
	}
	if j := strings.IndexByte(s, 0); j >= 0 {
		s = s[:j]
	}
	f[5] = s
	return User{
		Name:   f[0],
		UID:    scanID(f[1]),
		GID:    scanID(f[2]),
		RawUID: f[1],
		RawGID: f[2],
		Home:   f[3],
		Dash:   f[4],
		Ext:    f[5],
		Match:  m,
		Prefix: prefix,
	}, nil
}

// scanID is qmail's scan_ulong (leading digits, wrapping in an unsigned
// long) followed by its conversion to a 32-bit uid_t/gid_t.
func scanID(s string) int {
	var u uint64
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		u = u*10 + uint64(s[i]-'0')
	}
	return int(uint32(u))
}
