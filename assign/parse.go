package assign

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// ErrSyntax is wrapped by every [SyntaxError]: the assign file is not in
// qmail-newu's format ("qmail-newu: fatal: bad format in users/assign").
var ErrSyntax = errors.New("assign: bad format")

// SyntaxError says where an assign file breaks qmail-newu's rules.
type SyntaxError struct {
	File  string // the file's name, when the reader had one (an *os.File)
	Line  int    // 1-based line number
	Field string // "type", "local", "user", "uid", "gid", "home", "dash", "ext", or "" for the whole line
	Msg   string
}

// Error gives file, line, field and what is wrong.
func (e *SyntaxError) Error() string {
	var b strings.Builder
	b.WriteString("assign: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteByte(':')
	} else {
		b.WriteString("line ")
	}
	fmt.Fprintf(&b, "%d: ", e.Line)
	if e.Field != "" {
		b.WriteString("field ")
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns [ErrSyntax].
func (e *SyntaxError) Unwrap() error { return ErrSyntax }

// fieldNames names the parts of a line: the type byte, the local part, then
// the six fields that each end at a colon.
var fieldNames = [...]string{"type", "local", "user", "uid", "gid", "home", "dash", "ext"}

// Entry is one assignment line.
type Entry struct {
	Line int // 1-based line number in the file

	// Wildcard is true for a '+' line: Local is then a prefix, and the
	// rest of a matching address is appended to Ext. Every other first
	// byte ('=' by convention, but also '-', '#', ...) makes a simple line.
	Wildcard bool

	// Local is the local part (or the prefix) as written; the cdb key is
	// its ASCII lower-case form.
	Local string

	// The six fields, verbatim. UID and GID are text: qmail-lspawn reads
	// their leading digits when it delivers.
	User, UID, GID, Home, Dash, Ext string
}

// Key returns the users/cdb key of the entry: "!" + lower(Local), and a NUL
// for a simple line.
func (e Entry) Key() []byte {
	k := make([]byte, 0, len(e.Local)+2)
	k = append(k, '!')
	k = appendLower(k, e.Local)
	if !e.Wildcard {
		k = append(k, 0)
	}
	return k
}

// Value returns the users/cdb value of the entry: the six fields joined by
// NUL bytes, with no NUL after the last one.
func (e Entry) Value() []byte {
	return []byte(strings.Join([]string{e.User, e.UID, e.GID, e.Home, e.Dash, e.Ext}, "\x00"))
}

// String returns the entry as an assign line, without its newline.
func (e Entry) String() string {
	t := "="
	if e.Wildcard {
		t = "+"
	}
	return t + strings.Join([]string{e.Local, e.User, e.UID, e.GID, e.Home, e.Dash, e.Ext}, ":") + ":"
}

// record is a parsed line as qmail-newu stores it; its slices point into the
// Scanner's buffers and are valid until the next Scan.
type record struct {
	key, value []byte
	local      []byte // as written
	wild       bool
}

// Scanner reads an assign file line by line, as qmail-newu does, holding one
// line at a time. It stops at the terminating line (the first whose first
// byte is '.'), at the first malformed line, or at a read error.
type Scanner struct {
	r      *bufio.Reader
	name   string
	lineno int
	buf    []byte // a line longer than the reader's buffer
	key    []byte
	rec    record
	err    error
	done   bool
}

// NewScanner returns a Scanner reading from r. If r has a Name method (an
// *os.File does), errors carry that name.
func NewScanner(r io.Reader) *Scanner {
	s := &Scanner{r: bufio.NewReaderSize(r, 64<<10)}
	if n, ok := r.(interface{ Name() string }); ok {
		s.name = n.Name()
	}
	return s
}

// Scan advances to the next assignment and reports whether there is one.
// It returns false at the terminating line and on error; Err tells which.
func (s *Scanner) Scan() bool {
	if s.done {
		return false
	}
	line, nl, err := s.readLine()
	s.lineno++
	if err != nil {
		s.fail(&fs.PathError{Op: "read", Path: s.nameOr("assign"), Err: err})
		return false
	}
	// qmail-newu: if (line.len && (line.s[0] == '.')) break; — before it
	// checks for the newline, so the terminator alone may lack one.
	if len(line) > 0 && line[0] == '.' {
		s.done = true
		return false
	}
	if !nl {
		if len(line) == 0 {
			s.fail(s.syntax("", "end of file before the terminating \".\" line"))
		} else {
			s.fail(s.syntax("", "no newline at end of file (and no terminating \".\" line)"))
		}
		return false
	}
	if err := s.parse(line); err != nil {
		s.fail(err)
		return false
	}
	return true
}

func (s *Scanner) nameOr(def string) string {
	if s.name != "" {
		return s.name
	}
	return def
}

func (s *Scanner) fail(err error) {
	s.err, s.done = err, true
}

func (s *Scanner) syntax(field, msg string) *SyntaxError {
	return &SyntaxError{File: s.name, Line: s.lineno, Field: field, Msg: msg}
}

// readLine returns the next line with its '\n' removed, and whether it had
// one. A line is held in the bufio buffer when it fits, so most lines are
// never copied.
func (s *Scanner) readLine() (line []byte, nl bool, err error) {
	b, err := s.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		s.buf = append(s.buf[:0], b...)
		for err == bufio.ErrBufferFull {
			b, err = s.r.ReadSlice('\n')
			s.buf = append(s.buf, b...)
		}
		b = s.buf
	}
	if err == io.EOF {
		return b, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b[:len(b)-1], true, nil
}

// parse turns one line (without its '\n') into s.rec, by qmail-newu's rules.
func (s *Scanner) parse(line []byte) error {
	if i := bytes.IndexByte(line, 0); i >= 0 {
		return s.syntax(fieldOf(line, i), "contains a NUL byte")
	}
	i := bytes.IndexByte(line, ':')
	switch {
	case len(line) == 0:
		return s.syntax("", "blank line (qmail-newu has no blank or comment lines)")
	case i < 0:
		return s.syntax("", "no ':' in the line (qmail-newu has no comment lines)")
	case i == 0:
		return s.syntax("type", "line starts with ':' (the first byte must be '=' or '+')")
	}
	wild := line[0] == '+'
	local := line[1:i]
	key := append(s.key[:0], '!')
	key = appendLowerBytes(key, local)
	if !wild {
		key = append(key, 0)
	}
	s.key = key

	// The value: the text after the first colon up to its sixth colon, with
	// the five colons before that turned into NUL. The line is ours until
	// the next read, so this is done in place.
	data := line[i+1:]
	n := 0
	end := -1
	for j, c := range data {
		if c != ':' {
			continue
		}
		if n++; n == 6 {
			end = j
			break
		}
		data[j] = 0
	}
	if end < 0 {
		return s.syntax(fieldNames[2+n], fmt.Sprintf("missing the ':' that ends it (%d of the 6 field colons after the local part)", n))
	}
	s.rec = record{key: key, value: data[:end], local: local, wild: wild}
	return nil
}

// fieldOf names the field of line that holds byte i.
func fieldOf(line []byte, i int) string {
	if i == 0 {
		return "type"
	}
	n := bytes.Count(line[:i], []byte{':'})
	if 1+n < len(fieldNames) {
		return fieldNames[1+n]
	}
	return "trailing text"
}

// Entry returns the assignment Scan found.
func (s *Scanner) Entry() Entry {
	f := bytes.SplitN(s.rec.value, []byte{0}, 6)
	for len(f) < 6 {
		f = append(f, nil)
	}
	return Entry{
		Line:     s.lineno,
		Wildcard: s.rec.wild,
		Local:    string(s.rec.local),
		User:     string(f[0]),
		UID:      string(f[1]),
		GID:      string(f[2]),
		Home:     string(f[3]),
		Dash:     string(f[4]),
		Ext:      string(f[5]),
	}
}

// Err returns the error that stopped the scan: nil after the terminating
// line, a *[SyntaxError] for a malformed file (including one with no
// terminating line), or a read error (an *fs.PathError with Op "read").
func (s *Scanner) Err() error { return s.err }

func appendLower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		dst = append(dst, lower(s[i]))
	}
	return dst
}

func appendLowerBytes(dst, s []byte) []byte {
	for _, c := range s {
		dst = append(dst, lower(c))
	}
	return dst
}

// lower is qmail's case_lowerb: ASCII only.
func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
