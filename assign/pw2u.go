package assign

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
)

// HomeCheck says what [Pw2u] does with an account's home directory.
type HomeCheck uint8

const (
	// HomeSkip (qmail-pw2u -o, the default) skips an account whose home
	// directory does not exist or is not owned by its uid.
	HomeSkip HomeCheck = iota
	// HomeRequire (-h) is HomeSkip, but a missing home directory is fatal.
	HomeRequire
	// HomeIgnore (-H) does not look at home directories.
	HomeIgnore
)

// Pw2u turns a password file into an assign file, as qmail-pw2u(8) does: for
// each acceptable account an '=' line for the user name (or its mail names)
// and a '+' line for its extensions, a catch-all '+' line for the alias
// account, the subusers, then the append file and the terminating ".".
type Pw2u struct {
	// Dir holds qmail-pw2u's control files, users/include, exclude,
	// mailnames, subusers and append, by those names (os.DirFS of
	// QMAILHOME/users). nil: there are none. A file that does not exist
	// is absent; an existing empty include file includes nobody.
	Dir fs.FS

	// Break is the extension separator (-c); 0 means '-'.
	Break byte
	// NoExt (-C) writes no extension ('+') lines for users and subusers.
	NoExt bool
	// DashSlash (-/) writes the dash "-/" instead of "-", so extension
	// addresses use .qmail-/ext files.
	DashSlash bool
	// AllowUpper (-u) keeps accounts whose names have upper-case letters
	// (skipped by default, -U).
	AllowUpper bool
	// Home is the home-directory check (-o, -h, -H).
	Home HomeCheck
	// HomeOwner returns the uid that owns a directory; nil means
	// StatOwner. qmail-pw2u resolves relative homes against QMAILHOME.
	HomeOwner func(dir string) (uid int, err error)
	// Alias is the catch-all account's name; "" means "alias".
	Alias string
}

// Pw2uError is a fatal error of [Pw2u.Convert]. Text is qmail-pw2u's own
// message (what follows "qmail-pw2u: fatal: "); every such error exits 111.
type Pw2uError struct {
	Text string
	Err  error // the underlying error, if any
}

// Error gives qmail-pw2u's text and the cause.
func (e *Pw2uError) Error() string {
	if e.Err == nil {
		return "assign: pw2u: " + e.Text
	}
	return "assign: pw2u: " + e.Text + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Pw2uError) Unwrap() error { return e.Err }

// pw2u is one conversion's state.
type pw2u struct {
	*Pw2u
	out       *bufio.Writer
	dash      string // "-:" or "-/:"
	brk       byte   // 0: no extension lines
	incl      map[string]bool
	excl      map[string]bool
	mana      map[string]string
	allusers  map[string]string // lower(user) → ":user:uid:gid:home:" (last wins)
	flagAlias bool
}

// Convert reads passwd(5) lines from passwd and writes the assign file to w.
// Output is buffered as qmail-pw2u's is: after an error, w may have
// received a part of it. Errors are *[Pw2uError].
func (p *Pw2u) Convert(w io.Writer, passwd io.Reader) error {
	c := &pw2u{Pw2u: p, out: bufio.NewWriterSize(w, 8192), dash: "-:", brk: p.Break}
	if p.DashSlash {
		c.dash = "-/:"
	}
	if c.brk == 0 {
		c.brk = '-'
	}
	if p.NoExt {
		c.brk = 0
	}
	var err error
	var lines []string
	if lines, err = c.control("include"); err != nil {
		return err
	} else if lines != nil {
		c.incl = lowerSet(lines)
	}
	if lines, err = c.control("exclude"); err != nil {
		return err
	} else if lines != nil {
		c.excl = lowerSet(lines)
	}
	if lines, err = c.control("mailnames"); err != nil {
		return err
	} else if lines != nil {
		// constmap with a colon split: lines without one are dropped,
		// and of duplicates the last wins.
		c.mana = map[string]string{}
		for _, l := range lines {
			if i := bytes.IndexByte([]byte(l), ':'); i >= 0 {
				c.mana[lowerString(l[:i])] = l[i+1:]
			}
		}
	}
	c.allusers = map[string]string{}

	if err := eachLine(passwd, c.account); err != nil {
		return err
	}
	if !c.flagAlias {
		return &Pw2uError{Text: "unable to find " + c.alias() + " user"}
	}
	if f, err := c.open("subusers"); err != nil {
		return err
	} else if f != nil {
		err := eachLine(f, c.subuser)
		f.Close()
		if err != nil {
			return err
		}
	}
	if f, err := c.open("append"); err != nil {
		return err
	} else if f != nil {
		_, err := io.Copy(c.out, readTagged{f})
		f.Close()
		if err != nil {
			var rt readErr
			if errors.As(err, &rt) {
				return &Pw2uError{Text: "unable to read input", Err: rt.err}
			}
			return &Pw2uError{Text: "unable to write output", Err: err}
		}
	}
	c.put(".\n")
	if err := c.out.Flush(); err != nil {
		return &Pw2uError{Text: "unable to write output", Err: err}
	}
	return nil
}

func (c *pw2u) alias() string {
	if c.Alias == "" {
		return "alias"
	}
	return c.Alias
}

// open opens a control file; nil when it does not exist.
func (c *pw2u) open(name string) (fs.File, error) {
	if c.Dir == nil {
		return nil, nil
	}
	f, err := c.Dir.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, &Pw2uError{Text: "unable to read controls", Err: err}
	}
	return f, nil
}

