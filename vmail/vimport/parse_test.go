package vimport

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/vmail"
)

func TestParseVpasswd(t *testing.T) {
	tests := []struct {
		line string
		want vmail.Mailbox
		bad  string // a word of the problem, when the line is refused
	}{
		{line: "joe:$6$abcdefgh$H:1:0:Joe User:/home/vpopmail/domains/example.com/joe:NOQUOTA",
			want: vmail.Mailbox{Name: "joe", Domain: "example.com", Password: "$6$abcdefgh$H", RealName: "Joe User", Dir: "/home/vpopmail/domains/example.com/joe"}},
		{line: "Ann:$1$ab$x:2:2050:Ann:/v/d/example.com/0/ann:52428800S,1000C:clearpw",
			want: vmail.Mailbox{Name: "ann", Domain: "example.com", Password: "$1$ab$x", RealName: "Ann", Dir: "/v/d/example.com/0/ann",
				Flags: vmail.NoPOP | vmail.NoSMTP, Quota: vmail.Quota{Bytes: 52428800, Count: 1000}}},
		{line: "old:xyDES0123456:1:0:Old:/v/old/:1048576",
			want: vmail.Mailbox{Name: "old", Domain: "example.com", Password: "xyDES0123456", RealName: "Old", Dir: "/v/old", Quota: vmail.Quota{Bytes: 1048576}}},
		{line: "nodir::1:0:::", want: vmail.Mailbox{Name: "nodir", Domain: "example.com"}},
		{line: "short:x:1:0:g:/d", bad: "fields"},
		{line: "long:x:1:0:g:/d:NOQUOTA:c:extra", bad: "fields"},
		{line: ":x:1:0:g:/d:NOQUOTA", bad: "empty name"},
		{line: "f:x:1:-1:g:/d:NOQUOTA", bad: "flags"},
		{line: "f:x:1:99999999999:g:/d:NOQUOTA", bad: "flags"},
		{line: "r:x:1:0:g:rel/dir:NOQUOTA", bad: "absolute"},
		{line: "r:x:1:0:g:/v/../etc:NOQUOTA", bad: "absolute"},
		{line: "r:x:1:0:g:/:NOQUOTA", bad: "absolute"},
		{line: "r:x:1:0:g:/v/a\x00b:NOQUOTA", bad: "control"},
		{line: "q:x:1:0:g:/d:50M", bad: "quota"},
		{line: "q:x:1:0:g:/d:-5S", bad: "quota"},
		{line: "q:x:1:0:g:/d:99999999999999999999", bad: "quota"},
	}
	for _, tt := range tests {
		got, err := parseVpasswd(tt.line, "example.com")
		if tt.bad != "" {
			var p *problemError
			if !errors.As(err, &p) || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("parseVpasswd(%q) = %+v, %v; want a problem with %q", tt.line, got, err, tt.bad)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseVpasswd(%q) = %+v, %v; want %+v", tt.line, got, err, tt.want)
		}
	}
}

func TestParsePoppasswd(t *testing.T) {
	tests := []struct {
		line string
		want vmail.Mailbox
		bad  bool
	}{
		{line: "bob:{SHA512-CRYPT}$6$s$h:89:89:Bob B:/var/mail/bob:/bin/false",
			want: vmail.Mailbox{Name: "bob", Domain: "example.org", Password: "{SHA512-CRYPT}$6$s$h", RealName: "Bob B", Dir: "/var/mail/bob"}},
		{line: "bob:x:89:89:Bob:/var/mail/bob", bad: true},
		{line: "bob:x:89:89:Bob:/var/mail/bob:/bin/sh:extra", bad: true},
		{line: "bob:x:u:89:Bob:/var/mail/bob:/bin/sh", bad: true},
		{line: "bob:x:89:89:Bob::/bin/sh", bad: true},
		{line: "bob:x:89:89:Bob:relative:/bin/sh", bad: true},
	}
	for _, tt := range tests {
		got, err := parsePoppasswd(tt.line, "example.org")
		if tt.bad != (err != nil) || !tt.bad && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parsePoppasswd(%q) = %+v, %v", tt.line, got, err)
		}
	}
}

