package smtpserver

import (
	"context"
	"net/netip"
	"sync"
	"testing"

	"github.com/qmailkit/qmailkit/auth"
)

// hookSeen is what a hook saw of its session.
type hookSeen struct {
	called  bool
	ip      netip.Addr
	helo    string
	user    string
	env     string // the Env's TCPREMOTEHOST
	fromCtx bool   // SessionFrom(ctx) is the Session given
	arg     string
}

type hookLog struct {
	mu   sync.Mutex
	seen map[string]hookSeen
}

func (l *hookLog) note(name string, ctx context.Context, s *Session, arg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]hookSeen{}
	}
	h := hookSeen{called: true, arg: arg, fromCtx: ctx != nil && SessionFrom(ctx) == s}
	if s != nil {
		h.ip, h.helo, h.user, h.env = s.RemoteIP, s.Helo, s.User, s.Env["TCPREMOTEHOST"]
	}
	l.seen[name] = h
}

func (l *hookLog) get(name string) hookSeen {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[name]
}

// TestHooksSeeSession: RcptHostsContext, BadMailFromContext and
// SessionSettingsContext get the context and the session (address, HELO,
// authenticated user), and the settings they return apply.
func TestHooksSeeSession(t *testing.T) {
	log := &hookLog{}
	srv := &Server{
		Hostname: "mx.example", AuthOnLoopback: true, AuthFailDelay: -1, Enqueuer: &sink{},
		IsLocalIP: func(netip.Addr) bool { return false },
		Auth: auth.Func(func(ctx context.Context, c auth.Credentials) (*auth.User, error) {
			if c.User == "joe" && c.Secret == "s3cret" {
				return &auth.User{Name: "joe"}, nil
			}
			return nil, auth.ErrFailed
		}),
		SessionSettingsContext: func(ctx context.Context, s *Session) Settings {
			log.note("settings", ctx, s, "")
			return Settings{Hostname: "per-session.example"}
		},
		RcptHostsContext: func(ctx context.Context, s *Session, domain string) (bool, error) {
			log.note("rcpthosts", ctx, s, domain)
			return domain == "example.org", nil
		},
		BadMailFromContext: func(ctx context.Context, s *Session, addr string) bool {
			log.note("badmailfrom", ctx, s, addr)
			return s.User == "" && addr == "spam@bad.example"
		},
	}
	env := map[string]string{"TCPREMOTEIP": "127.0.0.1", "TCPREMOTEHOST": "client.example"}
	ip := netip.MustParseAddr("127.0.0.1")

	// Not authenticated: rcpthosts is asked, badmailfrom refuses.
	c := start(t, srv, env)
	c.expect("220 per-session.example ESMTP")
	c.send("EHLO helo.example\r\n")
	c.reply()
	c.send("MAIL FROM:<spam@bad.example>\r\n")
	c.expect("250 2.1.0 ok")
	c.send("RCPT TO:<a@example.org>\r\n")
	c.expect("553 5.7.1 sorry, your envelope sender is in my badmailfrom list (#5.7.1)")
	c.send("RSET\r\nMAIL FROM:<ok@good.example>\r\n")
	c.expect("250 2.0.0 flushed")
	c.expect("250 2.1.0 ok")
	c.send("RCPT TO:<a@EXAMPLE.org>\r\n")
	c.expect("250 2.1.5 ok")
	c.send("RCPT TO:<a@elsewhere.example>\r\n")
	c.expect("553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)")
	c.send("QUIT\r\n")
	c.expect("221 2.0.0 per-session.example")

	if got, want := log.get("settings"), (hookSeen{called: true, ip: ip, env: "client.example", fromCtx: true}); got != want {
		t.Errorf("SessionSettingsContext saw %+v, want %+v", got, want)
	}
	if got, want := log.get("rcpthosts"), (hookSeen{called: true, ip: ip, helo: "helo.example", env: "client.example", fromCtx: true, arg: "elsewhere.example"}); got != want {
		t.Errorf("RcptHostsContext saw %+v, want %+v", got, want)
	}
	if got, want := log.get("badmailfrom"), (hookSeen{called: true, ip: ip, helo: "helo.example", env: "client.example", fromCtx: true, arg: "ok@good.example"}); got != want {
		t.Errorf("BadMailFromContext saw %+v, want %+v", got, want)
	}

	// Authenticated: badmailfrom sees the user (and lets it pass); the
	// client may relay, so rcpthosts is not asked.
	log.seen = nil
	c = start(t, srv, env)
	c.expect("220 per-session.example ESMTP")
	c.send("EHLO helo2.example\r\n")
	c.reply()
	c.send("AUTH PLAIN " + b64("\x00joe\x00s3cret") + "\r\n")
	c.expect("235 2.7.0 authentication successful")
	c.send("MAIL FROM:<spam@bad.example>\r\n")
	c.expect("250 2.1.0 ok")
	c.send("RCPT TO:<a@elsewhere.example>\r\n")
	c.expect("250 2.1.5 ok")
	c.send("QUIT\r\n")
	c.expect("221 2.0.0 per-session.example")
	if got, want := log.get("badmailfrom"), (hookSeen{called: true, ip: ip, helo: "helo2.example", user: "joe", env: "client.example", fromCtx: true, arg: "spam@bad.example"}); got != want {
		t.Errorf("BadMailFromContext after AUTH saw %+v, want %+v", got, want)
	}
	if got := log.get("rcpthosts"); got.called {
		t.Errorf("RcptHostsContext asked for an authenticated client: %+v", got)
	}
}

