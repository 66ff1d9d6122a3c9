package webadmin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// session is a logged-in browser, kept in memory under the SHA-256 of its
// token (so that finding it takes the same time whatever the token).
type session struct {
	key     [32]byte
	csrf    string
	login   string // the system administrator's name, or the mailbox's address
	admin   bool   // a system administrator of Options.Admins
	pwHash  string // the mailbox's password hash at login or at its own last change
	created time.Time
	seen    time.Time
	flash   string // shown once by the next page
}

// sessions are a Server's sessions.
type sessions struct {
	mu sync.Mutex
	m  map[[32]byte]*session
}

// newToken returns 256 random bits, base64url-encoded.
func newToken() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Server) cookieName() string {
	if s.opts.PlainHTTP {
		return "qmailkit-session"
	}
	return "__Host-qmailkit-session"
}

func (s *Server) loginCookieName() string {
	if s.opts.PlainHTTP {
		return "qmailkit-login"
	}
	return "__Host-qmailkit-login"
}

// setCookie sets (or, with an empty value, removes) a cookie as every
// cookie of the web admin is: host-only, path /, HttpOnly, SameSite=Strict,
// Secure unless PlainHTTP, and a session cookie (the server ends sessions).
func (s *Server) setCookie(w http.ResponseWriter, name, value string) {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		Secure:   !s.opts.PlainHTTP,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	}
	if value == "" {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// newSession starts a session and returns its token. When MaxSessions are
// kept already, the expired ones are dropped, and then, if still full,
// the one used least recently.
func (s *Server) newSession(login string, admin bool, pwHash string) (token string, sess *session) {
	now := s.now()
	token = newToken()
	sess = &session{
		key:     sha256.Sum256([]byte(token)),
		csrf:    newToken(),
		login:   login,
		admin:   admin,
		pwHash:  pwHash,
		created: now,
		seen:    now,
	}
	ss := &s.sessions
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= s.opts.MaxSessions {
		var oldest *session
		for k, x := range ss.m {
			if s.expired(x, now) {
				delete(ss.m, k)
			} else if oldest == nil || x.seen.Before(oldest.seen) {
				oldest = x
			}
		}
		if len(ss.m) >= s.opts.MaxSessions && oldest != nil {
			delete(ss.m, oldest.key)
		}
	}
	ss.m[sess.key] = sess
	return token, sess
}

func (s *Server) expired(x *session, now time.Time) bool {
	return now.Sub(x.seen) >= s.opts.IdleTimeout || now.Sub(x.created) >= s.opts.MaxAge
}

// session returns a copy of the request's session and marks it used, or
// false when there is none or it has expired (then it is dropped).
func (s *Server) session(r *http.Request) (session, bool) {
	c, err := r.Cookie(s.cookieName())
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return session{}, false
	}
	key := sha256.Sum256([]byte(c.Value))
	now := s.now()
	ss := &s.sessions
	ss.mu.Lock()
	defer ss.mu.Unlock()
	x := ss.m[key]
	if x == nil {
		return session{}, false
	}
	if s.expired(x, now) {
		delete(ss.m, key)
		return session{}, false
	}
	x.seen = now
	return *x, true
}

// endSession drops a session.
func (s *Server) endSession(key [32]byte) {
	s.sessions.mu.Lock()
	delete(s.sessions.m, key)
	s.sessions.mu.Unlock()
}

// setFlash keeps a message for the session's next page.
func (s *Server) setFlash(key [32]byte, msg string) {
	s.sessions.mu.Lock()
	if x := s.sessions.m[key]; x != nil {
		x.flash = msg
	}
	s.sessions.mu.Unlock()
}

// takeFlash returns and forgets the session's message.
func (s *Server) takeFlash(key [32]byte) string {
	s.sessions.mu.Lock()
	defer s.sessions.mu.Unlock()
	x := s.sessions.m[key]
	if x == nil {
		return ""
	}
	msg := x.flash
	x.flash = ""
	return msg
}

// setPasswordHash records the hash of the session's own new password, so
// that the change does not end the session that made it (it ends the
// others: see [Server.identify]).
func (s *Server) setPasswordHash(key [32]byte, hash string) {
	s.sessions.mu.Lock()
	if x := s.sessions.m[key]; x != nil {
		x.pwHash = hash
	}
	s.sessions.mu.Unlock()
}

// checkToken compares a form's token with the expected one in constant
// time; an empty expected token matches nothing.
func checkToken(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
