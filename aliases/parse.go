package aliases

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/internal/inject"
)

// Controls are the names newaliases completes addresses with, read from
// QMAILHOME/control by [LoadControls].
type Controls struct {
	// DefaultHost is added to an address that ends in "@" (control/
	// defaulthost, else control/me).
	DefaultHost string
	// DefaultDomain is added, after a ".", to a host with no dot
	// (control/defaultdomain, else control/me).
	DefaultDomain string
	// PlusDomain replaces a final "+" after a "." (control/plusdomain, else
	// control/me).
	PlusDomain string
}

// LoadControls reads the controls of the qmail home as newaliases does:
// control/me (the literal "me" when it is missing), then defaultdomain,
// defaulthost and plusdomain, each defaulting to me; only the first line of
// each counts, trailing spaces and tabs removed. An unreadable file gives
// an *Error "unable to read controls".
func LoadControls(home string) (Controls, error) {
	d := control.Dir{Home: home}
	fail := func(err error) (Controls, error) {
		return Controls{}, sysErr("unable to read controls", unwrapPath(err))
	}
	me, ok, err := d.Me()
	if err != nil {
		return fail(err)
	}
	if !ok {
		me = "me"
	}
	var c Controls
	for _, f := range []struct {
		name string
		v    *string
	}{{"defaultdomain", &c.DefaultDomain}, {"defaulthost", &c.DefaultHost}, {"plusdomain", &c.PlusDomain}} {
		l, ok, err := d.Line(f.name)
		if err != nil {
			return fail(err)
		}
		if !ok {
			l = me
		}
		*f.v = l
	}
	return c, nil
}

// Complete is newaliases' (and dot-forward's) completion of an address
// that already has an "@": a final "@" gets DefaultHost; then a final "+"
// becomes "." + PlusDomain; then a host part without a dot gets "." +
// DefaultDomain.
func (c Controls) Complete(addr string) string {
	if strings.HasSuffix(addr, "@") {
		addr += c.DefaultHost
	}
	if strings.HasSuffix(addr, "+") {
		addr = addr[:len(addr)-1] + "." + c.PlusDomain
	}
	at := max(strings.LastIndexByte(addr, '@'), 0)
	if strings.IndexByte(addr[at:], '.') < 0 {
		addr += "." + c.DefaultDomain
	}
	return addr
}

// Alias is one entry of /etc/aliases, compiled as newaliases compiles it.
type Alias struct {
	// Name is the alias as written, with "@" added when it has none:
	// "postmaster@", "a@example.com".
	Name string
	// Owner is the completed name when Name starts with "owner-": the
	// envelope sender for mail to the alias without its "owner-" prefix.
	Owner string
	// Instructions are fastforward's instructions in newaliases' order:
	// "&ADDRESS" (forward), "!COMMAND" (run through preline) and
	// "PATH.bin" (a mailing-list file, PATH starting "/" or ".").
	Instructions []string
}

// Records returns the alias's database records, in the order newaliases
// writes them: the "?" record of an owner- alias, then the ":" record.
func (a *Alias) Records() []Record {
	var rs []Record
	if strings.HasPrefix(a.Name, "owner-") {
		rs = append(rs, Record{Key: "?" + lower(a.Name[len("owner-"):]), Data: a.Owner})
	}
	var b strings.Builder
	for _, in := range a.Instructions {
		b.WriteString(in)
		b.WriteByte(0)
	}
	return append(rs, Record{Key: ":" + lower(a.Name), Data: b.String()})
}

// lower is djb's case_lowerb: ASCII letters only.
func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// DefaultMaxLineBytes is the default limit on a logical line of an aliases
// file (see [AliasReader.MaxLineBytes]).
const DefaultMaxLineBytes = 4 << 20

// AliasReader reads an aliases file (the /etc/aliases of sendmail) as
// fastforward's newaliases does. See the package documentation for the
// format.
type AliasReader struct {
	// Controls complete the addresses.
	Controls Controls
	// Name is the file's name in read errors ("unable to read NAME");
	// "" means "/etc/aliases".
	Name string
	// MaxLineBytes limits a logical line (with its continuation lines);
	// a longer one is the error "out of memory", as newaliases reports a
	// line it cannot hold. 0 means DefaultMaxLineBytes; negative means
	// unlimited.
	MaxLineBytes int

	r    *bufio.Reader
	line []byte // the logical line being gathered
	eof  bool
}

