package dotqmail

import (
	"errors"
	"syscall"

	"github.com/qmailkit/qmailkit/internal/errstr"
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

// errText is djb's text for the errno in err ("file does not exist"), as
// qmail-local's error_str words it in its reports; other errors give their
// own text.
func errText(err error) string { return errstr.Text(err) }
