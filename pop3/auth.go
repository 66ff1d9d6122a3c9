package pop3

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"

	"github.com/emersion/go-sasl"
	"github.com/qmailkit/qmailkit/auth"
)

// ErrAuthFailed is the condition of a login refused for a bad user name
// or password: the same value as [auth.ErrFailed].
//
// Deprecated: use [auth.ErrFailed].
var ErrAuthFailed = auth.ErrFailed

// ErrInUse is the condition of a maildrop locked by another session (RFC
// 2449 [IN-USE]). A mailbox opener returns an error wrapping it.
var ErrInUse = errors.New("pop3: mailbox already locked")

// Method is how a client presented its credentials.
//
// Deprecated: use [auth.Method].
type Method = auth.Method

// The login methods.
//
// Deprecated: use auth's.
const (
	MethodUser  = auth.MethodUser
	MethodAPOP  = auth.MethodAPOP
	MethodPlain = auth.MethodPlain
)

// Credentials are what a client presented to log in.
//
// Deprecated: use [auth.Credentials].
type Credentials = auth.Credentials

// User is an authenticated user.
//
// Deprecated: use [auth.User].
type User = auth.User

// Authenticator checks credentials, the role of checkpassword.
//
// Deprecated: use [auth.Authenticator].
type Authenticator = auth.Authenticator

// AuthLimiter slows password guessing across sessions and connections.
//
// Deprecated: use [auth.Limiter].
type AuthLimiter = auth.Limiter

// AuthenticatorFunc adapts a function to [Authenticator].
//
// Deprecated: use [auth.Func].
type AuthenticatorFunc = auth.Func

// APOPDigest returns the APOP digest of a shared secret for a greeting
// timestamp.
//
// Deprecated: use [auth.APOPDigest].
func APOPDigest(timestamp, secret string) string { return auth.APOPDigest(timestamp, secret) }

// CheckSecret reports whether the presented credentials match the user's
// clear-text secret.
//
// Deprecated: use [auth.CheckSecret].
func CheckSecret(c Credentials, secret string) bool { return auth.CheckSecret(c, secret) }

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
