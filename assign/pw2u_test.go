package assign

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"testing/iotest"
)

const pw2uPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
	"joe:x:503:78:Joe:/home/joe:/bin/sh\n" +
	"alias:*:7790:2108::/var/qmail/alias:/bin/true\n" +
	"Upper:x:600:600::/home/upper:/bin/sh\n" +
	"gone:x:601:600::/home/gone:/bin/sh\n" +
	"www:x:80:80::/var/www:/bin/false\n" +
	"short:x:602:600::/home/short\n" +
	"nul\x00:x:603:600::/home/nul:/bin/sh\n" +
	"sue:x:604:601:Sue:/home/sue:/bin/sh" // no final newline

var pw2uOwners = map[string]any{
	"/home/joe":        503,
	"/var/qmail/alias": 7790,
	"/home/upper":      600,
	"/var/www":         0,
	"/home/short":      602,
	"/home/nul":        603,
	"/home/sue":        604,
}

func convert(t *testing.T, p *Pw2u, passwd string) (string, error) {
	t.Helper()
	if p.HomeOwner == nil {
		p.HomeOwner = owners(pw2uOwners)
	}
	var out bytes.Buffer
	err := p.Convert(&out, strings.NewReader(passwd))
	return out.String(), err
}

func TestPw2u(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Pw2u
		pw   string
		want string
	}{
		{"defaults (spec vector 12)", Pw2u{}, pw2uPasswd, "" +
			"=joe:joe:503:78:/home/joe:::\n" +
			"+joe-:joe:503:78:/home/joe:-::\n" +
			"+:alias:7790:2108:/var/qmail/alias:-::\n" +
			"=alias:alias:7790:2108:/var/qmail/alias:::\n" +
			"+alias-:alias:7790:2108:/var/qmail/alias:-::\n" +
			"=sue:sue:604:601:/home/sue:::\n" +
			"+sue-:sue:604:601:/home/sue:-::\n" +
			".\n"},
		{"-C -/ -u -H", Pw2u{NoExt: true, DashSlash: true, AllowUpper: true, Home: HomeIgnore}, pw2uPasswd, "" +
			"=joe:joe:503:78:/home/joe:::\n" +
			"+:alias:7790:2108:/var/qmail/alias:-/::\n" +
			"=alias:alias:7790:2108:/var/qmail/alias:::\n" +
			"=Upper:Upper:600:600:/home/upper:::\n" +
			"=gone:gone:601:600:/home/gone:::\n" +
			"=www:www:80:80:/var/www:::\n" +
			"=sue:sue:604:601:/home/sue:::\n" +
			".\n"},
		{"-c+ -/", Pw2u{Break: '+', DashSlash: true}, "joe:x:503:78:Joe:/home/joe:/bin/sh\nalias:*:7790:2108::/var/qmail/alias:\n", "" +
			"=joe:joe:503:78:/home/joe:::\n" +
			"+joe+:joe:503:78:/home/joe:-/::\n" +
			"+:alias:7790:2108:/var/qmail/alias:-/::\n" +
			"=alias:alias:7790:2108:/var/qmail/alias:::\n" +
			"+alias+:alias:7790:2108:/var/qmail/alias:-/::\n" +
			".\n"},
		{"uid and gid verbatim, uid with trailing text", Pw2u{Home: HomeIgnore}, "a:x:0503x:078:g:/h:\nalias:x:1:1::/a:\n", "" +
			"=a:a:0503x:078:/h:::\n" +
			"+a-:a:0503x:078:/h:-::\n" +
			"+:alias:1:1:/a:-::\n" +
			"=alias:alias:1:1:/a:::\n" +
			"+alias-:alias:1:1:/a:-::\n" +
			".\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := convert(t, &tc.p, tc.pw)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			// What it writes, qmail-newu accepts.
			if err := Compile(t.TempDir()+"/cdb", strings.NewReader(got)); err != nil {
				t.Errorf("output does not compile: %v", err)
			}
		})
	}
}

