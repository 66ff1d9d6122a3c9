package assign

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Users resolves local parts to users as qmail-lspawn and qmail-getpw do:
// users/cdb first, then the password database, then the alias account.
//
// The cdb is opened on first use and reopened when the file at CDB changes
// (another inode, size or modification time: qmail-newu renames a new file
// into place), so a lookup always answers from one whole file, old or new,
// never from a mix. Each lookup costs one stat of CDB, as qmail-lspawn
// costs an open, unless MaxAge allows fewer. A Users is safe for concurrent use and must not be copied
// after first use; Close releases the open cdb.
type Users struct {
	// CDB is the path of users/cdb. Empty: there is none; every address
	// goes to the password database. A missing file is the same.
	CDB string

	// Passwd is the password database of the fallback. nil: none, so an
	// address without an assignment gets ErrNoAlias. qmail's behaviour
	// is SystemPasswd{}.
	Passwd Passwd

	// Break is the user-extension separator of the password rules
	// (qmail's conf-break); 0 means '-'.
	Break byte

	// Alias is the catch-all account's name; "" means "alias".
	Alias string

	// HomeOwner returns the uid that owns a home directory. nil means
	// StatOwner (os.Stat).
	HomeOwner func(dir string) (uid int, err error)

	// MaxAge is how long lookups may use the open users/cdb without a
	// stat to see whether it was replaced. 0 checks on every lookup, so
	// that a lookup after qmail-newu finished always sees the new file,
	// as qmail-lspawn does; a busy server can trade that for speed (a
	// stat is most of a lookup's cost).
	MaxAge time.Duration

	// Now returns the current time for MaxAge; nil means time.Now.
	Now func() time.Time

	// Trust, when set, vets users/cdb before a lookup answers from it,
	// for a process that must not believe a file others could have
	// written (qmail-lspawn runs as root; qmail's users/ belongs to
	// root). It is called with CDB and the FileInfo of every stat that
	// looks for a new file (each lookup, unless MaxAge allows fewer), so
	// that a chown or chmod counts at once, and of every file opened
	// (fstat of the open file, so that no file renamed into place
	// between the stat and the open is read unvetted). An error refuses
	// the file: the lookup fails with an error wrapping [ErrCDB] and
	// Trust's error, temporary, as an unreadable users/cdb does. A
	// missing users/cdb is not vetted. nil trusts every file.
	Trust func(path string, fi fs.FileInfo) error

	mu      sync.RWMutex
	db      *DB
	id      fileID
	checked atomic.Int64 // UnixNano of the last stat that found db current
}

type fileID struct {
	dev, ino   uint64
	size       int64
	mtimeNanos int64
}

func idOf(fi fs.FileInfo) fileID {
	id := fileID{size: fi.Size(), mtimeNanos: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), st.Ino
	}
	return id
}

// LookupError is the error of [Users.Lookup]: the local part and the cause,
// which wraps one of the package's sentinel errors.
type LookupError struct {
	Local string
	Err   error
}

// Error gives the cause and the local part.
func (e *LookupError) Error() string {
	return fmt.Sprintf("%v (local part %q)", e.Err, e.Local)
}

// Unwrap returns the cause.
func (e *LookupError) Unwrap() error { return e.Err }

// ExitCode is qmail-lspawn's exit code for the error, [ExitCode]'s answer;
// dotqmail takes its report text from it.
func (e *LookupError) ExitCode() int { return ExitCode(e.Err) }

// Lookup resolves local, the local part of a recipient (original case). The
// result's uid is never 0: such a match returns the User together with an
// error wrapping [ErrRoot]. Every error is a *[LookupError], temporary,
// with qmail-lspawn's exit code. An empty local part (the address
// "@domain", which qmail-lspawn discards without any lookup) is looked up
// like any other.
func (u *Users) Lookup(ctx context.Context, local string) (User, error) {
	if err := ctx.Err(); err != nil {
		return User{}, &LookupError{Local: local, Err: err}
	}
	if i := strings.IndexByte(local, 0); i >= 0 {
		local = local[:i]
	}
	res, err := u.lookupCDB(local)
	if errors.Is(err, ErrNotFound) {
		res, err = u.getpw(local)
	}
	if err != nil {
		return res, &LookupError{Local: local, Err: err}
	}
	if res.UID == 0 {
		return res, &LookupError{Local: local, Err: fmt.Errorf("%w (user %s, uid %q)", ErrRoot, res.Name, res.RawUID)}
	}
	return res, nil
}

