package mta

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/smtpclient"
	"github.com/qmailkit/qmailkit/smtpserver"
)

// controlDir makes a home whose control/ holds files.
func controlDir(t *testing.T, files map[string]string) control.Dir {
	t.Helper()
	home := t.TempDir()
	for name, text := range files {
		p := filepath.Join(home, "control", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return control.Dir{Home: home}
}

func TestReadDNSBL(t *testing.T) {
	for _, tc := range []struct {
		text string
		want *smtpserver.DNSBL
		err  string // a part of the error
	}{
		{text: "", want: nil},
		{text: "# none\n\n", want: nil},
		{text: "zen.example\n", want: &smtpserver.DNSBL{Rules: []smtpserver.DNSBLRule{{Zone: "zen.example"}}}},
		{text: "-a allow.example\n-r bl.example\n-b\n-c\n-t 0\n", want: &smtpserver.DNSBL{
			Rules: []smtpserver.DNSBLRule{{Zone: "allow.example", Allow: true}, {Zone: "bl.example"}}, Permanent: true, FailClosed: true, Timeout: -1}},
		{text: "bl.example\n-t 30\n", want: &smtpserver.DNSBL{Rules: []smtpserver.DNSBLRule{{Zone: "bl.example"}}, Timeout: 30 * time.Second}},
		{text: "bl.example\n\n-x\n", err: "control/dnsbllist line 3"},
		{text: "-r bad/zone\n", err: "line 1"},
		{text: "-t 99999\nbl.example\n", err: "line 1"},
		{text: "two words\n", err: "line 1"},
		{text: "-r\n", err: "line 1"},
	} {
		files := map[string]string{}
		if tc.text != "" {
			files["dnsbllist"] = tc.text
		}
		got, err := readDNSBL(controlDir(t, files))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.text, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.text, err)
			continue
		}
		if (got == nil) != (tc.want == nil) || got != nil && (len(got.Rules) != len(tc.want.Rules) || got.Permanent != tc.want.Permanent || got.FailClosed != tc.want.FailClosed || got.Timeout != tc.want.Timeout) {
			t.Errorf("%q: %+v, want %+v", tc.text, got, tc.want)
			continue
		}
		if tc.want == nil {
			continue
		}
		for i := range tc.want.Rules {
			if got.Rules[i] != tc.want.Rules[i] {
				t.Errorf("%q: rule %d %+v, want %+v", tc.text, i, got.Rules[i], tc.want.Rules[i])
			}
		}
	}
}

