package tcprules

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Var is one environment assignment of a rule: NAME=VALUE.
type Var struct {
	Name, Value string
}

// Rule is one parsed line of a rules file.
type Rule struct {
	// Line is the line's number in the input, from 1.
	Line int
	// Address is every byte before the colon that ends it, as written.
	Address string
	// Keys are the cdb keys the address stands for, in the order tcprules
	// adds them: Address itself, or one key per number of a range such as
	// 1.2.3.4-7. A range with its low end above its high end has none.
	Keys []string
	// Deny is true for "deny", false for "allow".
	Deny bool
	// Env holds the assignments in the order written, duplicates included.
	Env []Var
}

// Value returns the cdb value tcprules stores under each of the rule's keys:
// "D\x00" for deny, then "+NAME=VALUE\x00" for each assignment.
func (r Rule) Value() []byte {
	return r.appendValue(nil)
}

func (r Rule) appendValue(b []byte) []byte {
	if r.Deny {
		b = append(b, 'D', 0)
	}
	for _, v := range r.Env {
		b = append(b, '+')
		b = append(b, v.Name...)
		b = append(b, '=')
		b = append(b, v.Value...)
		b = append(b, 0)
	}
	return b
}

// ParseError reports a line tcprules refuses. Text is the line as tcprules
// prints it: trailing blanks removed, and cut at its first NUL byte, since
// tcprules prints it as a C string.
type ParseError struct {
	Line int
	Text string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("tcprules: line %d: unable to parse this line: %s", e.Line, e.Text)
}

// Permanent reports true: the same input fails the same way again.
func (e *ParseError) Permanent() bool { return true }

// ErrParse is matched by every *ParseError with errors.Is.
var ErrParse = errors.New("tcprules: unable to parse line")

// Is makes errors.Is(err, ErrParse) true for a *ParseError.
func (e *ParseError) Is(target error) bool { return target == ErrParse }

// Parse reads a whole rules file and returns its rules in order. Comment
// lines, empty lines and lines without a colon produce no rule. The first
// line tcprules would refuse stops the parse with a *ParseError.
func Parse(r io.Reader) ([]Rule, error) {
	var rules []Rule
	err := scan(r, func(rule *Rule) error {
		r := *rule
		r.Keys = append([]string(nil), rule.Keys...)
		r.Env = append([]Var(nil), rule.Env...)
		rules = append(rules, r)
		return nil
	})
	return rules, err
}

// scan calls fn for each rule of r in order. The Rule and its slices are
// reused between calls. Errors from reading r are wrapped in *readError.
func scan(r io.Reader, fn func(*Rule) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		rule Rule
		n    int
		long []byte
	)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: gather it.
			long = append(long[:0], line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && err != io.EOF {
			return &readError{err}
		}
		if len(line) == 0 {
			return nil
		}
		n++
		ok, perr := parseLine(line, n, &rule)
		if perr != nil {
			return perr
		}
		if ok {
			if ferr := fn(&rule); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

// readError marks a failure to read the rules themselves (tcprules: "unable
// to read input").
type readError struct{ err error }

func (e *readError) Error() string { return "tcprules: read rules: " + e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// ParseLine parses one line of a rules file (with or without its LF). It
// reports ok=false, and no error, for a line that holds no rule: a comment,
// an empty line, or a line without a colon. The rule's Line is 0.
func ParseLine(line string) (rule Rule, ok bool, err error) {
	ok, err = parseLine([]byte(line), 0, &rule)
	if !ok || err != nil {
		return Rule{}, false, err
	}
	return rule, true, nil
}

// parseLine follows tcprules.c line by line; see the package documentation
// (# Format of rules) for the grammar it implements.
func parseLine(x []byte, n int, rule *Rule) (bool, error) {
	if len(x) == 0 || x[0] == '#' || x[0] == '\n' {
		return false, nil
	}
	for len(x) > 0 {
		if c := x[len(x)-1]; c != '\n' && c != ' ' && c != '\t' {
			break
		}
		x = x[:len(x)-1]
	}
	bad := func() error {
		text := x
		if i := bytes.IndexByte(text, 0); i >= 0 {
			text = text[:i]
		}
		return &ParseError{Line: n, Text: string(text)}
	}
	colon := findColon(x)
	if colon < 0 {
		if bytes.IndexByte(x, ':') < 0 {
			return false, nil // plain 0.88 skips a line without a colon
		}
		colon = bytes.IndexByte(x, ':') // and fails on the instructions after the first one
	}
	addr, in := x[:colon], x[colon+1:]
	rule.Line = n
	rule.Address = string(addr)
	rule.Keys = rule.Keys[:0]
	rule.Env = rule.Env[:0]
	switch {
	case bytes.HasPrefix(in, []byte("deny")):
		rule.Deny = true
		in = in[4:]
	case bytes.HasPrefix(in, []byte("allow")):
		rule.Deny = false
		in = in[5:]
	default:
		return false, bad()
	}
	for len(in) > 0 {
		if in[0] != ',' {
			return false, bad()
		}
		eq := bytes.IndexByte(in, '=')
		if eq < 0 || eq == len(in)-1 {
			return false, bad()
		}
		name := in[1:eq]
		q := in[eq+1]
		rest := in[eq+2:]
		end := bytes.IndexByte(rest, q)
		if end < 0 {
			return false, bad()
		}
		rule.Env = append(rule.Env, Var{Name: string(name), Value: string(rest[:end])})
		in = rest[end+1:]
	}
	keys, ok := expand(rule.Address, rule.Keys)
	if !ok {
		return false, bad()
	}
	rule.Keys = keys
	return true, nil
}

// findColon returns the index of the colon that ends the address: the first
// colon followed by "allow" or "deny", as the IPv6 patch of ucspi-tcp has it
// (for every line plain 0.88 accepts, that is its first colon). -1 if none.
func findColon(x []byte) int {
	for i := 0; i < len(x); i++ {
		if x[i] != ':' {
			continue
		}
		rest := x[i+1:]
		if bytes.HasPrefix(rest, []byte("allow")) || bytes.HasPrefix(rest, []byte("deny")) {
			return i
		}
	}
	return -1
}

// expand turns an address into its keys (tcprules.c doaddressdata): an
// address with no '=' and no '@' but a '-' is a numeric range in one dotted
// component. It reports false for a range tcprules refuses.
func expand(addr string, keys []string) ([]string, bool) {
	i := strings.IndexByte(addr, '-')
	if i < 0 || strings.ContainsAny(addr, "=@") {
		return append(keys, addr), true
	}
	left := strings.LastIndexByte(addr[:i], '.') + 1
	right := len(addr)
	if j := strings.IndexByte(addr[i+1:], '.'); j >= 0 {
		right = i + 1 + j
	}
	lo, ok1 := scanNum(addr[left:i])
	hi, ok2 := scanNum(addr[i+1 : right])
	if !ok1 || !ok2 {
		return keys, false
	}
	hi = min(hi, 255)
	for v := lo; v <= hi; v++ {
		keys = append(keys, addr[:left]+strconv.FormatUint(v, 10)+addr[right:])
	}
	return keys, true
}

// scanNum reads a number as tcprules' getnum does: the leading digits
// (none reads as 0, overflow wraps as C's unsigned long does), which must be
// followed by the end of the text or by a NUL byte, since the text is then
// handled as a C string.
func scanNum(s string) (uint64, bool) {
	var v uint64
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		v = v*10 + uint64(s[i]-'0')
	}
	return v, i == len(s) || s[i] == 0
}
