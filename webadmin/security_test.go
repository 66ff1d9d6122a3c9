package webadmin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/qmailkit/qmailkit/authlimit"
)

// TestThrottled: after 20 wrong passwords from one client, the right
// password is refused too, with a message, until the Limiter's delay has
// passed; with an authlimit.Limiter at its defaults, in a synctest bubble
// whose clock only moves when everything waits.
func TestThrottled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnvNoServer(t, func(o *Options) {
			o.Limiter = &authlimit.Limiter{Logger: o.Logger}
		})
		b := e.browser()
		throttled := 0
		for i := range 20 {
			b.get("/login")
			r := b.post("/login", url.Values{"user": {"joe@a.example"}, "password": {"guess-" + string(rune('a'+i)) + "-123"}})
			switch r.status {
			case http.StatusOK:
				if !strings.Contains(r.body, "Wrong address or password.") {
					t.Fatalf("attempt %d: no message", i)
				}
			case http.StatusTooManyRequests:
				throttled++
				if !strings.Contains(r.body, "Too many failed logins") {
					t.Fatalf("attempt %d: no message", i)
				}
			default:
				t.Fatalf("attempt %d: status %d", i, r.status)
			}
		}
		if throttled == 0 {
			t.Fatal("20 wrong passwords, none throttled")
		}
		start := time.Now()
		b.get("/login")
		r := b.post("/login", url.Values{"user": {"joe@a.example"}, "password": {password("joe")}})
		if r.status != http.StatusTooManyRequests || !strings.Contains(r.body, "Too many failed logins") {
			t.Fatalf("right password after 20 wrong ones: %d", r.status)
		}
		if waited := time.Since(start); waited > DefaultLoginWait {
			t.Errorf("the refused login took %v", waited)
		}
		if _, ok := b.cookies["qmailkit-session"]; ok {
			t.Fatal("a throttled login got a session")
		}
		// After a while, the right password is let in.
		time.Sleep(authlimit.DefaultClientMaxDelay)
		b.get("/login")
		if r := b.post("/login", url.Values{"user": {"joe@a.example"}, "password": {password("joe")}}); r.status != http.StatusSeeOther {
			t.Fatalf("right password a minute later: %d\n%s", r.status, r.body)
		}
	})
}

// TestThrottledOldPassword: the old password of a password change is a
// guess like a login's, and goes through the Limiter.
func TestThrottledOldPassword(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnvNoServer(t, func(o *Options) {
			o.Limiter = &authlimit.Limiter{Logger: o.Logger}
			o.LoginWait = -1 // refuse at once what the Limiter holds back
		})
		b := e.browser()
		b.login("joe@a.example", password("joe"))
		refused := false
		for range 20 {
			r := b.post("/me/password", url.Values{"old": {"guess-guess-1"}, "new": {"Good-pass-77"}, "new2": {"Good-pass-77"}})
			if strings.Contains(r.body, "Too many wrong passwords") {
				refused = true
			}
		}
		if !refused {
			t.Fatal("20 wrong old passwords, none refused")
		}
		r := b.post("/me/password", url.Values{"old": {password("joe")}, "new": {"Good-pass-77"}, "new2": {"Good-pass-77"}})
		if r.status == http.StatusSeeOther {
			t.Fatal("password changed while throttled")
		}
	})
}

