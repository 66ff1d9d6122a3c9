package pop3

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"

	"github.com/emersion/go-sasl"
)

// ErrAuthFailed is the condition of a login refused for a bad user name
// or password (checkpassword's exit 1). An [Authenticator] returns it, or
// an error wrapping it; any other error is a temporary failure.
var ErrAuthFailed = errors.New("pop3: authorization failed")

// ErrInUse is the condition of a maildrop locked by another session (RFC
// 2449 [IN-USE]). A mailbox opener returns an error wrapping it.
var ErrInUse = errors.New("pop3: mailbox already locked")

// Method is how a client presented its credentials.
type Method string

// The login methods.
const (
	MethodUser  Method = "USER"  // USER and PASS: Secret is the password
	MethodAPOP  Method = "APOP"  // APOP: Secret is the MD5 digest, Challenge the timestamp
	MethodPlain Method = "PLAIN" // AUTH PLAIN (RFC 4616): Secret is the password
)

// Credentials are what a client presented to log in: the three fields
// qmail-popup gives checkpassword on fd 3, and how they came.
type Credentials struct {
	User   string
	Secret string // the password, or for APOP the hex digest
	// Challenge is the greeting's timestamp, "<pid.time@host>", brackets
	// included (RFC 1939 section 7). qmail-popup passes it with every
	// login; checkers of plain passwords ignore it.
	Challenge string
	Method    Method
	// Env is the connection's environment (TCPREMOTEIP, ...), which a
	// checkpassword program sees as its own.
	Env map[string]string
}

// User is an authenticated user: what checkpassword sets up before it runs
// qmail-pop3d.
type User struct {
	Name  string // the login name ($USER)
	Home  string // the home directory ($HOME)
	Shell string // $SHELL, informational
	// UID and GID of the account, -1 when unknown. The in-process server
	// does not change its own ids: it reads mailboxes with its own rights.
	UID, GID int
	// Maildir is the path of the user's Maildir; empty means Home/Maildir,
	// qmail-pop3d's usual argument "./Maildir" run in $HOME.
	Maildir string
}

// Authenticator checks credentials, the role of checkpassword. It returns
// the user on success, an error wrapping [ErrAuthFailed] for a bad name or
// password, and any other error for a temporary failure (the password
// database is unreachable). Implementations must compare secrets in
// constant time.
type Authenticator interface {
	Authenticate(ctx context.Context, c Credentials) (*User, error)
}

// AuthLimiter slows password guessing across sessions and connections
// (see package authlimit for one). A [Server] with an AuthLimiter calls
// Wait before each check of credentials and Done after each check that
// went ahead and had a definite outcome; the same limiter may serve
// several servers (POP3 and SMTP AUTH), so that a client's failures on one
// count on the other.
type AuthLimiter interface {
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

// AuthenticatorFunc adapts a function to [Authenticator].
type AuthenticatorFunc func(ctx context.Context, c Credentials) (*User, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, c Credentials) (*User, error) {
	return f(ctx, c)
}

// APOPDigest returns the APOP digest of a shared secret for a greeting
// timestamp: the lower-case hex MD5 of timestamp followed by secret
// (RFC 1939 section 7).
func APOPDigest(timestamp, secret string) string {
	sum := md5.Sum([]byte(timestamp + secret))
	return hex.EncodeToString(sum[:])
}

// CheckSecret reports whether the presented credentials match the user's
// clear-text secret: equality for USER/PASS and AUTH PLAIN, the APOP digest
// for APOP. It compares in constant time.
func CheckSecret(c Credentials, secret string) bool {
	want := secret
	if c.Method == MethodAPOP {
		want = APOPDigest(c.Challenge, secret)
		return subtle.ConstantTimeCompare([]byte(strings.ToLower(c.Secret)), []byte(want)) == 1
	}
	return subtle.ConstantTimeCompare([]byte(c.Secret), []byte(want)) == 1
}

// decodePlain decodes an AUTH PLAIN response (RFC 4616), base64 of
// authzid NUL authcid NUL passwd, which go-sasl's PLAIN server parses. An
// empty user name is malformed; an authorization identity other than empty
// or the user itself is refused with [ErrAuthFailed]: a POP3 session serves
// one maildrop.
func decodePlain(resp string) (user, pass string, err error) {
	b, err := base64.StdEncoding.DecodeString(resp)
	if err != nil {
		return "", "", errors.New("pop3: AUTH PLAIN: bad base64")
	}
	if b == nil {
		b = []byte{} // nil would be no response at all
	}
	malformed := errors.New("pop3: AUTH PLAIN: malformed response")
	mech := sasl.NewPlainServer(func(authz, authc, pw string) error {
		switch {
		case authc == "":
			return malformed
		case authz != "" && authz != authc:
			return ErrAuthFailed
		}
		user, pass = authc, pw
		return nil
	})
	_, done, err := mech.Next(b)
	switch {
	case errors.Is(err, ErrAuthFailed):
		return "", "", err
	case err != nil || !done:
		return "", "", malformed
	}
	return user, pass, nil
}

func hashUID(uid string) string {
	sum := sha256.Sum256([]byte(uid))
	return "x-" + hex.EncodeToString(sum[:])
}