func TestPw2uControlFiles(t *testing.T) {
	dir := fstest.MapFS{
		"include":   {Data: []byte("# who\nJOE  \n\nalias\t\nsue\nbob\n")},
		"exclude":   {Data: []byte("SUE\n")},
		"mailnames": {Data: []byte("joe:joe.shmoe::j\nnocolon\nalias:\n")},
		"subusers":  {Data: []byte("info:JOE:inf:\nbad line\nnopre:joe\nhelp:alias:h:\n")},
		"append":    {Data: []byte("=extra:e:9:9:/e:::\n+x")},
	}
	pw := pw2uPasswd + "\nbob:x:700:700::/home/bob:/bin/sh\n"
	got, err := convert(t, &Pw2u{Dir: dir}, pw)
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		"=joe.shmoe:joe:503:78:/home/joe:::\n" +
		"+joe.shmoe-:joe:503:78:/home/joe:-::\n" +
		"=j:joe:503:78:/home/joe:::\n" +
		"+j-:joe:503:78:/home/joe:-::\n" +
		"+:alias:7790:2108:/var/qmail/alias:-::\n" +
		// alias has an empty mailnames entry: no '=' lines at all.
		// sue is excluded; bob's home does not exist.
		"=info:joe:503:78:/home/joe:-:inf:\n" +
		"+info-:joe:503:78:/home/joe:-:inf-:\n" +
		"=help:alias:7790:2108:/var/qmail/alias:-:h:\n" +
		"+help-:alias:7790:2108:/var/qmail/alias:-:h-:\n" +
		"=extra:e:9:9:/e:::\n+x" +
		".\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	// An empty include file includes nobody, so there is no alias.
	_, err = convert(t, &Pw2u{Dir: fstest.MapFS{"include": {Data: nil}}}, pw2uPasswd)
	var pe *Pw2uError
	if !errors.As(err, &pe) || pe.Text != "unable to find alias user" {
		t.Errorf("empty include: %v", err)
	}
	// Duplicate mailnames: the last wins (constmap).
	got, _ = convert(t, &Pw2u{Dir: fstest.MapFS{"mailnames": {Data: []byte("joe:a\nJoe:b\n")}}, NoExt: true}, pw2uPasswd)
	if !strings.HasPrefix(got, "=b:joe:") {
		t.Errorf("duplicate mailnames: %q", got)
	}
}

func TestPw2uErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     Pw2u
		pw    string
		text  string
		owner map[string]any
	}{
		{"no alias", Pw2u{}, "joe:x:503:78:Joe:/home/joe:/bin/sh\n", "unable to find alias user", nil},
		{"other alias name", Pw2u{Alias: "catchall"}, pw2uPasswd, "unable to find catchall user", nil},
		{"-h missing home", Pw2u{Home: HomeRequire}, pw2uPasswd, "unable to stat /home/gone", nil},
		{"-o stat error", Pw2u{}, "joe:x:503:78:Joe:/home/joe:/bin/sh\n", "unable to stat /home/joe", map[string]any{"/home/joe": syscall.EACCES}},
		{"unknown subuser user", Pw2u{Dir: fstest.MapFS{"subusers": {Data: []byte("info:nobody:x:\n")}}}, pw2uPasswd, "unable to find nobody user for subuser", nil},
		{"subuser of a skipped account", Pw2u{Dir: fstest.MapFS{"subusers": {Data: []byte("info:www:x:\n")}}}, pw2uPasswd, "unable to find www user for subuser", nil},
		{"unreadable control", Pw2u{Dir: fstest.MapFS{"exclude/x": {Data: nil}}}, pw2uPasswd, "unable to read controls", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			if tc.owner != nil {
				p.HomeOwner = owners(tc.owner)
			}
			_, err := convert(t, &p, tc.pw)
			var pe *Pw2uError
			if !errors.As(err, &pe) || pe.Text != tc.text {
				t.Errorf("err %v, want %q", err, tc.text)
			}
		})
	}
	// Input and output errors.
	var out bytes.Buffer
	err := (&Pw2u{Home: HomeIgnore}).Convert(&out, iotest.ErrReader(syscall.EIO))
	var pe *Pw2uError
	if !errors.As(err, &pe) || pe.Text != "unable to read input" || !errors.Is(err, syscall.EIO) {
		t.Errorf("read: %v", err)
	}
	err = (&Pw2u{Home: HomeIgnore}).Convert(failWriter{}, strings.NewReader("alias:x:1:1::/a:\n"))
	if !errors.As(err, &pe) || pe.Text != "unable to write output" {
		t.Errorf("write: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

var _ fs.FS = fstest.MapFS{}
