package webadmin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/vmail"
)

// login names of the env's sessions.
var logins = map[string][2]string{
	"admin":  {"admin", adminPassword},
	"sys":    {"sys@a.example", password("sys")},
	"pm-a":   {"postmaster@a.example", password("postmaster")},
	"boss":   {"boss@a.example", password("boss")},
	"joe":    {"joe@a.example", password("joe")},
	"pm-b":   {"postmaster@b.example", password("postmaster")},
	"bob":    {"bob@b.example", password("bob")},
	"nobody": {"", ""},
}

// TestAccess: every role on every kind of page, GET and POST; the rights
// come from the session, and a domain administrator gets 403 for any page
// or form of another domain.
func TestAccess(t *testing.T) {
	e := newEnv(t, nil)
	browsers := map[string]*browser{}
	for name, l := range logins {
		b := e.browser()
		if l[0] != "" {
			b.login(l[0], l[1])
		}
		browsers[name] = b
	}
	post := url.Values{} // every POST here would change something if allowed
	tests := []struct {
		who, method, path string
		want              int
	}{
		{"nobody", "GET", "/domains", http.StatusSeeOther},
		{"nobody", "GET", "/d/a.example/", http.StatusSeeOther},
		{"nobody", "GET", "/me", http.StatusSeeOther},
		{"nobody", "POST", "/d/a.example/mailboxes", http.StatusForbidden},
		{"nobody", "POST", "/domains", http.StatusForbidden},

		{"admin", "GET", "/domains", http.StatusOK},
		{"admin", "GET", "/d/a.example/", http.StatusOK},
		{"admin", "GET", "/d/b.example/", http.StatusOK},
		{"admin", "GET", "/d/a.example/m/sys", http.StatusOK},
		{"admin", "GET", "/d/b.example/m/bob", http.StatusOK},
		{"admin", "GET", "/me", http.StatusForbidden}, // no mailbox
		{"admin", "GET", "/queue", http.StatusNotFound},
		{"admin", "GET", "/d/none.example/", http.StatusNotFound},
		{"admin", "GET", "/d/a.example/m/nobody", http.StatusNotFound},

		{"sys", "GET", "/domains", http.StatusOK},
		{"sys", "GET", "/d/b.example/m/bob", http.StatusOK},
		{"sys", "GET", "/me", http.StatusOK},

		{"pm-a", "GET", "/d/a.example/", http.StatusOK},
		{"pm-a", "GET", "/d/a.example/m/joe", http.StatusOK},
		{"pm-a", "GET", "/d/b.example/", http.StatusForbidden},
		{"pm-a", "GET", "/domains", http.StatusForbidden},

		{"boss", "GET", "/d/a.example/", http.StatusOK},
		{"boss", "GET", "/d/A.Example/", http.StatusOK},
		{"boss", "GET", "/d/a.example/m/joe", http.StatusOK},
		{"boss", "GET", "/d/a.example/m/boss", http.StatusOK},
		{"boss", "GET", "/me", http.StatusOK},
		{"boss", "GET", "/d/b.example/", http.StatusForbidden},
		{"boss", "GET", "/d/B.EXAMPLE/", http.StatusForbidden},
		{"boss", "GET", "/d/b.example/m/bob", http.StatusForbidden},
		{"boss", "GET", "/d/none.example/", http.StatusForbidden}, // no oracle of other domains
		{"boss", "GET", "/d/a.example/m/sys", http.StatusForbidden},
		{"boss", "GET", "/domains", http.StatusForbidden},
		{"boss", "GET", "/queue", http.StatusForbidden},
		{"boss", "POST", "/domains", http.StatusForbidden},
		{"boss", "POST", "/d/b.example/mailboxes", http.StatusForbidden},
		{"boss", "POST", "/d/b.example/aliases", http.StatusForbidden},
		{"boss", "POST", "/d/b.example/aliases/delete", http.StatusForbidden},
		{"boss", "POST", "/d/b.example/catchall", http.StatusForbidden},
		{"boss", "POST", "/d/b.example/m/bob/password", http.StatusForbidden},
		{"boss", "POST", "/d/b.example/m/bob/settings", http.StatusForbidden},
		{"boss", "POST", "/d/b.example/m/bob/forward", http.StatusForbidden},
		{"boss", "POST", "/d/b.example/m/bob/autoresponder", http.StatusForbidden},
		{"boss", "POST", "/d/b.example/m/bob/delete", http.StatusForbidden},
		{"boss", "POST", "/d/b.example/delete", http.StatusForbidden},
		{"boss", "POST", "/d/a.example/delete", http.StatusForbidden},
		{"boss", "POST", "/d/a.example/limits", http.StatusForbidden},
		{"boss", "POST", "/d/a.example/aliasdomains", http.StatusForbidden},
		{"boss", "POST", "/d/a.example/m/sys/password", http.StatusForbidden},
		{"boss", "POST", "/d/a.example/m/sys/settings", http.StatusForbidden},
		{"boss", "POST", "/d/a.example/m/sys/delete", http.StatusForbidden},

		{"pm-b", "GET", "/d/b.example/", http.StatusOK},
		{"pm-b", "GET", "/d/a.example/", http.StatusForbidden},
		{"pm-b", "POST", "/d/a.example/m/joe/password", http.StatusForbidden},

		{"joe", "GET", "/me", http.StatusOK},
		{"joe", "GET", "/domains", http.StatusForbidden},
		{"joe", "GET", "/d/a.example/", http.StatusForbidden},
		{"joe", "GET", "/d/a.example/m/joe", http.StatusForbidden},
		{"joe", "POST", "/d/a.example/m/joe/settings", http.StatusForbidden},
		{"joe", "POST", "/d/a.example/m/boss/password", http.StatusForbidden},
		{"joe", "POST", "/d/a.example/mailboxes", http.StatusForbidden},
		{"joe", "POST", "/d/a.example/catchall", http.StatusForbidden},
		{"joe", "GET", "/queue", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.who+" "+tt.method+" "+tt.path, func(t *testing.T) {
			b := browsers[tt.who]
			var r response
			if tt.method == "GET" {
				r = b.get(tt.path)
			} else {
				form := url.Values{}
				for k, v := range post {
					form[k] = v
				}
				// What each form needs to succeed if it were allowed.
				form.Set("name", "intruder")
				form.Set("password", "Intruder-pw-9")
				form.Set("password2", "Intruder-pw-9")
				form.Set("new", "Intruder-pw-9")
				form.Set("new2", "Intruder-pw-9")
				form.Set("targets", "evil@evil.example")
				form.Set("target", "evil@evil.example")
				form.Set("to", "evil@evil.example")
				form.Set("confirm", "on")
				form.Set("flag_systemadmin", "on")
				r = b.post(tt.path, form)
			}
			if r.status != tt.want {
				t.Errorf("status %d, want %d\n%.400s", r.status, tt.want, r.body)
			}
		})
	}
	// Nothing the forbidden POSTs asked for happened.
	ctx := context.Background()
	for _, addr := range []string{"bob@b.example", "joe@a.example", "boss@a.example", "sys@a.example"} {
		m := e.mailbox(addr)
		name, _, _ := strings.Cut(addr, "@")
		if !e.hasPassword(addr, password(name)) {
			t.Errorf("%s: password changed", addr)
		}
		if len(m.Forward.To) != 0 {
			t.Errorf("%s: forward set: %v", addr, m.Forward)
		}
		if m.Flags&vmail.SystemAdmin != 0 && addr != "sys@a.example" {
			t.Errorf("%s: made a system administrator", addr)
		}
	}
	for _, d := range []string{"a.example", "b.example"} {
		if _, err := e.mgr.Mailbox(ctx, "intruder@"+d); err == nil {
			t.Errorf("intruder@%s was created", d)
		}
		if as, _ := e.mgr.Aliases(ctx, d); len(as) != 0 {
			t.Errorf("%s: aliases made: %v", d, as)
		}
		if e.domain(d).CatchAll != "" {
			t.Errorf("%s: catch-all set", d)
		}
	}
}

