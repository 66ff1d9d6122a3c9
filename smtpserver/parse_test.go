package smtpserver

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

func testSession(t *testing.T, srv *Server) *session {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return newSession(t.Context(), srv, a, qmailEnv())
}

// Address parsing in MAIL and RCPT as qmail-smtpd's addrparse does it
// (compat).
func TestVector4AddressParsing(t *testing.T) {
	s := testSession(t, compatServer(&sink{}))
	long := strings.Repeat("a", 895) + "@b.c"
	tests := []struct {
		arg, want string
		bad       bool
	}{
		{"FROM:<a@b>", "a@b", false},
		{"FROM: a@example.net", "a@example.net", false},
		{"TO: bob@example.com extra", "bob@example.com", false},
		{"FROM a@example.net", "", false},
		{"", "", false},
		{"FROM:<@hop1,@hop2:a@example.net>", "a@example.net", false},
		{`FROM:<"a b"@c>`, "a b@c", false},
		{`TO:<x\"y@[127.0.0.1]>`, `x"y@mx.example.org`, false},
		{"TO:<z@[127.0.0.2]>", "z@[127.0.0.2]", false},
		{"FROM:<a@b> SIZE=100 BODY=8BITMIME", "a@b", false},
		{"FROM:<" + long + ">", long, false},
		{"FROM:<a" + long + ">", "", true},
		// ip_scanbracket keeps each number modulo 256, as qmail does.
		{"TO:<q@[127.0.0.257]>", "q@mx.example.org", false},
		{"TO:<q@[127.0.0.1].>", "q@[127.0.0.1].", false},
		{"TO:<q@[127.0.0.1]x>", "q@[127.0.0.1]x", false},
		{"TO:<q@[0.0.0.0]>", "q@mx.example.org", false},
		{"TO:<a@b", "a@b", false},
		{"TO:<a\\>b@c>", "a>b@c", false},
		{"TO:<\"a>b\"@c>", "a>b@c", false},
		{"TO:<@route-without-colon>", "", false},
	}
	for _, tt := range tests {
		got, _, bad := s.address(tt.arg, "", false)
		if (bad != nil) != tt.bad || got != tt.want {
			t.Errorf("address(%q) = %q, %v; want %q, bad=%v", tt.arg, got, bad, tt.want, tt.bad)
		}
		if bad != nil && bad.format(false) != nil && string(bad.format(false)) != "555 syntax error (#5.5.4)\r\n" {
			t.Errorf("address(%q) reply %q", tt.arg, bad.format(false))
		}
	}
}

func TestModernAddress(t *testing.T) {
	srv := compatServer(&sink{})
	srv.Compat = false
	s := testSession(t, srv)
	tests := []struct {
		arg, kw, want, rest string
		utf8                bool
		code                int
	}{
		{"FROM:<a@b> SIZE=10", "FROM:", "a@b", " SIZE=10", false, 0},
		{"from:<a@b>", "FROM:", "a@b", "", false, 0},
		{"FROM: <a@b>", "FROM:", "a@b", "", false, 0},
		{"FROM a@b", "FROM:", "", "", false, 501},
		{"TO:<jöe@example.com>", "TO:", "", "", false, 553},
		{"TO:<jöe@example.com>", "TO:", "jöe@example.com", "", true, 0},
		{"TO:<j\xffe@example.com>", "TO:", "", "", true, 553},
		{"TO:<" + strings.Repeat("x", 65) + "@example.com>", "TO:", "", "", false, 501},
		{"TO:<" + strings.Repeat("x", 64) + "@example.com>", "TO:", strings.Repeat("x", 64) + "@example.com", "", false, 0},
		{"TO:<x@" + strings.Repeat("d", 260) + ">", "TO:", "", "", false, 501},
		{"TO:<@a,@b:x@y>", "TO:", "x@y", "", false, 0},
	}
	for _, tt := range tests {
		got, rest, bad := s.address(tt.arg, tt.kw, tt.utf8)
		code := 0
		if bad != nil {
			code = bad.Code
		}
		if got != tt.want || code != tt.code || (code == 0 && rest != tt.rest) {
			t.Errorf("address(%q) = %q, %q, %d; want %q, %q, %d", tt.arg, got, rest, code, tt.want, tt.rest, tt.code)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	tests := []struct{ line, verb, arg string }{
		{"MAIL FROM:<a@b>", "MAIL", "FROM:<a@b>"},
		{"mail   FROM:<a@b>", "MAIL", "FROM:<a@b>"},
		{"NOOP\tx", "NOOP\tX", ""},
		{"", "", ""},
		{"QUIT", "QUIT", ""},
	}
	for _, tt := range tests {
		v, a := splitCommand(tt.line)
		if v != tt.verb || a != tt.arg {
			t.Errorf("splitCommand(%q) = %q, %q", tt.line, v, a)
		}
	}
}

func TestScanBracketIP(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"[1.2.3.4]", "1.2.3.4", true},
		{"[1.2.3]", "", false},
		{"[1.2.3.4.5]", "", false},
		{"[1.2.3.256]", "1.2.3.0", true},
		{"[01.2.3.4]", "1.2.3.4", true},
		{"[a.2.3.4]", "", false},
		{"1.2.3.4", "", false},
		{"[1.2.3.4", "", false},
	}
	for _, tt := range tests {
		ip, ok := scanBracketIP(tt.in)
		if ok != tt.ok || (ok && ip != netip.MustParseAddr(tt.want)) {
			t.Errorf("scanBracketIP(%q) = %v, %v", tt.in, ip, ok)
		}
	}
}

