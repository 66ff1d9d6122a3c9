package vmail_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/vmail"
)

func TestHashDir(t *testing.T) {
	// The spec's test vector 3, and the edges of each level.
	tests := map[int]string{
		0: "", 1: "", 99: "", 100: "0", 199: "0", 200: "1", 1100: "A", 3600: "Z", 3700: "a", 6200: "z", 6299: "z",
		6300: "0/0", 6400: "0/1", 12400: "0/z", 12500: "1/0", 390600: "z/z", 390699: "z/z", 390700: "0/0/0",
		390800: "0/0/1", 396900: "0/1/0",
		// The last of three levels, then the start again.
		(1+62+3844+238328)*100 - 1: "z/z/z", (1 + 62 + 3844 + 238328) * 100: "", (1+62+3844+238328)*100 + 100: "0",
	}
	for n, want := range tests {
		if got := vmail.HashDir(n); got != want {
			t.Errorf("HashDir(%d) = %q, want %q", n, got, want)
		}
	}
	// The spec's test vector 4: the directory after the 100th and the
	// 200th mailbox.
	if vmail.HashDir(100) != "0" || vmail.HashDir(200) != "1" {
		t.Error("test vector 4")
	}
	// Every directory of the sequence receives 100 mailboxes, and none is
	// given twice in one round.
	seen := make(map[string]int)
	for n := 1; n < 390700; n++ {
		seen[vmail.HashDir(n)]++
	}
	if len(seen) != 1+62+62*62 {
		t.Errorf("%d directories for 390699 mailboxes", len(seen))
	}
	for dir, c := range seen {
		if want := map[bool]int{true: 99, false: 100}[dir == ""]; c != want {
			t.Errorf("directory %q given %d times, want %d", dir, c, want)
		}
	}
}

func TestParseQuota(t *testing.T) {
	tests := []struct {
		in   string
		want vmail.Quota
		str  string
	}{
		// The spec's test vector 5.
		{"50M", vmail.Quota{Bytes: 52428800}, "52428800S"},
		{"50m", vmail.Quota{Bytes: 52428800}, "52428800S"},
		{"10MB,500C", vmail.Quota{Bytes: 10485760, Count: 500}, "10485760S,500C"},
		{"100K", vmail.Quota{Bytes: 102400}, "102400S"},
		{"1000C", vmail.Quota{Count: 1000}, "1000C"},
		{"52428800S,1000C", vmail.Quota{Bytes: 52428800, Count: 1000}, "52428800S,1000C"},
		{"52428800", vmail.Quota{Bytes: 52428800}, "52428800S"},
		{"0", vmail.Quota{}, ""},
		{"NOQUOTA", vmail.Quota{}, ""},
		{"noquota", vmail.Quota{}, ""},
		{"", vmail.Quota{}, ""},
		{"5kb", vmail.Quota{Bytes: 5120}, "5120S"},
		{"5MBS", vmail.Quota{Bytes: 5242880}, "5242880S"}, // "S", then "B" dropped
		{" 1000S , 10c ", vmail.Quota{Bytes: 1000, Count: 10}, "1000S,10C"},
	}
	for _, tt := range tests {
		got, err := vmail.ParseQuota(tt.in)
		if err != nil || got != tt.want || got.String() != tt.str {
			t.Errorf("ParseQuota(%q) = %+v (%q), %v; want %+v (%q)", tt.in, got, got.String(), err, tt.want, tt.str)
		}
	}
	for _, in := range []string{"-1", "+5", "M", "C", "5X", "5 M", "5MSB", "1,,2", ",", "99999999999999999999", "9999999999999M",
		"5\x00M", strings.Repeat("1", 100), "1S,abc"} {
		if q, err := vmail.ParseQuota(in); !errors.Is(err, vmail.ErrInvalid) {
			t.Errorf("ParseQuota(%q) = %+v, %v; want ErrInvalid", in, q, err)
		}
	}
}

