package control

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/cdb"
	"github.com/qmailkit/qmailkit/smtpserver"
)

func home(t *testing.T, files map[string]string) Dir {
	t.Helper()
	h := t.TempDir()
	os.Mkdir(filepath.Join(h, "control"), 0o755)
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(h, "control", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Dir{Home: h}
}

func TestLine(t *testing.T) {
	d := home(t, map[string]string{
		"me":    "  mx.example.org \t\nsecond line\n",
		"crlf":  "host\r\n",
		"empty": "",
		"nolf":  "x",
	})
	tests := []struct {
		name, want string
		ok         bool
	}{
		{"me", "  mx.example.org", true},
		{"crlf", "host\r", true},
		{"empty", "", true},
		{"nolf", "x", true},
		{"missing", "", false},
	}
	for _, tt := range tests {
		got, ok, err := d.Line(tt.name)
		if got != tt.want || ok != tt.ok || err != nil {
			t.Errorf("Line(%s) = %q %v %v", tt.name, got, ok, err)
		}
	}
	os.Mkdir(d.Path("dir"), 0o755)
	if _, _, err := d.Line("dir"); err == nil {
		t.Error("unreadable file gave no error")
	}
}

func TestIntAndDefaults(t *testing.T) {
	d := home(t, map[string]string{"me": "me.example\n", "databytes": "100junk\n", "bad": "x12\n", "zero": "0\n"})
	for _, tt := range []struct {
		name string
		want int64
	}{{"databytes", 100}, {"bad", 7}, {"missing", 7}, {"zero", 0}} {
		if got, err := d.Int(tt.name, 7); got != tt.want || err != nil {
			t.Errorf("Int(%s) = %d %v", tt.name, got, err)
		}
	}
	if got, _ := d.LineDefault("localiphost", true, "x"); got != "me.example" {
		t.Errorf("LineDefault me = %q", got)
	}
	if got, _ := d.LineDefault("localiphost", false, "x"); got != "x" {
		t.Errorf("LineDefault def = %q", got)
	}
	if got, ok, _ := d.ListDefault("locals", true); !ok || !reflect.DeepEqual(got, []string{"me.example"}) {
		t.Errorf("ListDefault = %q", got)
	}
}

func TestList(t *testing.T) {
	d := home(t, map[string]string{"rcpthosts": "example.com\n# comment\n\n  spaced \t\n.example.com\r\nlast"})
	got, ok, err := d.List("rcpthosts")
	want := []string{"example.com", "  spaced", ".example.com\r", "last"}
	if !ok || err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("List = %q %v %v", got, ok, err)
	}
	if got, ok, err := d.List("missing"); got != nil || ok || err != nil {
		t.Errorf("missing: %q %v %v", got, ok, err)
	}
}

func TestSMTPD(t *testing.T) {
	d := home(t, map[string]string{
		"me":           "mx.example.org\n",
		"smtpgreeting": "mx.example.org NO UCE\n",
		"rcpthosts":    "example.com\n",
		"badmailfrom":  "@bad.example\n",
		"databytes":    "1000\n",
		"timeoutsmtpd": "0\n",
	})
	w, err := cdb.Create(d.Path("morercpthosts.cdb"))
	if err != nil {
		t.Fatal(err)
	}
	w.Put([]byte("more.example"), nil)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var srv smtpserver.Server
	closeFn, err := d.SMTPD(&srv, false)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	if srv.Hostname != "mx.example.org" || srv.Greeting != "mx.example.org NO UCE" || srv.LocalIPHost != "mx.example.org" ||
		srv.MaxMessageBytes != 1000 || srv.Timeout != time.Second || srv.OpenRelay {
		t.Errorf("server %q %q %q %d %v %v", srv.Hostname, srv.Greeting, srv.LocalIPHost, srv.MaxMessageBytes, srv.Timeout, srv.OpenRelay)
	}
	for dom, want := range map[string]bool{"example.com": true, "more.example": true, "other.example": false} {
		if ok, err := srv.RcptHostsContext(context.Background(), nil, dom); ok != want || err != nil {
			t.Errorf("RcptHosts(%s) = %v %v", dom, ok, err)
		}
	}
	if !srv.BadMailFromContext(context.Background(), nil, "x@BAD.example") {
		t.Error("badmailfrom not applied")
	}

	// Neither smtpgreeting nor me: refuse to run.
	if _, err := home(t, nil).SMTPD(&smtpserver.Server{}, false); err == nil {
		t.Error("no me, no smtpgreeting: no error")
	}
	// No rcpthosts: closed unless asked for qmail's open relay.
	var open smtpserver.Server
	if _, err := home(t, map[string]string{"me": "m\n"}).SMTPD(&open, true); err != nil || !open.OpenRelay || open.RcptHostsContext != nil {
		t.Errorf("open relay: %v %v", err, open.OpenRelay)
	}
}

