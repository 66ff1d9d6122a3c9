// Package syslog sends messages to the local syslog daemon exactly as the
// C library's syslog(3) does after openlog(ident, 0, facility) — no
// "[pid]", the daemon's socket /dev/log — and copies lines to it as
// qmail's splogger does ([Splog]). Go's log/syslog cannot stand in: it
// adds the process id and its own header.
//
// # Format
//
// One datagram per message (glibc's format, RFC 3164 style):
//
//	<PRI>Mmm dd hh:mm:ss IDENT: MESSAGE
//
// PRI is facility + severity in decimal, the time is local with the day
// padded by a space ("Dec  7 09:05:01"), and nothing follows the message.
// When the socket is a stream socket, each message ends with a NUL byte,
// as glibc sends it there.
package syslog

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Severities (syslog.h) used here.
const (
	Alert   = 1
	Warning = 4
	Info    = 6
)

// Facilities (syslog.h), already shifted as openlog(3) takes them.
const (
	Kern = 0 << 3
	User = 1 << 3
	Mail = 2 << 3
)

// facMask is LOG_FACMASK.
const facMask = 0x3f8

// DefaultPath is the socket of the local syslog daemon.
const DefaultPath = "/dev/log"

// Logger is an openlog(3)'d connection to the syslog daemon. Its zero
// value logs as "" to /dev/log with facility user. It connects at the
// first message and reconnects once when a send fails; a message that
// still cannot be sent is dropped with an error, as syslog(3) drops it.
// A Logger is safe for concurrent use.
type Logger struct {
	// Path is the daemon's socket; "" means [DefaultPath].
	Path string
	// Ident is the tag before the ": ".
	Ident string
	// Facility is openlog's facility argument (such as [Mail]). As in
	// glibc, 0 (kern) and values outside LOG_FACMASK leave the default,
	// user.
	Facility int
	// Now gives the time of the header; nil means time.Now. The header
	// is in Now's location.
	Now func() time.Time

	mu     sync.Mutex
	conn   net.Conn
	stream bool
}

// Priority is the PRI of a message of severity sev: the facility of
// syslog(3) after openlog(ident, 0, l.Facility).
func (l *Logger) Priority(sev int) int {
	fac := User
	if l.Facility != 0 && l.Facility&^facMask == 0 {
		fac = l.Facility
	}
	return fac | sev&7
}

// Format returns the bytes syslog(3) sends for msg at severity sev at
// time t.
func (l *Logger) Format(sev int, msg string, t time.Time) []byte {
	b := make([]byte, 0, 32+len(l.Ident)+len(msg))
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(l.Priority(sev)), 10)
	b = append(b, '>')
	b = t.AppendFormat(b, "Jan _2 15:04:05 ")
	b = append(b, l.Ident...)
	b = append(b, ": "...)
	return append(b, msg...)
}

// Log sends msg at severity sev.
func (l *Logger) Log(sev int, msg string) error {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	b := l.Format(sev, msg, now())
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	for range 2 {
		if l.conn == nil {
			if err = l.connect(); err != nil {
				continue
			}
		}
		out := b
		if l.stream {
			out = append(b, 0)
		}
		if _, err = l.conn.Write(out); err == nil {
			return nil
		}
		l.conn.Close()
		l.conn = nil
	}
	return err
}

// connect opens the socket: a datagram one, or, when the daemon listens
// on a stream socket (EPROTOTYPE), a stream one, as glibc does.
func (l *Logger) connect() error {
	path := l.Path
	if path == "" {
		path = DefaultPath
	}
	c, err := net.Dial("unixgram", path)
	if errors.Is(err, syscall.EPROTOTYPE) {
		c, err = net.Dial("unix", path)
		l.stream = err == nil
	}
	if err != nil {
		return err
	}
	l.conn = c
	return nil
}

// Close closes the connection; a later Log opens another.
func (l *Logger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	err := l.conn.Close()
	l.conn = nil
	return err
}