func TestSplitLogin(t *testing.T) {
	tests := []struct {
		login, def   string
		name, domain string
		ok           bool
	}{
		{"joe@example.com", "", "joe", "example.com", true},
		{"JOE%Example.com", "", "joe", "example.com", true},
		{"joe/example.com", "", "joe", "example.com", true},
		{"joe%a@b.example", "", "joe%a", "b.example", true}, // '@' first
		{"joe/a%b.example", "", "joe/a", "b.example", true}, // then '%'
		{"joe", "Example.com", "joe", "example.com", true},
		{"joe", "", "", "", false},
		{"@example.com", "", "", "", false},
		{"joe@", "example.com", "", "", false},
		{"", "example.com", "", "", false},
	}
	for _, tt := range tests {
		name, domain, err := vmail.SplitLogin(tt.login, tt.def)
		if tt.ok && (err != nil || name != tt.name || domain != tt.domain) {
			t.Errorf("SplitLogin(%q, %q) = %q, %q, %v", tt.login, tt.def, name, domain, err)
		}
		if !tt.ok && !errors.Is(err, vmail.ErrInvalid) {
			t.Errorf("SplitLogin(%q, %q) = %q, %q, %v; want ErrInvalid", tt.login, tt.def, name, domain, err)
		}
	}
}

func TestValidNames(t *testing.T) {
	goodDomains := []string{"example.com", "a-b.example", "x.y.z.example", "123.example", "ab.cd"}
	badDomains := []string{"", "com", "a.b", "-a.example", "a-.example", "a..example", ".example.com", "example.com.",
		"Example.com", "a_b.example", "a b.example", "../x.example", "a/b.example", "a\x00.example",
		strings.Repeat("a", 64) + ".example", strings.Repeat("a.", 48) + "com", "example.c"}
	for _, d := range goodDomains {
		if err := vmail.ValidDomain(d); err != nil {
			t.Errorf("ValidDomain(%q): %v", d, err)
		}
	}
	for _, d := range badDomains {
		if err := vmail.ValidDomain(d); !errors.Is(err, vmail.ErrInvalid) {
			t.Errorf("ValidDomain(%q) = %v", d, err)
		}
	}
	goodNames := []string{"joe", "jo", "first.last", "a_b", "a+b", "a=b", "a&b", "joe-", "0x", strings.Repeat("a", 64)}
	badNames := []string{"", "a", ".joe", "-joe", "a/b", "..", "../x", "Joe", "a b", "a@b", "a%b", "a:b", "a\x00b", "a\nb",
		"ü", "a!b", strings.Repeat("a", 65), "vpasswd/"}
	for _, n := range goodNames {
		if err := vmail.ValidName(n); err != nil {
			t.Errorf("ValidName(%q): %v", n, err)
		}
	}
	for _, n := range badNames {
		if err := vmail.ValidName(n); !errors.Is(err, vmail.ErrInvalid) {
			t.Errorf("ValidName(%q) = %v", n, err)
		}
	}
}

func FuzzParseQuota(f *testing.F) {
	for _, s := range []string{"50M", "10MB,500C", "100K", "1000C", "52428800S,1000C", "0", "NOQUOTA", "", "-1", "5kb", "9223372036854775807S"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := vmail.ParseQuota(s)
		if err != nil {
			if !errors.Is(err, vmail.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if q.Bytes < 0 || q.Count < 0 {
			t.Fatalf("negative quota %+v from %q", q, s)
		}
		// What String writes parses back to the same quota.
		q2, err := vmail.ParseQuota(q.String())
		if err != nil || q2 != q {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, q, q.String(), q2, err)
		}
	})
}

func FuzzSplitLogin(f *testing.F) {
	for _, s := range []string{"joe@example.com", "JOE%Example.com", "joe/example.com", "joe", "@", "%/@", "a@b@c", "\x00@x"} {
		f.Add(s, "example.com")
	}
	f.Fuzz(func(t *testing.T, login, def string) {
		name, domain, err := vmail.SplitLogin(login, def)
		if err != nil {
			if !errors.Is(err, vmail.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if name == "" || domain == "" {
			t.Fatalf("SplitLogin(%q, %q) = %q, %q", login, def, name, domain)
		}
		if name != strings.ToLower(name) || domain != strings.ToLower(domain) {
			t.Fatalf("not lower case: %q, %q", name, domain)
		}
		// The name never holds the separator that split it.
		lower := strings.ToLower(login)
		if strings.Contains(lower, "@") && strings.Contains(name, "@") {
			t.Fatalf("name %q holds '@'", name)
		}
		if !strings.Contains(lower, "@") && strings.Contains(lower, "%") && strings.Contains(name, "%") {
			t.Fatalf("name %q holds '%%'", name)
		}
		if strings.ContainsAny(lower, "@%/") && !strings.HasPrefix(lower, name) {
			t.Fatalf("name %q is not the start of %q", name, lower)
		}
	})
}
