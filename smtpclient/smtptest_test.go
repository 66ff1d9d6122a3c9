package smtpclient_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/smtpclient"
	"github.com/qmailkit/qmailkit/smtpserver"
	"github.com/qmailkit/qmailkit/smtpserver/smtptest"
)

// Interop with the module's own SMTP server (smtpserver/smtptest): plain,
// STARTTLS (opportunistic and verified), AUTH, rejections, qmail mode.
func TestInteropSmtptest(t *testing.T) {
	const stored = "Subject: interop\n\n.leading dot\nx\r.\ncaf\xc3\xa9\nend\n"
	const body = ".leading dot\nx\n.\ncaf\xc3\xa9\nend\n"
	for _, tc := range []struct {
		name     string
		opts     []smtptest.Option
		route    smtpclient.Route
		compat   bool
		trust    bool
		tls      bool
		verified bool
		user     string
	}{
		{name: "plain", route: smtpclient.Route{TLS: smtpclient.TLSNone}},
		{name: "no STARTTLS offered", opts: nil},
		{name: "STARTTLS opportunistic", opts: []smtptest.Option{smtptest.TLS()}, tls: true},
		{name: "STARTTLS verified", opts: []smtptest.Option{smtptest.TLS()}, route: smtpclient.Route{TLS: smtpclient.TLSVerify, ServerName: "localhost"}, trust: true, tls: true, verified: true},
		{name: "AUTH over TLS", opts: []smtptest.Option{smtptest.TLS(), smtptest.Users(map[string]string{"app": "s3cret"})},
			route: smtpclient.Route{TLS: smtpclient.TLSRequire, Username: "app", Password: "s3cret"}, tls: true, user: "app"},
		{name: "qmail compat", opts: []smtptest.Option{smtptest.Compat()}, compat: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := smtptest.NewServer(t, tc.opts...)
			c := client(t, srv, tc.route)
			c.QmailCompat = tc.compat
			if tc.trust {
				c.TLSConfig = srv.ClientTLSConfig()
			}
			res, err := c.Deliver(t.Context(), "example.net", "s@example.org", []string{"a@example.net", "b@example.net"}, strings.NewReader(stored))
			if err != nil {
				t.Fatal(err)
			}
			if res.TLS != tc.tls || res.TLSVerified != tc.verified {
				t.Errorf("TLS %v verified %v, want %v %v", res.TLS, res.TLSVerified, tc.tls, tc.verified)
			}
			if rep := string(res.Report()); !strings.HasPrefix(rep, "r\x00r\x00K127.0.0.1 accepted message.\nRemote host said: 250 ") {
				t.Errorf("report %q", rep)
			}
			msgs := srv.WaitMessages(1, 5*time.Second)
			if len(msgs) != 1 {
				t.Fatalf("%d messages", len(msgs))
			}
			m := msgs[0]
			if m.From != "s@example.org" || strings.Join(m.To, ",") != "a@example.net,b@example.net" || m.Helo != "client.example" || m.TLS != tc.tls || m.User != tc.user {
				t.Errorf("envelope %q %q helo %q tls %v user %q", m.From, m.To, m.Helo, m.TLS, m.User)
			}
			if string(m.Body()) != body {
				t.Errorf("body %q, want %q", m.Body(), body)
			}
		})
	}
}

func TestInteropSmtptestRejections(t *testing.T) {
	srv := smtptest.NewServer(t)
	srv.FailRecipient("gone@example.net", smtpserver.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"})
	srv.FailRecipient("full@example.net", smtpserver.Reply{Code: 452, Enhanced: "4.2.2", Text: "mailbox full"})
	c := client(t, srv, smtpclient.Route{})
	c.Pool = &smtpclient.Pool{}
	defer c.Pool.Close()
	rcpts := []string{"ok@example.net", "gone@example.net", "full@example.net"}
	for range 2 {
		res, err := c.Deliver(t.Context(), "example.net", "s@example.org", rcpts, strings.NewReader("Subject: x\n\nbody\n"))
		if err != nil {
			t.Fatalf("%v: %q", err, res.Report())
		}
		r := res.Recipients
		if r[0].Err != nil || !qmailkit.IsPermanent(r[1].Err) || r[2].Err == nil || qmailkit.IsPermanent(r[2].Err) {
			t.Errorf("results %v / %v / %v", r[0].Err, r[1].Err, r[2].Err)
		}
		var e *smtpclient.Error
		if !errorsAs(r[1].Err, &e) || e.Code != 550 || e.Enhanced != "5.1.1" {
			t.Errorf("550 error %+v", e)
		}
	}
	if n := len(srv.WaitMessages(2, 5*time.Second)); n != 2 {
		t.Errorf("%d messages", n)
	}
}

func client(t *testing.T, srv *smtptest.Server, rt smtpclient.Route) *smtpclient.Client {
	_, port, _ := strings.Cut(srv.Addr, ":")
	rt.Relay = "127.0.0.1"
	rt.Port, _ = strconv.Atoi(port)
	routes := &smtpclient.Routes{}
	routes.Set("", rt)
	return &smtpclient.Client{Hostname: "client.example", Routes: routes, Timeouts: smtpclient.Timeouts{Remote: 10 * time.Second}}
}

func errorsAs(err error, target **smtpclient.Error) bool { return errors.As(err, target) }
