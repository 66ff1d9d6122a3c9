package inject

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fixture is a fixed setting: defaulthost, defaultdomain and
// plusdomain ex.com, idhost mail.ex.com, time 1700000000, pid 4321,
// USER=joe and nothing else.
func fixture(t *testing.T, env map[string]string) *Injector {
	t.Helper()
	home := t.TempDir()
	os.Mkdir(filepath.Join(home, "control"), 0o755)
	for name, v := range map[string]string{"defaulthost": "ex.com\n", "defaultdomain": "ex.com\n", "plusdomain": "ex.com\n", "idhost": "mail.ex.com\n"} {
		if err := os.WriteFile(filepath.Join(home, "control", name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e := map[string]string{"USER": "joe"}
	for k, v := range env {
		e[k] = v
	}
	in, err := Load(home, func(k string) (string, bool) { v, ok := e[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	in.Now = func() time.Time { return time.Unix(1700000000, 0) }
	in.PID = 4321
	return in
}

// inject runs qmail-inject's logic on args and input and returns the -n
// output (Return-Path line and message) and the envelope.
func inject(t *testing.T, in *Injector, args []string, input string) (string, string, []string, error) {
	t.Helper()
	o, err := in.ParseArgs("qmail-inject", args)
	if err != nil {
		return "", "", nil, err
	}
	m, err := in.Prepare(strings.NewReader(input), o)
	if err != nil {
		return "", "", nil, err
	}
	var out bytes.Buffer
	if err := m.Print(&out); err != nil {
		return "", "", nil, err
	}
	return out.String(), m.Sender, m.Recipients, nil
}

const stdHead = "Date: 14 Nov 2023 22:13:20 -0000\nMessage-ID: <20231114221320.4321.qmail@mail.ex.com>\n"

func TestVectors(t *testing.T) {
	long36 := strings.Repeat("a", 29) + "@ex.com"  // 36 bytes
	long37 := strings.Repeat("b", 30) + "@ex.com"  // 37 bytes
	long36b := strings.Repeat("c", 29) + "@ex.com" // 36 bytes
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		input  string
		out    string   // whole -n output, if set
		has    []string // substrings of the output
		hasNot []string
		sender string
		rcpts  []string
	}{
		{name: "1 print", args: []string{"-n"}, input: "To: bob\n\nhi\n",
			out:    "Return-Path: <joe@ex.com>\n" + stdHead + "From: joe@ex.com\nTo: bob@ex.com\n\nhi\n",
			sender: "joe@ex.com", rcpts: []string{"bob@ex.com"}},
		{name: "3 name", env: map[string]string{"NAME": "Joe Q"}, input: "To: bob\n\n",
			has: []string{"\nFrom: \"Joe Q\" <joe@ex.com>\n"}},
		{name: "3 name comment", env: map[string]string{"NAME": "Joe Q", "QMAILINJECT": "c"}, input: "To: bob\n\n",
			has: []string{"\nFrom: joe@ex.com (Joe Q)\n"}},
		{name: "4 order", input: "To: a, b\nCc: c\nBcc: d\n\n",
			hasNot: []string{"Bcc", "recipient list not shown"},
			rcpts:  []string{"b@ex.com", "a@ex.com", "c@ex.com", "d@ex.com"}},
		{name: "5 no to", args: []string{"bob"}, input: "Subject: x\n\n",
			has: []string{"\nCc: recipient list not shown: ;\n"}, rcpts: []string{"bob@ex.com"}},
		{name: "6 -h", args: []string{"-h", "zed"}, input: "To: bob\n\n", rcpts: []string{"bob@ex.com"}},
		{name: "6 -a", args: []string{"-a", "zed"}, input: "To: bob\n\n", rcpts: []string{"zed@ex.com"}},
		{name: "6 -H", args: []string{"-H", "zed"}, input: "To: bob\n\n", rcpts: []string{"zed@ex.com", "bob@ex.com"}},
		{name: "6 -A", args: []string{"-A", "zed"}, input: "To: bob\n\n", rcpts: []string{"zed@ex.com"}},
		{name: "6 default no args", input: "To: bob\n\n", rcpts: []string{"bob@ex.com"}},
		{name: "7 resent", input: "Resent-To: carol\nTo: bob\n\n",
			out: "Return-Path: <joe@ex.com>\nResent-Date: 14 Nov 2023 22:13:20 -0000\n" +
				"Resent-Message-ID: <20231114221320.4321.qmail@mail.ex.com>\nResent-From: joe@ex.com\n" +
				"Resent-To: carol@ex.com\nTo: bob@ex.com\n\n",
			rcpts: []string{"carol@ex.com"}},
		{name: "7 resent no to", input: "Resent-From: x\nTo: bob\n\n",
			has: []string{"Resent-Cc: recipient list not shown: ;\n"}, hasNot: []string{"\nFrom:", "Resent-From: joe"}},
		{name: "8 return-path", input: "Return-Path: <rp@x.org>\nTo: bob\n\n",
			out: "Return-Path: <rp@x.org>\n" + stdHead + "From: joe@ex.com\nTo: bob@ex.com\n\n", sender: "rp@x.org"},
		{name: "8 return-path list", input: "Return-Path: <a@x.org>, <b@x.org>\nReturn-Path: <c@x.org>\n\n", sender: "b@x.org"}, // right to left
		{name: "8 return-path empty", input: "Return-Path: <>\n\n", sender: "", has: []string{"Return-Path: <>\n"}},
		{name: "8 return-path empty r", env: map[string]string{"QMAILINJECT": "r"}, input: "Return-Path: <>\n\n", sender: "-@[]"},
		{name: "8 s", env: map[string]string{"QMAILINJECT": "s"}, input: "Return-Path: <rp@x.org>\nTo: bob\n\n",
			hasNot: []string{"rp@x.org"}, sender: "joe@ex.com"},
		{name: "8 -f", args: []string{"-f", "f@y.org"}, input: "Return-Path: <rp@x.org>\nTo: bob\n\n", sender: "f@y.org"},
		{name: "9 r", env: map[string]string{"QMAILINJECT": "r"}, input: "To: bob\n\n", sender: "joe-@ex.com-@[]",
			has: []string{"Return-Path: <\"joe-@ex.com-\"@[]>\n"}}, // quote2 of the sender
		{name: "9 m", env: map[string]string{"QMAILINJECT": "m"}, input: "To: bob\n\n", sender: "joe-1700000000.4321@ex.com"},
		{name: "9 r and -f", env: map[string]string{"QMAILINJECT": "rm"}, args: []string{"-fx@y.org"}, input: "To: bob\n\n", sender: "x@y.org"},
		{name: "10 plus", input: "To: joe@mac+\n\n", has: []string{"\nTo: joe@mac.ex.com\n"}},
		{name: "10 trailing dot", input: "To: x@host.\n\n", has: []string{"\nTo: x@host.ex.com\n"}},
		{name: "10 route", input: "To: <@r1,@r2:u@v.org>\n\n", has: []string{"\nTo: <u@v.org>\n"}, rcpts: []string{"u@v.org"}},
		{name: "10 literal", input: "To: u@[10.0.0.1]\n\n", has: []string{"\nTo: u@[10.0.0.1]\n"}},
		{name: "10 two words", input: "To: djb fred\n\n", has: []string{"\nTo: djb@ex.com, fred@ex.com\n"}},
		{name: "10 case", input: "TO:bob\n\n", has: []string{"\nTO: bob@ex.com\n"}, hasNot: []string{"recipient list"}},
		{name: "11 broken group", args: []string{"-h"}, input: "To: foo: bar, baz\n",
			has: []string{"\nTo: foo: bar, baz\n"}, rcpts: []string{"baz@ex.com", "bar@ex.com"}},
		{name: "11 open quote", input: "To: \"open\n", has: []string{"\nTo: \"open\n"}, rcpts: []string{}},
		{name: "12 mbox", input: "From me Mon Jan  1 00:00:00 2024\nTo: bob\n\n",
			has: []string{"From: joe@ex.com\nMBOX-Line: From me Mon Jan  1 00:00:00 2024\nTo: bob@ex.com\n"}},
		{name: "13 not a header", input: "To: bob\nthis is not a header\n",
			has: []string{"To: bob@ex.com\n\nthis is not a header\n"}},
		{name: "14 content-length", input: "Content-Length: 5\nTo: bob\n\n", hasNot: []string{"Content-Length"}},
		{name: "18 fold", input: "To: " + long36 + ", " + long37 + "\n\n",
			has: []string{"\nTo: " + long36 + ",\n  " + long37 + "\n"}},
		{name: "18 no fold", input: "To: " + long36 + ", " + long36b + "\n\n",
			has: []string{"\nTo: " + long36 + ", " + long36b + "\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := fixture(t, tt.env)
			out, sender, rcpts, err := inject(t, in, tt.args, tt.input)
			if err != nil {
				t.Fatal(err)
			}
			if tt.out != "" && out != tt.out {
				t.Errorf("output\n%q\nwant\n%q", out, tt.out)
			}
			for _, s := range tt.has {
				if !strings.Contains(out, s) {
					t.Errorf("output %q lacks %q", out, s)
				}
			}
			for _, s := range tt.hasNot {
				if strings.Contains(out, s) {
					t.Errorf("output %q has %q", out, s)
				}
			}
			if tt.sender != "" && sender != tt.sender {
				t.Errorf("sender %q, want %q", sender, tt.sender)
			}
			if tt.rcpts != nil && !(len(rcpts) == 0 && len(tt.rcpts) == 0) && !reflect.DeepEqual(rcpts, tt.rcpts) {
				t.Errorf("recipients %q, want %q", rcpts, tt.rcpts)
			}
		})
	}
}

func TestFoldLength(t *testing.T) {
	in := fixture(t, nil)
	a := strings.Repeat("a", 29) + "@ex.com"
	c := strings.Repeat("c", 29) + "@ex.com"
	out, _, _, err := inject(t, in, nil, "To: "+a+", "+c+"\n\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "To: ") && len(l) != 78 {
			t.Errorf("line %q is %d bytes, want 78", l, len(l))
		}
	}
}

func TestFatal(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		input string
		text  string
		code  int
	}{
		{"11 stray paren", nil, "From: joe )\n\n", "qmail-inject: fatal: unable to parse this line:\nFrom: joe )\n", 100},
		{"11 group in From", nil, "From: a: b\n\n", "qmail-inject: fatal: unable to parse this line:\nFrom: a: b\n", 100},
		{"return-path", nil, "Return-Path: a: b\n\n", "qmail-inject: fatal: unable to parse this line:\nReturn-Path: a: b\n", 100},
		{"return-path lexical", []string{"-f", "x"}, "Return-Path: \"a\n\n", "qmail-inject: fatal: unable to parse this line:\nReturn-Path: \"a\n", 100},
		{"reply-to", nil, "Reply-To: [x\n\n", "qmail-inject: fatal: unable to parse this line:\nReply-To: [x\n", 100},
		{"17 bad option", []string{"-x"}, "", "qmail-inject: illegal option -- x\n", 100},
		{"missing -f", []string{"-f"}, "", "qmail-inject: option requires an argument -- f\n", 100},
		{"bad -f", []string{"-f", "a@b(c"}, "", "qmail-inject: fatal: unable to parse this line:\na@b(c", 100},
		{"bad recipient", []string{"a@(b"}, "", "qmail-inject: fatal: unable to parse address: a@(b\n", 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := inject(t, fixture(t, nil), tt.args, tt.input)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v", err)
			}
			if e.Text != tt.text || ExitCode(err) != tt.code {
				t.Errorf("got %q %d, want %q %d", e.Text, ExitCode(err), tt.text, tt.code)
			}
		})
	}
}

// TestAtomWithParen: one would expect "From: joe)" to exit 100, unable
// to parse the line, but notqmail's token822.c lets ")" continue an
// atom, so the field
// parses and the atom is printed as a quoted string with ")" escaped. We
// follow the code.
func TestAtomWithParen(t *testing.T) {
	out, _, _, err := inject(t, fixture(t, nil), nil, "From: joe)\nTo: x\n\n")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "\nFrom: \"joe\\)\"@ex.com\n") {
		t.Errorf("output %q", out)
	}
}