// NewAliasReader reads the aliases in r.
func NewAliasReader(r io.Reader, c Controls) *AliasReader {
	return &AliasReader{Controls: c, r: bufio.NewReader(r)}
}

func (ar *AliasReader) max() int {
	switch {
	case ar.MaxLineBytes == 0:
		return DefaultMaxLineBytes
	case ar.MaxLineBytes < 0:
		return int(^uint(0) >> 1)
	}
	return ar.MaxLineBytes
}

// physical reads a line through its LF; match is false for the bytes
// after the last LF (getln's partial line).
func (ar *AliasReader) physical(limit int) (line []byte, match bool, err error) {
	for {
		frag, err := ar.r.ReadSlice('\n')
		if len(line)+len(frag) > limit {
			return nil, false, nomem()
		}
		line = append(line, frag...)
		switch {
		case err == nil:
			return line, true, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			return line, false, nil
		}
		name := ar.Name
		if name == "" {
			name = "/etc/aliases"
		}
		return nil, false, sysErr("unable to read "+name, unwrapPath(err))
	}
}

// Next returns the next alias, io.EOF after the last one, or an *Error
// with newaliases' text. Lines that define nothing (comments, a line of
// only a comment in parentheses) are skipped. As in newaliases, bytes after
// the last LF of the file are ignored.
func (ar *AliasReader) Next() (*Alias, error) {
	for !ar.eof {
		next, match, err := ar.physical(ar.max())
		if err != nil {
			return nil, err
		}
		if match && next[0] == '\n' {
			continue // an empty line does not end the entry
		}
		if match && (next[0] == ' ' || next[0] == '\t') {
			if len(ar.line)+len(next) > ar.max() {
				return nil, nomem()
			}
			ar.line = append(ar.line, next...)
			continue
		}
		cur := ar.line
		ar.line = next
		if !match {
			ar.eof = true
		}
		if len(cur) == 0 || cur[0] == '#' {
			continue
		}
		a, err := ar.Controls.ParseLine(cur)
		if err != nil || a != nil {
			return a, err
		}
	}
	return nil, io.EOF
}

// ParseLine compiles one logical line of an aliases file (continuation
// lines included, with their LFs) as newaliases does; it returns nil and no
// error for a line that defines nothing. Errors are *Error with
// newaliases' texts.
func (c Controls) ParseLine(line []byte) (*Alias, error) {
	p := lineParser{c: c}
	if err := p.parse(line); err != nil {
		return nil, err
	}
	if len(p.instr) == 0 {
		if p.target != "" {
			return nil, parseErr(line)
		}
		return nil, nil
	}
	if p.target == "" {
		return nil, parseErr(line)
	}
	a := &Alias{Name: p.target, Instructions: p.instr}
	if strings.HasPrefix(a.Name, "owner-") {
		a.Owner = p.full
	}
	return a, nil
}