func TestMailParams(t *testing.T) {
	tests := []struct {
		rest string
		code int
	}{
		{"", 0},
		{" SIZE=100 BODY=8BITMIME", 0},
		{" BODY=7bit", 0},
		{" BODY=BINARYMIME", 555},
		{" SIZE=x", 501},
		{" SIZE", 501},
		{" SMTPUTF8", 0},
		{" SMTPUTF8=1", 555},
		{" AUTH=<>", 0},
		{" FOO=1", 555},
		{" RET=FULL", 555},
	}
	for _, tt := range tests {
		_, r := parseMailParams(tt.rest, true, true, false)
		code := 0
		if r != nil {
			code = r.Code
		}
		if code != tt.code {
			t.Errorf("parseMailParams(%q) = %d, want %d", tt.rest, code, tt.code)
		}
	}
}

func TestHostList(t *testing.T) {
	more := map[string]bool{"more.example": true, ".deep.example": true}
	f := HostList([]string{"example.com", ".example.com", "Example.ORG"}, func(k string) (bool, error) { return more[k], nil })
	tests := []struct {
		d  string
		ok bool
	}{
		{"example.com", true}, {"sub.example.com", true}, {"a.b.example.com", true},
		{"example.org", true}, {"sub.example.org", false}, {"xexample.com", false},
		{"example.com.", false}, {"com", false}, {"more.example", true},
		{"x.more.example", false}, {"a.deep.example", true}, {"deep.example", false},
		{"", false}, {".", false}, {"EXAMPLE.COM", true},
	}
	for _, tt := range tests {
		if ok, err := f(tt.d); ok != tt.ok || err != nil {
			t.Errorf("HostList(%q) = %v, %v", tt.d, ok, err)
		}
	}
}

func TestAddressList(t *testing.T) {
	f := AddressList([]string{"spam@bad.example", "@worse.example", ""})
	tests := []struct {
		a  string
		ok bool
	}{
		{"spam@bad.example", true}, {"SPAM@BAD.example", true}, {"x@worse.example", true},
		{"x@sub.worse.example", false}, {"", false}, {"ham@bad.example", false},
		{"a@b@worse.example", true}, {"worse.example", false},
	}
	for _, tt := range tests {
		if f(tt.a) != tt.ok {
			t.Errorf("AddressList(%q) = %v", tt.a, !tt.ok)
		}
	}
}

// TestHostListASCIIFold: rcpthosts folds case in ASCII only, as qmail and
// the queue's routing do, so a Unicode look-alike (the Kelvin sign) or an
// invalid byte is not taken for a local domain.
func TestHostListASCIIFold(t *testing.T) {
	rh := HostList([]string{"link.example", "\xff.example"}, nil)
	for _, tc := range []struct {
		domain string
		want   bool
	}{
		{"LINK.example", true},
		{"lin\u212a.example", false},
		{"\xff.example", true},
		{"\xfe.example", false},
	} {
		if got, _ := rh(tc.domain); got != tc.want {
			t.Errorf("HostList(%q) = %v, want %v", tc.domain, got, tc.want)
		}
	}
	bmf := AddressList([]string{"@link.example"})
	if bmf("x@lin\u212a.example") {
		t.Error("AddressList folded the Kelvin sign")
	}
	if !bmf("x@LINK.example") {
		t.Error("AddressList did not fold ASCII")
	}
}