func TestMailFollowupTo(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "mft")
	os.WriteFile(list, []byte("# lists\n\nLIST@ex.com  \n"), 0o644)
	in := fixture(t, map[string]string{"QMAILMFTFILE": list})
	out, _, _, err := inject(t, in, nil, "To: list@ex.com\nCc: me\n\n")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "\nMail-Followup-To: me@ex.com,\n  list@ex.com\nTo: list@ex.com\n") {
		t.Errorf("output %q", out)
	}
	// Present already, or no listed address, or resent: none added.
	for _, input := range []string{"To: list@ex.com\nMail-Followup-To: x\n\n", "To: other@ex.com\n\n", "Resent-To: a\nTo: list@ex.com\n\n"} {
		out, _, _, _ := inject(t, in, nil, input)
		if strings.Count(out, "Mail-Followup-To") > 1 || (!strings.Contains(input, "Mail-Followup") && strings.Contains(out, "Mail-Followup-To")) {
			t.Errorf("%q: output %q", input, out)
		}
	}
	// A missing file turns the feature off; an unreadable one is fatal.
	if in := fixture(t, map[string]string{"QMAILMFTFILE": filepath.Join(dir, "none")}); in.MFT != nil {
		t.Errorf("missing MFT file: %q", in.MFT)
	}
	home := t.TempDir()
	_, err = Load(home, func(k string) (string, bool) {
		if k == "QMAILMFTFILE" {
			return dir, true // a directory: read error
		}
		return "", false
	})
	if e := (*Error)(nil); !errors.As(err, &e) || e.Text != "qmail-inject: fatal: read error\n" || e.Perm {
		t.Errorf("unreadable MFT: %v", err)
	}
}