// cstring is s up to its first NUL, as a C program prints it.
func cstring(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

func parseErr(line []byte) *Error {
	return tempErr("unable to parse this line: " + cstring(string(line)))
}

// lineParser is newaliases' parseline: the tokens of a line walked from the
// end, each address held as the pending target until the next one shows.
type lineParser struct {
	c      Controls
	target string // the pending address, "@" added
	full   string // its completed form
	instr  []string
	addr   []inject.Token // the address being gathered, reversed
}

func (p *lineParser) parse(line []byte) error {
	toks, ok := inject.Tokenize(line)
	if !ok {
		return parseErr(line)
	}
	wordok := true
	for t := len(toks) - 1; t >= 0; t-- {
		switch toks[t].Type() {
		case inject.TokenSemi:
		case inject.TokenColon:
			if t >= 2 && toks[t-2].Type() == inject.TokenColon && toks[t-1].Type() == inject.TokenAtom && toks[t-1].Text() == "include" {
				if err := p.gotInclude(); err != nil {
					return err
				}
				t -= 2
			}
		case inject.TokenRight:
			if len(p.addr) > 0 {
				if err := p.gotAddr(); err != nil {
					return err
				}
			}
			for t > 0 && toks[t-1].Type() != inject.TokenLeft {
				t--
				p.addr = append(p.addr, toks[t])
			}
			if err := p.gotAddr(); err != nil {
				return err
			}
			if t <= 0 {
				return parseErr(line)
			}
			t--
			for t > 0 && isPhrase(toks[t-1].Type()) {
				t--
			}
			wordok = false
		case inject.TokenAtom, inject.TokenQuote, inject.TokenLiteral:
			if !wordok && len(p.addr) > 0 {
				if err := p.gotAddr(); err != nil {
					return err
				}
			}
			wordok = false
			p.addr = append(p.addr, toks[t])
		case inject.TokenComment:
			// lexically a space: wordok is unchanged
		case inject.TokenComma:
			if len(p.addr) > 0 {
				if err := p.gotAddr(); err != nil {
					return err
				}
			}
			wordok = true
		default:
			wordok = true
			p.addr = append(p.addr, toks[t])
		}
	}
	if len(p.addr) > 0 {
		return p.gotAddr()
	}
	return nil
}

func isPhrase(t inject.TokenType) bool {
	switch t {
	case inject.TokenComment, inject.TokenAtom, inject.TokenQuote, inject.TokenAt, inject.TokenDot:
		return true
	}
	return false
}

// unquoteAddr turns the gathered (reversed) tokens into an address.
func (p *lineParser) unquoteAddr() (addr string, hasAt bool) {
	toks := p.addr
	for i, j := 0, len(toks)-1; i < j; i, j = i+1, j-1 {
		toks[i], toks[j] = toks[j], toks[i]
	}
	for _, t := range toks {
		if t.Type() == inject.TokenAt {
			hasAt = true
		}
	}
	addr = inject.Unquote(toks)
	p.addr = p.addr[:0]
	return addr, hasAt
}

func (p *lineParser) gotInclude() error {
	name, _ := p.unquoteAddr()
	switch {
	case name == "":
		return tempErr("empty :include: filenames not permitted")
	case strings.IndexByte(name, 0) >= 0:
		return tempErr("NUL not permitted in :include: filenames")
	case name[0] != '.' && name[0] != '/':
		name = "./" + name
	}
	p.instr = append(p.instr, name+".bin")
	return nil
}

// MaxAddressBytes is the longest completed address newaliases and
// setforward accept.
const MaxAddressBytes = 800

func (p *lineParser) gotAddr() error {
	addr, hasAt := p.unquoteAddr()
	switch {
	case addr == "":
		return tempErr("empty recipient addresses not permitted")
	case !hasAt && addr[0] == '/':
		return tempErr("file delivery " + cstring(addr) + " not supported")
	case !hasAt && addr[0] == '|':
		if strings.IndexByte(addr, 0) >= 0 {
			return tempErr("NUL not permitted in program names")
		}
		p.instr = append(p.instr, "!"+addr[1:])
		return nil
	}
	if p.target != "" {
		p.instr = append(p.instr, "&"+p.full)
	}
	if !hasAt {
		addr += "@"
	}
	p.target = addr
	p.full = p.c.Complete(addr)
	if len(p.full) > MaxAddressBytes {
		return permErr("addresses over 800 bytes are not permitted")
	}
	if strings.IndexByte(p.full, 0) >= 0 {
		return tempErr("NUL not permitted in recipient addresses")
	}
	return nil
}

// Compile reads an aliases file from r and writes its records in order to
// w (newaliases without the file handling: see [CompileFile]). On an error
// the records written so far stay written.
func Compile(w *Writer, r io.Reader, c Controls, name string) error {
	ar := NewAliasReader(r, c)
	ar.Name = name
	for {
		a, err := ar.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		for _, rec := range a.Records() {
			if err := w.Put(rec); err != nil {
				return err
			}
		}
	}
}

// CompileFile is newaliases: it reads the aliases file src, writes the
// database to tmp, fsyncs it and renames it to dst ("/etc/aliases",
// "/etc/aliases.tmp", "/etc/aliases.cdb" for the program). On an error dst
// is untouched and tmp is left behind, as newaliases leaves it.
func CompileFile(src, tmp, dst string, c Controls) error {
	// Opened without blocking, as newaliases' open_read does: a FIFO
	// with no writer reads as an empty file instead of hanging.
	f, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return sysErr("unable to read "+src, unwrapPath(err))
	}
	defer f.Close()
	w, err := Create(dst, tmp)
	if err != nil {
		return err
	}
	if err := Compile(w, f, c, src); err != nil {
		w.Abort()
		return err
	}
	return w.Close()
}
