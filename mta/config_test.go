package mta

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/smtp"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/pop3"
	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/smtpclient"
)

func TestNewChecksConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no hostname", Config{QueueDir: filepath.Join(dir, "q1")}},
		{"no queue", Config{Hostname: "example.org"}},
		{"relative home", Config{Hostname: "example.org", QueueDir: filepath.Join(dir, "q2"), Users: Mailboxes{"a": {Home: "a"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := New(tc.cfg); err == nil {
				s.Close()
				t.Fatal("New accepted it")
			}
		})
	}
}

func TestMailboxesLookup(t *testing.T) {
	m := Mailboxes{"joe": {Home: "/h/joe"}, "joe-list": {Home: "/h/list"}, "Ann": {Home: "/h/ann"}}
	for _, tc := range []struct {
		local, name, ext string
		none             bool
	}{
		{local: "joe", name: "joe"},
		{local: "JOE", name: "joe"},
		{local: "ann", name: "Ann"},
		{local: "joe-news", name: "joe", ext: "news"},
		{local: "joe-list", name: "joe-list"},
		{local: "joe-list-x", name: "joe-list", ext: "x"},
		{local: "joe-a-b", name: "joe", ext: "a-b"},
		{local: "jo", none: true},
		{local: "-joe", none: true},
		{local: "", none: true},
	} {
		u, err := m.Lookup(context.Background(), tc.local)
		if tc.none {
			if !errors.Is(err, ErrNoUser) {
				t.Errorf("Lookup(%q) = %+v, %v; want ErrNoUser", tc.local, u, err)
			}
			continue
		}
		if err != nil || u.Name != tc.name || u.Ext != tc.ext || (tc.ext != "") != (u.Dash == "-") {
			t.Errorf("Lookup(%q) = %+v, %v; want %s ext %q", tc.local, u, err, tc.name, tc.ext)
		}
	}
}

func TestMailboxesAuthenticate(t *testing.T) {
	hash, err := pop3.HashPassword("hashed secret")
	if err != nil {
		t.Fatal(err)
	}
	m := Mailboxes{"plain": {Password: "{PLAIN}clear", Home: "/h/p"}, "hash": {Password: hash, Home: "/h/h"}, "nologin": {Home: "/h/n"}}
	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{
		{"plain", "clear", true},
		{"PLAIN", "clear", true},
		{"plain", "Clear", false},
		{"hash", "hashed secret", true},
		{"hash", hash, false},
		{"nologin", "", false},
		{"nobody", "clear", false},
	} {
		u, err := m.Authenticate(context.Background(), pop3.Credentials{User: tc.user, Secret: tc.pass})
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, pop3.ErrAuthFailed)) {
			t.Errorf("Authenticate(%q, %q) = %v, %v", tc.user, tc.pass, u, err)
		}
		if tc.ok && u.Maildir != filepath.Join(m[u.Name].Home, "Maildir") {
			t.Errorf("Authenticate(%q): Maildir %q", tc.user, u.Maildir)
		}
	}
}

// TestCloneClientCopiesEveryField fails when smtpclient.Client gains a
// field: cloneClient must then copy it too.
func TestCloneClientCopiesEveryField(t *testing.T) {
	var got []string
	for f := range reflect.TypeFor[smtpclient.Client]().Fields() {
		if f.IsExported() {
			got = append(got, f.Name)
		}
	}
	want := []string{"Hostname", "Resolver", "Dialer", "Port", "Routes", "TLS", "TLSConfig", "Timeouts",
		"Network", "PreferIPv4", "LocalAddrs", "Rand", "Pool", "QmailCompat", "Logger", "TCPTO", "Now", "HostTLS"}
	if !slices.Equal(got, want) {
		t.Fatalf("smtpclient.Client's fields are %v; cloneClient copies %v", got, want)
	}
	c := cloneClient(&smtpclient.Client{Hostname: "h", Port: 26, Pool: &smtpclient.Pool{}, TLS: smtpclient.TLSVerify})
	if c.Hostname != "h" || c.Port != 26 || c.Pool == nil || c.TLS != smtpclient.TLSVerify {
		t.Fatalf("cloneClient: %+v", c)
	}
}

// TestRelayClients: SMTPPolicy.RelayClients may relay, others may not,
// and a Reload changes who may.
func TestRelayClients(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Hostname:  "mx.example.org",
		QueueDir:  filepath.Join(dir, "queue"),
		Routing:   queue.Routing{Locals: []string{"example.org"}},
		Users:     Mailboxes{"joe": {Home: filepath.Join(dir, "joe")}},
		Listeners: Listeners{SMTP: l},
		// Remote delivery goes nowhere: the message stays queued.
		Remote: &smtpclient.Client{Routes: routesTo("127.0.0.1", 1)},
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
		s.Close()
	}()
	rcpt := func(to string) error {
		c, err := smtp.Dial(l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Mail("a@b.test"); err != nil {
			return err
		}
		return c.Rcpt(to)
	}
	if err := rcpt("joe@example.org"); err != nil {
		t.Fatalf("local recipient: %v", err)
	}
	if err := rcpt("joe-ext@EXAMPLE.org"); err != nil {
		t.Fatalf("local recipient with an extension: %v", err)
	}
	if err := rcpt("nobody@example.org"); err == nil {
		t.Fatal("unknown local recipient accepted")
	}
	if err := rcpt("x@elsewhere.test"); err == nil {
		t.Fatal("relay allowed without RelayClients")
	}
	cfg.SMTP.RelayClients = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if err := rcpt("x@elsewhere.test"); err != nil {
		t.Fatalf("relay refused to a RelayClients client: %v", err)
	}
	cfg.SMTP.RelayClients = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	if err := s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if err := rcpt("x@elsewhere.test"); err == nil {
		t.Fatal("relay allowed to a client outside RelayClients")
	}
}

func routesTo(host string, port int) *smtpclient.Routes {
	r := &smtpclient.Routes{}
	r.Set("", smtpclient.Route{Relay: host, Port: port})
	return r
}
