package webadmin

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/authlimit"
	"github.com/qmailkit/qmailkit/vmail"
)

//go:embed templates/*.html static/*
var files embed.FS

// Manager is what the web admin asks of the virtual mail system: the
// methods of a [vmail.Manager] it calls, so that *vmail.Manager is one.
// Each method does what vmail.Manager's of the same name does, and
// returns its errors: those wrapping vmail.ErrExists, ErrNotFound,
// ErrInvalid and ErrLimit are shown next to the form's field, any other
// is a temporary failure.
type Manager interface {
	// Domains: the system administrator's pages.
	Domains(ctx context.Context) ([]vmail.Domain, error)
	Domain(ctx context.Context, name string) (vmail.Domain, error)
	AddDomain(ctx context.Context, name string) (vmail.Domain, error)
	DeleteDomain(ctx context.Context, name string) error
	SetCatchAll(ctx context.Context, domain, target string) error
	SetLimits(ctx context.Context, domain string, l vmail.Limits) error
	AddAliasDomain(ctx context.Context, alias, domain string) error
	DeleteAliasDomain(ctx context.Context, alias string) error

	// Mailboxes: the domain administrator's pages, and the user's.
	Mailboxes(ctx context.Context, domain, after string, limit int) ([]vmail.Mailbox, error)
	Mailbox(ctx context.Context, address string) (vmail.Mailbox, error)
	AddMailbox(ctx context.Context, address, password string) (vmail.Mailbox, error)
	DeleteMailbox(ctx context.Context, address string) error
	SetPassword(ctx context.Context, address, password string) error
	SetQuota(ctx context.Context, address string, q vmail.Quota) error
	SetFlags(ctx context.Context, address string, f vmail.Flags) error
	SetRealName(ctx context.Context, address, name string) error
	SetForward(ctx context.Context, address string, f vmail.Forward) error
	SetAutoresponder(ctx context.Context, address string, a vmail.Autoresponder) error

	// Aliases of a domain.
	Aliases(ctx context.Context, domain string) ([]vmail.Alias, error)
	AddAlias(ctx context.Context, address string, targets ...string) error
	DeleteAlias(ctx context.Context, address string, targets ...string) error

	// Authenticate checks a mailbox's login (Service auth.ServiceWeb).
	Authenticate(ctx context.Context, c auth.Credentials) (*auth.User, error)
}

// QueueStatus is what the queue page shows.
type QueueStatus struct {
	Messages int       // messages in the queue
	Oldest   time.Time // when the oldest was queued; zero when the queue is empty
	// ByState counts the messages (or deliveries) by state, such as
	// "local", "remote", "todo" or "bounce"; shown in key order.
	ByState map[string]int
}

// Defaults of the zero fields of Options.
const (
	DefaultIdleTimeout  = 30 * time.Minute
	DefaultMaxAge       = 12 * time.Hour
	DefaultMaxSessions  = 10000
	DefaultMaxBodyBytes = 64 << 10
	DefaultLoginWait    = 3 * time.Second
)

