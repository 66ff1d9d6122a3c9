package aliases

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

var specControls = Controls{DefaultHost: "mx", DefaultDomain: "example.net", PlusDomain: "mx.example.net"}

func compileAliases(t *testing.T, c Controls, in string) ([]Record, error) {
	t.Helper()
	ar := NewAliasReader(strings.NewReader(in), c)
	var recs []Record
	for {
		a, err := ar.Next()
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		recs = append(recs, a.Records()...)
	}
}

// The records newaliases writes for the examples of its documentation, and its errors.
func TestAliasesRecords(t *testing.T) {
	meOnly := Controls{DefaultHost: "mx.example.net", DefaultDomain: "mx.example.net", PlusDomain: "mx.example.net"}
	tests := []struct {
		name string
		c    Controls
		in   string
		want []Record
	}{
		{"postmaster", specControls, "postmaster: root\n", []Record{{":postmaster@", "&root@mx.example.net\x00"}}},
		{"continuation", specControls, "root: Joe@Example.COM, bob\n  , \"quoted name\"@example.org\n",
			[]Record{{":root@", "&quoted name@example.org\x00&bob@mx.example.net\x00&Joe@Example.COM\x00"}}},
		{"owner", specControls, "owner-list: Listmaster\n",
			[]Record{{"?list@", "owner-list@mx.example.net"}, {":owner-list@", "&Listmaster@mx.example.net\x00"}}},
		{"owner case-sensitive", specControls, "Owner-list: x\n", []Record{{":owner-list@", "&x@mx.example.net\x00"}}},
		{"include", specControls, "list: :include:/lists/x\n", []Record{{":list@", "/lists/x.bin\x00"}}},
		{"include relative", specControls, "list: :include:L, root\n", []Record{{":list@", "./L.bin\x00&root@mx.example.net\x00"}}},
		{"programs", specControls, "prog: |/usr/bin/vacation joe,\n\t\"|cat > /dev/null\"\n",
			[]Record{{":prog@", "!cat > /dev/null\x00!/usr/bin/vacation\x00&joe@mx.example.net\x00"}}},
		{"mix", specControls, "mix: joe+, <a@b>, Some Name <c@d.e>, (comment) f@g\n",
			[]Record{{":mix@", "&f@g.example.net\x00&c@d.e\x00&a@b.example.net\x00&joe+@mx.example.net\x00"}}},
		{"hostless", specControls, "hostless: x@\n", []Record{{":hostless@", "&x@mx.example.net\x00"}}},
		{"plus host", meOnly, "a: u@h+\n", []Record{{":a@", "&u@h.mx.example.net\x00"}}},
		{"domain name", specControls, "a@example.com: b\n", []Record{{":a@example.com", "&b@mx.example.net\x00"}}},
		{"no colon", specControls, "a b c\n", []Record{{":a@", "&c@mx.example.net\x00&b@mx.example.net\x00"}}},
		{"empty line continues", specControls, "a: b\n\n c\n#x\n d\n",
			[]Record{{":a@", "&c@mx.example.net\x00&b@mx.example.net\x00"}}},
		{"duplicates", specControls, "a: \"|prog\"\nA: other\n",
			[]Record{{":a@", "!prog\x00"}, {":a@", "&other@mx.example.net\x00"}}},
		{"no final LF", specControls, "a: b\nc: d", []Record{{":a@", "&b@mx.example.net\x00"}}},
		{"comment only", specControls, "(nothing)\n# x\n", nil},
		{"CR is space", specControls, "a: b\r\n", []Record{{":a@", "&b@mx.example.net\x00"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := compileAliases(t, tt.c, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !equalRecords(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func equalRecords(a, b []Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestAliasesErrors(t *testing.T) {
	long := strings.Repeat("x", 790)
	tests := []struct {
		in, text string
		perm     bool
	}{
		{"a: /var/mail/x\n", "file delivery /var/mail/x not supported", false},
		{": foo\n", "unable to parse this line: : foo\n", false},
		{"foo:\n", "unable to parse this line: foo:\n", false},
		{"foo\n", "unable to parse this line: foo\n", false},
		{"foo: \"bar\n", "unable to parse this line: foo: \"bar\n", false},
		{"foo: <bar\n", "unable to parse this line: foo: <bar\n", false},
		{"foo: :include:\n", "empty :include: filenames not permitted", false},
		{"foo: \"\"\n", "empty recipient addresses not permitted", false},
		{"foo: <>\n", "empty recipient addresses not permitted", false},
		{"foo: " + long + "@example.org\n", "addresses over 800 bytes are not permitted", true},
		{"foo: \"b\x00x\"@y.z\n", "NUL not permitted in recipient addresses", false},
		{"foo: \"|b\x00x\"\n", "NUL not permitted in program names", false},
		{"foo: :include:\"a\x00\"\n", "NUL not permitted in :include: filenames", false},
		{"foo: \"/a\x00b\"\n", "file delivery /a not supported", false},
		{"local@: x\n", "unable to parse this line: local@: x\n", false},
		{"\"|x\x00y\n", "unable to parse this line: \"|x", false},
	}
	for _, tt := range tests {
		_, err := compileAliases(t, specControls, tt.in)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%q: err %v, want %q", tt.in, err, tt.text)
			continue
		}
		if e.Text != tt.text || e.Permanent() != tt.perm {
			t.Errorf("%q: got %q perm %v, want %q perm %v", tt.in, e.Text, e.Permanent(), tt.text, tt.perm)
		}
	}
}

func readForward(in string) ([]Record, error) {
	fr := NewForwardReader(strings.NewReader(in))
	var recs []Record
	for {
		r, err := fr.Next()
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		recs = append(recs, r)
	}
}

// S1 and S2.
func TestSetforward(t *testing.T) {
	recs, err := readForward(`Foo@Ex: bar@x.y, |prog a, !pl, /lists/f, ?own@x, b\,c\ d, \#x;`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Record{{"?foo@ex", "own@x"}, {":foo@ex", "&bar@x.y\x00|proga\x00!pl\x00/lists/f\x00&b,c d\x00&#x\x00"}}
	if !equalRecords(recs, want) {
		t.Fatalf("got %q, want %q", recs, want)
	}
	for in, text := range map[string]string{
		"a: b":                                 "final instruction must end with semicolon",
		"a: b;;":                               "commas are not permitted before colons",
		"a, b: c;":                             "commas are not permitted before colons",
		"a:: b;":                               "double colons are not permitted",
		"a: b\x00;":                            "NUL bytes are not permitted",
		"a: " + strings.Repeat("b", 801) + ";": "addresses over 800 bytes are not permitted",
		"a":                                    "final instruction must end with semicolon",
		"a: b;\\":                              "",
		"# only a comment":                     "",
	} {
		_, err := readForward(in)
		var e *Error
		switch {
		case text == "" && err != nil:
			t.Errorf("%q: %v", in, err)
		case text == "":
		case !errors.As(err, &e) || e.Text != text || !e.Permanent():
			t.Errorf("%q: got %v, want %q", in, err, text)
		}
	}
}

func TestPrintForwardS1(t *testing.T) {
	db := writeDB(t, []Record{{"?foo@ex", "own@x"}, {":foo@ex", "&bar@x.y\x00|proga\x00!pl\x00/lists/f\x00&b,c d\x00&#x\x00"}})
	var out bytes.Buffer
	if err := PrintForward(&out, bytes.NewReader(db)); err != nil {
		t.Fatal(err)
	}
	want := "foo@ex: ?own@x;\nfoo@ex:\n, &bar@x.y\n, |proga\n, !pl\n, /lists/f\n, &b\\,c\\ d\n, &\\#x\n;\n"
	if out.String() != want {
		t.Errorf("got %q\nwant %q", out.String(), want)
	}
}

// S3.
func TestMaillist(t *testing.T) {
	var bin bytes.Buffer
	if err := WriteMaillist(&bin, strings.NewReader("joe\n# c\n/lists/sub\nbob@x.y \n&carol@z.w\n\n"), 0); err != nil {
		t.Fatal(err)
	}
	if want := "&joe\x00/lists/sub\x00&bob@x.y\x00&carol@z.w\x00"; bin.String() != want {
		t.Fatalf("got %q, want %q", bin.String(), want)
	}
	var out bytes.Buffer
	if err := PrintMaillist(&out, &bin, 0); err != nil {
		t.Fatal(err)
	}
	if want := "&joe\n/lists/sub\n&bob@x.y\n&carol@z.w\n"; out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
	if err := PrintMaillist(io.Discard, strings.NewReader("a\x00"), 0); err != ErrBadList {
		t.Fatalf("got %v, want ErrBadList", err)
	}
}
