package vimport

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/pop3"
	"github.com/qmailkit/qmailkit/vmail"
)

// Bounds on what is read: a file larger than maxFile, or a line longer
// than maxLine, is refused, naming it, rather than read into memory.
const (
	maxFile     = 1 << 30 // a vpasswd of millions of lines is ~150 bytes each
	maxDotQmail = 1 << 20 // an alias file
	maxLine     = 64 << 10
)

// problemError is a malformed line: the record is skipped and reported.
type problemError struct{ reason string }

func (e *problemError) Error() string { return e.reason }

func problem(format string, args ...any) error {
	return &problemError{fmt.Sprintf(format, args...)}
}

// openRegular opens a file for reading without following a symbolic link
// and without blocking on a FIFO, and refuses anything but a regular file
// of at most max bytes.
func openRegular(path string, max int64) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("vimport: %s: a symbolic link, not followed", path)
		}
		return nil, fmt.Errorf("vimport: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("vimport: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("vimport: %s: not a regular file", path)
	}
	if fi.Size() > max {
		f.Close()
		return nil, fmt.Errorf("vimport: %s: larger than %d bytes", path, max)
	}
	return f, nil
}

// eachLine calls fn for every line of r (without its "\n") with its
// number, from 1; a line longer than maxLine is an error naming the line.
func eachLine(r io.Reader, name string, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(n, sc.Text()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("vimport: %s:%d: line longer than %d bytes", name, n+1, maxLine)
		}
		return fmt.Errorf("vimport: %s:%d: %w", name, n+1, err)
	}
	return nil
}

// parseVpasswd parses a vpasswd line,
// "name:passwd:uid:gid:gecos:dir:quota[:clearpass]", into a mailbox of
// domain. The clear-text password some builds keep is not imported.
func parseVpasswd(line, domain string) (vmail.Mailbox, error) {
	f := strings.Split(line, ":")
	if len(f) != 7 && len(f) != 8 {
		return vmail.Mailbox{}, problem("%d fields, want 7 or 8 (name:passwd:uid:gid:gecos:dir:quota)", len(f))
	}
	if f[0] == "" {
		return vmail.Mailbox{}, problem("empty name")
	}
	flags, err := strconv.ParseUint(f[3], 10, 32)
	if err != nil {
		return vmail.Mailbox{}, problem("flags (field 4) %q not a number", f[3])
	}
	dir, err := parseDir(f[5])
	if err != nil {
		return vmail.Mailbox{}, err
	}
	q, err := parseQuota(f[6])
	if err != nil {
		return vmail.Mailbox{}, err
	}
	return vmail.Mailbox{
		Name:     strings.ToLower(f[0]),
		Domain:   domain,
		Password: f[1],
		RealName: f[4],
		Dir:      dir,
		Quota:    q,
		Flags:    vmail.Flags(flags),
	}, nil
}

// parsePoppasswd parses a users/poppasswd line,
// "name:hash:uid:gid:gecos:home:shell", into a mailbox of domain whose
// Maildir is home/Maildir.
func parsePoppasswd(line, domain string) (vmail.Mailbox, error) {
	e, err := pop3.ParsePasswdLine(line)
	if err != nil {
		return vmail.Mailbox{}, problem("%v", err)
	}
	if strings.Count(line, ":") > 6 {
		return vmail.Mailbox{}, problem("%d fields, want 7 (name:hash:uid:gid:gecos:home:shell)", strings.Count(line, ":")+1)
	}
	if e.Home == "" {
		return vmail.Mailbox{}, problem("empty home")
	}
	dir, err := parseDir(e.Home)
	if err != nil {
		return vmail.Mailbox{}, err
	}
	return vmail.Mailbox{
		Name:     strings.ToLower(e.Name),
		Domain:   domain,
		Password: e.Password,
		RealName: e.Gecos,
		Dir:      dir,
	}, nil
}

// parseDir checks a mailbox directory: "" (the Manager gives one), or an
// absolute, clean path without control characters.
func parseDir(dir string) (string, error) {
	if dir == "" {
		return "", nil
	}
	d := strings.TrimSuffix(dir, "/")
	if !filepath.IsAbs(d) || filepath.Clean(d) != d || d == "/" {
		return "", problem("directory %q not an absolute clean path", dir)
	}
	for _, c := range []byte(d) {
		if c < ' ' || c == 0x7f {
			return "", problem("control character in directory %q", dir)
		}
	}
	return d, nil
}

