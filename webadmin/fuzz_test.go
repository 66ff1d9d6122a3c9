package webadmin

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/vmail"
)

// FuzzParseQuota: a quota read is written back to one that reads the
// same; nothing panics.
func FuzzParseQuota(f *testing.F) {
	for _, s := range []string{"", "NOQUOTA", "50M", "10MB,500C", "100K", "52428800", "0", "500C", "1S", "-1", "9223372036854775807M", "M", ",", "5C,5C"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := vmail.ParseQuota(s)
		if err != nil {
			return
		}
		if q.Bytes < 0 || q.Count < 0 {
			t.Fatalf("%q: negative quota %+v", s, q)
		}
		back, err := vmail.ParseQuota(formatQuota(q))
		if err != nil || back != q {
			t.Fatalf("%q: %+v written %q read %+v, %v", s, q, formatQuota(q), back, err)
		}
	})
}

// FuzzParseTargets: what a forward or alias form gives is addresses
// only: no program, file or control character, at most maxTargets.
func FuzzParseTargets(f *testing.F) {
	for _, s := range []string{"a@b.example", "joe, bob;x@y.example\n", "|/bin/sh", "/etc/passwd", "&x@y.example", "a\x00@b.example", "@", "a@", "a@b..c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := parseTargets(s, "d.example")
		if err != nil {
			return
		}
		if len(ts) > maxTargets {
			t.Fatalf("%d targets", len(ts))
		}
		for _, a := range ts {
			if !addressOK(a) || !printable(a) || strings.ContainsAny(a[:1], "|/&") || strings.ContainsAny(a, " ,;\n\r\t") {
				t.Fatalf("%q gave %q", s, a)
			}
		}
	})
}

// FuzzForms posts any values to the forms of a domain administrator: the
// answer is a redirect or the form again (never a failure), and nothing
// typed comes back unescaped.
func FuzzForms(f *testing.F) {
	f.Add("x", "Good-pass-77", "50M", "a@b.example", "Away")
	f.Add("<b>", "<script>", "<i>", "<a href=x>", "\"'&")
	f.Add("", "", "", "", "")
	e := newEnvNoServer(f, nil)
	b := e.browser()
	b.login("boss@a.example", password("boss"))
	f.Fuzz(func(t *testing.T, name, pass, quota, to, subject string) {
		e.t = t // the browser's failures are this run's
		for _, p := range []struct {
			path string
			form url.Values
		}{
			{"/d/a.example/mailboxes", url.Values{"name": {name}, "password": {pass}, "password2": {pass}, "quota": {quota}, "realname": {subject}}},
			{"/d/a.example/aliases", url.Values{"name": {name}, "targets": {to}}},
			{"/d/a.example/catchall", url.Values{"target": {to}}},
			{"/d/a.example/m/joe/settings", url.Values{"realname": {name}, "quota": {quota}}},
			{"/d/a.example/m/joe/forward", url.Values{"to": {to}}},
			{"/d/a.example/m/joe/autoresponder", url.Values{"enabled": {"on"}, "subject": {subject}, "body": {to}, "days": {quota}, "from": {name}}},
		} {
			r := b.post(p.path, p.form)
			if r.status != http.StatusSeeOther && r.status != http.StatusUnprocessableEntity {
				t.Fatalf("%s %v: status %d", p.path, p.form, r.status)
			}
			if strings.Contains(r.body, "<script") || strings.Contains(r.body, "<b>") || strings.Contains(r.body, "<i>") {
				t.Fatalf("%s %v: unescaped markup", p.path, p.form)
			}
		}
	})
}
