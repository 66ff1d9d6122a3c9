package dotforward

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse reads any file: no panic, only the parse's own errors, no NUL
// in what it hands on, line numbers within the file, and Plan agreeing
// with Parse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"bob@x.y, carol\n", "joe\n", "Joe@MX.example.net\n", "\\joe, bob@x.y\n",
		"\"|vacation joe\"\n", "|vacation joe\n", "/var/mail/joe\n", ":include: /x\n",
		"", "# c\n", "u@h+, plain+, n@h\n", "<joe\n", "joe>\n", "\"foo\n", "a b c\n",
		"Joe Q <jq@x.y> (c), x\n", "a@b\n\nc\n", "a\x00b, c\n", "|a\x00b\n", "grp: a, b;\n",
		"@\n", "<>\n", "x@[1.2.3.4]\n", "x\n#y\n z\n", "\"a b\"@c\n", "a, b> c\n", "(c (nested)) x\\\n",
		"x@y, \\\n", "[open\n", "a@b@c\n", "+\n", "@+\n",
	} {
		f.Add([]byte(s))
	}
	c := testConfig
	c.MaxLine = 4096
	d := &Deliverer{Config: c, Dir: f.TempDir()}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := bytes.Count(data, []byte("\n")) + 1
		var n int
		err := c.Parse(bytes.NewReader(data), func(e Entry) error {
			n++
			if e.Line < 1 || e.Line > lines {
				t.Fatalf("entry %+v on line %d of %d", e, e.Line, lines)
			}
			if strings.IndexByte(e.Arg, 0) >= 0 {
				t.Fatalf("entry %+v holds a NUL", e)
			}
			switch e.Kind {
			case Forward, Program, Direct:
			default:
				t.Fatalf("entry %+v of no kind", e)
			}
			return nil
		})
		var (
			pe *ParseError
			fe *FileError
		)
		if err != nil && !errors.As(err, &pe) && !errors.As(err, &fe) && !errors.Is(err, ErrLineTooLong) {
			t.Fatalf("error %T %v", err, err)
		}
		if pe != nil && strings.IndexByte(pe.Text, 0) >= 0 {
			t.Fatalf("parse error text holds a NUL: %q", pe.Text)
		}
		// Plan reads the same file and says the same.
		if err := os.WriteFile(filepath.Join(d.Dir, ".forward"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, perr := d.Plan(t.Context(), []string{".forward"}, &out); (perr == nil) != (err == nil) {
			t.Fatalf("Parse: %v; Plan: %v", err, perr)
		}
		if got := strings.Count(out.String(), "forward ") + strings.Count(out.String(), "pipe through "); got > n {
			t.Fatalf("Plan printed %d entries, Parse found %d:\n%s", got, n, out.String())
		}
	})
}
