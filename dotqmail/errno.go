package dotqmail

import (
	"errors"
	"syscall"
)

// isTemp reports whether err carries an errno qmail treats as temporary
// (qmail's error_temp): one that may go away if the delivery is retried.
func isTemp(err error) bool {
	var e syscall.Errno
	if !errors.As(err, &e) {
		return false
	}
	switch e {
	case syscall.EINTR, syscall.ENOMEM, syscall.ETXTBSY, syscall.EIO, syscall.ETIMEDOUT,
		syscall.EAGAIN, syscall.EDEADLK, syscall.EBUSY, syscall.ENFILE, syscall.EMFILE,
		syscall.EFBIG, syscall.ENOSPC, syscall.ENETDOWN, syscall.ENETUNREACH, syscall.ENETRESET,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.ENOBUFS, syscall.ETOOMANYREFS,
		syscall.ECONNREFUSED, syscall.EHOSTDOWN, syscall.EHOSTUNREACH, syscall.EUSERS,
		syscall.EDQUOT, syscall.ESTALE, syscall.EREMOTE, syscall.ENOLCK:
		return true
	}
	return false
}

// isAccess reports EACCES or EPERM, which qmail-local will not take for a
// missing .qmail file: it defers the message instead.
func isAccess(err error) bool {
	return errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)
}

// errText is the C library's text for the errno in err ("No such file or
// directory"), which qmail-local puts in its reports; other errors give
// their own text.
func errText(err error) string {
	var e syscall.Errno
	if !errors.As(err, &e) {
		return err.Error()
	}
	s := e.Error()
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}