// TestCookies: the session cookie is __Host- prefixed, Secure, HttpOnly,
// SameSite=Strict, host-only with path /, and works over HTTPS.
func TestCookies(t *testing.T) {
	e := newEnvNoServer(t, func(o *Options) { o.PlainHTTP = false })
	ts := httptest.NewTLSServer(e.srv)
	defer ts.Close()
	client := ts.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Get(ts.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var loginCookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-qmailkit-login" {
			loginCookie = c
		}
	}
	if loginCookie == nil {
		t.Fatalf("no login cookie: %v", resp.Header["Set-Cookie"])
	}
	token := csrfRE.FindSubmatch(body)
	form := url.Values{"user": {"joe@a.example"}, "password": {password("joe")}, "csrf": {string(token[1])}}
	req, _ := http.NewRequest("POST", ts.URL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", ts.URL)
	req.AddCookie(loginCookie)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login over HTTPS: %d", resp.StatusCode)
	}
	var set string
	for _, h := range resp.Header["Set-Cookie"] {
		if strings.HasPrefix(h, "__Host-qmailkit-session=") {
			set = h
		}
	}
	if set == "" {
		t.Fatalf("no session cookie: %v", resp.Header["Set-Cookie"])
	}
	for _, want := range []string{"; Path=/", "; HttpOnly", "; Secure", "; SameSite=Strict"} {
		if !strings.Contains(set, want) {
			t.Errorf("session cookie %q lacks %q", set, want)
		}
	}
	if strings.Contains(set, "Domain=") {
		t.Errorf("session cookie %q has a Domain", set)
	}
	value := strings.TrimPrefix(strings.SplitN(set, ";", 2)[0], "__Host-qmailkit-session=")
	if len(value) != 43 { // 256 bits, base64url without padding
		t.Errorf("session token %q is not 256 bits", value)
	}
	req, _ = http.NewRequest("GET", ts.URL+"/me", nil)
	req.AddCookie(&http.Cookie{Name: "__Host-qmailkit-session", Value: value})
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /me with the cookie: %d", resp.StatusCode)
	}
	// The plain-HTTP name is not accepted by a Secure server.
	req, _ = http.NewRequest("GET", ts.URL+"/me", nil)
	req.AddCookie(&http.Cookie{Name: "qmailkit-session", Value: value})
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("GET /me with the cookie under another name: %d", resp.StatusCode)
	}
}

// TestSessionExpiry: idle and absolute expiry, logout, and a session
// fixed by the browser before login is never reused.
func TestSessionExpiry(t *testing.T) {
	now := time.Date(2026, 12, 8, 2, 0, 0, 0, time.UTC)
	e := newEnvNoServer(t, func(o *Options) {
		o.Now = func() time.Time { return now }
		o.IdleTimeout = 10 * time.Minute
		o.MaxAge = time.Hour
	})
	b := e.browser()
	b.cookies["qmailkit-session"] = "fixed-by-an-attacker"
	b.login("joe@a.example", password("joe"))
	if b.cookies["qmailkit-session"] == "fixed-by-an-attacker" {
		t.Fatal("session fixation")
	}
	for i := range 7 { // used every 9 minutes: alive for 63 minutes at most
		now = now.Add(9 * time.Minute)
		r := b.get("/me")
		if want := http.StatusOK; i == 6 {
			if r.status != http.StatusSeeOther {
				t.Errorf("after the absolute expiry: %d", r.status)
			}
		} else if r.status != want {
			t.Errorf("after %d minutes: %d", 9*(i+1), r.status)
		}
	}
	b.login("joe@a.example", password("joe"))
	now = now.Add(10 * time.Minute)
	if r := b.get("/me"); r.status != http.StatusSeeOther {
		t.Errorf("after 10 idle minutes: %d", r.status)
	}
	b.login("joe@a.example", password("joe"))
	token := b.cookies["qmailkit-session"]
	if r := b.post("/logout", nil); r.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.status)
	}
	b.cookies["qmailkit-session"] = token // a copy of the cookie kept
	if r := b.get("/me"); r.status != http.StatusSeeOther {
		t.Errorf("after logout: %d", r.status)
	}
}

// TestTooManySessions: logins beyond MaxSessions end the least recently
// used session, never grow the table.
func TestTooManySessions(t *testing.T) {
	now := time.Date(2026, 12, 8, 2, 0, 0, 0, time.UTC)
	e := newEnvNoServer(t, func(o *Options) {
		o.MaxSessions = 3
		o.Now = func() time.Time { now = now.Add(time.Second); return now }
	})
	var bs []*browser
	for range 5 {
		b := e.browser()
		b.login("joe@a.example", password("joe"))
		bs = append(bs, b)
	}
	if n := len(e.srv.sessions.m); n != 3 {
		t.Errorf("%d sessions kept, want 3", n)
	}
	if r := bs[0].get("/me"); r.status != http.StatusSeeOther {
		t.Errorf("oldest session: %d", r.status)
	}
	if r := bs[4].get("/me"); r.status != http.StatusOK {
		t.Errorf("newest session: %d", r.status)
	}
}

