// Package errstr words system errors as djb's programs print them (qmail's
// and ucspi-tcp's error_str.c): "file does not exist" where the C library
// says "No such file or directory". The drop-in programs under examples/
// use it so that their messages match the originals byte for byte.
package errstr

import (
	"errors"
	"syscall"

	"github.com/qmailkit/qmailkit/internal/cdb"
)

// djb's error_str.c, for the errno values Linux has.
var words = map[syscall.Errno]string{
	syscall.EINTR:           "interrupted system call",
	syscall.ENOMEM:          "out of memory",
	syscall.ENOENT:          "file does not exist",
	syscall.ETXTBSY:         "text busy",
	syscall.EIO:             "input/output error",
	syscall.EEXIST:          "file already exists",
	syscall.ETIMEDOUT:       "timed out",
	syscall.EINPROGRESS:     "operation in progress",
	syscall.EAGAIN:          "temporary failure",
	syscall.EPIPE:           "broken pipe",
	syscall.EPERM:           "permission denied",
	syscall.EACCES:          "access denied",
	syscall.ENXIO:           "device not configured",
	syscall.E2BIG:           "argument list too long",
	syscall.ENOEXEC:         "exec format error",
	syscall.EBADF:           "file descriptor not open",
	syscall.ECHILD:          "no child processes",
	syscall.EDEADLK:         "operation would cause deadlock",
	syscall.EFAULT:          "bad address",
	syscall.ENOTBLK:         "not a block device",
	syscall.EBUSY:           "device busy",
	syscall.EXDEV:           "cross-device link",
	syscall.ENODEV:          "device does not support operation",
	syscall.ENOTDIR:         "not a directory",
	syscall.EISDIR:          "is a directory",
	syscall.EINVAL:          "invalid argument",
	syscall.ENFILE:          "system cannot open more files",
	syscall.EMFILE:          "process cannot open more files",
	syscall.ENOTTY:          "not a tty",
	syscall.EFBIG:           "file too big",
	syscall.ENOSPC:          "out of disk space",
	syscall.ESPIPE:          "unseekable descriptor",
	syscall.EROFS:           "read-only file system",
	syscall.EMLINK:          "too many links",
	syscall.EDOM:            "input out of range",
	syscall.ERANGE:          "output out of range",
	syscall.EALREADY:        "operation already in progress",
	syscall.ENOTSOCK:        "not a socket",
	syscall.EDESTADDRREQ:    "destination address required",
	syscall.EMSGSIZE:        "message too long",
	syscall.EPROTOTYPE:      "incorrect protocol type",
	syscall.ENOPROTOOPT:     "protocol not available",
	syscall.EPROTONOSUPPORT: "protocol not supported",
	syscall.ESOCKTNOSUPPORT: "socket type not supported",
	syscall.EOPNOTSUPP:      "operation not supported",
	syscall.EPFNOSUPPORT:    "protocol family not supported",
	syscall.EAFNOSUPPORT:    "address family not supported",
	syscall.EADDRINUSE:      "address already used",
	syscall.EADDRNOTAVAIL:   "address not available",
	syscall.ENETDOWN:        "network down",
	syscall.ENETUNREACH:     "network unreachable",
	syscall.ENETRESET:       "network reset",
	syscall.ECONNABORTED:    "connection aborted",
	syscall.ECONNRESET:      "connection reset",
	syscall.ENOBUFS:         "out of buffer space",
	syscall.EISCONN:         "already connected",
	syscall.ENOTCONN:        "not connected",
	syscall.ESHUTDOWN:       "socket shut down",
	syscall.ETOOMANYREFS:    "too many references",
	syscall.ECONNREFUSED:    "connection refused",
	syscall.ELOOP:           "symbolic link loop",
	syscall.ENAMETOOLONG:    "file name too long",
	syscall.EHOSTDOWN:       "host down",
	syscall.EHOSTUNREACH:    "host unreachable",
	syscall.ENOTEMPTY:       "directory not empty",
	syscall.EUSERS:          "too many users",
	syscall.EDQUOT:          "disk quota exceeded",
	syscall.ESTALE:          "stale NFS file handle",
	syscall.EREMOTE:         "too many levels of remote in path",
	syscall.ENOLCK:          "no locks available",
	syscall.ENOSYS:          "system call not available",
	syscall.EILSEQ:          "illegal byte sequence",
	syscall.EPROTO:          "protocol error",
}

// Text words err as djb's error_str does, for messages such as
// "tcprules: fatal: unable to create rules.tmp: file does not exist". A
// corrupt cdb reads as "protocol error" (cdb_read's EPROTO) and a cdb too
// large to write as "out of memory" (cdb_make's ENOMEM); an errno djb's
// table lacks is "unknown error"; an error with no errno keeps Go's text.
func Text(err error) string {
	switch {
	case errors.Is(err, cdb.ErrCorrupt):
		return words[syscall.EPROTO]
	case errors.Is(err, cdb.ErrTooMuchData):
		return words[syscall.ENOMEM]
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if errno == 0 {
			return "no error"
		}
		if w, ok := words[errno]; ok {
			return w
		}
		return "unknown error"
	}
	return err.Error()
}
