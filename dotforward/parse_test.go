package dotforward

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

var testConfig = Config{User: "joe", Host: "mx.example.net",
	DefaultHost: "mx.example.net", DefaultDomain: "example.net", PlusDomain: "plus.example.net"}

// entries renders what Parse found as "kind arg" strings.
func entries(t *testing.T, c Config, file string) ([]string, error) {
	t.Helper()
	var got []string
	err := c.Parse(strings.NewReader(file), func(e Entry) error {
		got = append(got, e.Kind.String()+" "+e.Arg)
		return nil
	})
	return got, err
}

func TestParse(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string
		err        string // the error's text, "" for none
	}{
		// D1: right to left, hostless addresses completed.
		{"D1", "bob@x.y, carol\n", []string{"forward carol@mx.example.net", "forward bob@x.y"}, ""},
		// D2: the user himself, however written.
		{"D2 user", "joe\n", []string{"direct joe"}, ""},
		{"D2 user@host", "Joe@MX.example.net\n", []string{"direct Joe@MX.example.net"}, ""},
		{"D2 backslash", "\\joe, bob@x.y\n", []string{"forward bob@x.y", "direct joe"}, ""},
		{"not quite the user", "joey, joe@mx.example.net.\n",
			[]string{"forward joe@mx.example.net.", "forward joey@mx.example.net"}, ""},
		// D3: programs and refused files.
		{"D3 program", "\"|vacation joe\"\n", []string{"program vacation joe"}, ""},
		{"D3 unquoted program", "|vacation joe\n", []string{"direct joe", "program vacation"}, ""},
		{"D3 file", "/var/mail/joe\n", nil, "dotforward: file delivery /var/mail/joe not supported"},
		{"D3 include", ":include: /x\n", nil, "dotforward: file delivery /x not supported"},
		// D4: nothing usable.
		{"D4 empty", "", nil, ""},
		{"D4 comments", "# c\n#x, y\n", nil, ""},
		{"empty addresses", "<>, (just a comment)\n", nil, ""},
		// D5: plus and default domain.
		{"D5", "u@h+, plain+, n@h\n",
			[]string{"forward n@h.example.net", "forward plain+@mx.example.net", "forward u@h.plus.example.net"}, ""},
		{"literal", "x@[1.2.3.4]\n", []string{"forward x@[1.2.3.4]"}, ""},
		{"route", "Joe Q <jq@x.y> (c), x\n", []string{"forward x@mx.example.net", "forward jq@x.y"}, ""},
		{"group", "grp: a, b;\n",
			[]string{"forward b@mx.example.net", "forward a@mx.example.net", "forward grp@mx.example.net"}, ""},
		{"no continuation lines", "x\n#y\n z\n", []string{"forward x@mx.example.net", "forward z@mx.example.net"}, ""},
		{"last line without newline", "a@b.c\nd@e.f", []string{"forward a@b.c", "forward d@e.f"}, ""},
		{"lone <", "<joe\n", []string{"forward <joe@mx.example.net"}, ""},
		// Parse errors, after what was to the right of the error.
		{"stray >", "a, b> c\n", []string{"forward c@mx.example.net", "forward a,b@mx.example.net"},
			"dotforward: unable to parse this line: a, b> c\n"},
		{"open quote", "x\n\"foo\n", []string{"forward x@mx.example.net"}, "dotforward: unable to parse this line: \"foo\n"},
		// NUL bytes: C strings.
		{"NUL address", "a\x00b, c\n", []string{"forward c@mx.example.net", "forward a"}, ""},
		{"NUL program", "|a\x00b\n", []string{"program a"}, ""},
		{"NUL file", "/x\x00y\n", nil, "dotforward: file delivery /x not supported"},
		{"NUL in bad line", "\"a\x00b\n", nil, "dotforward: unable to parse this line: \"a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := entries(t, testConfig, tt.file)
			errText := ""
			if err != nil {
				errText = err.Error()
			}
			if !reflect.DeepEqual(got, tt.want) || errText != tt.err {
				t.Errorf("%q: %q, %q; want %q, %q", tt.file, got, errText, tt.want, tt.err)
			}
		})
	}
}

// TestParseEmptyUser: with $USER and $HOST unset, dot-forward's direct
// test compares against empty strings: only "@" can match.
func TestParseEmptyUser(t *testing.T) {
	got, err := entries(t, Config{DefaultHost: "me", DefaultDomain: "me", PlusDomain: "me"}, "x, @\n")
	if err != nil || !reflect.DeepEqual(got, []string{"direct @", "forward x@me.me"}) {
		t.Errorf("%q, %v", got, err)
	}
}

func TestParseLines(t *testing.T) {
	var lines []int
	err := testConfig.Parse(strings.NewReader("a\n# b\n\nc, d\n"), func(e Entry) error {
		lines = append(lines, e.Line)
		return nil
	})
	if err != nil || !reflect.DeepEqual(lines, []int{1, 4, 4}) {
		t.Errorf("lines %v, %v", lines, err)
	}
	stop := errors.New("stop")
	n := 0
	err = testConfig.Parse(strings.NewReader("a, b\nc\n"), func(Entry) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("fn's error: %v after %d entries", err, n)
	}
}

func TestParseLimit(t *testing.T) {
	c := testConfig
	c.MaxLine = 16
	if _, err := entries(t, c, "a@b.c\n"+strings.Repeat("x", 16)+"\n"); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("17-byte line: %v", err)
	}
	if got, err := entries(t, c, strings.Repeat("x", 15)+"\n"); err != nil || len(got) != 1 {
		t.Errorf("16-byte line: %q, %v", got, err)
	}
	// The default: a megabyte, even without a newline.
	if _, err := entries(t, testConfig, strings.Repeat("\x00", DefaultMaxLine+1)); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("a line of NULs: %v", err)
	}
	c.MaxLine = -1
	if got, err := entries(t, c, strings.Repeat("y", DefaultMaxLine+1)); err != nil || len(got) != 1 {
		t.Errorf("no limit: %d entries, %v", len(got), err)
	}
}