// SMTPSettings: qmail-smtpd's one-line files, their defaults, and the
// errors that make it refuse to run.
func TestSMTPSettings(t *testing.T) {
	for _, tt := range []struct {
		name    string
		files   map[string]string
		unread  string // a control file that exists but cannot be read
		want    smtpserver.Settings
		wantErr bool
	}{
		{name: "me only", files: map[string]string{"me": "mx.example.org\n"},
			want: smtpserver.Settings{Hostname: "mx.example.org", Greeting: "mx.example.org", LocalIPHost: "mx.example.org", Timeout: 1200 * time.Second}},
		{name: "all", files: map[string]string{"me": "mx.example.org\n", "smtpgreeting": "mx.example.org NO UCE \n",
			"localiphost": "example.org\n", "databytes": "1000\n", "timeoutsmtpd": "30\n"},
			want: smtpserver.Settings{Hostname: "mx.example.org", Greeting: "mx.example.org NO UCE", LocalIPHost: "example.org",
				MaxMessageBytes: 1000, Timeout: 30 * time.Second}},
		{name: "zero timeout and junk databytes", files: map[string]string{"me": "m\n", "timeoutsmtpd": "0\n", "databytes": "lots\n"},
			want: smtpserver.Settings{Hostname: "m", Greeting: "m", LocalIPHost: "m", MaxMessageBytes: -1, Timeout: time.Second}},
		{name: "databytes 0 is no limit", files: map[string]string{"me": "m\n", "databytes": "0\n"},
			want: smtpserver.Settings{Hostname: "m", Greeting: "m", LocalIPHost: "m", MaxMessageBytes: -1, Timeout: 1200 * time.Second}},
		{name: "greeting without me", files: map[string]string{"smtpgreeting": "hello\n"},
			want: smtpserver.Settings{Greeting: "hello", Timeout: 1200 * time.Second}},
		{name: "neither greeting nor me", files: map[string]string{"databytes": "1\n"}, wantErr: true},
		{name: "unreadable databytes", files: map[string]string{"me": "m\n"}, unread: "databytes", wantErr: true},
		{name: "unreadable smtpgreeting", files: map[string]string{"me": "m\n"}, unread: "smtpgreeting", wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := home(t, tt.files)
			if tt.unread != "" {
				// A directory opens but does not read (EISDIR).
				if err := os.Mkdir(d.Path(tt.unread), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			got, err := d.SMTPSettings()
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestHome(t *testing.T) {
	env := map[string]string{"QMAILHOME": "/env/home"}
	getenv := func(k string) string { return env[k] }
	none := func(string) string { return "" }
	for _, tt := range []struct {
		flag   string
		getenv func(string) string
		want   string
	}{
		{"/flag/home", getenv, "/flag/home"},
		{"", getenv, "/env/home"},
		{"", none, "/var/qmail"},
	} {
		if got := Home(tt.flag, tt.getenv); got != tt.want {
			t.Errorf("Home(%q) = %q, want %q", tt.flag, got, tt.want)
		}
	}
}