// lookupCDB answers from the current users/cdb, reopening it if the file
// changed. ErrNotFound when there is no file or no match.
func (u *Users) lookupCDB(local string) (User, error) {
	if u.CDB == "" {
		return User{}, ErrNotFound
	}
	var now int64
	if u.MaxAge > 0 {
		now = u.now().UnixNano()
		if last := u.checked.Load(); last != 0 && now-last >= 0 && now-last < int64(u.MaxAge) {
			u.mu.RLock()
			if u.db != nil {
				res, err := u.db.Lookup(local)
				u.mu.RUnlock()
				return res, err
			}
			u.mu.RUnlock()
		}
	}
	fi, err := os.Stat(u.CDB)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			u.drop()
			return User{}, ErrNotFound
		}
		return User{}, fmt.Errorf("%w: %w", ErrCDB, err)
	}
	if err := u.trust(fi); err != nil {
		return User{}, err
	}
	id := idOf(fi)
	u.mu.RLock()
	if u.db != nil && u.id == id {
		res, err := u.db.Lookup(local)
		u.mu.RUnlock()
		u.checked.Store(now)
		return res, err
	}
	u.mu.RUnlock()

	u.mu.Lock()
	defer u.mu.Unlock()
	if u.db == nil || u.id != id {
		// The id was taken before the open: if the file is replaced in
		// between, we hold the newer file under the older id, and the
		// next lookup reopens once more. Never the other way round.
		db, err := u.open()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return User{}, ErrNotFound
			}
			return User{}, err
		}
		if u.db != nil {
			u.db.Close() // no reader holds it: we have the write lock
		}
		u.db, u.id = db, id
	}
	u.checked.Store(now)
	return u.db.Lookup(local)
}

// trust asks Trust, if set, about fi (of CDB).
func (u *Users) trust(fi fs.FileInfo) error {
	if u.Trust == nil {
		return nil
	}
	if err := u.Trust(u.CDB, fi); err != nil {
		return fmt.Errorf("%w: %w", ErrCDB, err)
	}
	return nil
}

// open opens CDB, vetting the open file with Trust.
func (u *Users) open() (*DB, error) {
	if u.Trust == nil {
		return Open(u.CDB)
	}
	f, err := os.Open(u.CDB)
	if err != nil {
		return nil, openError(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCDB, err)
	}
	if err := u.trust(fi); err != nil {
		return nil, err
	}
	return openFile(f)
}

func (u *Users) now() time.Time {
	if u.Now != nil {
		return u.Now()
	}
	return time.Now()
}

func (u *Users) drop() {
	u.checked.Store(0)
	u.mu.RLock()
	open := u.db != nil
	u.mu.RUnlock()
	if !open {
		return // the common case without a users/cdb: no write lock
	}
	u.mu.Lock()
	if u.db != nil {
		u.db.Close()
		u.db = nil
	}
	u.mu.Unlock()
}

// Close releases the open users/cdb, if any. The Users stays usable: the
// next lookup opens the file again.
func (u *Users) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.db == nil {
		return nil
	}
	err := u.db.Close()
	u.db = nil
	u.checked.Store(0)
	return err
}

// getpw is qmail-getpw: candidate names are the prefixes of local ending at
// its end or just before a break character, longest first, each shorter than
// 32 bytes, lower-cased; the first account with a uid other than 0 whose home
// directory exists and is owned by that uid wins. Otherwise the alias
// account, with dash "-" and the whole local part as ext.
func (u *Users) getpw(local string) (User, error) {
	if u.Passwd == nil {
		return User{}, fmt.Errorf("%w: no password database", ErrNoAlias)
	}
	brk := u.Break
	if brk == 0 {
		brk = '-'
	}
	owner := u.HomeOwner
	if owner == nil {
		owner = StatOwner
	}
	for end := len(local); ; end-- {
		if end < 32 && (end == len(local) || local[end] == brk) {
			name := lowerString(local[:end]) // bytes, not runes: qmail's case_lowers
			pw, err := u.Passwd.Lookup(name)
			if err != nil {
				return User{}, fmt.Errorf("%w: %w", ErrPasswd, err)
			}
			if pw != nil && pw.UID != 0 {
				uid, err := owner(pw.Home)
				if err == nil && uid == pw.UID {
					res := fromPasswd(pw, MatchPasswd, local[:end])
					if end < len(local) {
						res.Dash, res.Ext = "-", local[end+1:]
					}
					return res, nil
				}
				if err != nil && isTemp(err) {
					return User{}, fmt.Errorf("%w: %s: %w", ErrHome, pw.Home, err)
				}
			}
		}
		if end == 0 {
			break
		}
	}
	alias := u.Alias
	if alias == "" {
		alias = "alias"
	}
	pw, err := u.Passwd.Lookup(alias)
	if err != nil {
		// qmail-getpw does not check errno here: no alias is no alias.
		return User{}, fmt.Errorf("%w: %w", ErrNoAlias, err)
	}
	if pw == nil {
		return User{}, fmt.Errorf("%w: no account %q", ErrNoAlias, alias)
	}
	res := fromPasswd(pw, MatchAlias, "")
	res.Dash, res.Ext = "-", local
	return res, nil
}

// fromPasswd builds a User as qmail-lspawn reads qmail-getpw's output (whose
// uid and gid are printed in decimal, modulo 2^32).
func fromPasswd(pw *PasswdEntry, m Match, prefix string) User {
	uid, gid := int(uint32(pw.UID)), int(uint32(pw.GID))
	return User{
		Name:   pw.Name,
		UID:    uid,
		GID:    gid,
		RawUID: strconv.Itoa(uid),
		RawGID: strconv.Itoa(gid),
		Home:   pw.Home,
		Match:  m,
		Prefix: prefix,
	}
}
