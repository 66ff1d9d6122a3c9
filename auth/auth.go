// Package auth is the one seam between the servers that log users in
// (POP3, SMTP AUTH, a checkpassword program, a web page) and whatever
// knows the users (a password file, a checkpassword program, a database of
// virtual mailboxes, a Go func).
//
// A server gathers what the client presented into [Credentials] and asks an
// [Authenticator]; the answer is the [User] or an error: one wrapping
// [ErrFailed] for a wrong name or password, any other for a temporary
// failure (the user database is unreachable). A [Limiter] slows password
// guessing across servers. [HashPassword] and [VerifyPassword] make and
// check the password hashes that Dovecot also reads.
package auth

import (
	"context"
	"errors"
	"net/netip"
)

// ErrFailed is the condition of a login refused for a bad user name or
// password, or for a service the user may not use (checkpassword's exit
// 1). An [Authenticator] returns it, or an error wrapping it; any other
// error is a temporary failure.
var ErrFailed = errors.New("auth: authorization failed")

// Service names the server a login is for, so that an Authenticator can
// refuse a user one service and allow another (a mailbox without POP3).
type Service string

// The services of the module's servers. An empty Service is unknown:
// checkers that restrict services treat it as none of these.
const (
	ServicePOP3 Service = "pop3"
	ServiceSMTP Service = "smtp" // SMTP AUTH (submission)
	ServiceIMAP Service = "imap" // IMAP, through a checkpassword program
	ServiceWeb  Service = "web"  // a web administration page
)

// Method is how a client presented its credentials.
type Method string

// The login methods.
const (
	MethodUser  Method = "USER"  // POP3 USER and PASS: Secret is the password
	MethodAPOP  Method = "APOP"  // POP3 APOP: Secret is the MD5 digest, Challenge the timestamp
	MethodPlain Method = "PLAIN" // AUTH PLAIN (RFC 4616): Secret is the password
	MethodLogin Method = "LOGIN" // SMTP AUTH LOGIN: Secret is the password
)

// Credentials are what a client presented to log in: the three fields
// qmail-popup gives checkpassword on descriptor 3, and how they came.
type Credentials struct {
	Service Service
	Method  Method
	User    string
	Secret  string // the password, or for APOP the hex digest
	// Challenge is the greeting's timestamp, "<pid.time@host>", brackets
	// included (RFC 1939 section 7), as qmail-popup passes it with every
	// login; checkers of plain passwords ignore it.
	Challenge string
	// Remote is the client's address, when known.
	Remote netip.Addr
	// Env is the connection's environment (TCPREMOTEIP, TCPLOCALPORT,
	// ...), which a checkpassword program sees as its own.
	Env map[string]string
}

// User is an authenticated user: what checkpassword sets up before it
// runs the program after it (qmail-pop3d).
type User struct {
	Name  string // the login name ($USER)
	Home  string // the home directory ($HOME)
	Shell string // $SHELL, informational
	// UID and GID of the account, -1 when unknown. The in-process servers
	// do not change their own ids.
	UID, GID int
	// Maildir is the path of the user's Maildir; empty means Home/Maildir,
	// qmail-pop3d's usual argument "./Maildir" run in $HOME.
	Maildir string
}

// Authenticator checks credentials, the role of checkpassword. It returns
// the user on success, an error wrapping [ErrFailed] for a bad name or
// password, and any other error for a temporary failure. Implementations
// must compare secrets in constant time and should spend as long on an
// unknown user as on a known one.
type Authenticator interface {
	Authenticate(ctx context.Context, c Credentials) (*User, error)
}

// Func adapts a function to [Authenticator].
type Func func(ctx context.Context, c Credentials) (*User, error)

// Authenticate calls f.
func (f Func) Authenticate(ctx context.Context, c Credentials) (*User, error) { return f(ctx, c) }

// Limiter slows password guessing across sessions, connections and
// servers (package authlimit has one). A server with a Limiter calls Wait
// before each check of credentials and Done after each check that went
// ahead and had a definite outcome; one limiter may serve POP3 and SMTP
// AUTH together, so that a client's failures on one count on the other.
type Limiter interface {
	// Wait is called before each credentials check, with the client's
	// address and the user name it gave. It returns when the check may go
	// ahead, or an error to refuse the attempt without checking it: the
	// server answers as for a temporary failure.
	Wait(ctx context.Context, addr netip.Addr, user string) error
	// Done reports the outcome of a check that went ahead: ok is true for
	// right credentials, false for wrong ones. Temporary failures of the
	// authenticator are not reported.
	Done(addr netip.Addr, user string, ok bool)
}