func TestParseDefault(t *testing.T) {
	tests := []struct {
		content string
		want    catchAll
		bad     bool
	}{
		{content: "| /home/vpopmail/bin/vdelivermail '' delete\n", want: catchAll{target: "delete"}},
		{content: "| /home/vpopmail/bin/vdelivermail '' bounce-no-mailbox\n", want: catchAll{}},
		{content: "|/home/vpopmail/bin/vdelivermail \"\" Joe@Example.COM", want: catchAll{target: "joe@example.com"}},
		{content: "# catch-all\n| /v/bin/vdelivermail '' /v/domains/example.com/joe\n", want: catchAll{dir: "/v/domains/example.com/joe"}},
		{content: "| /v/bin/vdelivermail '' /v/domains/example.com/joe/\n", want: catchAll{dir: "/v/domains/example.com/joe"}},
		{content: "| /v/bin/vdelivermail '' $EXT@Other.Example\n", want: catchAll{target: "@other.example"}},
		{content: "| /v/bin/vdelivermail '' 'delete'\n", want: catchAll{target: "delete"}},
		{content: "", bad: true},
		{content: "&joe@example.com\n", bad: true},
		{content: "| /v/bin/vdelivermail '' delete\n| /bin/true\n", bad: true},
		{content: "| /usr/bin/procmail '' delete\n", bad: true},
		{content: "| /v/bin/vdelivermail delete\n", bad: true},
		{content: "| /v/bin/vdelivermail '' something-else\n", bad: true},
		{content: "| /v/bin/vdelivermail '' a@b;rm\\ -rf\n", bad: true},
		{content: "| /v/bin/vdelivermail '' `x`@b\n", bad: true},
		{content: "| /v/bin/vdelivermail '' /v/../etc\n", bad: true},
		{content: "| /v/bin/vdelivermail 'unterminated delete\n", bad: true},
		{content: "| /v/bin/vdelivermail '' @nolocal\n", bad: true},
	}
	for _, tt := range tests {
		got, err := parseDefault(tt.content)
		if tt.bad != (err != nil) || !tt.bad && got != tt.want {
			t.Errorf("parseDefault(%q) = %+v, %v", tt.content, got, err)
		}
	}
}

func TestParseAliasFile(t *testing.T) {
	tests := []struct {
		content string
		want    []string
		bad     string
	}{
		{content: "&bob@example.com\ncarol@other.example\n", want: []string{"bob@example.com", "carol@other.example"}},
		{content: "# comment\n\n&x@y.example  \r\n", want: []string{"x@y.example"}},
		{content: "&bob@example.com\n/home/v/d/example.com/joe/Maildir/\n", bad: "mailbox line"},
		{content: "./Maildir/\n", bad: "mailbox line"},
		{content: "|/usr/bin/ezmlm-send /v/list\n", bad: "program line"},
		{content: "&bob\n", bad: "not an address"},
		{content: "&@example.com\n", bad: "not an address"},
		{content: "&bob@\n", bad: "not an address"},
		{content: "&a b@example.com\n", bad: "not an address"},
		{content: "# only a comment\n", bad: "no address"},
	}
	for _, tt := range tests {
		got, err := parseAliasFile(tt.content)
		if tt.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tt.bad) {
				t.Errorf("parseAliasFile(%q) = %q, %v; want %q", tt.content, got, err, tt.bad)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseAliasFile(%q) = %q, %v", tt.content, got, err)
		}
	}
}

func TestAliasName(t *testing.T) {
	tests := []struct{ file, want string }{
		{".qmail-info", "info"},
		{".qmail-John:Smith", "john.smith"},
		{".qmail-default", ""},
		{".qmail-list-default", ""},
		{".qmail-", ""},
	}
	for _, tt := range tests {
		got, err := aliasName(tt.file)
		if got != tt.want || (tt.want == "") != (err != nil) {
			t.Errorf("aliasName(%q) = %q, %v", tt.file, got, err)
		}
	}
}

func TestParseAssign(t *testing.T) {
	tests := []struct {
		line string
		want assignLine
		ok   bool
	}{
		{line: "+example.com-:example.com:89:89:/home/vpopmail/domains/example.com:-::", ok: true,
			want: assignLine{domain: "example.com", real: "example.com", dir: "/home/vpopmail/domains/example.com"}},
		{line: "+Alias.NET-:example.com:89:89:/home/vpopmail/domains/example.com:-::", ok: true,
			want: assignLine{domain: "alias.net", real: "example.com", dir: "/home/vpopmail/domains/example.com"}},
		{line: "=joe:joe:1000:1000:/home/joe:::"},
		{line: "+joe-:joe:1000:1000:/home/joe:-::"},
		{line: "."},
		{line: ""},
	}
	for _, tt := range tests {
		got, ok, err := parseAssign(tt.line)
		if err != nil || ok != tt.ok || got != tt.want {
			t.Errorf("parseAssign(%q) = %+v, %v, %v", tt.line, got, ok, err)
		}
	}
	if _, _, err := parseAssign("+a.b-:a.b:1"); err == nil {
		t.Error("short line accepted")
	}
}

func TestShellWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{" /v/bin/vdelivermail '' delete", []string{"/v/bin/vdelivermail", "", "delete"}},
		{`a "b c" d\ e`, []string{"a", "b c", "d e"}},
		{`"a\"b"`, []string{`a"b`}},
		{"a\t\tb", []string{"a", "b"}},
	}
	for _, tt := range tests {
		got, err := shellWords(tt.in)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("shellWords(%q) = %q, %v", tt.in, got, err)
		}
	}
	for _, bad := range []string{`'abc`, `"abc`, `"abc\"`} {
		if got, err := shellWords(bad); err == nil {
			t.Errorf("shellWords(%q) = %q", bad, got)
		}
	}
}

