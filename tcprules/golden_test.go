package tcprules

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/internal/golden"
)

var goldenSets = []string{"basic", "prefix", "ranges", "hosts", "info", "env", "order", "qmail", "ipv6"}
var badSets = []string{"crlf", "quote", "space", "range"}

func TestGoldenCompile(t *testing.T) {
	dir := golden.Dir(t, "tcprules")
	for _, name := range goldenSets {
		t.Run(name, func(t *testing.T) {
			rules, err := os.ReadFile(filepath.Join(dir, name+".rules"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(dir, name+".cdb"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Compile(bytes.NewReader(rules))
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Compile(%s.rules): %d bytes, differ from %s.cdb (%d bytes)", name, len(got), name, len(want))
			}

			// The same through CompileFile, the tcprules CDB TMP contract.
			tmpdir := t.TempDir()
			out, tmp := filepath.Join(tmpdir, "rules.cdb"), filepath.Join(tmpdir, "rules.tmp")
			if err := CompileFile(out, tmp, bytes.NewReader(rules)); err != nil {
				t.Fatalf("CompileFile: %v", err)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
				t.Errorf("CompileFile(%s.rules) differs from %s.cdb", name, name)
			}
			if _, err := os.Stat(tmp); !os.IsNotExist(err) {
				t.Errorf("temporary file still there: %v", err)
			}
		})
	}
}

// TestGoldenDump checks the parser's keys and values against the .dump files
// (the records real tcprules wrote, in order).
func TestGoldenDump(t *testing.T) {
	dir := golden.Dir(t, "tcprules")
	for _, name := range goldenSets {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, name+".rules"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rules, err := Parse(f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rules {
				v := r.Value()
				for _, k := range r.Keys {
					got = append(got, golden.Dump([]byte(k), v))
				}
			}
			dump, err := os.ReadFile(filepath.Join(dir, name+".dump"))
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Split(strings.TrimSuffix(string(dump), "\n"), "\n")
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestGoldenBad(t *testing.T) {
	dir := golden.Dir(t, "tcprules")
	for _, name := range badSets {
		t.Run(name, func(t *testing.T) {
			rules, err := os.ReadFile(filepath.Join(dir, name+".bad.rules"))
			if err != nil {
				t.Fatal(err)
			}
			wantErr, err := os.ReadFile(filepath.Join(dir, name+".bad.err"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Compile(bytes.NewReader(rules))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Compile: %v, want a *ParseError", err)
			}
			if !errors.Is(err, ErrParse) {
				t.Errorf("errors.Is(err, ErrParse) = false")
			}
			got := "tcprules: fatal: unable to parse this line: " + pe.Text + "\n"
			if got != string(wantErr) {
				t.Errorf("message %q, want %q", got, wantErr)
			}
			// The bad line is the second of each file, except with CRLF
			// line ends, where the first rule already fails.
			wantLine := 2
			if name == "crlf" {
				wantLine = 1
			}
			if pe.Line != wantLine {
				t.Errorf("Line = %d, want %d", pe.Line, wantLine)
			}

			tmpdir := t.TempDir()
			out := filepath.Join(tmpdir, "rules.cdb")
			err = CompileFile(out, filepath.Join(tmpdir, "rules.tmp"), bytes.NewReader(rules))
			if !errors.As(err, &pe) {
				t.Fatalf("CompileFile: %v, want a *ParseError", err)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a cdb was created for a bad file: %v", err)
			}
		})
	}
}

// lookupCase is one line of a .lookups file.
type lookupCase struct {
	ip         string
	host, info *string
	want       string // the part after "->"
	line       string
}

func readLookups(t testing.TB, path string) []lookupCase {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []lookupCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		before, after, ok := strings.Cut(line, " -> ")
		fields := strings.Fields(before)
		if !ok || len(fields) != 3 {
			t.Fatalf("%s: bad line %q", path, line)
		}
		opt := func(s string) *string {
			switch s {
			case "-":
				return nil
			case `""`:
				s = ""
			}
			return &s
		}
		cases = append(cases, lookupCase{ip: fields[0], host: opt(fields[1]), info: opt(fields[2]), want: after, line: line})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

// formatLookup writes a decision the way the .lookups files do (what
// tcprulescheck printed, reformatted by the README's lookups.py).
func formatLookup(report string) string {
	lines := strings.Split(strings.TrimSuffix(report, "\n"), "\n")
	where := "default"
	if lines[0] != "default:" {
		where = "rule " + strconv.Quote(strings.TrimSuffix(strings.TrimPrefix(lines[0], "rule "), ":"))
	}
	parts := []string{}
	verdict := ""
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "set environment variable "):
			k, v, _ := strings.Cut(strings.TrimPrefix(l, "set environment variable "), "=")
			parts = append(parts, k+"="+strconv.Quote(v))
		case l == "allow connection":
			verdict = "allow"
		case l == "deny connection":
			verdict = "deny"
		}
	}
	return strings.Join(append(append([]string{verdict}, parts...), ";", where), " ")
}

func TestGoldenLookups(t *testing.T) {
	dir := golden.Dir(t, "tcprules")
	for _, name := range goldenSets {
		t.Run(name, func(t *testing.T) {
			// The cdb written by real tcprules, not ours.
			db, err := Open(filepath.Join(dir, name+".cdb"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for _, c := range readLookups(t, filepath.Join(dir, name+".lookups")) {
				d, err := db.Lookup(c.ip, c.host, c.info)
				if err != nil {
					t.Fatalf("%s: %v", c.line, err)
				}
				if got := formatLookup(d.Report()); got != c.want {
					t.Errorf("%s\n got: %s", c.line, got)
				}
				// Env (tcpserver's reading) agrees with the report for
				// values tcprules wrote.
				if !d.Deny {
					var envs []string
					for _, v := range d.Env {
						envs = append(envs, v.Name+"="+strconv.Quote(v.Value))
					}
					if got := strings.Join(envs, " "); !strings.Contains(c.want, got) {
						t.Errorf("%s: Env %s", c.line, got)
					}
				}
			}
		})
	}
}
