// Package account looks up the system accounts qmail's programs are
// installed with (qmaild, qmaill, qmailq, qmailr, qmails, alias, the
// nofiles and qmail groups, ...) as qmail's inituid and initgid do:
// through the password and group databases (os/user), once, at start.
package account

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
)

// Error is the failure to find an account. Its text is qmail's message
// without the "fatal: " prefix: "unable to find user NAME" or "unable to
// find group NAME".
type Error struct {
	Kind string // "user" or "group"
	Name string
	Err  error // the lookup's error: user.UnknownUserError, ...
}

func (e *Error) Error() string { return "unable to find " + e.Kind + " " + e.Name }

// Unwrap returns the lookup's error.
func (e *Error) Unwrap() error { return e.Err }

// IDs returns the uids of users and the gids of groups, in order. The
// first account that cannot be found, users before groups, gives an
// *[Error] (a lookup failure counts as not found, as getpwnam returning
// NULL does).
func IDs(users, groups []string) (uids, gids []int, err error) {
	for _, name := range users {
		u, err := user.Lookup(name)
		if err == nil {
			var id int
			if id, err = strconv.Atoi(u.Uid); err == nil {
				uids = append(uids, id)
				continue
			}
		}
		return nil, nil, &Error{Kind: "user", Name: name, Err: err}
	}
	for _, name := range groups {
		g, err := user.LookupGroup(name)
		if err == nil {
			var id int
			if id, err = strconv.Atoi(g.Gid); err == nil {
				gids = append(gids, id)
				continue
			}
		}
		return nil, nil, &Error{Kind: "group", Name: name, Err: err}
	}
	return uids, gids, nil
}

// Fatal is the line qmail's inituid and initgid print on standard error
// before exiting 111 for err: "fatal: unable to find user NAME\n". For an
// error that is not an *[Error] it gives "fatal: " and its text.
func Fatal(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return fmt.Sprintf("fatal: %s\n", e)
	}
	return "fatal: " + err.Error() + "\n"
}
