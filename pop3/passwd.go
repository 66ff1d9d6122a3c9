package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

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

// MaxPasswordLength is the longest password [VerifyPassword] checks, in
// bytes: 1024. SHA-crypt's cost grows with the square of the password's
// length (an 8 KB password takes a quarter of a second), so a longer one
// is refused, as a wrong password, before any hashing.
const MaxPasswordLength = 1024

// MaxRounds is the most SHA-crypt rounds [VerifyPassword] computes: a
// stored hash asking for more (SHA-crypt allows 999,999,999) never
// matches, so that no entry, whoever wrote it, makes each login spin.
// Hashes made by [HashPassword], mkpasswd and Dovecot use 5000.
const MaxRounds = 1_000_000

// VerifyPassword checks credentials against a stored password:
//
//	{PLAIN}secret          clear text (the only form APOP can use)
//	$5$salt$hash           SHA-256-crypt, optionally $5$rounds=N$...
//	$6$salt$hash           SHA-512-crypt (glibc's crypt(3), mkpasswd -m sha-512)
//	{CRYPT}$6$...          the same, with Dovecot's scheme prefix
//	{SHA512-CRYPT}$6$...   the same, as Dovecot's doveadm pw writes it (and {SHA256-CRYPT}$5$...)
//
// An empty password, or one starting with '!' or '*' (a locked account),
// never matches, nor does an unknown scheme, a secret longer than
// [MaxPasswordLength] or a hash of more than [MaxRounds] rounds.
func VerifyPassword(stored string, c Credentials) bool {
	if len(c.Secret) > MaxPasswordLength {
		return false
	}
	if strings.HasPrefix(stored, "{PLAIN}") {
		secret := strings.TrimPrefix(stored, "{PLAIN}")
		return secret != "" && CheckSecret(c, secret)
	}
	var h func() hash.Hash
	switch {
	case strings.HasPrefix(stored, "{SHA512-CRYPT}$6$"):
		stored = strings.TrimPrefix(stored, "{SHA512-CRYPT}")
	case strings.HasPrefix(stored, "{SHA256-CRYPT}$5$"):
		stored = strings.TrimPrefix(stored, "{SHA256-CRYPT}")
	default:
		stored = strings.TrimPrefix(stored, "{CRYPT}")
	}
	if c.Method == MethodAPOP || stored == "" {
		return false
	}
	switch {
	case strings.HasPrefix(stored, "$5$"):
		h = sha256.New
	case strings.HasPrefix(stored, "$6$"):
		h = sha512.New
	default:
		return false
	}
	got, ok := shaCrypt(h, c.Secret, stored)
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(stored)) == 1
}

// HashPassword returns password hashed for a password file: SHA-512-crypt
// with the default 5000 rounds and a random 16-character salt, with
// Dovecot's scheme prefix, "{SHA512-CRYPT}$6$salt$hash", a form both
// [VerifyPassword] and Dovecot read. It refuses an empty password and one
// longer than [MaxPasswordLength], which could never log in.
func HashPassword(password string) (string, error) {
	if password == "" || len(password) > MaxPasswordLength {
		return "", fmt.Errorf("pop3: hash password: length %d not in 1..%d", len(password), MaxPasswordLength)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("pop3: hash password: %w", err)
	}
	for i := range b {
		b[i] = cryptAlphabet[b[i]&63]
	}
	h, ok := shaCrypt(sha512.New, password, "$6$"+string(b[:]))
	if !ok {
		return "", errors.New("pop3: hash password: failed")
	}
	return "{SHA512-CRYPT}" + h, nil
}

const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// shaCrypt is Ulrich Drepper's SHA-crypt ("Unix crypt using SHA-256 and
// SHA-512", 2007) for the salt and rounds of setting ("$5$..." or
// "$6$...", with or without a hash after the salt).
func shaCrypt(newHash func() hash.Hash, password, setting string) (string, bool) {
	prefix := setting[:3]
	rest := setting[3:]
	rounds, custom := 5000, false
	if r, ok := strings.CutPrefix(rest, "rounds="); ok {
		i := strings.IndexByte(r, '$')
		if i < 0 {
			return "", false
		}
		n, err := strconv.ParseUint(r[:i], 10, 32)
		if err != nil {
			return "", false
		}
		rounds, custom, rest = min(max(int(n), 1000), 999999999), true, r[i+1:]
	}
	salt := rest
	if i := strings.IndexByte(salt, '$'); i >= 0 {
		salt = salt[:i]
	}
	if len(salt) > 16 {
		salt = salt[:16]
	}
	if rounds > MaxRounds {
		return "", false // refuse to be made to spin by a stored setting
	}
	p, s := []byte(password), []byte(salt)
	h := newHash()
	size := h.Size()

	h.Write(p)
	h.Write(s)
	h.Write(p)
	b := h.Sum(nil)

	h.Reset()
	h.Write(p)
	h.Write(s)
	n := len(p)
	for ; n > size; n -= size {
		h.Write(b)
	}
	h.Write(b[:n])
	for n := len(p); n > 0; n >>= 1 {
		if n&1 != 0 {
			h.Write(b)
		} else {
			h.Write(p)
		}
	}
	a := h.Sum(nil)

	h.Reset()
	for range len(p) {
		h.Write(p)
	}
	dp := h.Sum(nil)
	pp := make([]byte, 0, len(p))
	for len(pp)+size <= len(p) {
		pp = append(pp, dp...)
	}
	pp = append(pp, dp[:len(p)-len(pp)]...)

	h.Reset()
	for range 16 + int(a[0]) {
		h.Write(s)
	}
	ds := h.Sum(nil)
	ss := make([]byte, 0, len(s))
	for len(ss)+size <= len(s) {
		ss = append(ss, ds...)
	}
	ss = append(ss, ds[:len(s)-len(ss)]...)

	c := a
	for i := range rounds {
		h.Reset()
		if i&1 != 0 {
			h.Write(pp)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(ss)
		}
		if i%7 != 0 {
			h.Write(pp)
		}
		if i&1 != 0 {
			h.Write(c)
		} else {
			h.Write(pp)
		}
		c = h.Sum(c[:0])
	}

	var out bytes.Buffer
	out.WriteString(prefix)
	if custom {
		fmt.Fprintf(&out, "rounds=%d$", rounds)
	}
	out.WriteString(salt)
	out.WriteByte('$')
	b64 := func(b2, b1, b0 byte, n int) {
		w := uint(b2)<<16 | uint(b1)<<8 | uint(b0)
		for range n {
			out.WriteByte(cryptAlphabet[w&0x3f])
			w >>= 6
		}
	}
	// The byte order of the encoding rotates the triples (k, k+d, k+2d),
	// one way for SHA-512 and the other for SHA-256.
	d, last := 21, 2
	if size == 32 {
		d, last = 10, 1
	}
	for k := range d {
		x, y, z := c[k], c[k+d], c[k+2*d]
		switch {
		case k%3 == 0:
		case (k%3 == 1) == (size == 64):
			x, y, z = y, z, x
		default:
			x, y, z = z, x, y
		}
		b64(x, y, z, 4)
	}
	if last == 2 {
		b64(0, 0, c[63], 2)
	} else {
		b64(0, c[31], c[30], 3)
	}
	return out.String(), true
}