func TestHeaderEdges(t *testing.T) {
	tests := []struct {
		name, input, want string
	}{
		{"eof in header", "To: bob", stdHead + "From: joe@ex.com\nTo: bob@ex.com\n"},
		{"no header", "\nbody", stdHead + "From: joe@ex.com\nCc: recipient list not shown: ;\n\nbody\n"},
		{"nul last", "\nx\x00", stdHead + "From: joe@ex.com\nCc: recipient list not shown: ;\n\nx\x00\n"},
		{"empty input", "", stdHead + "From: joe@ex.com\nCc: recipient list not shown: ;\n"},
		{"continuation", "Subject: a\n b\nTo: bob,\n\tcarol\n\nx", stdHead + "From: joe@ex.com\nSubject: a\n b\nTo: bob@ex.com, carol@ex.com\n\nx\n"},
		{"space before colon", "To : bob\n\n", stdHead + "From: joe@ex.com\nTo: bob@ex.com\n\n"},
		// qmail-inject does not know CRLF: "\r\n" is not a blank line.
		{"crlf", "To: bob\r\nX-A: b\r\n\r\nbody\r\n", stdHead + "From: joe@ex.com\nTo: bob@ex.com\nX-A: b\r\n\n\r\nbody\r\n"},
		{"date kept", "Date: whenever\nMessage-Id: <x@y>\nFrom: a\nCc: c\n\n", "Date: whenever\nMessage-Id: <x@y>\nFrom: a@ex.com\nCc: c@ex.com\n\n"},
		{"invalid name", "Bad Name: x\n", stdHead + "From: joe@ex.com\nCc: recipient list not shown: ;\n\nBad Name: x\n"},
		{"comment and phrase", "To: \"Bob B\" <bob> (friend), (c) carol\n\n", stdHead + "From: joe@ex.com\nTo: \"Bob B\" <bob@ex.com>(friend), carol@ex.com (c)\n\n"},
		{"group", "Cc: team: a, b;, c\n\n", stdHead + "From: joe@ex.com\nCc: team: a@ex.com, b@ex.com;, c@ex.com\n\n"},
		{"empty addr", "Reply-To: <>\n\n", stdHead + "From: joe@ex.com\nCc: recipient list not shown: ;\nReply-To: <>\n\n"},
		{"empty literal", "Reply-To: foo@[]\nTo: x\n\n", stdHead + "From: joe@ex.com\nReply-To: foo@[]\nTo: x@ex.com\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, _, err := inject(t, fixture(t, nil), nil, tt.input)
			if err != nil {
				t.Fatal(err)
			}
			out = strings.TrimPrefix(out, "Return-Path: <joe@ex.com>\n")
			if out != tt.want {
				t.Errorf("output\n%q\nwant\n%q", out, tt.want)
			}
		})
	}
}