// TestHooksDeprecatedAndPrecedence: the deprecated fields still work
// alone, and when both shapes are set the Context one wins.
func TestHooksDeprecatedAndPrecedence(t *testing.T) {
	oldRcpt := func(d string) (bool, error) { return d == "old.example", nil }
	newRcpt := func(_ context.Context, _ *Session, d string) (bool, error) { return d == "new.example", nil }
	oldBad := func(a string) bool { return a == "old@bad.example" }
	newBad := func(_ context.Context, _ *Session, a string) bool { return a == "new@bad.example" }
	oldSet := func(*Session) Settings { return Settings{Greeting: "old.example"} }
	newSet := func(context.Context, *Session) Settings { return Settings{Greeting: "new.example"} }
	const (
		ok       = "250 2.1.5 ok"
		relay    = "553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"
		barfed   = "553 5.7.1 sorry, your envelope sender is in my badmailfrom list (#5.7.1)"
		greetOld = "220 old.example ESMTP"
		greetNew = "220 new.example ESMTP"
		greetMe  = "220 mx.example ESMTP"
	)
	tests := []struct {
		name  string
		set   func(*Server)
		greet string
		from  string
		rcpt  string
		want  string
	}{
		{"neither: rcpthosts refuses", func(*Server) {}, greetMe, "x@y", "a@old.example", relay},
		{"neither, open relay", func(s *Server) { s.OpenRelay = true }, greetMe, "old@bad.example", "a@any.example", ok},
		{"old rcpthosts accepts", func(s *Server) { s.RcptHosts = oldRcpt }, greetMe, "x@y", "a@old.example", ok},
		{"old rcpthosts refuses", func(s *Server) { s.RcptHosts = oldRcpt }, greetMe, "x@y", "a@new.example", relay},
		{"new rcpthosts accepts", func(s *Server) { s.RcptHostsContext = newRcpt }, greetMe, "x@y", "a@new.example", ok},
		{"both rcpthosts: new wins (accepts)", func(s *Server) { s.RcptHosts, s.RcptHostsContext = oldRcpt, newRcpt }, greetMe, "x@y", "a@new.example", ok},
		{"both rcpthosts: new wins (refuses)", func(s *Server) { s.RcptHosts, s.RcptHostsContext = oldRcpt, newRcpt }, greetMe, "x@y", "a@old.example", relay},
		{"new rcpthosts, open relay ignored", func(s *Server) { s.RcptHostsContext, s.OpenRelay = newRcpt, true }, greetMe, "x@y", "a@old.example", relay},
		{"old badmailfrom", func(s *Server) { s.OpenRelay, s.BadMailFrom = true, oldBad }, greetMe, "old@bad.example", "a@b", barfed},
		{"new badmailfrom", func(s *Server) { s.OpenRelay, s.BadMailFromContext = true, newBad }, greetMe, "new@bad.example", "a@b", barfed},
		{"both badmailfrom: new wins (refuses)", func(s *Server) { s.OpenRelay, s.BadMailFrom, s.BadMailFromContext = true, oldBad, newBad }, greetMe, "new@bad.example", "a@b", barfed},
		{"both badmailfrom: new wins (accepts)", func(s *Server) { s.OpenRelay, s.BadMailFrom, s.BadMailFromContext = true, oldBad, newBad }, greetMe, "old@bad.example", "a@b", ok},
		{"old settings", func(s *Server) { s.OpenRelay, s.SessionSettings = true, oldSet }, greetOld, "x@y", "a@b", ok},
		{"new settings", func(s *Server) { s.OpenRelay, s.SessionSettingsContext = true, newSet }, greetNew, "x@y", "a@b", ok},
		{"both settings: new wins", func(s *Server) { s.OpenRelay, s.SessionSettings, s.SessionSettingsContext = true, oldSet, newSet }, greetNew, "x@y", "a@b", ok},
		{"hook adapters", func(s *Server) {
			s.RcptHostsContext = RcptHostsHook(HostList([]string{".example.org"}, nil))
			s.BadMailFromContext = BadMailFromHook(AddressList([]string{"@bad.example"}))
		}, greetMe, "x@y", "a@mx.EXAMPLE.org", ok},
		{"hook adapters refuse", func(s *Server) {
			s.RcptHostsContext = RcptHostsHook(HostList([]string{".example.org"}, nil))
			s.BadMailFromContext = BadMailFromHook(AddressList([]string{"@bad.example"}))
		}, greetMe, "who@BAD.example", "a@mx.example.org", barfed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &Server{Hostname: "mx.example", Enqueuer: &sink{}}
			tt.set(srv)
			c := start(t, srv, map[string]string{"TCPREMOTEIP": "192.0.2.1"})
			c.expect(tt.greet)
			c.send("EHLO c\r\n")
			c.reply()
			c.send("MAIL FROM:<" + tt.from + ">\r\n")
			c.expect("250 2.1.0 ok")
			c.send("RCPT TO:<" + tt.rcpt + ">\r\n")
			c.expect(tt.want)
			c.send("QUIT\r\n")
			c.reply()
		})
	}
}

// TestHookAdaptersNil: a nil func adapts to a nil hook, so that the
// server's default (or the deprecated field) still applies.
func TestHookAdaptersNil(t *testing.T) {
	if RcptHostsHook(nil) != nil {
		t.Error("RcptHostsHook(nil) is not nil")
	}
	if BadMailFromHook(nil) != nil {
		t.Error("BadMailFromHook(nil) is not nil")
	}
}