func FuzzParseVpasswd(f *testing.F) {
	f.Add("joe:$6$abcdefgh$H:1:0:Joe User:/home/vpopmail/domains/example.com/joe:NOQUOTA")
	f.Add("ann:$1$ab$x:2:4098:Ann:/v/d/example.com/0/ann:52428800S,1000C:clearpw")
	f.Add("nodir::1:0:::")
	f.Fuzz(func(t *testing.T, line string) {
		mb, err := parseVpasswd(line, "example.com")
		if err != nil {
			return
		}
		if mb.Name == "" || mb.Name != strings.ToLower(mb.Name) {
			t.Fatalf("name %q", mb.Name)
		}
		if mb.Dir != "" && (mb.Dir[0] != '/' || strings.Contains(mb.Dir, "..") && strings.Contains("/"+mb.Dir+"/", "/../")) {
			t.Fatalf("dir %q", mb.Dir)
		}
		if mb.Quota.Bytes < 0 || mb.Quota.Count < 0 {
			t.Fatalf("quota %+v", mb.Quota)
		}
	})
}

func FuzzParseDefault(f *testing.F) {
	f.Add("| /home/vpopmail/bin/vdelivermail '' delete\n")
	f.Add("| /v/bin/vdelivermail '' /v/domains/example.com/joe\n")
	f.Add("| /v/bin/vdelivermail \"\" $EXT@other.example\n")
	f.Fuzz(func(t *testing.T, content string) {
		ca, err := parseDefault(content)
		if err != nil {
			return
		}
		if ca.target != "" && ca.dir != "" {
			t.Fatalf("both %+v", ca)
		}
		if strings.ContainsAny(ca.target, " \t\n|`$\\") {
			t.Fatalf("target %q", ca.target)
		}
	})
}

func FuzzParseAliasFile(f *testing.F) {
	f.Add("&bob@example.com\ncarol@other.example\n")
	f.Add("|/usr/bin/ezmlm-send /v/list\n")
	f.Fuzz(func(t *testing.T, content string) {
		targets, err := parseAliasFile(content)
		if err != nil {
			return
		}
		for _, a := range targets {
			if !strings.Contains(a, "@") || strings.ContainsAny(a, "\n\x00 ") || a[0] == '|' || a[0] == '/' {
				t.Fatalf("target %q", a)
			}
		}
	})
}

func TestParseLimits(t *testing.T) {
	tests := []struct {
		content string
		want    vmail.Limits
		notes   int
		bad     bool
	}{
		{content: "maxpopaccounts 100\nmaxaliases -1\nmaxforwards: 5\nmaxautoresponders\t2\n",
			want: vmail.Limits{MaxMailboxes: 100, MaxForwards: 5, MaxAutoresponders: 2}},
		{content: "# comment\ndefault_quota 52428800\ndefault_maxmsgcount 1000 # per mailbox\n",
			want: vmail.Limits{DefaultQuota: vmail.Quota{Bytes: 52428800, Count: 1000}}},
		{content: "disable_pop\ndisable_imap 1\ndisable_smtp 0\ndisable_password_changing\ndisable_external_relay\n",
			want: vmail.Limits{Disabled: vmail.NoPOP | vmail.NoIMAP | vmail.NoPasswordChange | vmail.NoRelay}},
		{content: "maxaliases 0\nquota 100\nperm_account 1\ndelete_spam\nunknown_key 7\n", notes: 4},
		{content: "maxpopaccounts 99999999999999\n", want: vmail.Limits{}},
		{content: "default_quota -5\n", want: vmail.Limits{}},
		{content: "maxpopaccounts lots\n", bad: true},
		{content: "default_quota 50M\n", bad: true},
	}
	for _, tt := range tests {
		got, notes, err := parseLimits(tt.content)
		if tt.bad != (err != nil) || !tt.bad && (got != tt.want || len(notes) != tt.notes) {
			t.Errorf("parseLimits(%q) = %+v, %v, %v", tt.content, got, notes, err)
		}
	}
}

func FuzzParseLimits(f *testing.F) {
	f.Add("maxpopaccounts 100\nmaxaliases -1\ndisable_pop\ndefault_quota 52428800\n")
	f.Add("perm_account 1\nquota: 100 # x\n")
	f.Fuzz(func(t *testing.T, content string) {
		l, _, err := parseLimits(content)
		if err != nil {
			return
		}
		if l.MaxMailboxes < 0 || l.MaxAliases < 0 || l.MaxForwards < 0 || l.MaxAutoresponders < 0 ||
			l.DefaultQuota.Bytes < 0 || l.DefaultQuota.Count < 0 {
			t.Fatalf("negative limit %+v", l)
		}
		if l.Disabled&^(vmail.NoPOP|vmail.NoIMAP|vmail.NoSMTP|vmail.NoWebmail|vmail.NoDialup|vmail.NoPasswordChange|vmail.NoRelay) != 0 {
			t.Fatalf("flags %x", l.Disabled)
		}
	})
}