func TestDeleteFlags(t *testing.T) {
	in := fixture(t, map[string]string{"QMAILINJECT": "fi"})
	out, _, _, err := inject(t, in, nil, "From: x@y.org\nMessage-ID: <a@b>\nTo: bob\n\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "Return-Path: <joe@ex.com>\n" + stdHead + "From: joe@ex.com\nTo: bob@ex.com\n\n"
	if out != want {
		t.Errorf("output %q, want %q", out, want)
	}
}

func TestEnvironment(t *testing.T) {
	tests := []struct {
		env          map[string]string
		from, sender string
	}{
		{map[string]string{"QMAILUSER": "q", "MAILUSER": "m", "USER": "u"}, "From: q@ex.com\n", "q@ex.com"},
		{map[string]string{"MAILUSER": "m", "LOGNAME": "l"}, "From: m@ex.com\n", "m@ex.com"},
		{map[string]string{"USER": "", "LOGNAME": "l"}, "From: \"\"@ex.com\n", "@ex.com"},
		{map[string]string{"QMAILHOST": "h.org", "MAILHOST": "m.org"}, "From: joe@h.org\n", "joe@h.org"},
		{map[string]string{"MAILHOST": "mac"}, "From: joe@mac.ex.com\n", "joe@mac.ex.com"},
		{map[string]string{"QMAILSUSER": "s", "QMAILSHOST": "s.org"}, "From: joe@ex.com\n", "s@s.org"},
		{map[string]string{"QMAILNAME": "Q \"N\"", "NAME": "n"}, "From: \"Q \\\"N\\\"\" <joe@ex.com>\n", "joe@ex.com"},
		{map[string]string{"USER": "j d"}, "From: \"j d\"@ex.com\n", "j d@ex.com"},
		{map[string]string{"QMAILDEFAULTHOST": "dh", "QMAILDEFAULTDOMAIN": "dd.org"}, "From: joe@dh.dd.org\n", "joe@dh.dd.org"},
		{map[string]string{"QMAILDEFAULTHOST": "dh+", "QMAILPLUSDOMAIN": "pd.org"}, "From: joe@dh.pd.org\n", "joe@dh.pd.org"},
	}
	for _, tt := range tests {
		in := fixture(t, tt.env)
		out, sender, _, err := inject(t, in, nil, "To: x\n\n")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "\n"+tt.from) || sender != tt.sender {
			t.Errorf("%v: output %q sender %q, want %q %q", tt.env, out, sender, tt.from, tt.sender)
		}
	}
	in := fixture(t, map[string]string{"QMAILIDHOST": "id.org"})
	if out, _, _, _ := inject(t, in, nil, "To: x\n\n"); !strings.Contains(out, ".qmail@id.org>\n") {
		t.Errorf("idhost: %q", out)
	}
}