// Options configure a Server.
type Options struct {
	// Manager keeps the domains and mailboxes (a *vmail.Manager).
	// Required.
	Manager Manager
	// Admins authenticates the system administrators that are not
	// mailboxes (the mta uses its users/adminpasswd file). A login without
	// "@" is checked here; nil means only mailboxes with the
	// vmail.SystemAdmin flag are system administrators.
	Admins auth.Authenticator
	// Limiter throttles logins (and the old-password check of a password
	// change) per client address and per account; share the one of POP3
	// and SMTP AUTH so that a guess costs the same everywhere. Nil means
	// a Server's own authlimit.Limiter with its defaults.
	Limiter auth.Limiter
	// LoginWait is the longest a login waits for the Limiter before it
	// is refused as throttled: 0 means DefaultLoginWait (3 s); negative
	// means a login the Limiter holds back is refused at once.
	LoginWait time.Duration
	// Queue, when set, returns the queue's status for the queue page
	// (system administrators only); nil means no queue page.
	Queue func(ctx context.Context) (QueueStatus, error)

	// PlainHTTP makes the session cookies usable over plain HTTP: without
	// the Secure attribute and the "__Host-" prefix. Only for a server on
	// loopback (tests); by default the cookies are sent over HTTPS only.
	PlainHTTP bool
	// IdleTimeout ends a session unused for that long: 0 means
	// DefaultIdleTimeout (30 minutes).
	IdleTimeout time.Duration
	// MaxAge ends a session that long after its login, used or not: 0
	// means DefaultMaxAge (12 hours).
	MaxAge time.Duration
	// MaxSessions is the most sessions kept; a login beyond it ends the
	// session used least recently. 0 means DefaultMaxSessions (10,000).
	MaxSessions int
	// MaxBodyBytes is the largest request body read: 0 means
	// DefaultMaxBodyBytes (64 KiB).
	MaxBodyBytes int64

	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives logins, logouts, changes and failures (never a
	// password); nil means slog.Default().
	Logger *slog.Logger
}

// Server is the web admin, an http.Handler. Make it with New; it is safe
// for concurrent use.
type Server struct {
	opts     Options
	limiter  auth.Limiter
	mux      *http.ServeMux
	pages    map[string]*template.Template
	static   http.Handler
	sessions sessions
}

// New returns a Server for opts.
func New(opts Options) (*Server, error) {
	if opts.Manager == nil {
		return nil, errors.New("webadmin: no Manager")
	}
	s := &Server{opts: opts, limiter: opts.Limiter}
	if s.limiter == nil {
		s.limiter = &authlimit.Limiter{Now: opts.Now, Logger: opts.Logger}
	}
	if s.opts.IdleTimeout <= 0 {
		s.opts.IdleTimeout = DefaultIdleTimeout
	}
	if s.opts.MaxAge <= 0 {
		s.opts.MaxAge = DefaultMaxAge
	}
	if s.opts.MaxSessions <= 0 {
		s.opts.MaxSessions = DefaultMaxSessions
	}
	if s.opts.MaxBodyBytes <= 0 {
		s.opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if s.opts.LoginWait == 0 {
		s.opts.LoginWait = DefaultLoginWait
	}
	if s.opts.Logger == nil {
		s.opts.Logger = slog.Default()
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	s.pages = pages
	st, err := fs.Sub(files, "static")
	if err != nil {
		return nil, fmt.Errorf("webadmin: %w", err)
	}
	s.static = http.StripPrefix("/static/", http.FileServerFS(st))
	s.sessions.m = map[[32]byte]*session{}
	s.routes()
	return s, nil
}

func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

func (s *Server) log() *slog.Logger { return s.opts.Logger }

// routes registers the pages. Each handler states who may use it; the
// check is made from the session (see [Server.handle]).
func (s *Server) routes() {
	m := http.NewServeMux()
	s.mux = m
	m.Handle("GET /static/", s.static)
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.HandleFunc("GET /{$}", s.handle(anyone, s.home))
	m.HandleFunc("POST /logout", s.handle(anyone, s.logout))

	m.HandleFunc("GET /domains", s.handle(systemAdmin, s.domainsPage))
	m.HandleFunc("POST /domains", s.handle(systemAdmin, s.addDomain))
	m.HandleFunc("GET /queue", s.handle(systemAdmin, s.queuePage))
	m.HandleFunc("POST /d/{domain}/delete", s.handle(systemAdmin, s.deleteDomain))
	m.HandleFunc("POST /d/{domain}/limits", s.handle(systemAdmin, s.setLimits))
	m.HandleFunc("POST /d/{domain}/aliasdomains", s.handle(systemAdmin, s.addAliasDomain))
	m.HandleFunc("POST /d/{domain}/aliasdomains/delete", s.handle(systemAdmin, s.deleteAliasDomain))

	m.HandleFunc("GET /d/{domain}/{$}", s.handle(domainAdmin, s.domainPage))
	m.HandleFunc("POST /d/{domain}/catchall", s.handle(domainAdmin, s.setCatchAll))
	m.HandleFunc("POST /d/{domain}/mailboxes", s.handle(domainAdmin, s.addMailbox))
	m.HandleFunc("POST /d/{domain}/aliases", s.handle(domainAdmin, s.addAlias))
	m.HandleFunc("POST /d/{domain}/aliases/delete", s.handle(domainAdmin, s.deleteAlias))
	m.HandleFunc("GET /d/{domain}/m/{name}", s.handle(domainAdmin, s.mailboxPage))
	m.HandleFunc("POST /d/{domain}/m/{name}/password", s.handle(domainAdmin, s.mailboxPassword))
	m.HandleFunc("POST /d/{domain}/m/{name}/settings", s.handle(domainAdmin, s.mailboxSettings))
	m.HandleFunc("POST /d/{domain}/m/{name}/forward", s.handle(domainAdmin, s.mailboxForward))
	m.HandleFunc("POST /d/{domain}/m/{name}/autoresponder", s.handle(domainAdmin, s.mailboxAutoresponder))
	m.HandleFunc("POST /d/{domain}/m/{name}/delete", s.handle(domainAdmin, s.deleteMailbox))

	m.HandleFunc("GET /me", s.handle(mailboxUser, s.mePage))
	m.HandleFunc("POST /me/password", s.handle(mailboxUser, s.mePassword))
	m.HandleFunc("POST /me/forward", s.handle(mailboxUser, s.meForward))
	m.HandleFunc("POST /me/autoresponder", s.handle(mailboxUser, s.meAutoresponder))
}

// ServeHTTP serves the web admin: security headers on every answer, a
// limit on the request body, and the Origin check of every POST before
// the page's own handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		h.Set("Cache-Control", "no-store")
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if !s.sameOrigin(r) {
			s.log().Warn("webadmin: cross-origin request refused", "path", r.URL.Path, "remote", r.RemoteAddr,
				"origin", r.Header.Get("Origin"), "referer", r.Header.Get("Referer"))
			s.fail(w, r, http.StatusForbidden, "This request came from another site and was refused.")
			return
		}
		if err := r.ParseForm(); err != nil {
			status := http.StatusBadRequest
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				status = http.StatusRequestEntityTooLarge
			}
			s.fail(w, r, status, "The form could not be read.")
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// sameOrigin reports whether a request that changes something may come
// from where it says it comes from: a browser's Origin header (or, when
// it sends none, its Referer) must name this server, as the scheme of the
// connection and the Host header give it, and Sec-Fetch-Site must not say
// another site. A request with neither header (not from a browser, or a
// browser told to hide them) is left to the CSRF token.
func (s *Server) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	self := scheme + "://" + strings.ToLower(r.Host)
	if o := r.Header.Get("Origin"); o != "" {
		return strings.ToLower(o) == self
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		if err != nil {
			return false
		}
		return strings.ToLower(u.Scheme+"://"+u.Host) == self
	}
	return true
}

// remote is the client's address, for the Limiter and the logs.
func remote(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// render writes a page: the template runs into a buffer first, so that a
// failure is a clean 500 and not half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, data *pageData) {
	t := s.pages[page]
	if t == nil {
		s.log().Error("webadmin: no template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout", data); err != nil {
		s.log().Error("webadmin: template", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(b.Bytes())
	}
}

// fail answers with an error page.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, status, "error", &pageData{Title: http.StatusText(status), Message: msg})
}

// forbidden answers 403: the session may not see or change this.
func (s *Server) forbidden(w http.ResponseWriter, r *http.Request, who *identity) {
	s.log().Warn("webadmin: forbidden", "path", r.URL.Path, "method", r.Method, "login", who.login, "remote", r.RemoteAddr)
	data := &pageData{Title: "Forbidden", Message: "You may not see or change this."}
	data.Who, data.CSRF, data.HasQueue = who, who.csrf, s.opts.Queue != nil
	s.render(w, r, http.StatusForbidden, "error", data)
}

// failure answers an error of the Manager that is not the user's: a
// temporary failure, logged.
func (s *Server) failure(w http.ResponseWriter, r *http.Request, err error) {
	s.log().Error("webadmin: failure", "path", r.URL.Path, "method", r.Method, "err", err)
	s.fail(w, r, http.StatusInternalServerError, "The change could not be made now; try again later.")
}

// redirect ends a successful POST (Post/Redirect/Get).
func redirect(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}