// TestFormValuesDoNotChooseTheDomain: a domain administrator's form with
// a domain (or address) of its own naming another domain still acts on
// the path's domain, which the session was checked against.
func TestFormValuesDoNotChooseTheDomain(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.login("boss@a.example", password("boss"))
	r := b.post("/d/a.example/mailboxes", url.Values{
		"name": {"new"}, "password": {"Good-pass-77"}, "password2": {"Good-pass-77"},
		"domain": {"b.example"}, "address": {"new@b.example"}, "dom": {"b.example"},
	})
	if r.status != http.StatusSeeOther {
		t.Fatalf("add mailbox: %d\n%s", r.status, r.body)
	}
	e.mailbox("new@a.example")
	if _, err := e.mgr.Mailbox(context.Background(), "new@b.example"); err == nil {
		t.Error("new@b.example was created")
	}
	// A name with @ is refused, not taken as an address elsewhere.
	r = b.post("/d/a.example/mailboxes", url.Values{
		"name": {"x@b.example"}, "password": {"Good-pass-77"}, "password2": {"Good-pass-77"},
	})
	if r.status != http.StatusUnprocessableEntity {
		t.Errorf("name with @: %d", r.status)
	}
	// A domain administrator cannot promote a mailbox to system
	// administrator nor itself: the flag is not its to set.
	r = b.post("/d/a.example/m/joe/settings", url.Values{"quota": {"NOQUOTA"}, "flag_systemadmin": {"on"}, "flag_override": {"on"}, "flag_domainadmin": {"on"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("settings: %d\n%s", r.status, r.body)
	}
	if f := e.mailbox("joe@a.example").Flags; f != vmail.DomainAdmin {
		t.Errorf("joe's flags %#x, want only DomainAdmin", f)
	}
}

// TestForbiddenPageLogout: the 403 page's logout form carries the
// session's token, so one can log out from it.
func TestForbiddenPageLogout(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.login("joe@a.example", password("joe"))
	b.csrf = ""
	if r := b.get("/domains"); r.status != http.StatusForbidden || b.csrf == "" {
		t.Fatalf("403 page: %d, token %q", r.status, b.csrf)
	}
	if r := b.post("/logout", nil); r.status != http.StatusSeeOther {
		t.Errorf("logout from the 403 page: %d", r.status)
	}
	if r := b.get("/me"); r.status != http.StatusSeeOther {
		t.Errorf("after logout: %d", r.status)
	}
}

// TestAliasDomainLogin: a login at an alias domain is the real domain's
// mailbox, with the real domain's pages and no others.
func TestAliasDomainLogin(t *testing.T) {
	e := newEnv(t, nil)
	if err := e.mgr.AddAliasDomain(context.Background(), "alias-a.example", "a.example"); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.login("Boss@Alias-A.example", password("boss"))
	for path, want := range map[string]int{
		"/d/a.example/":       http.StatusOK,
		"/d/alias-a.example/": http.StatusForbidden,
		"/d/b.example/":       http.StatusForbidden,
		"/me":                 http.StatusOK,
	} {
		if r := b.get(path); r.status != want {
			t.Errorf("GET %s: %d, want %d", path, r.status, want)
		}
	}
	if r := b.get("/me"); !strings.Contains(r.body, "<h1>boss@a.example</h1>") {
		t.Error("the session is not the real domain's mailbox")
	}
}

// TestConcurrent: sessions of several browsers at once (run with -race).
func TestConcurrent(t *testing.T) {
	e := newEnv(t, nil)
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for i := range 8 {
		wg.Go(func() {
			b := e.browser()
			b.get("/login")
			user := []string{"joe@a.example", "boss@a.example"}[i%2]
			r := b.do("POST", "/login", url.Values{"user": {user}, "password": {password(strings.Split(user, "@")[0])}, "csrf": {b.csrf}})
			if r.status != http.StatusSeeOther {
				errs <- fmt.Sprintf("login %s: %d", user, r.status)
				return
			}
			b.do("GET", "/me", nil)
			for j := range 5 {
				form := url.Values{"to": {fmt.Sprintf("x%d@y.example", j)}, "csrf": {b.csrf}}
				if r := b.do("POST", "/me/forward", form); r.status != http.StatusSeeOther {
					errs <- fmt.Sprintf("%s forward: %d", user, r.status)
				}
				if r := b.do("GET", "/me", nil); r.status != http.StatusOK {
					errs <- fmt.Sprintf("%s GET /me: %d", user, r.status)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestNoSelfDemotion: an administrator's own settings keep its
// administrator's flag, whatever the form says, and the page shows the
// box it may not change as disabled.
func TestNoSelfDemotion(t *testing.T) {
	e := newEnv(t, nil)
	for _, tt := range []struct {
		login, page string
		keep        vmail.Flags
		box         string
	}{
		{"boss@a.example", "/d/a.example/m/boss", vmail.DomainAdmin, "set-domainadmin"},
		{"sys@a.example", "/d/a.example/m/sys", vmail.SystemAdmin, "set-systemadmin"},
	} {
		b := e.browser()
		b.login(tt.login, password(strings.Split(tt.login, "@")[0]))
		r := b.get(tt.page)
		if !regexp.MustCompile(`id="` + tt.box + `"[^>]* disabled`).MatchString(r.body) {
			t.Errorf("%s: the box %s is not disabled", tt.login, tt.box)
		}
		if r := b.post(tt.page+"/settings", url.Values{"quota": {"NOQUOTA"}, "flag_nopop": {"on"}}); r.status != http.StatusSeeOther {
			t.Fatalf("%s: settings: %d", tt.login, r.status)
		}
		if f := e.mailbox(tt.login).Flags; f != tt.keep|vmail.NoPOP {
			t.Errorf("%s: flags %#x, want %#x", tt.login, f, tt.keep|vmail.NoPOP)
		}
	}
}

// TestSessionFollowsTheRecords: a session's rights come from the
// mailbox's record at each request.
func TestSessionFollowsTheRecords(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	b := e.browser()
	b.login("boss@a.example", password("boss"))
	if err := e.mgr.SetFlags(ctx, "boss@a.example", 0); err != nil {
		t.Fatal(err)
	}
	if r := b.get("/d/a.example/"); r.status != http.StatusForbidden {
		t.Errorf("demoted domain administrator: %d", r.status)
	}
	if r := b.get("/me"); r.status != http.StatusOK {
		t.Errorf("demoted domain administrator's own page: %d", r.status)
	}
	// A password changed elsewhere ends the session.
	if err := e.mgr.SetPassword(ctx, "boss@a.example", "Other-pass-55"); err != nil {
		t.Fatal(err)
	}
	if r := b.get("/me"); r.status != http.StatusSeeOther || r.header.Get("Location") != "/login" {
		t.Errorf("after a password change elsewhere: %d %s", r.status, r.header.Get("Location"))
	}
	// A deleted mailbox's session ends.
	j := e.browser()
	j.login("joe@a.example", password("joe"))
	if err := e.mgr.DeleteMailbox(ctx, "joe@a.example"); err != nil {
		t.Fatal(err)
	}
	if r := j.post("/me/forward", url.Values{"to": {"x@y.example"}}); r.status != http.StatusForbidden {
		t.Errorf("deleted mailbox's POST: %d", r.status)
	}
}

// TestCSRF: a POST without the session's token, with another session's,
// or from another origin is refused and changes nothing.
func TestCSRF(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.login("boss@a.example", password("boss"))
	other := e.browser()
	other.login("postmaster@a.example", password("postmaster"))
	add := func(name string) url.Values {
		return url.Values{"name": {name}, "password": {"Good-pass-77"}, "password2": {"Good-pass-77"}}
	}
	tests := []struct {
		name   string
		csrf   string // "-" for the session's own
		header map[string]string
		want   int
	}{
		{"missing", "", nil, http.StatusForbidden},
		{"wrong", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", nil, http.StatusForbidden},
		{"another session's", other.csrf, nil, http.StatusForbidden},
		{"cross-origin", "-", map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"null origin", "-", map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"cross-site referer", "-", map[string]string{"Referer": "http://evil.example/x"}, http.StatusForbidden},
		{"cross-site fetch", "-", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"same-site fetch", "-", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"same origin", "-", map[string]string{"Origin": e.ts.URL, "Sec-Fetch-Site": "same-origin"}, http.StatusSeeOther},
		{"same referer", "-", map[string]string{"Referer": e.ts.URL + "/d/a.example/"}, http.StatusSeeOther},
		{"no header", "-", nil, http.StatusSeeOther},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "csrf" + string(rune('a'+i))
			form := add(name)
			if tt.csrf != "-" {
				form["csrf"] = []string{tt.csrf}
			}
			b.header = http.Header{}
			for k, v := range tt.header {
				b.header.Set(k, v)
			}
			r := b.post("/d/a.example/mailboxes", form)
			b.header = http.Header{}
			if r.status != tt.want {
				t.Fatalf("status %d, want %d\n%.300s", r.status, tt.want, r.body)
			}
			_, err := e.mgr.Mailbox(context.Background(), name+"@a.example")
			if created := err == nil; created != (tt.want == http.StatusSeeOther) {
				t.Errorf("mailbox created: %v", created)
			}
		})
	}
	t.Run("logout", func(t *testing.T) {
		if r := b.post("/logout", url.Values{"csrf": {""}}); r.status != http.StatusForbidden {
			t.Errorf("logout without token: %d", r.status)
		}
		if r := b.get("/me"); r.status != http.StatusOK {
			t.Errorf("session ended by a logout without token: %d", r.status)
		}
	})
	t.Run("login", func(t *testing.T) {
		n := e.browser()
		n.get("/login")
		r := n.post("/login", url.Values{"user": {"joe@a.example"}, "password": {password("joe")}, "csrf": {""}})
		if r.status != http.StatusForbidden {
			t.Errorf("login without token: %d", r.status)
		}
		delete(n.cookies, "qmailkit-login")
		r = n.post("/login", url.Values{"user": {"joe@a.example"}, "password": {password("joe")}})
		if r.status != http.StatusForbidden {
			t.Errorf("login without the token's cookie: %d", r.status)
		}
		if _, ok := n.cookies["qmailkit-session"]; ok {
			t.Error("a session cookie was set")
		}
	})
}

// TestEscaped: a script typed in any field is shown as text, never run:
// in the form shown back with an error, and in the pages that show what
// was stored.
func TestEscaped(t *testing.T) {
	e := newEnv(t, nil)
	const script = `<script>alert("x")</script>`
	b := e.browser()
	b.login("admin", adminPassword)
	check := func(t *testing.T, r response) {
		t.Helper()
		if strings.Contains(r.body, "<script") {
			t.Errorf("unescaped script in the page:\n%s", r.body)
		}
		if !strings.Contains(r.body, "&lt;script&gt;") {
			t.Errorf("the script is not shown escaped:\n%.2000s", r.body)
		}
	}
	posts := []struct {
		path string
		form url.Values
		want int
	}{
		{"/domains", url.Values{"name": {script}}, 422},
		{"/d/a.example/mailboxes", url.Values{"name": {script}, "realname": {script}, "quota": {script}}, 422},
		{"/d/a.example/aliases", url.Values{"name": {script}, "targets": {script}}, 422},
		{"/d/a.example/aliases", url.Values{"name": {"x"}, "targets": {script}}, 422},
		{"/d/a.example/catchall", url.Values{"target": {script}}, 422},
		{"/d/a.example/limits", url.Values{"maxmailboxes": {script}, "defaultquota": {script}}, 422},
		{"/d/a.example/aliasdomains", url.Values{"alias": {script}}, 422},
		{"/d/a.example/delete", url.Values{"confirm": {script}}, 422},
		{"/d/a.example/m/joe/settings", url.Values{"realname": {script}, "quota": {script}}, 422},
		{"/d/a.example/m/joe/forward", url.Values{"to": {script}}, 422},
		{"/d/a.example/m/joe/autoresponder", url.Values{"subject": {script}, "body": {script}, "days": {script}, "from": {script}}, 422},
	}
	for _, p := range posts {
		t.Run(p.path, func(t *testing.T) {
			r := b.post(p.path, p.form)
			if r.status != p.want {
				t.Fatalf("status %d, want %d", r.status, p.want)
			}
			check(t, r)
		})
	}
	// Stored, then shown on the pages that list them.
	t.Run("stored", func(t *testing.T) {
		for _, p := range []struct {
			path string
			form url.Values
		}{
			{"/d/a.example/m/joe/settings", url.Values{"realname": {script}}},
			{"/d/a.example/m/joe/autoresponder", url.Values{"enabled": {"on"}, "subject": {script}, "body": {script}}},
		} {
			if r := b.post(p.path, p.form); r.status != http.StatusSeeOther {
				t.Fatalf("%s: %d\n%s", p.path, r.status, r.body)
			}
		}
		if m := e.mailbox("joe@a.example"); m.RealName != script || m.Autoresponder.Subject != script {
			t.Fatalf("not stored as typed: %+v", m)
		}
		check(t, b.get("/d/a.example/"))
		check(t, b.get("/d/a.example/m/joe"))
		j := e.browser()
		j.login("joe@a.example", password("joe"))
		check(t, j.get("/me"))
	})
	t.Run("login", func(t *testing.T) {
		n := e.browser()
		n.get("/login")
		r := n.post("/login", url.Values{"user": {script + "@a.example"}, "password": {"x"}})
		check(t, r)
	})
}

// TestValidation: each bad value is refused with its message next to its
// field and nothing changes; a good form is answered with a redirect
// (Post/Redirect/Get).
func TestValidation(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.login("boss@a.example", password("boss"))
	good := url.Values{"name": {"fred"}, "password": {"Good-pass-77"}, "password2": {"Good-pass-77"}, "quota": {"50M"}}
	with := func(kv ...string) url.Values {
		v := url.Values{}
		for k, x := range good {
			v[k] = x
		}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	tests := []struct {
		name  string
		form  url.Values
		field string // the id of the field the message is next to
		msg   string
	}{
		{"bad name", with("name", "Fred Smith"), "mb-name", "Use 2 to 64 lower-case"},
		{"name with NUL", with("name", "fr\x00ed"), "mb-name", "Use 2 to 64 lower-case"},
		{"long name", with("name", strings.Repeat("a", 65)), "mb-name", "Use 2 to 64 lower-case"},
		{"existing mailbox", with("name", "joe"), "mb-name", "taken already"},
		{"weak password", with("password", "short", "password2", "short"), "mb-password", "at least 8"},
		{"password with the name", with("password", "xxfredxx9", "password2", "xxfredxx9"), "mb-password", "mailbox&#39;s name"},
		{"simple password", with("password", "password123", "password2", "password123"), "mb-password", "too simple"},
		{"passwords differ", with("password2", "Good-pass-78"), "mb-password2", "differ"},
		{"bad quota", with("quota", "50X"), "mb-quota", "NOQUOTA"},
		{"negative quota", with("quota", "-5M"), "mb-quota", "NOQUOTA"},
		{"huge quota", with("quota", "99999999999999999999M"), "mb-quota", "NOQUOTA"},
		{"real name with newline", with("realname", "a\nb"), "mb-realname", "one line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.post("/d/a.example/mailboxes", tt.form)
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", r.status)
			}
			// The message is in the element the field points to.
			i := strings.Index(r.body, `id="`+tt.field+`-err"`)
			if i < 0 {
				t.Fatalf("no error next to %s:\n%s", tt.field, r.body)
			}
			if end := strings.Index(r.body[i:], "</span>"); !strings.Contains(r.body[i:i+end], tt.msg) {
				t.Errorf("message next to %s is %q, want %q", tt.field, r.body[i:i+end], tt.msg)
			}
			if !strings.Contains(r.body, `aria-errormessage="`+tt.field+`-err"`) {
				t.Errorf("field %s not marked invalid", tt.field)
			}
			if strings.Contains(r.body, "Good-pass-77") || strings.Contains(r.body, `value="short"`) {
				t.Error("a password is shown back")
			}
		})
	}
	if ms, _ := e.mgr.Mailboxes(context.Background(), "a.example", "", 0); len(ms) != 4 {
		t.Errorf("%d mailboxes after refused forms, want 4", len(ms))
	}
	r := b.post("/d/a.example/mailboxes", good)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/d/a.example/m/fred" {
		t.Fatalf("good form: %d %q", r.status, r.header.Get("Location"))
	}
	if q := e.mailbox("fred@a.example").Quota; q != (vmail.Quota{Bytes: 50 << 20}) {
		t.Errorf("quota %+v", q)
	}
	r = b.get("/d/a.example/m/fred")
	if !strings.Contains(r.body, "Mailbox fred@a.example added.") {
		t.Error("no message after the redirect")
	}
	if r = b.get("/d/a.example/m/fred"); strings.Contains(r.body, "added.") {
		t.Error("the message is shown twice")
	}
	// A limit of the domain.
	if err := e.mgr.SetLimits(context.Background(), "a.example", vmail.Limits{MaxMailboxes: 5}); err != nil {
		t.Fatal(err)
	}
	r = b.post("/d/a.example/mailboxes", with("name", "sixth"))
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, "limit is reached") {
		t.Errorf("over the limit: %d", r.status)
	}
}

// TestMailboxForms: forwarding, autoresponder and settings, as an
// administrator and as the user.
func TestMailboxForms(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.login("boss@a.example", password("boss"))
	tests := []struct {
		name  string
		path  string
		form  url.Values
		want  int
		check func(vmail.Mailbox) bool
	}{
		{"forward", "/d/a.example/m/joe/forward", url.Values{"to": {"x@other.example, bob\n y@z.example"}, "keep": {"on"}}, 303,
			func(m vmail.Mailbox) bool {
				return strings.Join(m.Forward.To, " ") == "x@other.example bob@a.example y@z.example" && m.Forward.KeepCopy
			}},
		{"forward to a program", "/d/a.example/m/joe/forward", url.Values{"to": {"|/bin/sh"}}, 422, nil},
		{"forward to a file", "/d/a.example/m/joe/forward", url.Values{"to": {"/etc/passwd"}}, 422, nil},
		{"too many forwards", "/d/a.example/m/joe/forward", url.Values{"to": {strings.Repeat("a@b.example ", 101)}}, 422, nil},
		{"forward off", "/d/a.example/m/joe/forward", url.Values{"to": {""}, "keep": {"on"}}, 303,
			func(m vmail.Mailbox) bool { return len(m.Forward.To) == 0 && !m.Forward.KeepCopy }},
		{"autoresponder", "/d/a.example/m/joe/autoresponder", url.Values{"enabled": {"on"}, "subject": {"Away"}, "body": {"Back soon.\r\n"}, "days": {"3"}, "from": {"2026-12-20"}, "until": {"2027-01-02"}}, 303,
			func(m vmail.Mailbox) bool {
				a := m.Autoresponder
				return a.Enabled && a.Subject == "Away" && a.Body == "Back soon.\n" && a.Interval == 3*24*time.Hour &&
					a.From.Equal(time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC)) && a.Until.Equal(time.Date(2027, 1, 3, 0, 0, 0, 0, time.UTC))
			}},
		{"autoresponder without subject", "/d/a.example/m/joe/autoresponder", url.Values{"enabled": {"on"}, "body": {"x"}}, 422, nil},
		{"subject with a header", "/d/a.example/m/joe/autoresponder", url.Values{"enabled": {"on"}, "subject": {"Away\r\nBcc: x@y.example"}, "body": {"x"}}, 422, nil},
		{"body with NUL", "/d/a.example/m/joe/autoresponder", url.Values{"enabled": {"on"}, "subject": {"a"}, "body": {"x\x00y"}}, 422, nil},
		{"huge body", "/d/a.example/m/joe/autoresponder", url.Values{"enabled": {"on"}, "subject": {"a"}, "body": {strings.Repeat("x", maxBody+1)}}, 422, nil},
		{"until before from", "/d/a.example/m/joe/autoresponder", url.Values{"enabled": {"on"}, "subject": {"a"}, "body": {"b"}, "from": {"2027-01-02"}, "until": {"2026-12-20"}}, 422, nil},
		{"bad date", "/d/a.example/m/joe/autoresponder", url.Values{"enabled": {"on"}, "subject": {"a"}, "body": {"b"}, "from": {"20/12/2026"}}, 422, nil},
		{"settings", "/d/a.example/m/joe/settings", url.Values{"realname": {"Joe Bloggs"}, "quota": {"10MB,500C"}, "flag_nopop": {"on"}}, 303,
			func(m vmail.Mailbox) bool {
				return m.RealName == "Joe Bloggs" && m.Quota == vmail.Quota{Bytes: 10 << 20, Count: 500} && m.Flags == vmail.NoPOP
			}},
		{"delete postmaster", "/d/a.example/m/postmaster/delete", url.Values{"confirm": {"on"}}, 422, nil},
		{"delete oneself", "/d/a.example/m/boss/delete", url.Values{"confirm": {"on"}}, 422, nil},
		{"delete unconfirmed", "/d/a.example/m/joe/delete", url.Values{}, 422, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.mailbox("joe@a.example")
			r := b.post(tt.path, tt.form)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d\n%.3000s", r.status, tt.want, r.body)
			}
			m := e.mailbox("joe@a.example")
			if tt.check != nil && !tt.check(m) {
				t.Errorf("record %+v", m)
			}
			if tt.want != 303 && (m.Forward.To == nil) != (before.Forward.To == nil) {
				t.Errorf("a refused form changed the record")
			}
		})
	}
	// The page shows what was stored, in the form's syntax.
	r := b.get("/d/a.example/m/joe")
	for _, want := range []string{`value="10M,500C"`, `value="2026-12-20"`, `value="2027-01-02"`, `value="3"`, "Back soon."} {
		if !strings.Contains(r.body, want) {
			t.Errorf("mailbox page lacks %s", want)
		}
	}
	if r := b.post("/d/a.example/m/joe/delete", url.Values{"confirm": {"on"}}); r.status != 303 {
		t.Fatalf("delete: %d", r.status)
	}
	if _, err := e.mgr.Mailbox(context.Background(), "joe@a.example"); err == nil {
		t.Error("joe not deleted")
	}
}

// TestOwnPassword: the user's own password change asks for the old one,
// the new one twice, obeys NoPasswordChange (the mailbox's and the
// domain's), keeps its session and ends the mailbox's others.
func TestOwnPassword(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	b := e.browser()
	b.login("joe@a.example", password("joe"))
	other := e.browser()
	other.login("joe@a.example", password("joe"))
	const newPass = "n3w-Secret-pass"
	tests := []struct {
		name       string
		form       url.Values
		want       int
		field, msg string
	}{
		{"wrong old", url.Values{"old": {"nope-nope-1"}, "new": {newPass}, "new2": {newPass}}, 422, "pw-old", "Wrong password"},
		{"no old", url.Values{"new": {newPass}, "new2": {newPass}}, 422, "pw-old", "current password"},
		{"differ", url.Values{"old": {password("joe")}, "new": {newPass}, "new2": {newPass + "x"}}, 422, "pw-new2", "differ"},
		{"weak", url.Values{"old": {password("joe")}, "new": {"joejoejoe1"}, "new2": {"joejoejoe1"}}, 422, "pw-new", "name"},
		{"empty", url.Values{"old": {password("joe")}}, 422, "pw-new", "Enter a password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.post("/me/password", tt.form)
			if r.status != tt.want {
				t.Fatalf("status %d", r.status)
			}
			i := strings.Index(r.body, `id="`+tt.field+`-err"`)
			if i < 0 || !strings.Contains(r.body[i:i+200], tt.msg) {
				t.Errorf("no %q next to %s:\n%s", tt.msg, tt.field, r.body)
			}
		})
	}
	if !e.hasPassword("joe@a.example", password("joe")) {
		t.Fatal("password changed by a refused form")
	}
	r := b.post("/me/password", url.Values{"old": {password("joe")}, "new": {newPass}, "new2": {newPass}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("change: %d\n%s", r.status, r.body)
	}
	if !e.hasPassword("joe@a.example", newPass) {
		t.Fatal("password not changed")
	}
	if r := b.get("/me"); r.status != http.StatusOK || !strings.Contains(r.body, "Password changed.") {
		t.Errorf("own session after the change: %d", r.status)
	}
	if r := other.get("/me"); r.status != http.StatusSeeOther {
		t.Errorf("other session after the change: %d", r.status)
	}
	n := e.browser()
	n.login("joe@a.example", newPass)

	// NoPasswordChange, the mailbox's, then the domain's.
	for _, set := range []func() error{
		func() error { return e.mgr.SetFlags(ctx, "joe@a.example", vmail.NoPasswordChange) },
		func() error {
			if err := e.mgr.SetFlags(ctx, "joe@a.example", 0); err != nil {
				return err
			}
			return e.mgr.SetLimits(ctx, "a.example", vmail.Limits{Disabled: vmail.NoPasswordChange})
		},
	} {
		if err := set(); err != nil {
			t.Fatal(err)
		}
		if r := n.get("/me"); !strings.Contains(r.body, "may not be changed") || strings.Contains(r.body, `action="/me/password"`) {
			t.Errorf("locked password: the form is offered")
		}
		r := n.post("/me/password", url.Values{"old": {newPass}, "new": {"An0ther-pass"}, "new2": {"An0ther-pass"}})
		if r.status != http.StatusForbidden {
			t.Errorf("locked password change: %d", r.status)
		}
		if !e.hasPassword("joe@a.example", newPass) {
			t.Fatal("locked password changed")
		}
	}
	// Override lifts the domain's.
	if err := e.mgr.SetFlags(ctx, "joe@a.example", vmail.Override); err != nil {
		t.Fatal(err)
	}
	if r := n.post("/me/password", url.Values{"old": {newPass}, "new": {"An0ther-pass"}, "new2": {"An0ther-pass"}}); r.status != http.StatusSeeOther {
		t.Errorf("with Override: %d", r.status)
	}
}

// TestSystemAdminPages: domains, limits, alias domains, deletion.
func TestSystemAdminPages(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.login("admin", adminPassword)
	steps := []struct {
		name string
		path string
		form url.Values
		want int
	}{
		{"add domain", "/domains", url.Values{"name": {"C.Example"}}, 303},
		{"add existing domain", "/domains", url.Values{"name": {"c.example"}}, 422},
		{"add bad domain", "/domains", url.Values{"name": {"c..example"}}, 422},
		{"add alias domain", "/d/c.example/aliasdomains", url.Values{"alias": {"c.test"}}, 303},
		{"add alias domain that is a domain", "/d/c.example/aliasdomains", url.Values{"alias": {"a.example"}}, 422},
		{"limits", "/d/c.example/limits", url.Values{"maxmailboxes": {"10"}, "maxforwards": {"2"}, "defaultquota": {"20M"}, "disable_nopop": {"on"}, "disable_systemadmin": {"on"}}, 303},
		{"bad limits", "/d/c.example/limits", url.Values{"maxmailboxes": {"-1"}}, 422},
		{"catch-all", "/d/c.example/catchall", url.Values{"target": {"@a.example"}}, 303},
		{"bad catch-all", "/d/c.example/catchall", url.Values{"target": {"@"}}, 422},
		{"delete alias domain", "/d/c.example/aliasdomains/delete", url.Values{"alias": {"c.test"}}, 303},
		{"delete unknown alias domain", "/d/c.example/aliasdomains/delete", url.Values{"alias": {"a.example"}}, 404},
		{"delete without confirmation", "/d/b.example/delete", url.Values{"confirm": {"a.example"}}, 422},
	}
	for _, tt := range steps {
		t.Run(tt.name, func(t *testing.T) {
			if r := b.post(tt.path, tt.form); r.status != tt.want {
				t.Fatalf("status %d, want %d\n%.2000s", r.status, tt.want, r.body)
			}
		})
	}
	d := e.domain("c.example")
	want := vmail.Limits{MaxMailboxes: 10, MaxForwards: 2, DefaultQuota: vmail.Quota{Bytes: 20 << 20}, Disabled: vmail.NoPOP}
	if d.Limits != want || d.CatchAll != "@a.example" || len(d.Aliases) != 0 {
		t.Errorf("domain %+v", d)
	}
	if r := b.get("/d/c.example/"); !strings.Contains(r.body, `id="lim-nopop" name="disable_nopop" type="checkbox" value="on" checked`) {
		t.Error("the limits form does not show the stored flags")
	}
	if r := b.post("/d/b.example/delete", url.Values{"confirm": {"B.example"}}); r.status != 303 {
		t.Fatalf("delete domain: %d", r.status)
	}
	if _, err := e.mgr.Domain(context.Background(), "b.example"); err == nil {
		t.Error("b.example not deleted")
	}
	// A forward over the domain's limit of 2.
	if _, err := e.mgr.AddMailbox(context.Background(), "uu@c.example", "Good-pass-77"); err != nil {
		t.Fatal(err)
	}
	if r := b.post("/d/c.example/m/uu/forward", url.Values{"to": {"a@x.example b@x.example c@x.example"}}); r.status != 422 {
		t.Errorf("forward over the limit: %d", r.status)
	}
	// Aliases.
	if r := b.post("/d/c.example/aliases", url.Values{"name": {"sales"}, "targets": {"uu\nboss@a.example"}}); r.status != 303 {
		t.Fatalf("add alias: %d", r.status)
	}
	if as, _ := e.mgr.Aliases(context.Background(), "c.example"); len(as) != 1 || strings.Join(as[0].Targets, " ") != "uu@c.example boss@a.example" {
		t.Errorf("aliases %+v", as)
	}
	if r := b.post("/d/c.example/aliases", url.Values{"name": {"uu"}, "targets": {"x@y.example"}}); r.status != 422 {
		t.Errorf("alias over a mailbox: %d", r.status)
	}
	if r := b.post("/d/c.example/aliases/delete", url.Values{"name": {"sales"}}); r.status != 303 {
		t.Errorf("delete alias: %d", r.status)
	}
	if r := b.post("/d/c.example/aliases/delete", url.Values{"name": {"sales"}}); r.status != 404 {
		t.Errorf("delete alias again: %d", r.status)
	}
}

// TestManagerFailure: a failure of the store is a 500 page that says to
// try later, never a change half shown as done, and is logged.
func TestManagerFailure(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.login("admin", adminPassword)
	e.fail.setErr(errStoreDown)
	if r := b.get("/domains"); r.status != http.StatusInternalServerError || !strings.Contains(r.body, "try again later") {
		t.Errorf("GET: %d", r.status)
	}
	n := e.browser()
	n.get("/login")
	if r := n.post("/login", url.Values{"user": {"joe@a.example"}, "password": {password("joe")}}); r.status != http.StatusServiceUnavailable {
		t.Errorf("login with the store down: %d", r.status)
	}
	if !strings.Contains(e.logs.String(), "store down") {
		t.Error("the failure is not logged")
	}
}

var errStoreDown = &tempError{"fake: store down"}

type tempError struct{ s string }

func (e *tempError) Error() string { return e.s }
