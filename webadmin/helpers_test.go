package webadmin

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/vmail"
	"github.com/qmailkit/qmailkit/vmail/sqlstore"
)

// syncBuffer is a log sink for the tests that read what was logged.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a web admin over a vmail.Manager on SQLite with a few records:
//
//	admin (Options.Admins, password "admin-secret-1")
//	a.example: postmaster, boss (DomainAdmin), joe, sys (SystemAdmin)
//	b.example: postmaster, bob
//
// every mailbox's password being "pw-" + its name + "-123".
type env struct {
	t    testing.TB
	mgr  *vmail.Manager
	fail *failable // the Manager the Server has
	srv  *Server
	ts   *httptest.Server // nil when the env serves without a network
	logs *syncBuffer
}

const adminPassword = "admin-secret-1"

func password(name string) string { return "pw-" + name + "-123" }

func newEnv(t *testing.T, set func(*Options)) *env {
	t.Helper()
	e := newEnvNoServer(t, set)
	e.ts = httptest.NewServer(e.srv)
	t.Cleanup(e.ts.Close)
	return e
}

func newEnvNoServer(t testing.TB, set func(*Options)) *env {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mgr := newManager(t, logger)
	ctx := context.Background()
	for _, d := range []string{"a.example", "b.example"} {
		if _, err := mgr.AddDomain(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, mb := range []struct {
		addr  string
		flags vmail.Flags
	}{
		{"postmaster@a.example", 0},
		{"boss@a.example", vmail.DomainAdmin},
		{"joe@a.example", 0},
		{"sys@a.example", vmail.SystemAdmin},
		{"postmaster@b.example", 0},
		{"bob@b.example", 0},
	} {
		name, _, _ := strings.Cut(mb.addr, "@")
		if _, err := mgr.AddMailbox(ctx, mb.addr, password(name)); err != nil {
			t.Fatal(err)
		}
		if err := mgr.SetFlags(ctx, mb.addr, mb.flags); err != nil {
			t.Fatal(err)
		}
	}
	fail := &failable{Manager: mgr}
	opts := Options{
		Manager: fail,
		Admins: auth.Func(func(ctx context.Context, c auth.Credentials) (*auth.User, error) {
			if c.User == "admin" && c.Secret == adminPassword {
				return &auth.User{Name: "admin"}, nil
			}
			return nil, auth.ErrFailed
		}),
		Limiter:   nopLimiter{},
		PlainHTTP: true,
		Logger:    logger,
	}
	if set != nil {
		set(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, mgr: mgr, fail: fail, srv: srv, logs: logs}
	t.Cleanup(func() {
		// Passwords are never logged.
		out := logs.String()
		for _, p := range []string{adminPassword, password("joe"), password("boss"), password("postmaster"), "n3w-Secret-pass", "Good-pass-77"} {
			if strings.Contains(out, p) {
				t.Errorf("a password (%q) was logged:\n%s", p, out)
			}
		}
	})
	return e
}

// newManager returns a Manager over a new SQLite store in a temporary
// directory.
func newManager(t testing.TB, logger *slog.Logger) *vmail.Manager {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlstore.OpenSQLite(filepath.Join(dir, "vmail.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	mgr, err := vmail.New(vmail.Options{Store: store, Dir: filepath.Join(dir, "domains"), UID: -1, GID: -1, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return mgr
}

var _ Manager = (*vmail.Manager)(nil)

// failable is a Manager whose reads fail while err is set, as a store
// that is down makes them.
type failable struct {
	*vmail.Manager
	mu  sync.Mutex
	err error
}

func (f *failable) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *failable) failed() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *failable) Domains(ctx context.Context) ([]vmail.Domain, error) {
	if err := f.failed(); err != nil {
		return nil, err
	}
	return f.Manager.Domains(ctx)
}

func (f *failable) Mailbox(ctx context.Context, address string) (vmail.Mailbox, error) {
	if err := f.failed(); err != nil {
		return vmail.Mailbox{}, err
	}
	return f.Manager.Mailbox(ctx, address)
}

func (f *failable) Authenticate(ctx context.Context, c auth.Credentials) (*auth.User, error) {
	if err := f.failed(); err != nil {
		return nil, err
	}
	return f.Manager.Authenticate(ctx, c)
}

// hasPassword reports whether a mailbox's password is pass.
func (e *env) hasPassword(addr, pass string) bool {
	e.t.Helper()
	return auth.VerifyPassword(e.mailbox(addr).Password, auth.Credentials{Method: auth.MethodPlain, Secret: pass})
}

// nopLimiter lets every attempt go.
type nopLimiter struct{}

func (nopLimiter) Wait(context.Context, netip.Addr, string) error { return nil }
func (nopLimiter) Done(netip.Addr, string, bool)                  {}

// browser is a client with its cookies and the last CSRF token seen.
type browser struct {
	e       *env
	cookies map[string]string
	csrf    string
	header  http.Header // added to every request
}

func (e *env) browser() *browser {
	return &browser{e: e, cookies: map[string]string{}, header: http.Header{}}
}

// response is an answer, its body read.
type response struct {
	status int
	body   string
	header http.Header
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(method, path string, form url.Values) response {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	var resp *http.Response
	if b.e.ts != nil {
		req, err := http.NewRequest(method, b.e.ts.URL+path, body)
		if err != nil {
			b.e.t.Fatal(err)
		}
		b.prepare(req, form != nil)
		resp, err = b.e.ts.Client().Transport.RoundTrip(req)
		if err != nil {
			b.e.t.Fatal(err)
		}
	} else {
		req := httptest.NewRequest(method, "http://admin.test"+path, body)
		req.RemoteAddr = "192.0.2.1:40000"
		b.prepare(req, form != nil)
		rec := httptest.NewRecorder()
		b.e.srv.ServeHTTP(rec, req)
		resp = rec.Result()
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c.Value
		}
	}
	if m := csrfRE.FindSubmatch(data); m != nil {
		b.csrf = string(m[1])
	}
	return response{resp.StatusCode, string(data), resp.Header}
}

func (b *browser) prepare(req *http.Request, form bool) {
	for k, v := range b.header {
		req.Header[k] = v
	}
	for k, v := range b.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	if form {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
}

func (b *browser) get(path string) response { b.e.t.Helper(); return b.do("GET", path, nil) }

// post sends a form with the browser's CSRF token, unless the form has a
// "csrf" value of its own (even empty: then none is sent).
func (b *browser) post(path string, form url.Values) response {
	b.e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	} else if form.Get("csrf") == "" {
		form.Del("csrf")
	}
	return b.do("POST", path, form)
}

// login logs in and loads the home page, failing the test unless it
// works.
func (b *browser) login(user, pass string) {
	b.e.t.Helper()
	b.get("/login")
	r := b.post("/login", url.Values{"user": {user}, "password": {pass}})
	if r.status != http.StatusSeeOther {
		b.e.t.Fatalf("login %s: %d\n%s", user, r.status, r.body)
	}
	r = b.get("/")
	if r.status != http.StatusSeeOther {
		b.e.t.Fatalf("GET / after login %s: %d", user, r.status)
	}
	r = b.get(r.header.Get("Location"))
	if r.status != http.StatusOK {
		b.e.t.Fatalf("home page of %s: %d\n%s", user, r.status, r.body)
	}
}

func (e *env) mailbox(addr string) vmail.Mailbox {
	e.t.Helper()
	m, err := e.mgr.Mailbox(context.Background(), addr)
	if err != nil {
		e.t.Fatalf("mailbox %s: %v", addr, err)
	}
	return m
}

func (e *env) domain(name string) vmail.Domain {
	e.t.Helper()
	d, err := e.mgr.Domain(context.Background(), name)
	if err != nil {
		e.t.Fatalf("domain %s: %v", name, err)
	}
	return d
}
