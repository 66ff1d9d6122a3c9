package smtpserver

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeLimiter records the calls a server makes and refuses users named
// "blocked".
type fakeLimiter struct {
	mu    sync.Mutex
	calls []string
}

func (l *fakeLimiter) Wait(ctx context.Context, addr netip.Addr, user string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, fmt.Sprintf("wait %v %s", addr, user))
	if user == "blocked" {
		return errors.New("too many failures")
	}
	return nil
}

func (l *fakeLimiter) Done(addr netip.Addr, user string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, fmt.Sprintf("done %v %s %v", addr, user, ok))
}

func (l *fakeLimiter) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.Join(l.calls, "; ")
	l.calls = nil
	return s
}

func plain(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

// Finding 6: the AuthLimiter is asked before each credentials check, with
// the client's address and the user name, and told right and wrong
// outcomes (not temporary failures); when it refuses, the password is not
// checked and the client gets 454.
func TestAuthLimiter(t *testing.T) {
	tests := []struct {
		name   string
		ip     string // TCPREMOTEIP
		cmds   []string
		want   []string
		calls  string
		checks []string // the users whose password was checked
	}{
		{name: "success", ip: "127.0.0.1",
			cmds: []string{"AUTH PLAIN " + plain("joe", "s3cret")}, want: []string{"235 2.7.0 authentication successful"},
			calls: "wait 127.0.0.1 joe; done 127.0.0.1 joe true", checks: []string{"joe"}},
		{name: "wrong", ip: "127.0.0.1",
			cmds: []string{"AUTH PLAIN " + plain("joe", "guess")}, want: []string{"535 5.7.8 authentication credentials invalid"},
			calls: "wait 127.0.0.1 joe; done 127.0.0.1 joe false", checks: []string{"joe"}},
		{name: "temporary", ip: "127.0.0.1",
			cmds: []string{"AUTH PLAIN " + plain("down", "x")}, want: []string{"454 4.7.0 temporary authentication failure"},
			calls: "wait 127.0.0.1 down", checks: []string{"down"}},
		{name: "refused", ip: "127.0.0.1",
			cmds: []string{"AUTH PLAIN " + plain("blocked", "s3cret")}, want: []string{"454 4.7.0 too many failed authentications, try again later"},
			calls: "wait 127.0.0.1 blocked"},
		{name: "login", ip: "::ffff:127.0.0.1",
			cmds:  []string{"AUTH LOGIN", base64.StdEncoding.EncodeToString([]byte("joe")), base64.StdEncoding.EncodeToString([]byte("bad"))},
			want:  []string{"334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "535 5.7.8 authentication credentials invalid"},
			calls: "wait 127.0.0.1 joe; done 127.0.0.1 joe false", checks: []string{"joe"}},
		{name: "login refused", ip: "127.0.0.1",
			cmds:  []string{"AUTH LOGIN " + base64.StdEncoding.EncodeToString([]byte("blocked")), base64.StdEncoding.EncodeToString([]byte("x"))},
			want:  []string{"334 UGFzc3dvcmQ6", "454 4.7.0 too many failed authentications, try again later"},
			calls: "wait 127.0.0.1 blocked"},
		{name: "unparsable address", ip: "unknown",
			cmds: []string{"AUTH PLAIN " + plain("joe", "guess")}, want: []string{"535 5.7.8 authentication credentials invalid"},
			calls: "wait invalid IP joe; done invalid IP joe false", checks: []string{"joe"}},
		{name: "cancelled", ip: "127.0.0.1",
			cmds: []string{"AUTH PLAIN", "*"}, want: []string{"334 ", "501 5.0.0 authentication cancelled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := &fakeLimiter{}
			srv := compatServer(&sink{})
			srv.Compat, srv.AuthOnLoopback, srv.AuthFailDelay, srv.AuthLimiter = false, true, -1, lim
			var mu sync.Mutex
			var checks []string
			srv.Auth = Authenticator(func(ctx context.Context, user, pass string) error {
				mu.Lock()
				checks = append(checks, user)
				mu.Unlock()
				switch {
				case user == "down":
					return errTest("database unavailable")
				case pass == "s3cret":
					return nil
				}
				return ErrBadCredentials
			})
			c := start(t, srv, map[string]string{"TCPREMOTEIP": tt.ip})
			c.expect("220 *")
			c.send("EHLO c\r\n")
			c.reply()
			for i, cmd := range tt.cmds {
				c.send(cmd + "\r\n")
				c.expect(tt.want[i])
			}
			if got := lim.take(); got != tt.calls {
				t.Errorf("limiter calls %q, want %q", got, tt.calls)
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(checks, " ") != strings.Join(tt.checks, " ") {
				t.Errorf("passwords checked for %q, want %q", checks, tt.checks)
			}
		})
	}
}

// A limiter that makes the client wait: the session waits with it, and
// Close ends the wait.
type blockingLimiter struct{ entered chan struct{} }

func (l blockingLimiter) Wait(ctx context.Context, addr netip.Addr, user string) error {
	close(l.entered)
	<-ctx.Done()
	return ctx.Err()
}
func (blockingLimiter) Done(netip.Addr, string, bool) {}

func TestAuthLimiterWaitEndsWithServer(t *testing.T) {
	srv := compatServer(&sink{})
	srv.Compat, srv.AuthOnLoopback = false, true
	srv.Auth = Authenticator(func(ctx context.Context, user, pass string) error { return nil })
	lim := blockingLimiter{make(chan struct{})}
	srv.AuthLimiter = lim
	c := start(t, srv, map[string]string{"TCPREMOTEIP": "127.0.0.1"})
	c.expect("220 *")
	c.send("AUTH PLAIN " + plain("joe", "x") + "\r\n")
	select {
	case <-lim.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait not called")
	}
	srv.Close()
	c.expectEOF()
	if err := c.wait(); err == nil {
		t.Fatal("ServeConn = nil")
	}
}
