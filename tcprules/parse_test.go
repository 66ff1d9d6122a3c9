package tcprules

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/internal/cdb"
)

// Rules lines as tcprules(1) reads them: the keys each address form
// stores (IPv4 ranges expanded, =host, user@, prefixes ending in '.', the
// empty key) and the allow or deny instruction with its assignments.
func TestParseLine(t *testing.T) {
	tests := []struct {
		line  string
		keys  []string // nil with ok=false: no rule
		deny  bool
		env   []Var
		bad   bool
		ok    bool
		value string
	}{
		{line: "1.2.3.4:allow", keys: []string{"1.2.3.4"}, ok: true},
		{line: "1.2.3.:allow", keys: []string{"1.2.3."}, ok: true},
		{line: "1.2.3.4-7:allow", keys: []string{"1.2.3.4", "1.2.3.5", "1.2.3.6", "1.2.3.7"}, ok: true},
		{line: "10.2-3.:allow", keys: []string{"10.2.", "10.3."}, ok: true},
		{line: "5-6.1.1.1:allow", keys: []string{"5.1.1.1", "6.1.1.1"}, ok: true},
		{line: "1.2.3.250-300:deny", keys: []string{"1.2.3.250", "1.2.3.251", "1.2.3.252", "1.2.3.253", "1.2.3.254", "1.2.3.255"}, deny: true, ok: true, value: "D\x00"},
		{line: "1.2.3.9-5:allow", keys: []string{}, ok: true},
		{line: "1.2.3.-:allow", keys: []string{"1.2.3.0"}, ok: true},
		{line: "1.2.3.18446744073709551617-2:allow", keys: []string{"1.2.3.1", "1.2.3.2"}, ok: true}, // C's unsigned long wraps
		{line: "1.2.3.4\x00-5:allow", keys: []string{"1.2.3.4", "1.2.3.5"}, ok: true},                // getnum reads a C string
		{line: "=host.example.com:allow", keys: []string{"=host.example.com"}, ok: true},
		{line: "=.example.com:allow", keys: []string{"=.example.com"}, ok: true},
		{line: "=:allow", keys: []string{"="}, ok: true},
		{line: "joe@1.2.3.4:allow", keys: []string{"joe@1.2.3.4"}, ok: true},
		{line: "joe@1.2.3.4-5:allow", keys: []string{"joe@1.2.3.4-5"}, ok: true},
		{line: "=mail-1.example.com:allow", keys: []string{"=mail-1.example.com"}, ok: true},
		{line: ":allow", keys: []string{""}, ok: true},
		{line: "1:allow", keys: []string{"1"}, ok: true},
		{line: " 1.2.3.4:allow", keys: []string{" 1.2.3.4"}, ok: true},
		{line: "1.2.3.4:allow \t \n", keys: []string{"1.2.3.4"}, ok: true},
		{line: "host-name:allow", bad: true},
		{line: "1.2.3.4-5-6:allow", bad: true},
		{line: "1.2.x-3:allow", bad: true},

		// Values: "D\x00" for deny, then "+NAME=VALUE\x00" per assignment in
		// the order written, duplicates kept; any byte may be the quote.
		{line: `1.2.3.4:allow,RELAYCLIENT=""`, keys: []string{"1.2.3.4"}, env: []Var{{"RELAYCLIENT", ""}}, ok: true, value: "+RELAYCLIENT=\x00"},
		{line: `x:deny,WHY="no"`, keys: []string{"x"}, deny: true, env: []Var{{"WHY", "no"}}, ok: true, value: "D\x00+WHY=no\x00"},
		{line: `192.0.2.3:allow,A="double",B='single',C=/slash/,D=xx,E=""`, keys: []string{"192.0.2.3"},
			env: []Var{{"A", "double"}, {"B", "single"}, {"C", "slash"}, {"D", ""}, {"E", ""}}, ok: true,
			value: "+A=double\x00+B=single\x00+C=slash\x00+D=\x00+E=\x00"},
		{line: `1:allow,X="first",X="second"`, keys: []string{"1"}, env: []Var{{"X", "first"}, {"X", "second"}}, ok: true},
		{line: `1:allow,="v"`, keys: []string{"1"}, env: []Var{{"", "v"}}, ok: true},
		{line: `1:allow,A,B="v"`, keys: []string{"1"}, env: []Var{{"A,B", "v"}}, ok: true},
		{line: `1:allow,M="a, b: c=d"`, keys: []string{"1"}, env: []Var{{"M", "a, b: c=d"}}, ok: true},

		// Refused lines: tcprules exits 100, "unable to parse this line".
		{line: "1.2.3.4: allow", bad: true},
		{line: "1.2.3.4:allowed", bad: true},
		{line: "1.2.3.4:DENY", bad: true},
		{line: `1.2.3.4:allow ,X="1"`, bad: true},
		{line: "1.2.3.4:allow,X", bad: true},
		{line: "1.2.3.4:allow,X=", bad: true},
		{line: `1.2.3.4:allow,X="abc`, bad: true},
		{line: `1.2.3.4:allow,X="a"junk`, bad: true},
		{line: "1.2.3.4:allow:deny", bad: true},
		{line: "1.2.3.4:allow\r", bad: true},
		{line: "1.2.3.4:", bad: true},

		// No rule.
		{line: "# comment"},
		{line: ""},
		{line: "\n"},
		{line: "   \t"},
		{line: "no colon at all"},

		// IPv6 (the ucspi-tcp-ipv6 patch): the address ends at the first ':'
		// followed by allow or deny, and ranges are refused.
		{line: "2001:db8::1:allow", keys: []string{"2001:db8::1"}, ok: true},
		{line: "2001:db8::allow", keys: []string{"2001:db8:"}, ok: true},
		{line: "2001:db8:1:::allow", keys: []string{"2001:db8:1::"}, ok: true},
		{line: "fe80::deny", keys: []string{"fe80:"}, deny: true, ok: true},
		{line: "::1:allow", keys: []string{"::1"}, ok: true},
		{line: "2001:db8::2-5:deny", bad: true},
		{line: "::1: allow", bad: true},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.line, "/", "|"), func(t *testing.T) {
			r, ok, err := ParseLine(tt.line)
			if tt.bad {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("err = %v, want a *ParseError", err)
				}
				if want := strings.TrimRight(tt.line, " \t\n"); pe.Text != want {
					t.Errorf("Text = %q, want %q", pe.Text, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if !slices.Equal(r.Keys, tt.keys) && !(len(r.Keys) == 0 && len(tt.keys) == 0) {
				t.Errorf("Keys = %q, want %q", r.Keys, tt.keys)
			}
			if r.Deny != tt.deny {
				t.Errorf("Deny = %v", r.Deny)
			}
			if tt.env != nil && !slices.Equal(r.Env, tt.env) {
				t.Errorf("Env = %q, want %q", r.Env, tt.env)
			}
			if tt.value != "" && string(r.Value()) != tt.value {
				t.Errorf("Value = %q, want %q", r.Value(), tt.value)
			}
		})
	}
}

