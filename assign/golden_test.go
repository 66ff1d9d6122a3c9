package assign

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/internal/cdb"
	"github.com/qmailkit/qmailkit/internal/golden"
)

var goldenAccepted = []string{"basic", "wildcard", "duplicates", "extensions", "odd", "many"}
var goldenRejected = []string{"reject-nodot", "reject-comment", "reject-fields"}

// TestGoldenCompile: the users/cdb written from each golden assign file is
// byte-identical to the one real qmail-newu wrote, and the Scanner's entries
// are the records of the .dump listing.
func TestGoldenCompile(t *testing.T) {
	g := golden.Dir(t, "assign")
	for _, name := range goldenAccepted {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(g, name+".cdb"))
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			out := filepath.Join(dir, "cdb")
			if err := CompileFile(filepath.Join(g, name+".assign"), out); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("users/cdb differs from qmail-newu's: %d bytes, want %d", len(got), len(want))
			}
			if _, err := os.Stat(out + ".tmp"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s.tmp left behind: %v", out, err)
			}

			// The .dump lists every record; the scanner gives the same
			// records, then the wildchars record.
			dump, err := os.ReadFile(filepath.Join(g, name+".dump"))
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(filepath.Join(g, name+".assign"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var lines []string
			s := NewScanner(f)
			for s.Scan() {
				e := s.Entry()
				lines = append(lines, golden.Dump(e.Key(), e.Value()))
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			dl := strings.Split(strings.TrimSuffix(string(dump), "\n"), "\n")
			if len(dl) != len(lines)+1 {
				t.Fatalf("%d records in the dump, scanner gave %d + 1", len(dl), len(lines))
			}
			for i, l := range lines {
				if l != dl[i] {
					t.Errorf("record %d: scanner %s, dump %s", i+1, l, dl[i])
				}
			}
			// And the compiled file, read back in order, gives the dump.
			c, err := cdb.Bytes(got)
			if err != nil {
				t.Fatal(err)
			}
			it := c.Iter()
			for i := 0; it.Next(); i++ {
				if l := golden.Dump(it.Key(), it.Value()); l != dl[i] {
					t.Errorf("cdb record %d: %s, dump %s", i+1, l, dl[i])
				}
			}
		})
	}
}

// TestGoldenRejected: each rejected file gives ErrSyntax and leaves the
// existing users/cdb byte for byte as it was.
func TestGoldenRejected(t *testing.T) {
	g := golden.Dir(t, "assign")
	for _, name := range goldenRejected {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "cdb")
			old := []byte("the old users/cdb")
			if err := os.WriteFile(out, old, 0o644); err != nil {
				t.Fatal(err)
			}
			err := CompileFile(filepath.Join(g, name+".assign"), out)
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("err = %v, want ErrSyntax", err)
			}
			var se *SyntaxError
			if !errors.As(err, &se) || se.Line == 0 || !strings.Contains(se.File, name+".assign") {
				t.Errorf("error does not name file and line: %#v", se)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, old) {
				t.Errorf("users/cdb changed to %q", got)
			}
			if _, err := os.Stat(out + ".tmp"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("users/cdb.tmp left behind: %v", err)
			}
		})
	}
}

type goldenAssign struct {
	Key, User, UID, GID, Home, Dash, Ext string
}

type goldenLookup struct {
	Address  string
	Local    string
	Assign   *goldenAssign
	Argv     []string `json:"qmail_local_argv"`
	Getpw    *struct{ User, Dash, Ext string }
	Report   *string `json:"lspawn_report"`
	Note     string
	AliasUID int `json:"-"`
}

// lspawnReports are qmail-lspawn's texts for its own exit codes (qlx.h).
var lspawnReports = map[int]string{
	112: "ZInternal qmail-lspawn bug.\n",
	113: "ZNot allowed to perform deliveries as root.\n",
	115: "ZNFS failure in qmail-local.\n",
	116: "ZUnable to find alias user!\n",
	117: "ZTrouble reading users/cdb in qmail-lspawn.\n",
	118: "ZTemporary failure in qmail-lspawn.\n",
}

