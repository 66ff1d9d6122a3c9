package pop3

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/internal/cdb"
)

// ErrPasswdFormat is the condition of a malformed line in a password file.
var ErrPasswdFormat = errors.New("pop3: bad password file line")

// PasswdEntry is one virtual user of a password file.
type PasswdEntry struct {
	Name     string
	Password string // the stored password: see [VerifyPassword]
	UID, GID int
	Gecos    string
	Home     string
	Shell    string
}

// ParsePasswdLine parses a line in passwd(5) format,
// "name:password:uid:gid:gecos:home:shell". Fields after the seventh are
// ignored (Dovecot's passwd-file adds some).
func ParsePasswdLine(line string) (PasswdEntry, error) {
	f := strings.SplitN(line, ":", 8)
	if len(f) < 7 || f[0] == "" {
		return PasswdEntry{}, fmt.Errorf("%w: %d fields", ErrPasswdFormat, len(f))
	}
	uid, err1 := strconv.Atoi(f[2])
	gid, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil || uid < 0 || gid < 0 {
		return PasswdEntry{}, fmt.Errorf("%w: uid or gid", ErrPasswdFormat)
	}
	return PasswdEntry{Name: f[0], Password: f[1], UID: uid, GID: gid, Gecos: f[4], Home: f[5], Shell: f[6]}, nil
}

// PasswdFile is an [Authenticator] for virtual users listed in a file
// in passwd(5) format (see [ParsePasswdLine]), with the password hashed as
// [VerifyPassword] reads it; lines that are empty or start with '#' are
// skipped. A path ending in ".cdb" is a constant database made by
// [CompilePasswd] instead, for large user lists. The file is read again
// when it changes. A malformed line makes every lookup fail temporarily
// rather than lock some users out silently.
//
// Logins take as long for a user the file does not list as for one it
// does (the password is checked against a dummy SHA-512-crypt hash with
// the default rounds), so their timing does not tell which accounts exist;
// a password longer than [MaxPasswordLength] is refused before any
// hashing.
type PasswdFile struct {
	Path string

	// verify is VerifyPassword; tests count its calls through it.
	verify func(stored string, c Credentials) bool

	mu      sync.Mutex
	stamp   [3]int64 // inode, size, mtime of the file read
	entries map[string]PasswdEntry
	db      *cdb.CDB
	err     error
}

var _ Authenticator = (*PasswdFile)(nil)

// Lookup returns a user's entry; the error wraps [ErrAuthFailed] when there
// is none.
func (p *PasswdFile) Lookup(name string) (PasswdEntry, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.load(); err != nil {
		return PasswdEntry{}, err
	}
	if p.db != nil {
		v, err := p.db.Get([]byte(name))
		if err != nil {
			return PasswdEntry{}, fmt.Errorf("pop3: %s: %w", p.Path, err)
		}
		if v == nil {
			return PasswdEntry{}, fmt.Errorf("pop3: no user %q: %w", name, ErrAuthFailed)
		}
		return ParsePasswdLine(name + ":" + string(v))
	}
	e, ok := p.entries[name]
	if !ok {
		return PasswdEntry{}, fmt.Errorf("pop3: no user %q: %w", name, ErrAuthFailed)
	}
	return e, nil
}