func TestParseErrorLine(t *testing.T) {
	_, err := Parse(strings.NewReader("# c\n\n1.2.3.4:allow\nx\n10.0.0.1: deny\n"))
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 5 || pe.Text != "10.0.0.1: deny" {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "line 5") {
		t.Errorf("Error() = %q does not name the line", err.Error())
	}
	var perm interface{ Permanent() bool }
	if !errors.As(err, &perm) || !perm.Permanent() {
		t.Error("a parse error is not permanent")
	}
	// A NUL cuts the printed line, as tcprules prints a C string.
	_, err = Parse(strings.NewReader("1.2\x00.3.4:allw\n"))
	if !errors.As(err, &pe) || pe.Text != "1.2" {
		t.Errorf("err = %v", err)
	}
}

func TestParseLongLineAndNoFinalNewline(t *testing.T) {
	long := "1.2.3.4:allow,X=\"" + strings.Repeat("v", 200000) + "\""
	rules, err := Parse(strings.NewReader("# c\n" + long + "\n:deny"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 || len(rules[0].Env[0].Value) != 200000 || rules[1].Line != 3 || !rules[1].Deny {
		t.Errorf("rules = %d, %+v", len(rules), rules[len(rules)-1])
	}
}

func TestCompileEmpty(t *testing.T) {
	b, err := Compile(strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 2048 {
		t.Fatalf("len = %d", len(b))
	}
	for i := 0; i < 2048; i += 8 {
		if !bytes.Equal(b[i:i+8], []byte{0, 8, 0, 0, 0, 0, 0, 0}) {
			t.Fatalf("header pair %d = % x", i/8, b[i:i+8])
		}
	}
	db, err := OpenBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	d, err := db.Lookup("1.2.3.4", nil, nil)
	if err != nil || d.Found || d.Deny || d.Report() != "default:\nallow connection\n" {
		t.Errorf("Lookup = %+v, %v", d, err)
	}
}

// Lookups as tcpserver -x does them: the first record of a key wins, the
// whole IP before its prefixes, the empty key as the last resort, and
// =.suffix matches only names that end with it.
func TestLookupVectors(t *testing.T) {
	s := func(v string) *string { return &v }
	tests := []struct {
		rules      string
		ip         string
		host, info *string
		key        string // "-" for default
		deny       bool
		env        []Var
	}{
		{"127.0.0.1:allow,RELAYCLIENT=\"\"\n10.1.2.3:deny\n192.168.1.:allow,RELAYCLIENT=\"\"\n:deny\n", "127.0.0.1", nil, nil, "127.0.0.1", false, []Var{{"RELAYCLIENT", ""}}},
		{"127.0.0.1:allow,RELAYCLIENT=\"\"\n10.1.2.3:deny\n192.168.1.:allow,RELAYCLIENT=\"\"\n:deny\n", "10.1.2.3", nil, nil, "10.1.2.3", true, nil},
		{"127.0.0.1:allow,RELAYCLIENT=\"\"\n10.1.2.3:deny\n192.168.1.:allow,RELAYCLIENT=\"\"\n:deny\n", "192.168.1.77", nil, nil, "192.168.1.", false, []Var{{"RELAYCLIENT", ""}}},
		{"127.0.0.1:allow,RELAYCLIENT=\"\"\n10.1.2.3:deny\n192.168.1.:allow,RELAYCLIENT=\"\"\n:deny\n", "192.168.10.1", nil, nil, "", true, nil},
		{"10.1.2.3:allow,NET=\"host\"\n10.1.2.3:deny\n", "10.1.2.3", nil, nil, "10.1.2.3", false, []Var{{"NET", "host"}}},
		{"192.0.2.4-7:allow,R=\"a\"\n", "192.0.2.8", nil, nil, "-", false, nil},
		{"=.example.com:allow\n", "1.1.1.1", s("example.com"), nil, "-", false, nil},
		{"=.com:allow\n", "1.1.1.1", s("example.com"), nil, "=.com", false, nil},
		{"=example.org:allow\n", "1.1.1.1", s("sub.example.org"), nil, "-", false, nil},
		{"=:allow\n", "1.1.1.1", s(""), nil, "=", false, nil},
		{"@1.1.1.1:allow\n", "1.1.1.1", nil, s(""), "@1.1.1.1", false, nil},
		{"joe@1.1.1.:allow\njoe@=.example.com:allow\n", "1.1.1.1", s("a.example.com"), s("joe"), "-", false, nil},
		{"2001:db8::allow\n", "2001:db8::26", nil, nil, "2001:db8:", false, nil},
		{"2001:db8::allow\n", "2001:db80::1", nil, nil, "-", false, nil},
		{"2001:db8:1:::allow\n", "2001:db8:1::5", nil, nil, "2001:db8:1::", false, nil},
		{"x:allow,A=\"1\",A=\"2\"\n", "x", nil, nil, "x", false, []Var{{"A", "1"}, {"A", "2"}}},
	}
	for _, tt := range tests {
		b, err := Compile(strings.NewReader(tt.rules))
		if err != nil {
			t.Fatal(err)
		}
		db, _ := OpenBytes(b)
		d, err := db.Lookup(tt.ip, tt.host, tt.info)
		if err != nil {
			t.Fatal(err)
		}
		key := d.Key
		if !d.Found {
			key = "-"
		}
		if key != tt.key || d.Deny != tt.deny || !slices.Equal(d.Env, tt.env) {
			t.Errorf("%q %s: key %q deny %v env %v; want %q %v %v", tt.rules, tt.ip, key, d.Deny, d.Env, tt.key, tt.deny, tt.env)
		}
		env := map[string]string{"A": "0"}
		d.Apply(env)
		if tt.key == "x" && env["A"] != "2" {
			t.Errorf("Apply: the last assignment must win: %v", env)
		}
	}
}

// Values not written by tcprules: what tcprulescheck prints and what
// tcpserver sets differ, as in ucspi-tcp.
func TestDecisionOddValues(t *testing.T) {
	tests := []struct {
		value  string
		report string
		deny   bool
		env    []Var
	}{
		{"+A=1\x00D\x00+B=2\x00", "rule k:\nset environment variable A=1\ndeny connection\n", true, []Var{{"A", "1"}, {"B", "2"}}},
		{"+NOEQ\x00+C=3\x00", "rule k:\nset environment variable NOEQ\nset environment variable C=3\nallow connection\n", false, []Var{{"C", "3"}}},
		{"\x00X\x00Deny\x00", "rule k:\ndeny connection\n", true, nil},
		{"+A=1", "rule k:\nallow connection\n", false, nil}, // no NUL: no item
		{"+A=b=c\x00", "rule k:\nset environment variable A=b=c\nallow connection\n", false, []Var{{"A", "b=c"}}},
	}
	for _, tt := range tests {
		d := decide("k", []byte(tt.value))
		if got := d.Report(); got != tt.report {
			t.Errorf("%q: Report %q, want %q", tt.value, got, tt.report)
		}
		if d.Deny != tt.deny || !slices.Equal(d.Env, tt.env) {
			t.Errorf("%q: deny %v env %v", tt.value, d.Deny, d.Env)
		}
	}
}

func TestFormatIP(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1", "127.0.0.1"},
		{"::ffff:192.0.2.4", "192.0.2.4"},
		{"::1", "::1"},
		{"::", "::"},
		{"2001:db8::", "2001:db8::"},
		{"2001:db8:0:1:1:1:1:1", "2001:db8::1:1:1:1:1"},
		{"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},
		{"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},
		{"2001:DB8:ABCD:0012:0000:0000:0000:0001", "2001:db8:abcd:12::1"},
		{"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"},
		{"1:0:3:4:5:6:7:0", "1::3:4:5:6:7:0"},
		{"fe80::1%eth0", "fe80::1"},
	}
	for _, tt := range tests {
		if got := FormatIP(netip.MustParseAddr(tt.in)); got != tt.want {
			t.Errorf("FormatIP(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if FormatIP(netip.Addr{}) != "" {
		t.Error("FormatIP of the zero Addr")
	}
}

func TestHostText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Mail.Example.COM.", "mail.example.com"},
		{"a_b-c.example.", "a_b-c.example"},
		{"a b.example.", `a\040b.example`},
		{"\xff.", `\377`},
	}
	for _, tt := range tests {
		if got := hostText(tt.in); got != tt.want {
			t.Errorf("hostText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCorruptCDB(t *testing.T) {
	b, err := Compile(strings.NewReader("1.2.3.4:allow,X=\"1\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	// Point the record's data length past the end of the file.
	b[2048+4] = 0xff
	db, err := OpenBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Lookup("1.2.3.4", nil, nil); !errors.Is(err, cdb.ErrCorrupt) {
		t.Errorf("Lookup on a corrupt cdb: %v", err)
	}
	if _, err := OpenBytes(b[:100]); err == nil {
		t.Error("OpenBytes of 100 bytes succeeded")
	}
}