// lspawn plays qmail-lspawn's part around Users.Lookup: the trash address,
// the lookup, the refusal of root; it returns qmail-local's argv or the
// report when no qmail-local would run.
func lspawn(t *testing.T, u *Users, address string) (argv []string, report string) {
	t.Helper()
	at := strings.LastIndexByte(address, '@')
	local, domain := address, ""
	if at >= 0 {
		local, domain = address[:at], address[at+1:]
	}
	if local == "" {
		return nil, "K"
	}
	res, err := u.Lookup(t.Context(), local)
	if err != nil {
		r, ok := lspawnReports[ExitCode(err)]
		if !ok {
			t.Fatalf("no report for %v", err)
		}
		return nil, r
	}
	return []string{res.Name, res.Home, local, res.Dash, res.Ext, domain, "sender@example.net", "./Maildir/"}, ""
}

// keyOf rebuilds the users/cdb key that matched, from the result.
func keyOf(u User) string {
	k := "!" + lowerString(u.Prefix)
	if u.Match == MatchExact {
		k += `\0`
	}
	return k
}

// TestGoldenLookups: every line of every .lookups file, recorded from the
// real qmail-lspawn over the real qmail-newu's users/cdb, is answered the
// same: the users/cdb fields and key, qmail-local's argv, the qmail-getpw
// fallback to the alias user, and the reports when no qmail-local ran.
func TestGoldenLookups(t *testing.T) {
	g := golden.Dir(t, "assign")
	// On the recording machine the password database had no user for any
	// of these addresses, only the alias account.
	pw := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(pw, []byte("root:x:0:0:root:/root:/bin/sh\nalias:*:7790:2108::/var/qmail/alias:/bin/true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range goldenAccepted {
		t.Run(name, func(t *testing.T) {
			cdbPath := filepath.Join(g, name+".cdb") // written by the real qmail-newu
			db, err := Open(cdbPath)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			u := &Users{CDB: cdbPath, Passwd: PasswdFile{Path: pw}, HomeOwner: func(string) (int, error) { return 0, os.ErrNotExist }}
			defer u.Close()
			f, err := os.Open(filepath.Join(g, name+".lookups"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			n := 0
			for sc.Scan() {
				var want goldenLookup
				if err := json.Unmarshal(sc.Bytes(), &want); err != nil {
					t.Fatal(err)
				}
				n++
				if at := strings.LastIndexByte(want.Address, '@'); want.Address[:at] != want.Local {
					t.Fatalf("%s: local %q", want.Address, want.Local)
				}
				// The users/cdb half.
				res, err := db.Lookup(want.Local)
				if want.Assign == nil {
					if !errors.Is(err, ErrNotFound) {
						t.Errorf("%s: users/cdb gave %+v, %v; want no match", want.Address, res, err)
					}
				} else {
					got := goldenAssign{keyOf(res), res.Name, res.RawUID, res.RawGID, res.Home, res.Dash, res.Ext}
					if err != nil || got != *want.Assign {
						t.Errorf("%s: users/cdb gave %+v, %v; want %+v", want.Address, got, err, *want.Assign)
					}
				}
				// What qmail-lspawn then did.
				argv, report := lspawn(t, u, want.Address)
				switch {
				case want.Report != nil:
					if report != *want.Report {
						t.Errorf("%s: report %q argv %q, want report %q", want.Address, report, argv, *want.Report)
					}
				case want.Argv != nil:
					if strings.Join(argv, "\x00") != strings.Join(want.Argv, "\x00") || report != "" {
						t.Errorf("%s: argv %q report %q, want argv %q", want.Address, argv, report, want.Argv)
					}
				case want.Getpw != nil:
					got, err := u.Lookup(t.Context(), want.Local)
					if err != nil || got.Name != want.Getpw.User || got.Dash != want.Getpw.Dash || got.Ext != want.Getpw.Ext || got.Match != MatchAlias {
						t.Errorf("%s: getpw gave %+v, %v; want %+v", want.Address, got, err, *want.Getpw)
					}
					if report != "" || argv[0] != "alias" || argv[4] != want.Local {
						t.Errorf("%s: argv %q report %q", want.Address, argv, report)
					}
				default:
					t.Fatalf("%s: line with no expectation", want.Address)
				}
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			if n < 10 {
				t.Fatalf("only %d lookups read", n)
			}
		})
	}
}
