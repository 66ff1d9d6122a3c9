package webadmin

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/vmail"
)

// role is what a session may do (qmailadmin's roles, plus the system
// administrator of vpopmail's SA_ADMIN flag).
type role int

const (
	roleUser        role = iota + 1 // a mailbox: its own password, forward and autoresponder
	roleDomainAdmin                 // a mailbox with DomainAdmin, or postmaster: its domain
	roleSystemAdmin                 // every domain
)

// access is what a page asks of a session.
type access int

const (
	anyone      access = iota // any session
	mailboxUser               // a session of a mailbox (its own page)
	domainAdmin               // a domain administrator of the page's {domain}, or a system administrator
	systemAdmin               // a system administrator
)

// identity is who a request comes from, worked out from its session and
// the Manager's records at each request: a mailbox deleted, demoted or
// given a new password elsewhere loses its rights at once.
type identity struct {
	role    role
	login   string // the name or address the session logged in as
	domain  string // the mailbox's domain ("" for an administrator of Options.Admins)
	mailbox *vmail.Mailbox
	csrf    string
	key     [32]byte
}

// Login is the name shown in the page's header.
func (w *identity) Login() string { return w.login }

// SystemAdmin reports whether the session administers every domain.
func (w *identity) SystemAdmin() bool { return w.role == roleSystemAdmin }

// DomainAdmin reports whether the session administers its domain (or all).
func (w *identity) DomainAdmin() bool { return w.role >= roleDomainAdmin }

// HasMailbox reports whether the session is a mailbox's.
func (w *identity) HasMailbox() bool { return w.mailbox != nil }

// Domain is the session's mailbox's domain.
func (w *identity) Domain() string { return w.domain }

// mayDomain reports whether the session may manage domain.
func (w *identity) mayDomain(domain string) bool {
	switch w.role {
	case roleSystemAdmin:
		return true
	case roleDomainAdmin:
		return domain == w.domain
	}
	return false
}

// mayMailbox reports whether the session may manage m as an
// administrator: a domain administrator may not touch a system
// administrator's mailbox (setting its password would make it one).
func (w *identity) mayMailbox(m vmail.Mailbox) bool {
	if !w.mayDomain(m.Domain) {
		return false
	}
	return w.role == roleSystemAdmin || m.Flags&vmail.SystemAdmin == 0
}

// mailboxRole is the role of a mailbox's session.
func mailboxRole(m vmail.Mailbox) role {
	switch {
	case m.Flags&vmail.SystemAdmin != 0:
		return roleSystemAdmin
	case m.Flags&vmail.DomainAdmin != 0 || m.Name == "postmaster":
		return roleDomainAdmin
	}
	return roleUser
}

// errSessionGone is a session whose mailbox is gone or whose password
// changed since it logged in.
var errSessionGone = errors.New("webadmin: session ended")

// identify works out who a session is now.
func (s *Server) identify(ctx context.Context, sess session) (*identity, error) {
	who := &identity{login: sess.login, csrf: sess.csrf, key: sess.key}
	if sess.admin {
		who.role = roleSystemAdmin
		return who, nil
	}
	m, err := s.opts.Manager.Mailbox(ctx, sess.login)
	if errors.Is(err, vmail.ErrNotFound) {
		return nil, errSessionGone
	}
	if err != nil {
		return nil, err
	}
	if m.Password != sess.pwHash {
		return nil, errSessionGone
	}
	who.role, who.domain, who.mailbox = mailboxRole(m), m.Domain, &m
	return who, nil
}

// handle wraps a page's handler with the checks of every request: a live
// session (else the login page, or 403 for a POST), the CSRF token of a
// POST, and the page's access rule, with the {domain} of its path checked
// against the session's rights.
func (s *Server) handle(need access, h func(http.ResponseWriter, *http.Request, *identity)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		post := r.Method == http.MethodPost
		sess, ok := s.session(r)
		if !ok {
			if post {
				s.fail(w, r, http.StatusForbidden, "Your session has ended; log in again.")
				return
			}
			redirect(w, r, "/login")
			return
		}
		who, err := s.identify(r.Context(), sess)
		if errors.Is(err, errSessionGone) {
			s.endSession(sess.key)
			s.setCookie(w, s.cookieName(), "")
			if post {
				s.fail(w, r, http.StatusForbidden, "Your session has ended; log in again.")
				return
			}
			redirect(w, r, "/login")
			return
		}
		if err != nil {
			s.failure(w, r, err)
			return
		}
		if post && !checkToken(r.PostForm.Get("csrf"), sess.csrf) {
			s.log().Warn("webadmin: CSRF token missing or wrong", "path", r.URL.Path, "login", who.login, "remote", r.RemoteAddr)
			s.fail(w, r, http.StatusForbidden, "The form's security token is missing or wrong; reload the page and try again.")
			return
		}
		allowed := true
		switch need {
		case mailboxUser:
			allowed = who.mailbox != nil
		case domainAdmin:
			allowed = who.mayDomain(pathDomain(r))
		case systemAdmin:
			allowed = who.role == roleSystemAdmin
		}
		if !allowed {
			s.forbidden(w, r, who)
			return
		}
		h(w, r, who)
	}
}

