package main

import (
	"errors"
	"syscall"
)

// errStr is djb's error_str (qmail's error_str.c): the texts qmail programs
// print after "unable to ...: ", for the errno values Linux defines.
func errStr(err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return "unknown error"
	}
	switch errno {
	case 0:
		return "no error"
	case syscall.EINTR:
		return "interrupted system call"
	case syscall.ENOMEM:
		return "out of memory"
	case syscall.ENOENT:
		return "file does not exist"
	case syscall.ETXTBSY:
		return "text busy"
	case syscall.EIO:
		return "input/output error"
	case syscall.EEXIST:
		return "file already exists"
	case syscall.ETIMEDOUT:
		return "timed out"
	case syscall.EINPROGRESS:
		return "operation in progress"
	case syscall.EAGAIN:
		return "temporary failure" // EWOULDBLOCK is the same value on Linux
	case syscall.EPIPE:
		return "broken pipe"
	case syscall.EPERM:
		return "permission denied"
	case syscall.EACCES:
		return "access denied"
	case syscall.ESRCH:
		return "no such process"
	case syscall.ENXIO:
		return "device not configured"
	case syscall.E2BIG:
		return "argument list too long"
	case syscall.ENOEXEC:
		return "exec format error"
	case syscall.EBADF:
		return "file descriptor not open"
	case syscall.ECHILD:
		return "no child processes"
	case syscall.EDEADLK:
		return "operation would cause deadlock"
	case syscall.EFAULT:
		return "bad address"
	case syscall.ENOTBLK:
		return "not a block device"
	case syscall.EBUSY:
		return "device busy"
	case syscall.EXDEV:
		return "cross-device link"
	case syscall.ENODEV:
		return "device does not support operation"
	case syscall.ENOTDIR:
		return "not a directory"
	case syscall.EISDIR:
		return "is a directory"
	case syscall.EINVAL:
		return "invalid argument"
	case syscall.ENFILE:
		return "system cannot open more files"
	case syscall.EMFILE:
		return "process cannot open more files"
	case syscall.ENOTTY:
		return "not a tty"
	case syscall.EFBIG:
		return "file too big"
	case syscall.ENOSPC:
		return "out of disk space"
	case syscall.ESPIPE:
		return "unseekable descriptor"
	case syscall.EROFS:
		return "read-only file system"
	case syscall.EMLINK:
		return "too many links"
	case syscall.EDOM:
		return "input out of range"
	case syscall.ERANGE:
		return "output out of range"
	case syscall.EALREADY:
		return "operation already in progress"
	case syscall.ENOTSOCK:
		return "not a socket"
	case syscall.EDESTADDRREQ:
		return "destination address required"
	case syscall.EMSGSIZE:
		return "message too long"
	case syscall.EPROTOTYPE:
		return "incorrect protocol type"
	case syscall.ENOPROTOOPT:
		return "protocol not available"
	case syscall.EPROTONOSUPPORT:
		return "protocol not supported"
	case syscall.ESOCKTNOSUPPORT:
		return "socket type not supported"
	case syscall.EOPNOTSUPP:
		return "operation not supported"
	case syscall.EPFNOSUPPORT:
		return "protocol family not supported"
	case syscall.EAFNOSUPPORT:
		return "address family not supported"
	case syscall.EADDRINUSE:
		return "address already used"
	case syscall.EADDRNOTAVAIL:
		return "address not available"
	case syscall.ENETDOWN:
		return "network down"
	case syscall.ENETUNREACH:
		return "network unreachable"
	case syscall.ENETRESET:
		return "network reset"
	case syscall.ECONNABORTED:
		return "connection aborted"
	case syscall.ECONNRESET:
		return "connection reset"
	case syscall.ENOBUFS:
		return "out of buffer space"
	case syscall.EISCONN:
		return "already connected"
	case syscall.ENOTCONN:
		return "not connected"
	case syscall.ESHUTDOWN:
		return "socket shut down"
	case syscall.ETOOMANYREFS:
		return "too many references"
	case syscall.ECONNREFUSED:
		return "connection refused"
	case syscall.ELOOP:
		return "symbolic link loop"
	case syscall.ENAMETOOLONG:
		return "file name too long"
	case syscall.EHOSTDOWN:
		return "host down"
	case syscall.EHOSTUNREACH:
		return "host unreachable"
	case syscall.ENOTEMPTY:
		return "directory not empty"
	case syscall.EUSERS:
		return "too many users"
	case syscall.EDQUOT:
		return "disk quota exceeded"
	case syscall.ESTALE:
		return "stale NFS file handle"
	case syscall.EREMOTE:
		return "too many levels of remote in path"
	case syscall.ENOLCK:
		return "no locks available"
	case syscall.ENOSYS:
		return "system call not available"
	case syscall.ENOSTR:
		return "not a stream device"
	case syscall.ETIME:
		return "timer expired"
	case syscall.ENOSR:
		return "out of stream resources"
	case syscall.ENOMSG:
		return "no message of desired type"
	case syscall.EBADMSG:
		return "bad message type"
	case syscall.EIDRM:
		return "identifier removed"
	case syscall.ENONET:
		return "machine not on network"
	case syscall.ENOLINK:
		return "link severed"
	case syscall.EADV:
		return "advertise error"
	case syscall.ESRMNT:
		return "srmount error"
	case syscall.ECOMM:
		return "communication error"
	case syscall.EPROTO:
		return "protocol error"
	case syscall.EMULTIHOP:
		return "multihop attempted"
	case syscall.EREMCHG:
		return "remote address changed"
	}
	return "unknown error"
}