func TestReadSettings(t *testing.T) {
	for _, tc := range []struct {
		name, file, text string
		check            func(Config) bool
		err              string
	}{
		{name: "dnsserver", file: "dnsserver", text: "192.0.2.53\n[2001:db8::1]:5353\n127.0.0.1:53\n",
			check: func(c Config) bool {
				return strings.Join(c.DNS, " ") == "192.0.2.53:53 [2001:db8::1]:5353 127.0.0.1:53"
			}},
		{name: "bad dnsserver", file: "dnsserver", text: "192.0.2.53\nresolver.example\n", err: "control/dnsserver line 2"},
		{name: "bounceformat dsn", file: "bounceformat", text: "dsn\n", check: func(c Config) bool { return c.Bounce.DSN }},
		{name: "bounceformat qmail", file: "bounceformat", text: "qmail\n", check: func(c Config) bool { return !c.Bounce.DSN }},
		{name: "bad bounceformat", file: "bounceformat", text: "mime\n", err: "control/bounceformat line 1"},
		{name: "remotereuse", file: "remotereuse", text: "5\n", check: func(c Config) bool {
			return c.Remote.Pool != nil && c.Remote.Pool.IdleTimeout == 5*time.Second
		}},
		{name: "remotereuse 0", file: "remotereuse", text: "0\n", check: func(c Config) bool { return c.Remote.Pool == nil }},
		{name: "bad remotereuse", file: "remotereuse", text: "forever\n", err: "control/remotereuse line 1"},
		{name: "concurrencydomain", file: "concurrencydomain", text: "3\n", check: func(c Config) bool { return c.Scheduling.ConcurrencyDomain == 3 }},
		{name: "no concurrencydomain", check: func(c Config) bool {
			return c.Scheduling.ConcurrencyDomain == 0 && c.Remote.Pool == nil && c.DNS == nil && c.DNSBL == nil && !c.Bounce.DSN
		}},
		{name: "smtproutes with AUTH", file: "smtproutes", text: ":smarthost.example:587 joe secret\n", check: func(c Config) bool {
			rt, ok := c.Remote.Routes.Lookup("any.example")
			return ok && rt.Username == "joe" && rt.Password == "secret" && rt.Port == 587
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"me": "mx.example.org\n"}
			if tc.file != "" {
				files[tc.file] = tc.text
			}
			d := controlDir(t, files)
			cfg, err := LoadHome(d.Home, Options{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(cfg) {
				t.Fatalf("%+v", cfg)
			}
		})
	}
}

func TestReadHostTLS(t *testing.T) {
	cert, _ := selfSignedPEM(t)
	d := controlDir(t, map[string]string{
		"me":                          "mx.example.org\n",
		"tlshosts/MX.Example.NET.pem": cert,
		"notlshosts/old.example.com":  "",
	})
	cfg, err := LoadHome(d.Home, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Remote.HostTLS
	if h == nil {
		t.Fatal("no HostTLS")
	}
	if p, roots, ok := h("mx.example.net"); !ok || p != smtpclient.TLSVerify || roots == nil {
		t.Errorf("mx.example.net: %v %v %v", p, roots, ok)
	}
	if p, _, ok := h("old.example.com"); !ok || p != smtpclient.TLSNone {
		t.Errorf("old.example.com: %v %v", p, ok)
	}
	if _, _, ok := h("other.example"); ok {
		t.Error("other.example has a policy without exhaustivelist")
	}
	if err := os.WriteFile(d.Path("tlshosts/exhaustivelist"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if cfg, err = LoadHome(d.Home, Options{}); err != nil {
		t.Fatal(err)
	}
	if p, _, ok := cfg.Remote.HostTLS("other.example"); !ok || p != smtpclient.TLSNone {
		t.Errorf("other.example with exhaustivelist: %v %v", p, ok)
	}
	if err := os.WriteFile(d.Path("tlshosts/bad.example.pem"), []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHome(d.Home, Options{}); err == nil || !strings.Contains(err.Error(), "tlshosts/bad.example.pem") {
		t.Errorf("a tlshosts file without a certificate: %v", err)
	}
}

// selfSignedPEM is a CA certificate in PEM.
func selfSignedPEM(t *testing.T) (string, *x509.Certificate) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "cert.pem")
	if err := writeCert(path, "mx.example.net"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(b)), c
}

// TestControlFileNotRegular: a FIFO, a directory or a file too large where
// one of these control files belongs is an error naming it, at once (a
// FIFO is not waited on).
func TestControlFileNotRegular(t *testing.T) {
	for _, kind := range []string{"fifo", "dir", "huge"} {
		t.Run(kind, func(t *testing.T) {
			d := controlDir(t, map[string]string{"me": "mx.example.org\n"})
			p := d.Path("dnsbllist")
			var err error
			switch kind {
			case "fifo":
				err = syscall.Mkfifo(p, 0o644)
			case "dir":
				err = os.Mkdir(p, 0o755)
			case "huge":
				err = os.WriteFile(p, []byte(strings.Repeat("bl.example\n", maxControlFile/10)), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { _, err := LoadHome(d.Home, Options{}); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), p) {
					t.Errorf("LoadHome: %v, want an error naming %s", err, p)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("LoadHome waits on the file")
			}
		})
	}
}