func (p *PasswdFile) load() error {
	fi, err := os.Stat(p.Path)
	if err != nil {
		return fmt.Errorf("pop3: password file: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	stamp := [3]int64{0, fi.Size(), fi.ModTime().UnixNano()}
	if st != nil {
		stamp[0] = int64(st.Ino)
	}
	if stamp == p.stamp && (p.entries != nil || p.db != nil || p.err != nil) {
		return p.err
	}
	p.stamp, p.entries, p.err = stamp, nil, nil
	if p.db != nil {
		p.db.Close()
		p.db = nil
	}
	if strings.HasSuffix(p.Path, ".cdb") {
		p.db, p.err = cdb.Open(p.Path)
		if p.err != nil {
			p.err = fmt.Errorf("pop3: password file: %w", p.err)
		}
		return p.err
	}
	f, err := os.Open(p.Path)
	if err != nil {
		p.err = fmt.Errorf("pop3: password file: %w", err)
		return p.err
	}
	defer f.Close()
	p.entries, p.err = readPasswd(f, p.Path)
	return p.err
}

func readPasswd(r io.Reader, name string) (map[string]PasswdEntry, error) {
	entries := map[string]PasswdEntry{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		e, err := ParsePasswdLine(line)
		if err != nil {
			return nil, fmt.Errorf("pop3: %s line %d: %w", name, n, err)
		}
		if _, dup := entries[e.Name]; !dup {
			entries[e.Name] = e // the first line for a name wins, as getpwnam
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("pop3: %s: %w", name, err)
	}
	return entries, nil
}

// CompilePasswd writes the password file read from r as a cdb at path
// (through path+".tmp" and a rename): key the user name, value the rest of
// the line. A [PasswdFile] whose Path ends in ".cdb" reads it.
func CompilePasswd(path string, r io.Reader) error {
	entries, err := readPasswd(r, path)
	if err != nil {
		return err
	}
	w, err := cdb.Create(path)
	if err != nil {
		return fmt.Errorf("pop3: %w", err)
	}
	for _, e := range entries {
		v := strings.Join([]string{e.Password, strconv.Itoa(e.UID), strconv.Itoa(e.GID), e.Gecos, e.Home, e.Shell}, ":")
		if err := w.Put([]byte(e.Name), []byte(v)); err != nil {
			w.Abort()
			return fmt.Errorf("pop3: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("pop3: %w", err)
	}
	return nil
}

// dummyHash is checked for a user the file does not list, so that the
// answer takes as long as for one it does: a SHA-512-crypt hash with the
// default 5000 rounds, of a password nobody is told.
const dummyHash = "$6$Bw7OHQ3k9XpZr1tN$u6c/RCsnkVRU0/GTcJf.b56Pg8cQpC5S82UF.6IgodMPRfmBENYG6ENRDd8JixNzMJxiejddMAQkZBChTvtd.0"

// Authenticate looks the user up and checks the secret with
// [VerifyPassword]; for a user the file does not list, it checks the
// secret against a dummy hash all the same, so the time taken does not
// tell whether the user exists. The user's Maildir is Home/Maildir.
func (p *PasswdFile) Authenticate(ctx context.Context, c Credentials) (*User, error) {
	verify := p.verify
	if verify == nil {
		verify = VerifyPassword
	}
	if len(c.Secret) > MaxPasswordLength {
		return nil, fmt.Errorf("pop3: user %q: password longer than %d bytes: %w", c.User, MaxPasswordLength, ErrAuthFailed)
	}
	e, err := p.Lookup(c.User)
	if errors.Is(err, ErrAuthFailed) {
		verify(dummyHash, c)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if !verify(e.Password, c) {
		return nil, fmt.Errorf("pop3: user %q: %w", c.User, ErrAuthFailed)
	}
	return &User{Name: e.Name, Home: e.Home, Shell: e.Shell, UID: e.UID, GID: e.GID, Maildir: filepath.Join(e.Home, "Maildir")}, nil
}

// MaxPasswordLength is the longest password [VerifyPassword] checks.
//
// Deprecated: use [auth.MaxPasswordLength].
const MaxPasswordLength = auth.MaxPasswordLength

// MaxRounds is the most SHA-crypt rounds [VerifyPassword] computes.
//
// Deprecated: use [auth.MaxRounds].
const MaxRounds = auth.MaxRounds

// VerifyPassword checks credentials against a stored password.
//
// Deprecated: use [auth.VerifyPassword].
func VerifyPassword(stored string, c Credentials) bool { return auth.VerifyPassword(stored, c) }

// HashPassword returns password hashed for a password file.
//
// Deprecated: use [auth.HashPassword].
func HashPassword(password string) (string, error) { return auth.HashPassword(password) }