// TestHeaders: the security headers on every answer; no-store on pages.
func TestHeaders(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.login("joe@a.example", password("joe"))
	for _, path := range []string{"/login", "/me", "/domains", "/nowhere", "/static/style.css"} {
		r := b.get(path)
		h := r.header
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", path, h)
		}
		if cc := h.Get("Cache-Control"); path != "/static/style.css" && cc != "no-store" {
			t.Errorf("%s: Cache-Control %q", path, cc)
		}
	}
	if r := b.get("/static/style.css"); r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/css") {
		t.Errorf("style sheet: %d %s", r.status, r.header.Get("Content-Type"))
	}
	// No inline script or style anywhere: the CSP would block it.
	for _, path := range []string{"/me", "/login"} {
		if body := b.get(path).body; strings.Contains(body, "<script") || strings.Contains(body, "style=") || strings.Contains(body, "<style") {
			t.Errorf("%s has inline script or style", path)
		}
	}
}

// TestAbuse: huge bodies, huge and odd fields, too many addresses, odd
// paths; each refused cleanly.
func TestAbuse(t *testing.T) {
	e := newEnv(t, nil)
	b := e.browser()
	b.login("admin", adminPassword)
	tests := []struct {
		name string
		path string
		form url.Values
		want int
	}{
		{"huge body", "/d/a.example/aliases", url.Values{"name": {"x"}, "targets": {strings.Repeat("a", DefaultMaxBodyBytes)}}, http.StatusRequestEntityTooLarge},
		{"huge user at login", "/login", url.Values{"user": {strings.Repeat("a", 1000) + "@a.example"}, "password": {"x"}}, http.StatusForbidden}, // no login token
		{"NUL in alias target", "/d/a.example/aliases", url.Values{"name": {"x"}, "targets": {"a\x00b@c.example"}}, 422},
		{"too many alias targets", "/d/a.example/aliases", url.Values{"name": {"x"}, "targets": {strings.Repeat("a@b.example,", maxTargets+1)}}, 422},
		{"bad UTF-8 real name", "/d/a.example/m/joe/settings", url.Values{"realname": {"\xff\xfe"}}, 422},
		{"dots in name", "/d/a.example/mailboxes", url.Values{"name": {".."}, "password": {"Good-pass-77"}, "password2": {"Good-pass-77"}}, 422},
		{"slash in name", "/d/a.example/mailboxes", url.Values{"name": {"../etc"}, "password": {"Good-pass-77"}, "password2": {"Good-pass-77"}}, 422},
		{"huge password", "/d/a.example/m/joe/password", url.Values{"new": {strings.Repeat("x1", 600)}, "new2": {strings.Repeat("x1", 600)}}, 422},
		{"huge limit", "/d/a.example/limits", url.Values{"maxmailboxes": {"99999999999999999999"}}, 422},
		{"long after", "/d/a.example/?after=" + strings.Repeat("z", 1000), nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.form == nil {
				if r := b.get(tt.path); r.status != http.StatusOK {
					t.Errorf("status %d", r.status)
				}
				return
			}
			if r := b.post(tt.path, tt.form); r.status != tt.want {
				t.Errorf("status %d, want %d", r.status, tt.want)
			}
		})
	}
	for _, path := range []string{"/d/a.example/m/" + strings.Repeat("a", 100), "/d/a.example/m/%2e%2e", "/d/a.example/m/a%2Fb", "/d/%00/", "/d/a.example/m/joe%00"} {
		if r := b.get(path); r.status != http.StatusNotFound && r.status != http.StatusBadRequest {
			t.Errorf("GET %s: %d", path, r.status)
		}
	}
	if r := b.do("PUT", "/domains", url.Values{}); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", r.status)
	}
}
