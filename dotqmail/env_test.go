package dotqmail

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// TestEnv checks EXT2 to EXT4, HOST2 to HOST4 and DEFAULT (see
// qmail-command(8)), and their values when a separator is missing.
func TestEnv(t *testing.T) {
	tg := Target{User: "joe", Home: "/home/joe", Local: "joe-a-b-c-d", Dash: "-", Ext: "a-b-c-d",
		Domain: "mail.example.co.uk", Sender: "s@x.org"}
	m := envMap(Env(tg, "c-d", true, "s@x.org", time.Unix(0, 0)))
	want := map[string]string{
		"USER": "joe", "HOME": "/home/joe", "LOCAL": "joe-a-b-c-d", "HOST": "mail.example.co.uk",
		"EXT": "a-b-c-d", "EXT2": "b-c-d", "EXT3": "c-d", "EXT4": "d", "DEFAULT": "c-d",
		"HOST2": "mail.example.co", "HOST3": "mail.example", "HOST4": "mail",
		"RECIPIENT": "joe-a-b-c-d@mail.example.co.uk", "SENDER": "s@x.org", "NEWSENDER": "s@x.org",
		"DTLINE": "Delivered-To: joe-a-b-c-d@mail.example.co.uk\n", "RPLINE": "Return-Path: <s@x.org>\n",
		"UFLINE": "From s@x.org Thu Jan 01 00:00:00 1970\n",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
	if len(m) != len(want) {
		t.Errorf("%d variables, want %d: %v", len(m), len(want), m)
	}

	tg.Ext, tg.Domain = "a", "localhost"
	m = envMap(Env(tg, "", false, "", time.Unix(0, 0)))
	for k, v := range map[string]string{"EXT2": "", "EXT3": "", "EXT4": "", "HOST2": "localhost",
		"HOST3": "localhost", "HOST4": "localhost"} {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %q (set %v), want %q", k, got, ok, v)
		}
	}
	if _, ok := m["DEFAULT"]; ok {
		t.Error("DEFAULT set without a default file")
	}
	tg.Domain = "example.com"
	m = envMap(Env(tg, "", false, "", time.Unix(0, 0)))
	if m["HOST2"] != "example" || m["HOST3"] != "example" || m["HOST4"] != "example" {
		t.Errorf("HOST2..4 of example.com: %q %q %q", m["HOST2"], m["HOST3"], m["HOST4"])
	}
}

// TestLines checks the DTLINE, RPLINE and UFLINE texts: a newline in
// DTLINE and RPLINE becomes '_', and UFLINE has '-' for space, tab and
// newline, MAILER-DAEMON for the empty sender and a zero-padded day.
func TestLines(t *testing.T) {
	t0 := time.Unix(0, 0)
	tests := []struct {
		sender, rp, uf string
	}{
		{"", "Return-Path: <>\n", "From MAILER-DAEMON Thu Jan 01 00:00:00 1970\n"},
		{"a b@c", "Return-Path: <\"a b\"@c>\n", "From a-b@c Thu Jan 01 00:00:00 1970\n"},
		{"a\tb\nc@d", "Return-Path: <\"a\tb\\_c\"@d>\n", "From a-b-c@d Thu Jan 01 00:00:00 1970\n"},
		{"#@[]", "Return-Path: <#@[]>\n", "From #@[] Thu Jan 01 00:00:00 1970\n"},
	}
	for _, tt := range tests {
		if got := RPLine(tt.sender); got != tt.rp {
			t.Errorf("RPLine(%q) = %q, want %q", tt.sender, got, tt.rp)
		}
		if got := UFLine(tt.sender, t0); got != tt.uf {
			t.Errorf("UFLine(%q) = %q, want %q", tt.sender, got, tt.uf)
		}
	}
	// The day is zero-padded, the time is UTC.
	if got := UFLine("a@b", time.Date(2024, 3, 5, 7, 8, 9, 0, time.FixedZone("x", 3600))); got != "From a@b Tue Mar 05 06:08:09 2024\n" {
		t.Errorf("UFLine = %q", got)
	}
	if got := DTLine("a\nb", "c\nd"); got != "Delivered-To: a_b@c_d\n" {
		t.Errorf("DTLine = %q", got)
	}
}

