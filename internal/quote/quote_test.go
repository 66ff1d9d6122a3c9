package quote

import (
	"strings"
	"testing"
)

func TestAddr(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"joe@example.com", "joe@example.com"},
		{"joe", "joe"},
		{"a b@example.com", `"a b"@example.com`},
		{".x@example.com", `".x"@example.com`},
		{"x.@example.com", `"x."@example.com`},
		{"a..b@example.com", `"a..b"@example.com`},
		{`q"t\@example.com`, `"q\"t\\"@example.com`},
		{"a@b@example.com", `"a@b"@example.com`},
		{"line\nbreak@x", "\"line\\\nbreak\"@x"},
		{"@example.com", `""@example.com`},
		{"!#$%&'*+-/=?^_`{|}~@x", "!#$%&'*+-/=?^_`{|}~@x"},
		{"caf\xc3\xa9@x", "\"caf\xc3\xa9\"@x"},
	} {
		if got := Addr(tt.in); got != tt.want {
			t.Errorf("Addr(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzAddr checks the shape of every result: the domain is kept, and the
// local part is either unchanged (when it needs no quoting) or a quoted
// string.
func FuzzAddr(f *testing.F) {
	f.Add("a b@c")
	f.Add("joe@example.com")
	f.Fuzz(func(t *testing.T, s string) {
		q := Addr(s)
		if s == "" {
			if q != "" {
				t.Fatalf("Addr(\"\") = %q", q)
			}
			return
		}
		local, domain := s, ""
		if at := strings.LastIndexByte(s, '@'); at >= 0 {
			local, domain = s[:at], s[at:]
		}
		if !strings.HasSuffix(q, domain) {
			t.Fatalf("Addr(%q) = %q lost the domain", s, q)
		}
		ql := q[:len(q)-len(domain)]
		if Need(local) != (ql != local) || Need(local) && !(strings.HasPrefix(ql, `"`) && strings.HasSuffix(ql, `"`)) {
			t.Fatalf("Addr(%q) = %q", s, q)
		}
	})
}

// qmail's quote2: a local part that is not a dot-atom is quoted, and
// "#@[]" is kept.
func TestVector27(t *testing.T) {
	for in, want := range map[string]string{
		"a b@c": `"a b"@c`, "#@[]": "#@[]", ".x@y": `".x"@y`, "a..b@c": `"a..b"@c`, "": "",
		"MAILER-DAEMON": "MAILER-DAEMON", "x.@y": `"x."@y`, `q"\@y`: `"q\"\\"@y`, "nodomain": "nodomain",
		"a\nb@c": "\"a\\\nb\"@c", "ü@x": "\"ü\"@x", "a@b@c": `"a@b"@c`, "`{|}~@x": "`{|}~@x",
	} {
		if got := Addr(in); got != want {
			t.Errorf("Addr(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Local(""); got != `""` {
		t.Errorf("Local(\"\") = %q", got)
	}
}
