// Package golden finds the golden files that the real qmail and ucspi-tcp
// tools made (shared/testdata beside the repository) and renders cdb
// records in their .dump notation. It is for tests only.
package golden

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Path returns the absolute path of shared/testdata/set, found beside the
// repository root (the directory above the working directory that holds
// go.mod), and an error when it is absent.
func Path(set string) (string, error) {
	dir, err := filepath.Abs(".")
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
	g := filepath.Join(dir, "..", "shared", "testdata", set)
	if _, err := os.Stat(g); err != nil {
		return "", err
	}
	return g, nil
}

// Dir is Path for a test: it skips the test, saying why, when the golden
// files are absent.
func Dir(t testing.TB, set string) string {
	t.Helper()
	g, err := Path(set)
	if err != nil {
		t.Skipf("golden files absent (%v): they live in shared/testdata/%s beside the repository", err, set)
	}
	return g
}

// Dump renders a record as a line of the golden NAME.dump files (without
// its newline): "+KLEN,DLEN:KEY->DATA" with NUL as \0, backslash as \\, CR
// as \r, LF as \n, TAB as \t and any other byte outside 0x20..0x7e as \xHH.
func Dump(k, v []byte) string {
	return fmt.Sprintf("+%d,%d:%s->%s", len(k), len(v), escape(k), escape(v))
}

func escape(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		switch {
		case c == 0:
			s.WriteString(`\0`)
		case c == '\\':
			s.WriteString(`\\`)
		case c == '\r':
			s.WriteString(`\r`)
		case c == '\n':
			s.WriteString(`\n`)
		case c == '\t':
			s.WriteString(`\t`)
		case c < 0x20 || c > 0x7e:
			fmt.Fprintf(&s, `\x%02x`, c)
		default:
			s.WriteByte(c)
		}
	}
	return s.String()
}
