package qmailkit

import "errors"

// IsPermanent reports whether err is permanent under the module's
// convention: some error in its chain has a Permanent() bool method that
// returns true (a bounce, a 5xx reply, qmail's exit 100). Every other
// error, nil aside, is temporary: the mail waits and is tried again.
func IsPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// Permanent returns err marked permanent: IsPermanent reports true for it
// and errors.Is and errors.As see err through it. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() error   { return e.err }
func (e permanentError) Permanent() bool { return true }