func TestRewriteArgs(t *testing.T) {
	in := fixture(t, map[string]string{"QMAILDEFAULTHOST": "mailhost", "QMAILDEFAULTDOMAIN": "ee.movie.edu", "QMAILPLUSDOMAIN": "movie.edu"})
	in.DefaultHost = "ee.movie.edu"
	for arg, want := range map[string]string{
		"joe":                "joe@ee.movie.edu",
		"joe@mac":            "joe@mac.ee.movie.edu",
		"joe@mac+":           "joe@mac.movie.edu",
		"joe@mac.movie.edu.": "joe@mac.movie.edu",
		"joe@[1.2.3.4]":      "joe@[1.2.3.4]",
		"@relay:joe@x.org":   "@relay:joe@x.org", // quote2 makes "@relay:joe" a local part
		"":                   "",
		"joe@":               "joe@ee.movie.edu",
		"Joe.Q@X.ORG":        "Joe.Q@X.ORG",
		"j d":                "j d@ee.movie.edu",
	} {
		got, err := in.Recipient(arg)
		if err != nil || got != want {
			t.Errorf("Recipient(%q) = %q, %v; want %q", arg, got, err, want)
		}
	}
}

func TestDefaults(t *testing.T) {
	home := t.TempDir()
	in, err := Load(home, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if in.DefaultHost != "defaulthost" || in.DefaultDomain != "defaultdomain" || in.PlusDomain != "plusdomain" || in.IDHost != "idhost" || in.User != "anonymous" {
		t.Errorf("defaults %+v", in)
	}
	os.Mkdir(filepath.Join(home, "control"), 0o755)
	os.WriteFile(filepath.Join(home, "control", "me"), []byte("me.org\n"), 0o644)
	if in, err = Load(home, func(string) (string, bool) { return "", false }); err != nil || in.DefaultHost != "me.org" || in.IDHost != "me.org" {
		t.Errorf("me: %+v %v", in, err)
	}
	if got, _ := in.Recipient("x"); got != "x@me.org" {
		t.Errorf("x -> %q", got)
	}
	// Unreachable home, unreadable control file, unparsable value.
	for _, tc := range []struct {
		home string
		mk   func()
		text string
		perm bool
	}{
		{filepath.Join(home, "none"), nil, "qmail-inject: fatal: internal bug\n", false},
		{home, func() { os.Mkdir(filepath.Join(home, "control", "idhost"), 0o755) }, "qmail-inject: fatal: read error\n", false},
	} {
		if tc.mk != nil {
			tc.mk()
		}
		_, err := Load(tc.home, func(string) (string, bool) { return "", false })
		if e := (*Error)(nil); !errors.As(err, &e) || e.Text != tc.text || e.Perm != tc.perm {
			t.Errorf("%s: %v", tc.text, err)
		}
	}
	_, err = Load(t.TempDir(), func(k string) (string, bool) { return "a(b", k == "QMAILDEFAULTHOST" })
	if e := (*Error)(nil); !errors.As(err, &e) || e.Text != "qmail-inject: fatal: unable to parse this line:\n@a(b" || !e.Perm {
		t.Errorf("bad defaulthost: %v", err)
	}
}

func TestMaxHeader(t *testing.T) {
	in := fixture(t, nil)
	in.MaxHeaderBytes = 100
	_, err := in.Prepare(strings.NewReader("Subject: "+strings.Repeat("x", 200)+"\n\n"), Options{})
	if e := (*Error)(nil); !errors.As(err, &e) || e.Text != "qmail-inject: fatal: out of memory\n" || ExitCode(err) != 111 {
		t.Errorf("err = %v", err)
	}
	// The body is not bounded.
	m, err := in.Prepare(strings.NewReader("To: x\n\n"+strings.Repeat("y", 1000)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(m)
	if !bytes.HasSuffix(b, []byte(strings.Repeat("y", 1000)+"\n")) {
		t.Errorf("body %q", b)
	}
}

type failReader struct{ r io.Reader }

func (f *failReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("disk on fire")
	}
	return n, err
}

type fakeForwarder struct {
	sender string
	rcpts  []string
	msg    []byte
	err    error
}

func (f *fakeForwarder) Forward(ctx context.Context, sender string, rcpts []string, r io.Reader) (string, error) {
	f.sender, f.rcpts = sender, rcpts
	f.msg, _ = io.ReadAll(r)
	return "1", f.err
}

type permErr struct{ perm bool }

func (p permErr) Error() string   { return "qq says no (#5.3.0)" }
func (p permErr) Permanent() bool { return p.perm }

func TestQueue(t *testing.T) {
	in := fixture(t, nil)
	// 2: envelope and message.
	m, err := in.Prepare(strings.NewReader("To: bob\n\nhi\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeForwarder{}
	if err := m.Queue(t.Context(), f.Forward); err != nil {
		t.Fatal(err)
	}
	if f.sender != "joe@ex.com" || !reflect.DeepEqual(f.rcpts, []string{"bob@ex.com"}) || string(f.msg) != stdHead+"From: joe@ex.com\nTo: bob@ex.com\n\nhi\n" {
		t.Errorf("queued %q %q %q", f.sender, f.rcpts, f.msg)
	}
	// Injector errors keep their class.
	for _, perm := range []bool{true, false} {
		m, _ := in.Prepare(strings.NewReader("To: bob\n\nhi\n"), Options{})
		err := m.Queue(t.Context(), (&fakeForwarder{err: permErr{perm}}).Forward)
		if e := (*Error)(nil); !errors.As(err, &e) || e.Text != "qmail-inject: fatal: qq says no (#5.3.0)\n" || e.Perm != perm {
			t.Errorf("perm %v: %v", perm, err)
		}
	}
	// A read error in the body is "read error", whatever the injector says.
	m, _ = in.Prepare(&failReader{strings.NewReader("To: bob\n\nhi\n")}, Options{})
	if err := m.Queue(t.Context(), (&fakeForwarder{}).Forward); err == nil || err.(*Error).Text != "qmail-inject: fatal: read error\n" {
		t.Errorf("read error: %v", err)
	}
	// In the header, too.
	if _, err := in.Prepare(&failReader{strings.NewReader("To: bob\n")}, Options{}); ExitCode(err) != 111 {
		t.Errorf("header read error: %v", err)
	}
}

func TestGetopt(t *testing.T) {
	in := fixture(t, nil)
	tests := []struct {
		args []string
		want Options
	}{
		{[]string{"-an", "x"}, Options{Strategy: ArgsOnly, Print: true, Args: []string{"x"}}},
		{[]string{"-nN", "--", "-x"}, Options{Args: []string{"-x"}}},
		{[]string{"-h", "-", "y"}, Options{Strategy: HeaderOnly, Args: []string{"-", "y"}}},
		{[]string{"-fa@b.org", "-H"}, Options{Strategy: ArgsAndHeader, Sender: "a@b.org", HasSender: true, Args: []string{}}},
		{[]string{"-Hf", "a", "b"}, Options{Strategy: ArgsAndHeader, Sender: "a@ex.com", HasSender: true, Args: []string{"b"}}},
		{[]string{"-f", ""}, Options{HasSender: true, Args: []string{}}},
		{[]string{"--x", "-a"}, Options{Args: []string{"-a"}}},
		{[]string{"x", "-a"}, Options{Args: []string{"x", "-a"}}},
	}
	for _, tt := range tests {
		got, err := in.ParseArgs("/usr/sbin/qmail-inject", tt.args)
		if len(got.Args) == 0 && len(tt.want.Args) == 0 {
			got.Args, tt.want.Args = nil, nil
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: %+v %v, want %+v", tt.args, got, err, tt.want)
		}
	}
	for argv0, want := range map[string]string{"/x/qi": "qi: illegal option -- x\n", "": ": illegal option -- x\n", "/x/": ": illegal option -- x\n"} {
		_, err := in.ParseArgs(argv0, []string{"-n", "-ax"})
		if e := (*Error)(nil); !errors.As(err, &e) || e.Text != want {
			t.Errorf("%q: err %v, want %q", argv0, err, want)
		}
	}
}