// parseQuota reads vpasswd's quota field: "NOQUOTA", empty, a Maildir++
// quota ("52428800S", "1000C", "52428800S,1000C"), or a bare number of
// bytes (old releases).
func parseQuota(s string) (vmail.Quota, error) {
	switch {
	case s == "" || s == "NOQUOTA":
		return vmail.Quota{}, nil
	case s[0] >= '0' && s[0] <= '9' && strings.Trim(s, "0123456789") == "":
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return vmail.Quota{}, problem("quota %q out of range", s)
		}
		return vmail.Quota{Bytes: n}, nil
	}
	q, err := maildir.ParseQuota(s)
	if err != nil {
		return vmail.Quota{}, problem("quota %q not NOQUOTA or NS,MC", s)
	}
	return vmail.Quota{Bytes: q.Bytes, Count: q.Count}, nil
}

// hashKnown reports whether auth.VerifyPassword reads the scheme of a
// stored password (an empty one means no login, as in vpopmail).
func hashKnown(h string) bool {
	for _, p := range []string{"{SHA512-CRYPT}", "{SHA256-CRYPT}", "{MD5-CRYPT}", "{CRYPT}"} {
		h = strings.TrimPrefix(h, p)
	}
	for _, p := range []string{"$1$", "$5$", "$6$", "{PLAIN}"} {
		if strings.HasPrefix(h, p) {
			return true
		}
	}
	return h == ""
}

// catchAll is what a domain's .qmail-default says.
type catchAll struct {
	target string // as Domain.CatchAll: "", "delete", an address, "@domain"
	dir    string // an absolute directory: the catch-all is the mailbox there
}

// parseDefault parses a .qmail-default: one vdelivermail line,
// "| VPOPHOME/bin/vdelivermail ” ARG" (comment lines aside).
func parseDefault(content string) (catchAll, error) {
	var lines []string
	for l := range strings.SplitSeq(content, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && l[0] != '#' {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || lines[0][0] != '|' {
		return catchAll{}, problem("not a single vdelivermail line")
	}
	words, err := shellWords(lines[0][1:])
	if err != nil {
		return catchAll{}, err
	}
	if len(words) != 3 || filepath.Base(words[0]) != "vdelivermail" {
		return catchAll{}, problem("not \"| .../vdelivermail '' ARG\"")
	}
	arg := words[2]
	switch {
	case arg == "delete":
		return catchAll{target: "delete"}, nil
	case arg == "bounce-no-mailbox":
		return catchAll{}, nil
	case strings.HasPrefix(arg, "/"):
		d, err := parseDir(arg)
		if err != nil {
			return catchAll{}, err
		}
		return catchAll{dir: d}, nil
	case strings.HasPrefix(arg, "$EXT@"):
		// qmailadmin's "forward every local part to another domain".
		return catchAll{target: strings.ToLower(strings.TrimPrefix(arg, "$EXT"))}, nil
	case strings.Count(arg, "@") == 1 && !strings.ContainsAny(arg, "$`\\| \t") && !strings.HasPrefix(arg, "@") && !strings.HasSuffix(arg, "@"):
		return catchAll{target: strings.ToLower(arg)}, nil
	}
	return catchAll{}, problem("catch-all %q not delete, bounce-no-mailbox, an address or a directory", arg)
}

// shellWords splits a .qmail program line as sh would for the simple
// forms vpopmail writes: words separated by blanks, '...' and "..."
// quoting (no escapes inside '...'; \" and \\ inside "...").
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	in := false // a word is being built (possibly empty: '')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, problem("unterminated quote")
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
			in = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
					i++
				}
				w.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, problem("unterminated quote")
			}
			in = true
		case c == '\\' && i+1 < len(s):
			i++
			w.WriteByte(s[i])
			in = true
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words, nil
}

// parseAliasFile parses a .qmail-NAME file made only of forwards ("&addr"
// or "addr" lines, qmail-local's forward lines) into their addresses.
// Any other line (a program, a Maildir or mbox, a -default list) makes
// the whole file a problem: importing half of it would change where mail
// goes.
func parseAliasFile(content string) ([]string, error) {
	var targets []string
	for l := range strings.SplitSeq(content, "\n") {
		l = strings.TrimRight(l, " \t\r")
		if l == "" || l[0] == '#' {
			continue
		}
		switch l[0] {
		case '|':
			return nil, problem("a program line (%.40q): not an alias", l)
		case '/', '.':
			return nil, problem("a mailbox line (%.40q): not an alias", l)
		}
		a := strings.TrimSpace(strings.TrimPrefix(l, "&"))
		at := strings.LastIndexByte(a, '@')
		if at <= 0 || at == len(a)-1 || strings.ContainsAny(a, " \t\x00<>\"") {
			return nil, problem("%.80q is not an address local@domain", l)
		}
		targets = append(targets, a)
	}
	if len(targets) == 0 {
		return nil, problem("no address")
	}
	return targets, nil
}