// page returns the data every page has.
func (s *Server) page(who *identity, title string) *pageData {
	return &pageData{
		Title:    title,
		Who:      who,
		CSRF:     who.csrf,
		Flash:    s.takeFlash(who.key),
		HasQueue: s.opts.Queue != nil,
		Forms:    map[string]*Form{},
	}
}

// loginPage shows the login form, with a fresh login token in a cookie
// and in the form (a double submit: a login can no more be forged by
// another site than any other form).
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.session(r); ok {
		redirect(w, r, "/")
		return
	}
	s.showLogin(w, r, http.StatusOK, newForm(nil), "")
}

func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, status int, f *Form, msg string) {
	token := newToken()
	s.setCookie(w, s.loginCookieName(), token)
	data := &pageData{Title: "Log in", CSRF: token, Message: msg, Forms: map[string]*Form{"login": f}}
	s.render(w, r, status, "login", data)
}

// login checks a login form: the login token, then the Limiter, then the
// password: with "@" a mailbox's (Manager.Authenticate), without one a
// system administrator's (Options.Admins). On success it starts a new
// session (never reusing one the browser brought) and goes home.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(s.loginCookieName())
	if err != nil || !checkToken(r.PostForm.Get("csrf"), c.Value) {
		s.log().Warn("webadmin: login token missing or wrong", "remote", r.RemoteAddr)
		s.fail(w, r, http.StatusForbidden, "The form's security token is missing or wrong; reload the login page and try again.")
		return
	}
	f := newForm(r.PostForm, "user")
	user := strings.TrimSpace(f.Value("user"))
	pass := r.PostForm.Get("password")
	switch {
	case user == "":
		f.Errors["user"] = "Enter your address (or administrator name)."
	case len(user) > maxAddress || !printable(user):
		f.Errors["user"] = "This is not an address or a name."
	}
	switch {
	case pass == "":
		f.Errors["password"] = "Enter your password."
	case len(pass) > auth.MaxPasswordLength:
		f.Errors["password"] = "The password is too long."
	}
	if !f.OK() {
		s.showLogin(w, r, http.StatusUnprocessableEntity, f, "")
		return
	}
	addr := remote(r)
	if err = s.wait(r.Context(), addr, user); err != nil {
		s.log().Warn("webadmin: login throttled", "user", user, "remote", addr, "err", err)
		s.showLogin(w, r, http.StatusTooManyRequests, f, "Too many failed logins: try again later.")
		return
	}
	var (
		login  string
		admin  bool
		pwHash string
	)
	if strings.Contains(user, "@") {
		_, err = s.opts.Manager.Authenticate(r.Context(), auth.Credentials{
			Service: auth.ServiceWeb, Method: auth.MethodPlain, User: user, Secret: pass, Remote: addr,
		})
		if err == nil {
			var m vmail.Mailbox
			m, err = s.opts.Manager.Mailbox(r.Context(), user)
			login, pwHash = m.Address(), m.Password
			if errors.Is(err, vmail.ErrNotFound) {
				err = auth.ErrFailed // deleted between the two calls
			}
		}
	} else if s.opts.Admins != nil {
		var u *auth.User
		u, err = s.opts.Admins.Authenticate(r.Context(), auth.Credentials{
			Service: auth.ServiceWeb, Method: auth.MethodPlain, User: user, Secret: pass, Remote: addr,
		})
		if err == nil {
			login, admin = u.Name, true
			if login == "" {
				login = user
			}
		}
	} else {
		err = auth.ErrFailed
	}
	switch {
	case err == nil:
	case errors.Is(err, auth.ErrFailed), errors.Is(err, vmail.ErrNotFound), errors.Is(err, vmail.ErrInvalid):
		s.limiter.Done(addr, user, false)
		s.log().Info("webadmin: login failed", "user", user, "remote", addr)
		s.showLogin(w, r, http.StatusOK, f, "Wrong address or password.")
		return
	default:
		// A failure of the store: not the client's fault, not counted.
		s.log().Error("webadmin: login", "user", user, "remote", addr, "err", err)
		s.showLogin(w, r, http.StatusServiceUnavailable, f, "Logins are not possible now; try again later.")
		return
	}
	s.limiter.Done(addr, user, true)
	token, _ := s.newSession(login, admin, pwHash)
	s.setCookie(w, s.loginCookieName(), "")
	s.setCookie(w, s.cookieName(), token)
	s.log().Info("webadmin: login", "login", login, "remote", addr)
	redirect(w, r, "/")
}

// wait asks the Limiter whether a password check may go ahead, waiting
// at most LoginWait.
func (s *Server) wait(ctx context.Context, addr netip.Addr, user string) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.LoginWait)
	defer cancel()
	return s.limiter.Wait(ctx, addr, user)
}

// logout ends the session.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, who *identity) {
	s.endSession(who.key)
	s.setCookie(w, s.cookieName(), "")
	s.log().Info("webadmin: logout", "login", who.login, "remote", r.RemoteAddr)
	redirect(w, r, "/login")
}

// home sends each role to its first page.
func (s *Server) home(w http.ResponseWriter, r *http.Request, who *identity) {
	switch who.role {
	case roleSystemAdmin:
		redirect(w, r, "/domains")
	case roleDomainAdmin:
		redirect(w, r, domainURL(who.domain))
	default:
		redirect(w, r, "/me")
	}
}
