package dotforward

import (
	"bufio"
	"errors"
	"io"
	"strings"

	"github.com/qmailkit/qmailkit/internal/inject"
)

// Config is what a .forward file is read with: whose file it is, and the
// qmail control values that complete its addresses.
type Config struct {
	// User and Host are the recipient's account name and domain ($USER
	// and $HOST from qmail-local): an address that is the user
	// ("joe", "\joe", "joe@host", in any case) asks for direct delivery.
	User, Host string
	// DefaultHost is added to an address with no '@' (qmail's
	// control/defaulthost, itself defaulting to control/me).
	DefaultHost string
	// PlusDomain replaces the final '+' of an address ("u@h+" becomes
	// "u@h.PlusDomain"; control/plusdomain).
	PlusDomain string
	// DefaultDomain is added, after a '.', to a domain with no dot
	// (control/defaultdomain).
	DefaultDomain string
	// MaxLine bounds the length of one line, newline included; a longer
	// line fails as dot-forward fails when it runs out of memory ("out of
	// memory", temporary). Zero means DefaultMaxLine; negative means no
	// limit.
	MaxLine int
}

// DefaultMaxLine is the line length limit when Config.MaxLine is zero.
const DefaultMaxLine = 1 << 20

// Kind is the kind of an [Entry].
type Kind int

// The kinds of entries.
const (
	// Forward is an address to forward the message to, completed with
	// the control values.
	Forward Kind = iota + 1
	// Program is a command for "/bin/sh -c" (the entry "|command").
	Program
	// Direct is the user's own address: deliver as if there were no
	// .forward file.
	Direct
)

func (k Kind) String() string {
	switch k {
	case Forward:
		return "forward"
	case Program:
		return "program"
	case Direct:
		return "direct"
	}
	return "unknown"
}

// Entry is one address of a .forward file, as dot-forward acts on it.
type Entry struct {
	Kind Kind
	// Arg is the completed address (Forward), the command (Program), or
	// the address as written (Direct).
	Arg string
	// Line is the entry's line number, from 1.
	Line int
}

// ParseError is a line that is not an RFC 822 address list. Text is the
// line as dot-forward quotes it: with its newline, cut at a NUL byte.
type ParseError struct {
	Line int
	Text string
}

func (e *ParseError) Error() string { return "dotforward: unable to parse this line: " + e.Text }

// FileError is a file delivery ("/var/mail/joe", or ":include: /x"),
// which dot-forward does not support.
type FileError struct {
	Line int
	Path string
}

func (e *FileError) Error() string { return "dotforward: file delivery " + e.Path + " not supported" }

// ErrLineTooLong is the error for a line longer than Config.MaxLine.
var ErrLineTooLong = errors.New("dotforward: line too long")

// Parse reads a .forward file from r as dot-forward does and calls fn for
// each entry: lines top to bottom, each line's addresses right to left.
// fn's error stops the parse and is returned. A line starting with '#' is
// a comment; every other line is an RFC 822 address list (see
// inject.ParseAddressList: quotes, comments, "phrase <address>", no
// continuation lines, group syntax ignored). An empty address ("<>") is
// skipped. An address without '@' that starts with '/' is a
// *FileError; one that starts with '|' is a Program; one that is the user
// (or user@host, any case) is Direct; every other one is a Forward,
// completed: "@" + DefaultHost when it has no '@', a final '+' made
// "." + PlusDomain, "." + DefaultDomain when no dot follows its last '@'.
//
// A line that does not parse is a *ParseError, after fn has seen the
// entries found on it before the error (to the right of a stray '>').
// dot-forward handles addresses as C strings, so an address, a command or
// a file name is cut at its first NUL byte, after it was completed.
func (c *Config) Parse(r io.Reader, fn func(Entry) error) error {
	limit := c.MaxLine
	if limit == 0 {
		limit = DefaultMaxLine
	}
	br := bufio.NewReaderSize(r, 4096)
	var line []byte
	for n := 1; ; n++ {
		line = line[:0]
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			if limit > 0 && len(line)+len(chunk) > limit {
				return ErrLineTooLong
			}
			line = append(line, chunk...)
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if err != nil && err != io.EOF {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if line[0] != '#' {
			if err := c.parseLine(line, n, fn); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

func (c *Config) parseLine(line []byte, n int, fn func(Entry) error) error {
	err := inject.ParseAddressList(line, func(addr string, hasAt bool) error {
		e, ok, err := c.entry(addr, hasAt)
		if err != nil || !ok {
			if fe, isFile := err.(*FileError); isFile {
				fe.Line = n
			}
			return err
		}
		e.Line = n
		return fn(e)
	})
	if errors.Is(err, inject.ErrSyntax) {
		return &ParseError{Line: n, Text: cString(string(line))}
	}
	return err
}

// entry decides what dot-forward does with one address (gotaddr).
func (c *Config) entry(addr string, hasAt bool) (Entry, bool, error) {
	if addr == "" {
		return Entry{}, false, nil
	}
	if !hasAt && len(addr) == len(c.User) && foldEqual(addr, c.User) {
		return Entry{Kind: Direct, Arg: cString(addr)}, true, nil
	}
	if hasAt && len(addr) == len(c.User)+1+len(c.Host) && addr[len(c.User)] == '@' &&
		foldEqual(addr[:len(c.User)], c.User) && foldEqual(addr[len(c.User)+1:], c.Host) {
		return Entry{Kind: Direct, Arg: cString(addr)}, true, nil
	}
	if !hasAt && addr[0] == '/' {
		return Entry{}, false, &FileError{Path: cString(addr)}
	}
	if !hasAt && addr[0] == '|' {
		return Entry{Kind: Program, Arg: cString(addr[1:])}, true, nil
	}
	if !hasAt {
		addr += "@" + c.DefaultHost
	}
	if addr[len(addr)-1] == '+' {
		addr = addr[:len(addr)-1] + "." + c.PlusDomain
	}
	if !strings.Contains(addr[strings.LastIndexByte(addr, '@')+1:], ".") {
		addr += "." + c.DefaultDomain
	}
	return Entry{Kind: Forward, Arg: cString(addr)}, true, nil
}

// cString is s as C sees it: up to its first NUL byte.
func cString(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// foldEqual compares as djb's case_diffb: A-Z match a-z, every other
// byte only itself.
func foldEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