// aliasName returns the local part a .qmail-NAME file is for: ':' stands
// for '.' in NAME (qmail-local), and a "-default" file is a wildcard, not
// an alias.
func aliasName(file string) (string, error) {
	name := strings.TrimPrefix(file, ".qmail-")
	if name == "" || name == "default" || strings.HasSuffix(name, "-default") {
		return "", problem("a -default wildcard: not an alias")
	}
	return strings.ToLower(strings.ReplaceAll(name, ":", ".")), nil
}

// assignLine is a users/assign wildcard line vpopmail writes for a domain
// or an alias domain: "+D-:REAL:uid:gid:DOMDIR:-::".
type assignLine struct {
	domain, real, dir string
}

// parseAssign parses a users/assign line; ok is false for a line that is
// not a vpopmail wildcard (a "=user" line, the final ".").
func parseAssign(line string) (assignLine, bool, error) {
	if !strings.HasPrefix(line, "+") {
		return assignLine{}, false, nil
	}
	f := strings.Split(line[1:], ":")
	if len(f) < 7 {
		return assignLine{}, false, problem("%d fields, want 7 or more", len(f))
	}
	// A domain has a dot; "+ext-" lines of Unix users are not domains.
	d, ok := strings.CutSuffix(f[0], "-")
	if !ok || !strings.Contains(d, ".") || f[1] == "" {
		return assignLine{}, false, nil
	}
	return assignLine{domain: strings.ToLower(d), real: strings.ToLower(f[1]), dir: f[4]}, true, nil
}

// note is a remark on one line of a file.
type note struct {
	line int
	text string
}

// limitFlags are the domain-wide switches of a limits file and the flags
// they set for every mailbox of the domain.
var limitFlags = map[string]vmail.Flags{
	"disable_pop":               vmail.NoPOP,
	"disable_imap":              vmail.NoIMAP,
	"disable_smtp":              vmail.NoSMTP,
	"disable_webmail":           vmail.NoWebmail,
	"disable_dialup":            vmail.NoDialup,
	"disable_password_changing": vmail.NoPasswordChange,
	"disable_external_relay":    vmail.NoRelay,
}

// parseLimits parses a domain's .qmailadmin-limits (or vlimits.default):
// "key value" lines, separated by blanks or ':', '#' comments; a switch
// without a value is on. What vmail cannot keep is noted: a cap of 0
// (qmailadmin hid the feature; vmail has no such cap), the domain-wide
// quota, qmailadmin's permissions, and switches for programs vmail does
// not run (SpamAssassin, maildrop).
func parseLimits(content string) (vmail.Limits, []note, error) {
	var l vmail.Limits
	var notes []note
	for i, line := range strings.Split(content, "\n") {
		n := i + 1
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == ':' || r == '\r' })
		if len(f) == 0 {
			continue
		}
		key, value := strings.ToLower(f[0]), ""
		if len(f) > 1 {
			value = f[1]
		}
		number := func() (int64, error) {
			v, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return 0, problem("line %d: %s %q is not a number", n, key, value)
			}
			return v, nil
		}
		switch key {
		case "maxpopaccounts", "maxaliases", "maxforwards", "maxautoresponders":
			v, err := number()
			if err != nil {
				return vmail.Limits{}, nil, err
			}
			if v == 0 {
				notes = append(notes, note{n, key + " 0 (the feature hidden in qmailadmin) has no equivalent: no limit kept"})
			}
			if v < 0 || v > 1<<31 {
				v = 0 // -1: unlimited
			}
			switch key {
			case "maxpopaccounts":
				l.MaxMailboxes = int(v)
			case "maxaliases":
				l.MaxAliases = int(v)
			case "maxforwards":
				l.MaxForwards = int(v)
			default:
				l.MaxAutoresponders = int(v)
			}
		case "default_quota", "default_maxmsgcount":
			v, err := number()
			if err != nil {
				return vmail.Limits{}, nil, err
			}
			v = max(v, 0)
			if key == "default_quota" {
				l.DefaultQuota.Bytes = v
			} else {
				l.DefaultQuota.Count = v
			}
		case "maxmailinglists", "quota", "maxmsgcount", "disable_spamassassin", "delete_spam", "disable_maildrop":
			notes = append(notes, note{n, key + " not kept: vmail has no such limit"})
		default:
			flag, ok := limitFlags[key]
			switch {
			case ok && (value == "" || value != "0"):
				l.Disabled |= flag
			case ok:
			case strings.HasPrefix(key, "perm_"):
				notes = append(notes, note{n, key + " not kept: qmailadmin's permissions have no equivalent"})
			}
			// Unknown keys are ignored, as qmailadmin ignores them.
		}
	}
	return l, notes, nil
}