// TestQuote2 checks qmail's quote2: a local part that is not a dot-atom
// is quoted, and "#@[]" is kept.
func TestQuote2(t *testing.T) {
	for in, want := range map[string]string{
		"a b@c": `"a b"@c`, "#@[]": "#@[]", ".x@y": `".x"@y`, "a..b@c": `"a..b"@c`, "": "",
		"MAILER-DAEMON": "MAILER-DAEMON", `a"b\c@d`: `"a\"b\\c"@d`, "x.@y": `"x."@y`, "@y": `""@y`,
		"a@b@c": `"a@b"@c`, "joe-list-owner@ex.com": "joe-list-owner@ex.com",
	} {
		if got := Quote2(in); got != want {
			t.Errorf("Quote2(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestNewSender checks NEWSENDER: LOCAL-owner@HOST when .qmail-EXT-owner
// exists, LOCAL-owner-@HOST-@[] (VERP) when .qmail-EXT-owner-default
// exists too, else the sender; empty and "#@[]" senders are kept.
func TestNewSender(t *testing.T) {
	tg := Target{Local: "joe-list", Domain: "ex.com", Dash: "-", Ext: "list"}
	tests := []struct {
		files  []string
		sender string
		want   string
	}{
		{nil, "a@b", "a@b"},
		{[]string{".qmail-list-owner"}, "a@b", "joe-list-owner@ex.com"},
		{[]string{".qmail-list-owner", ".qmail-list-owner-default"}, "a@b", "joe-list-owner-@ex.com-@[]"},
		{[]string{".qmail-list-owner-default"}, "a@b", "a@b"},
		{[]string{".qmail-list-owner", ".qmail-list-owner-default"}, "", ""},
		{[]string{".qmail-list-owner", ".qmail-list-owner-default"}, "#@[]", "#@[]"},
	}
	for _, tt := range tests {
		tg.Home = t.TempDir()
		tg.Sender = tt.sender
		for _, f := range tt.files {
			writeFile(t, filepath.Join(tg.Home, f), "", 0o644)
		}
		got, err := newSender(tg)
		if err != nil || got != tt.want {
			t.Errorf("files %v sender %q: NEWSENDER %q, %v; want %q", tt.files, tt.sender, got, err, tt.want)
		}
	}
	// The user's own address probes .qmail-owner.
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".qmail-owner"), "", 0o644)
	got, _ := newSender(Target{Home: home, Local: "joe", Domain: "ex.com", Sender: "a@b"})
	if got != "joe-owner@ex.com" {
		t.Errorf("dash \"\": NEWSENDER %q", got)
	}
	// The owner files come from the full ext, not from the default file.
	home = t.TempDir()
	writeFile(t, filepath.Join(home, ".qmail-list-default"), "", 0o644)
	writeFile(t, filepath.Join(home, ".qmail-list-owner"), "", 0o644)
	got, _ = newSender(Target{Home: home, Local: "joe-list-x", Domain: "ex.com", Dash: "-", Ext: "list-x", Sender: "a@b"})
	if got != "a@b" {
		t.Errorf("ext list-x: NEWSENDER %q, want a@b", got)
	}
}

func TestAllowedEnv(t *testing.T) {
	for _, tt := range []struct {
		name      string
		base, add []string
		want      string
	}{
		{"qmail-local's variables replace inherited ones",
			[]string{"PATH=/bin", "DEFAULT=old", "HOME=/root", "X=1"}, []string{"HOME=/home/joe"},
			"PATH=/bin HOME=/home/joe"},
		{"the allow-list",
			[]string{"AWS_SECRET_ACCESS_KEY=s", "TZ=UTC", "LANG=C.UTF-8", "LC_ALL=C", "LC_CTYPE=C", "LCX=1",
				"QMAILQUEUE=/q", "QMAILHOME=/var/qmail", "QMAILKIT_MTA_ROLE=qmail-queue", "SSH_AUTH_SOCK=/s",
				"PATH=/usr/bin", "LD_PRELOAD=/evil.so", "SHELL=/bin/zsh", "USER=root", "noequals"},
			[]string{"USER=joe"},
			"TZ=UTC LANG=C.UTF-8 LC_ALL=C LC_CTYPE=C QMAILQUEUE=/q QMAILHOME=/var/qmail QMAILKIT_MTA_ROLE=qmail-queue PATH=/usr/bin USER=joe"},
		{"no PATH", []string{"SECRET=1"}, nil, "PATH=" + DefaultPath},
		{"empty", nil, nil, "PATH=" + DefaultPath},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := programEnv(tt.base, tt.add)
			if strings.Join(got, " ") != tt.want {
				t.Errorf("programEnv = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPrefixed(t *testing.T) {
	for _, tt := range []struct {
		head, body string
		size       int
	}{
		{"Return-Path: <>\n", "x\n", 4096}, {"abc", "defgh", 2}, {"", "body", 3}, {"head", "", 1}, {"", "", 8},
	} {
		r := prefixed(tt.head, strings.NewReader(tt.body))
		var got []byte
		buf := make([]byte, tt.size)
		for i := 0; i < 100; i++ {
			n, err := r.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if string(got) != tt.head+tt.body {
			t.Errorf("prefixed(%q, %q) read %q", tt.head, tt.body, got)
		}
	}
	// One Read of a large buffer gets both.
	buf := make([]byte, 100)
	if n, _ := prefixed("ab", strings.NewReader("cd")).Read(buf); n != 4 {
		t.Errorf("first Read gave %d bytes, want 4", n)
	}
}
