package assign

import (
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func writePasswd(t testing.TB, content string) PasswdFile {
	t.Helper()
	p := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return PasswdFile{Path: p}
}

// owners fakes the home-directory stat: a uid, or an error, per path;
// anything else does not exist.
func owners(m map[string]any) func(string) (int, error) {
	return func(dir string) (int, error) {
		switch v := m[dir].(type) {
		case int:
			return v, nil
		case error:
			return 0, &fs.PathError{Op: "stat", Path: dir, Err: v}
		}
		return 0, &fs.PathError{Op: "stat", Path: dir, Err: syscall.ENOENT}
	}
}

const specPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
	"joe:x:503:78:Joe:/home/joe:/bin/sh\n" +
	"joe-list:x:600:78:List:/home/jl:/bin/sh\n" +
	"www:x:80:80:web:/var/www:/bin/false\n" +
	"alias:*:7790:2108::/var/qmail/alias:/bin/true\n" +
	"Upper:x:900:900::/home/upper:/bin/sh\n" +
	"gone:x:901:900::/home/gone:/bin/sh\n" +
	"locked:x:902:900::/home/locked:/bin/sh\n" +
	"abcdefghijklmnopqrstuvwxyz01234:x:903:900::/home/long31:/bin/sh\n" +
	"abcdefghijklmnopqrstuvwxyz012345:x:904:900::/home/long32:/bin/sh\n"

var specOwners = map[string]any{
	"/home/joe":    503,
	"/home/jl":     600,
	"/var/www":     0,
	"/home/upper":  900,
	"/home/locked": syscall.EACCES,
	"/home/long31": 903,
	"/home/long32": 904,
}

// TestGetpw checks qmail-getpw's rules: prefixes at a break character,
// longest first and lowercased; an account with uid 0 or a home it does
// not own is skipped; nobody found gives alias with the whole local part
// as the extension.
func TestGetpw(t *testing.T) {
	pw := writePasswd(t, specPasswd)
	for _, tc := range []struct {
		local string
		brk   byte
		user  string
		uid   int
		dash  string
		ext   string
		match Match
	}{
		{"joe", 0, "joe", 503, "", "", MatchPasswd},
		{"JOE", 0, "joe", 503, "", "", MatchPasswd},
		{"joe-foo-bar", 0, "joe", 503, "-", "foo-bar", MatchPasswd},
		{"Joe-Foo", 0, "joe", 503, "-", "Foo", MatchPasswd},
		{"joe-list-x", 0, "joe-list", 600, "-", "x", MatchPasswd},
		{"joe-list", 0, "joe-list", 600, "", "", MatchPasswd},
		{"root", 0, "alias", 7790, "-", "root", MatchAlias},
		{"www-data", 0, "alias", 7790, "-", "www-data", MatchAlias},
		{"nosuch", 0, "alias", 7790, "-", "nosuch", MatchAlias},
		{"joe+foo", '+', "joe", 503, "-", "foo", MatchPasswd},
		{"joe-foo", '+', "alias", 7790, "-", "joe-foo", MatchAlias},
		// Accounts with upper-case names never match: candidates are lowered.
		{"Upper", 0, "alias", 7790, "-", "Upper", MatchAlias},
		// A missing home or one we may not stat is "not this user".
		{"gone", 0, "alias", 7790, "-", "gone", MatchAlias},
		{"locked-x", 0, "alias", 7790, "-", "locked-x", MatchAlias},
		// Candidates of 32 bytes or more are skipped.
		{"abcdefghijklmnopqrstuvwxyz01234", 0, "abcdefghijklmnopqrstuvwxyz01234", 903, "", "", MatchPasswd},
		{"abcdefghijklmnopqrstuvwxyz012345", 0, "alias", 7790, "-", "abcdefghijklmnopqrstuvwxyz012345", MatchAlias},
		{"abcdefghijklmnopqrstuvwxyz012345-x", 0, "alias", 7790, "-", "abcdefghijklmnopqrstuvwxyz012345-x", MatchAlias},
		{"abcdefghijklmnopqrstuvwxyz01234-x", 0, "abcdefghijklmnopqrstuvwxyz01234", 903, "-", "x", MatchPasswd},
		{"-joe", 0, "alias", 7790, "-", "-joe", MatchAlias},
	} {
		u := &Users{Passwd: pw, Break: tc.brk, HomeOwner: owners(specOwners)}
		res, err := u.Lookup(t.Context(), tc.local)
		if err != nil || res.Name != tc.user || res.UID != tc.uid || res.Dash != tc.dash || res.Ext != tc.ext || res.Match != tc.match {
			t.Errorf("%q (break %q): %+v, %v; want %s %d %q %q %v", tc.local, tc.brk, res, err, tc.user, tc.uid, tc.dash, tc.ext, tc.match)
		}
	}
}

// stubPasswd answers from a map and fails for names in fail.
type stubPasswd struct {
	m     map[string]*PasswdEntry
	fail  map[string]bool
	asked []string
}

func (s *stubPasswd) Lookup(name string) (*PasswdEntry, error) {
	s.asked = append(s.asked, name)
	if s.fail[name] {
		return nil, errors.New("nss down")
	}
	return s.m[name], nil
}

func TestGetpwOrderAndErrors(t *testing.T) {
	// Candidates longest first, lower-cased, only at break characters.
	s := &stubPasswd{m: map[string]*PasswdEntry{"alias": {Name: "alias", UID: 7, GID: 8, Home: "/a"}}}
	u := &Users{Passwd: s, HomeOwner: owners(nil)}
	if _, err := u.Lookup(t.Context(), "A-b-C"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.asked, ","); got != "a-b-c,a-b,a,alias" {
		t.Errorf("asked %s", got)
	}
	// Bytes that are not UTF-8 are kept as they are, only A-Z lowered.
	s.asked = nil
	if _, err := u.Lookup(t.Context(), "\xffX-\xc3\x84"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.asked, ","); got != "\xffx-\xc3\x84,\xffx,alias" {
		t.Errorf("asked %q", got)
	}

	// A password-database error is temporary trouble (118).
	s = &stubPasswd{m: map[string]*PasswdEntry{}, fail: map[string]bool{"x": true}}
	u = &Users{Passwd: s, HomeOwner: owners(nil)}
	if _, err := u.Lookup(t.Context(), "x"); !errors.Is(err, ErrPasswd) || ExitCode(err) != 118 {
		t.Errorf("passwd error: %v", err)
	}
	// No alias account: 116.
	s = &stubPasswd{m: map[string]*PasswdEntry{}}
	u = &Users{Passwd: s, HomeOwner: owners(nil)}
	if _, err := u.Lookup(t.Context(), "x"); !errors.Is(err, ErrNoAlias) || ExitCode(err) != 116 {
		t.Errorf("no alias: %v", err)
	}
	// No password database at all: 116.
	if _, err := (&Users{}).Lookup(t.Context(), "x"); !errors.Is(err, ErrNoAlias) {
		t.Errorf("nil Passwd: %v", err)
	}
	// A temporary stat error of a home directory: 115.
	s = &stubPasswd{m: map[string]*PasswdEntry{"joe": {Name: "joe", UID: 5, Home: "/nfs/joe"}, "alias": {Name: "alias", UID: 7, Home: "/a"}}}
	u = &Users{Passwd: s, HomeOwner: owners(map[string]any{"/nfs/joe": syscall.ESTALE})}
	if _, err := u.Lookup(t.Context(), "joe"); !errors.Is(err, ErrHome) || ExitCode(err) != 115 {
		t.Errorf("stale home: %v", err)
	}
	// Home owned by someone else: skipped.
	u = &Users{Passwd: s, HomeOwner: owners(map[string]any{"/nfs/joe": 6})}
	if res, err := u.Lookup(t.Context(), "joe"); err != nil || res.Match != MatchAlias {
		t.Errorf("foreign home: %+v %v", res, err)
	}
	// An alias account with uid 0 is refused at the end (113), as
	// qmail-lspawn refuses it.
	s = &stubPasswd{m: map[string]*PasswdEntry{"alias": {Name: "alias", UID: 0, Home: "/a"}}}
	u = &Users{Passwd: s, HomeOwner: owners(nil), Alias: "alias"}
	if res, err := u.Lookup(t.Context(), "x"); !errors.Is(err, ErrRoot) || res.Name != "alias" {
		t.Errorf("root alias: %+v %v", res, err)
	}
	// Another alias name.
	s = &stubPasswd{m: map[string]*PasswdEntry{"catchall": {Name: "catchall", UID: 9, Home: "/c"}}}
	u = &Users{Passwd: s, HomeOwner: owners(nil), Alias: "catchall"}
	if res, err := u.Lookup(t.Context(), "x"); err != nil || res.Name != "catchall" {
		t.Errorf("Alias field: %+v %v", res, err)
	}
}

// The password database is consulted only when users/cdb has no match.
func TestLookupCDBThenPasswd(t *testing.T) {
	path := compileString(t, "=joe:vjoe:2001:100:/v/joe:::\n+sales-:sales:2002:100:/v/s:-::\n.\n")
	s := &stubPasswd{m: map[string]*PasswdEntry{
		"joe":   {Name: "joe", UID: 503, Home: "/home/joe"},
		"sales": {Name: "sales", UID: 504, Home: "/home/sales"},
		"alias": {Name: "alias", UID: 7, Home: "/a"},
	}}
	u := &Users{CDB: path, Passwd: s, HomeOwner: owners(map[string]any{"/home/joe": 503, "/home/sales": 504})}
	defer u.Close()
	for _, tc := range []struct{ local, user string }{
		{"joe", "vjoe"},
		{"joe-x", "joe"},      // no users/cdb match: getpw
		{"sales-eu", "sales"}, // users/cdb wildcard
		{"sales", "sales"},    // getpw
	} {
		res, err := u.Lookup(t.Context(), tc.local)
		if err != nil || res.Name != tc.user {
			t.Errorf("%s: %+v %v", tc.local, res, err)
		}
	}
	if res, _ := u.Lookup(t.Context(), "sales"); res.UID != 504 {
		t.Errorf("sales via passwd: %+v", res)
	}
}

func TestPasswdFile(t *testing.T) {
	pw := writePasswd(t, "+nis::0:0:::\n"+
		"bad:x:notnum:1::/h:/bin/sh\n"+
		"short:x:1:1:/h\n"+
		"joe:x:503:78:Joe Shmoe:/home/joe:/bin/sh\n"+
		"joe:x:999:99:second:/other:/bin/sh\n")
	for _, tc := range []struct {
		name string
		want *PasswdEntry
	}{
		{"joe", &PasswdEntry{Name: "joe", UID: 503, GID: 78, Gecos: "Joe Shmoe", Home: "/home/joe", Shell: "/bin/sh"}},
		{"bad", nil},
		{"short", nil},
		{"+nis", nil},
		{"jo", nil},
		{"", nil},
	} {
		got, err := pw.Lookup(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("%q: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	// A missing file is an empty database.
	if got, err := (PasswdFile{Path: filepath.Join(t.TempDir(), "none")}).Lookup("joe"); got != nil || err != nil {
		t.Errorf("missing: %v %v", got, err)
	}
	// An unreadable one (a directory) is trouble.
	if _, err := (PasswdFile{Path: t.TempDir()}).Lookup("joe"); err == nil {
		t.Error("directory as passwd: no error")
	}
}

func TestStatOwner(t *testing.T) {
	dir := t.TempDir()
	uid, err := StatOwner(dir)
	if err != nil || uid != os.Getuid() {
		t.Errorf("StatOwner: %d, %v; want %d", uid, err, os.Getuid())
	}
	if _, err := StatOwner(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) || isTemp(err) {
		t.Errorf("missing: %v", err)
	}
}

func TestIsTemp(t *testing.T) {
	for _, tc := range []struct {
		err  error
		temp bool
	}{
		{syscall.ESTALE, true},
		{syscall.EIO, true},
		{&fs.PathError{Err: syscall.ETIMEDOUT}, true},
		{syscall.ENOENT, false},
		{syscall.EACCES, false},
		{syscall.ENOTDIR, false},
		{fs.ErrNotExist, false},
		{errors.New("unknown trouble"), true},
	} {
		if got := isTemp(tc.err); got != tc.temp {
			t.Errorf("%v: %v", tc.err, got)
		}
	}
}

// Lookup errors carry qmail-lspawn's exit code in the shape dotqmail looks
// for (an ExitCode() int method) and unwrap to the sentinels.
func TestLookupErrorExitCode(t *testing.T) {
	u := &Users{}
	_, err := u.Lookup(t.Context(), "nobody")
	var ec interface{ ExitCode() int }
	if !errors.As(err, &ec) || ec.ExitCode() != 116 || !errors.Is(err, ErrNoAlias) {
		t.Errorf("%v", err)
	}
	var le *LookupError
	if !errors.As(err, &le) || le.Local != "nobody" || !strings.Contains(err.Error(), `"nobody"`) {
		t.Errorf("%v", err)
	}
}

var (
	_ Passwd = PasswdFile{}
	_ Passwd = SystemPasswd{}
	_ Passwd = (*stubPasswd)(nil)
)

// SystemPasswd's conversion from os/user, without reading /etc/passwd.
func TestEntryFromUser(t *testing.T) {
	e, err := entryFromUser(&user.User{Uid: "503", Gid: "78", Username: "joe", Name: "Joe", HomeDir: "/home/joe"})
	if err != nil || *e != (PasswdEntry{Name: "joe", UID: 503, GID: 78, Gecos: "Joe", Home: "/home/joe"}) {
		t.Errorf("%+v %v", e, err)
	}
	if _, err := entryFromUser(&user.User{Uid: "S-1-5", Gid: "1", Username: "w"}); err == nil {
		t.Error("non-numeric uid accepted")
	}
}