// control reads a control file as qmail's control_readfile: trailing
// spaces, tabs and the newline removed, blank and '#' lines dropped. nil
// when the file does not exist; a non-nil empty slice when it is empty.
func (c *pw2u) control(name string) ([]string, error) {
	f, err := c.open(name)
	if err != nil || f == nil {
		return nil, err
	}
	defer f.Close()
	lines := []string{}
	err = eachLine(f, func(line []byte) error {
		line = bytes.TrimRight(line, "\n \t")
		if len(line) > 0 && line[0] != '#' {
			lines = append(lines, string(line))
		}
		return nil
	})
	if err != nil {
		var pe *Pw2uError
		if errors.As(err, &pe) {
			pe.Text = "unable to read controls"
		}
		return nil, err
	}
	return lines, nil
}

// eachLine calls fn with every line of r including its '\n', and with the
// final partial line (even an empty one), as qmail's getln loops do.
func eachLine(r io.Reader, fn func([]byte) error) error {
	br := bufio.NewReader(r)
	var long []byte
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long[:0], line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && err != io.EOF {
			return &Pw2uError{Text: "unable to read input", Err: err}
		}
		if ferr := fn(line); ferr != nil {
			return ferr
		}
		if err == io.EOF {
			return nil
		}
	}
}

// field cuts x at its first ':'; ok is false when there is none.
func field(x []byte) (f, rest []byte, ok bool) {
	i := bytes.IndexByte(x, ':')
	if i < 0 {
		return nil, nil, false
	}
	return x[:i], x[i+1:], true
}

// account is qmail-pw2u's doaccount for one passwd line.
func (c *pw2u) account(line []byte) error {
	if bytes.IndexByte(line, 0) >= 0 {
		return nil
	}
	user, x, ok := field(line)
	if !ok {
		return nil
	}
	var uidstr, gidstr, home []byte
	if _, x, ok = field(x); !ok { // password
		return nil
	}
	if uidstr, x, ok = field(x); !ok {
		return nil
	}
	if gidstr, x, ok = field(x); !ok {
		return nil
	}
	if _, x, ok = field(x); !ok { // gecos
		return nil
	}
	if home, _, ok = field(x); !ok {
		return nil
	}
	// scan_ulong into an unsigned long, compared unconverted with st_uid.
	var uid uint64
	for _, d := range uidstr {
		if d < '0' || d > '9' {
			break
		}
		uid = uid*10 + uint64(d-'0')
	}
	if uid == 0 {
		return nil
	}
	if !c.AllowUpper && bytes.ContainsFunc(user, func(r rune) bool { return r >= 'A' && r <= 'Z' }) {
		return nil
	}
	lu := lowerString(string(user))
	if c.incl != nil && !c.incl[lu] {
		return nil
	}
	if c.excl != nil && c.excl[lu] {
		return nil
	}
	if c.Home != HomeIgnore {
		owner := c.HomeOwner
		if owner == nil {
			owner = StatOwner
		}
		o, err := owner(string(home))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) || c.Home == HomeRequire {
				return &Pw2uError{Text: "unable to stat " + string(home), Err: err}
			}
			return nil
		}
		if uint64(uint32(o)) != uid {
			return nil
		}
	}
	uugh := ":" + string(user) + ":" + string(uidstr) + ":" + string(gidstr) + ":" + string(home) + ":"
	c.allusers[lu] = uugh
	if string(user) == c.alias() {
		c.put("+", uugh, c.dash, ":\n")
		c.flagAlias = true
	}
	names := string(user)
	if c.mana != nil {
		if m, ok := c.mana[lu]; ok {
			names = m
		}
	}
	for {
		for len(names) > 0 && names[0] == ':' {
			names = names[1:]
		}
		if names == "" {
			break
		}
		i := len(names)
		if j := bytes.IndexByte([]byte(names), ':'); j >= 0 {
			i = j
		}
		c.put("=", names[:i], uugh, "::\n")
		if c.brk != 0 {
			c.put("+", names[:i], string(c.brk), uugh, c.dash, ":\n")
		}
		names = names[i:]
	}
	return c.writeErr()
}

// subuser is qmail-pw2u's dosubuser for one users/subusers line.
func (c *pw2u) subuser(line []byte) error {
	sub, x, ok := field(line)
	if !ok {
		return nil
	}
	user, x, ok := field(x)
	if !ok {
		return nil
	}
	uugh, found := c.allusers[lowerString(string(user))]
	if !found {
		return &Pw2uError{Text: "unable to find " + string(user) + " user for subuser"}
	}
	pre, _, ok := field(x)
	if !ok {
		return nil
	}
	c.put("=", string(sub), uugh, c.dash, string(pre), ":\n")
	if c.brk != 0 {
		c.put("+", string(sub), string(c.brk), uugh, c.dash, string(pre), "-:\n")
	}
	return c.writeErr()
}

func (c *pw2u) put(s ...string) {
	for _, x := range s {
		c.out.WriteString(x)
	}
}

// writeErr reports a failed write (bufio keeps the first error).
func (c *pw2u) writeErr() error {
	if _, err := c.out.Write(nil); err != nil {
		return &Pw2uError{Text: "unable to write output", Err: err}
	}
	return nil
}

// readTagged marks read errors so that Convert can tell them from write
// errors of the same io.Copy.
type readTagged struct{ r io.Reader }

type readErr struct{ err error }

func (e readErr) Error() string { return e.err.Error() }

func (t readTagged) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		err = readErr{err}
	}
	return n, err
}

func lowerSet(lines []string) map[string]bool {
	m := make(map[string]bool, len(lines))
	for _, l := range lines {
		m[lowerString(l)] = true
	}
	return m
}

func lowerString(s string) string {
	return string(appendLower(make([]byte, 0, len(s)), s))
}
