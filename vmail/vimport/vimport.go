// Package vimport imports an existing vpopmail installation, or qmail's
// users/poppasswd file, into a [vmail.Manager].
//
// [Vpopmail] walks VPOPHOME/domains (and the hash directories vpopmail
// spreads domains over once there are many: domains/0/DOMAIN, ...). For
// each domain directory, one holding a vpasswd file, it adds the domain.
// Every vpasswd line,
//
//	name:passwd:uid:gid:gecos:dir:quota[:clearpass]
//
// becomes a mailbox with the hash as it is (SHA-512-crypt, SHA-256-crypt
// and the MD5-crypt of old releases keep working; a scheme package auth
// does not read, such as DES crypt, is imported and reported: that mailbox
// cannot log in until its password is set), the flags (vpopmail's bits,
// the "gid" field), the real name, the quota (NOQUOTA, or Maildir++
// "NS,MC") and the directory: the Maildirs stay where they are. The
// clear-text password some builds keep in an eighth field is not imported.
//
// The domain's .qmail-default sets the catch-all. vpopmail writes it as
//
//	| VPOPHOME/bin/vdelivermail '' ARG
//
// where ARG "delete" discards (as vpopmail did), "bounce-no-mailbox"
// refuses at RCPT time, an address receives the mail, "$EXT@other.example"
// forwards every local part to that domain, and a mailbox's directory
// names that mailbox.
//
// The domain's limits come from its .qmailadmin-limits, else from
// VPOPHOME/etc/vlimits.default: the caps on mailboxes, aliases, forwards
// and autoresponders (-1, unlimited, is vmail's 0), the default quota
// of new mailboxes, and the disable_* switches, which set the flags of
// every mailbox of the domain; what vmail has no equivalent for (a cap of
// 0, the domain-wide quota, qmailadmin's permissions) is reported.
//
// Each .qmail-NAME file made only of forward lines ("&addr" or "addr")
// becomes the alias NAME (':' in NAME standing for '.'). Files with other
// lines (programs such as ezmlm or autorespond, Maildir or mbox lines) and
// -default wildcards are reported and skipped: half of such a file would
// send mail elsewhere than it goes today. A mailbox's own USERDIR/.qmail
// stays where it is, with its Maildir.
//
// A symbolic link in the domains directory to a domain's directory is an
// alias domain, as vaddaliasdomain makes them; [Assign] imports the alias
// domains of users/assign ("+alias.example-:real.example:...") instead or
// as well.
//
// [Poppasswd] imports users/poppasswd lines,
// "name:hash:uid:gid:gecos:home:shell", as mailboxes of one domain whose
// Maildir is home/Maildir (the uid and gid are not kept: the mail system's
// virtual-mail account delivers, and must be able to write there).
//
// Every function returns a [Report] of what it imported and what it
// skipped, each skipped record with its file and line. A malformed line,
// a name the Manager refuses (vpopmail allowed '/' in names; vmail does
// not) or a mailbox or alias that exists already is skipped and the
// import goes on, so that running it again after fixing the lines
// imports what is left; a failure of the store ends it with an error.
//
// # Security
//
// The files are read without following symbolic links and a FIFO is
// refused rather than waited on; a vpasswd directory must be an absolute
// clean path. Files larger than 1 GB (a vpasswd) or 1 MB (an alias file)
// and lines longer than 64 KB are refused.
package vimport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/qmailkit/qmailkit/vmail"
)

// Problem is a record or file not imported, or imported with a caveat.
type Problem struct {
	File   string
	Line   int // 0: the whole file
	Reason string
}

// String returns "file:line: reason" (or "file: reason").
func (p Problem) String() string {
	if p.Line == 0 {
		return p.File + ": " + p.Reason
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Reason)
}

// Report is what an import did.
type Report struct {
	Domains      []string // domains added (or already there)
	AliasDomains []string // "alias.example -> real.example"
	Mailboxes    int      // mailboxes added
	Aliases      int      // aliases added or extended
	CatchAlls    int      // catch-alls set
	Skipped      []Problem
	Warnings     []Problem // imported, but look at these
}

// String returns a summary and the problems, one a line.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d domains, %d alias domains, %d mailboxes, %d aliases, %d catch-alls imported; %d skipped, %d warnings\n",
		len(r.Domains), len(r.AliasDomains), r.Mailboxes, r.Aliases, r.CatchAlls, len(r.Skipped), len(r.Warnings))
	for _, p := range r.Skipped {
		fmt.Fprintf(&b, "skipped: %s\n", p)
	}
	for _, p := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", p)
	}
	return b.String()
}

func (r *Report) skip(file string, line int, reason string) {
	r.Skipped = append(r.Skipped, Problem{file, line, reason})
}

func (r *Report) warn(file string, line int, reason string) {
	r.Warnings = append(r.Warnings, Problem{file, line, reason})
}

// refused reports whether err is the Manager refusing one record (which
// is skipped) rather than a failure (which ends the import).
func refused(err error) bool {
	var p *problemError
	return errors.As(err, &p) || errors.Is(err, vmail.ErrExists) || errors.Is(err, vmail.ErrInvalid) ||
		errors.Is(err, vmail.ErrLimit) || errors.Is(err, vmail.ErrNotFound)
}

// maxDepth is how deep domain hash directories go (vpopmail: 3 levels).
const maxDepth = 3

// Vpopmail imports the domains, mailboxes, aliases, catch-alls and alias
// domains (symbolic links) under vpophome/domains into m. The Report is
// returned with an error too, saying what was done before it.
func Vpopmail(ctx context.Context, m *vmail.Manager, vpophome string) (*Report, error) {
	r := &Report{}
	home, err := filepath.Abs(vpophome)
	if err != nil {
		return r, fmt.Errorf("vimport: %w", err)
	}
	domains := filepath.Join(home, "domains")
	var dirs []string // domain directories
	var links []string
	if err := walkDomains(domains, 0, r, &dirs, &links); err != nil {
		return r, err
	}
	real := map[string]string{} // domain directory → domain
	for _, d := range dirs {
		if err := ctx.Err(); err != nil {
			return r, fmt.Errorf("vimport: %w", err)
		}
		ok, err := importDomain(ctx, m, d, filepath.Join(home, "etc", "vlimits.default"), r)
		if err != nil {
			return r, err
		}
		if ok {
			real[resolved(d)] = filepath.Base(d)
		}
	}
	for _, l := range links {
		target, err := os.Readlink(l)
		if err != nil {
			return r, fmt.Errorf("vimport: %w", err)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(l), target)
		}
		domain, ok := real[resolved(target)]
		if !ok {
			r.skip(l, 0, "a symbolic link to "+target+", not to an imported domain's directory")
			continue
		}
		if err := addAliasDomain(ctx, m, strings.ToLower(filepath.Base(l)), domain, l, 0, r); err != nil {
			return r, err
		}
	}
	return r, nil
}

// resolved returns path with its symbolic links resolved, or cleaned
// when it cannot be: a link's target and a domain directory compare
// equal however VPOPHOME was reached.
func resolved(path string) string {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		return p
	}
	return filepath.Clean(path)
}

// walkDomains finds the domain directories (those with a vpasswd file)
// and symbolic links under dir, descending into hash directories (one
// character of vpopmail's alphabet) at most maxDepth levels.
func walkDomains(dir string, depth int, r *Report, dirs, links *[]string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("vimport: %w", err)
	}
	for _, e := range entries {
		name, path := e.Name(), filepath.Join(dir, e.Name())
		switch {
		case strings.HasPrefix(name, "."):
			// .dir-control, .no-user.msg and the like.
		case e.Type()&os.ModeSymlink != 0:
			*links = append(*links, path)
		case !e.IsDir():
			r.skip(path, 0, "not a domain directory")
		case isRegular(filepath.Join(path, "vpasswd")):
			*dirs = append(*dirs, path)
		case len(name) == 1 && depth < maxDepth:
			if err := walkDomains(path, depth+1, r, dirs, links); err != nil {
				return err
			}
		default:
			r.skip(path, 0, "no vpasswd file: not a domain directory")
		}
	}
	return nil
}

func isRegular(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular()
}

// importDomain imports the domain whose directory is dir, with its limits
// (else those of defaults); ok is false when the Manager refused the
// domain (reported).
func importDomain(ctx context.Context, m *vmail.Manager, dir, defaults string, r *Report) (ok bool, err error) {
	name := strings.ToLower(filepath.Base(dir))
	if err := addDomain(ctx, m, name, dir, r); err != nil {
		if refused(err) {
			r.skip(dir, 0, err.Error())
			return false, nil
		}
		return false, err
	}
	limits := filepath.Join(dir, ".qmailadmin-limits")
	if _, err := os.Lstat(limits); err != nil {
		limits = defaults
	}
	if _, err := os.Lstat(limits); err == nil {
		if err := importLimits(ctx, m, name, limits, r); err != nil {
			if !refused(err) {
				return true, err
			}
			r.skip(limits, 0, err.Error())
		}
	}
	byDir := map[string]string{} // mailbox directory → name, for the catch-all
	vpasswd := filepath.Join(dir, "vpasswd")
	err = readFile(vpasswd, maxFile, func(n int, line string) error {
		if line == "" {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("vimport: %w", err)
		}
		mb, err := parseVpasswd(line, name)
		if err == nil {
			if mb.Dir != "" {
				byDir[mb.Dir] = mb.Name
			}
			err = importMailbox(ctx, m, mb, vpasswd, n, r)
		}
		if err != nil && refused(err) {
			r.skip(vpasswd, n, err.Error())
			return nil
		}
		if err != nil {
			return fmt.Errorf("vimport: %s:%d: %w", vpasswd, n, err)
		}
		return nil
	})
	if err != nil {
		if refused(err) {
			r.skip(vpasswd, 0, err.Error()+": no mailbox imported")
			err = nil
		}
		return true, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return true, fmt.Errorf("vimport: %w", err)
	}
	for _, e := range entries {
		file := e.Name()
		if !strings.HasPrefix(file, ".qmail-") {
			continue
		}
		path := filepath.Join(dir, file)
		var err error
		if file == ".qmail-default" {
			err = importDefault(ctx, m, name, path, byDir, r)
		} else {
			err = importAlias(ctx, m, name, path, r)
		}
		if err != nil {
			if !refused(err) {
				return true, err
			}
			r.skip(path, 0, err.Error())
		}
	}
	return true, nil
}

// addDomain adds a domain, or finds it there already.
func addDomain(ctx context.Context, m *vmail.Manager, name, file string, r *Report) error {
	_, err := m.AddDomain(ctx, name)
	if errors.Is(err, vmail.ErrExists) {
		d, derr := m.Domain(ctx, name)
		if derr != nil {
			return derr
		}
		if d.Name != name {
			return fmt.Errorf("vimport: %s: %w: an alias domain of %s", name, vmail.ErrExists, d.Name)
		}
		r.warn(file, 0, "domain "+name+" was there already: records added to it")
		err = nil
	}
	if err == nil {
		r.Domains = append(r.Domains, name)
	}
	return err
}

func importMailbox(ctx context.Context, m *vmail.Manager, mb vmail.Mailbox, file string, line int, r *Report) error {
	if err := m.Import(ctx, mb); err != nil {
		return err
	}
	r.Mailboxes++
	if !hashKnown(mb.Password) {
		r.warn(file, line, mb.Address()+": password hash of an unknown scheme (DES crypt?): no login until the password is set")
	}
	if mb.Password == "" {
		r.warn(file, line, mb.Address()+": no password: no login until one is set")
	}
	if mb.Dir != "" {
		if fi, err := os.Lstat(mb.Maildir()); err != nil || !fi.IsDir() {
			r.warn(file, line, mb.Address()+": no Maildir at "+mb.Maildir())
		}
	}
	return nil
}

func importLimits(ctx context.Context, m *vmail.Manager, domain, path string, r *Report) error {
	b, err := readAll(path, maxDotQmail)
	if err != nil {
		return err
	}
	l, notes, err := parseLimits(b)
	if err != nil {
		return err
	}
	if err := m.SetLimits(ctx, domain, l); err != nil {
		return err
	}
	for _, n := range notes {
		r.warn(path, n.line, domain+": "+n.text)
	}
	return nil
}

func importDefault(ctx context.Context, m *vmail.Manager, domain, path string, byDir map[string]string, r *Report) error {
	b, err := readAll(path, maxDotQmail)
	if err != nil {
		return err
	}
	ca, err := parseDefault(b)
	if err != nil {
		return err
	}
	if ca.dir != "" {
		name, ok := byDir[ca.dir]
		if !ok {
			return problem("catch-all directory %s is no mailbox's of %s", ca.dir, domain)
		}
		ca.target = name + "@" + domain
	}
	if err := m.SetCatchAll(ctx, domain, ca.target); err != nil {
		return err
	}
	r.CatchAlls++
	return nil
}

func importAlias(ctx context.Context, m *vmail.Manager, domain, path string, r *Report) error {
	name, err := aliasName(filepath.Base(path))
	if err != nil {
		return err
	}
	b, err := readAll(path, maxDotQmail)
	if err != nil {
		return err
	}
	targets, err := parseAliasFile(b)
	if err != nil {
		return err
	}
	if err := m.AddAlias(ctx, name+"@"+domain, targets...); err != nil {
		return err
	}
	r.Aliases++
	return nil
}

func addAliasDomain(ctx context.Context, m *vmail.Manager, alias, domain, file string, line int, r *Report) error {
	err := m.AddAliasDomain(ctx, alias, domain)
	if err != nil {
		if refused(err) {
			r.skip(file, line, err.Error())
			return nil
		}
		return err
	}
	r.AliasDomains = append(r.AliasDomains, alias+" -> "+domain)
	return nil
}

// Assign imports the alias domains of a qmail users/assign file: a line
// "+alias.example-:real.example:uid:gid:DOMDIR:-::" whose real domain is a
// domain of m makes alias.example its alias domain. Lines of real domains
// are checked to be domains of m; other lines (Unix users) are ignored.
func Assign(ctx context.Context, m *vmail.Manager, path string) (*Report, error) {
	r := &Report{}
	err := readFile(path, maxFile, func(n int, line string) error {
		a, ok, err := parseAssign(line)
		if err != nil {
			r.skip(path, n, err.Error())
			return nil
		}
		if !ok {
			return nil
		}
		if a.domain == a.real {
			if _, err := m.Domain(ctx, a.domain); err != nil {
				if !refused(err) {
					return fmt.Errorf("vimport: %s:%d: %w", path, n, err)
				}
				r.skip(path, n, "domain "+a.domain+" is not a virtual domain (not imported)")
			}
			return nil
		}
		if err := addAliasDomain(ctx, m, a.domain, a.real, path, n, r); err != nil {
			return fmt.Errorf("vimport: %s:%d: %w", path, n, err)
		}
		return nil
	})
	return r, err
}

// Poppasswd imports the users of a users/poppasswd file as mailboxes of
// domain (added if it is not a domain yet). A name listed twice is
// imported once, from its first line, as the POP3 server reads the file.
func Poppasswd(ctx context.Context, m *vmail.Manager, domain, path string) (*Report, error) {
	r := &Report{}
	domain = strings.ToLower(domain)
	if err := addDomain(ctx, m, domain, path, r); err != nil {
		return r, err
	}
	err := readFile(path, maxFile, func(n int, line string) error {
		if line == "" || line[0] == '#' {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("vimport: %w", err)
		}
		mb, err := parsePoppasswd(line, domain)
		if err == nil {
			err = importMailbox(ctx, m, mb, path, n, r)
		}
		if err != nil && refused(err) {
			r.skip(path, n, err.Error())
			return nil
		}
		if err != nil {
			return fmt.Errorf("vimport: %s:%d: %w", path, n, err)
		}
		return nil
	})
	return r, err
}

// readFile calls fn for each line of the regular file at path. A file
// that cannot be opened is a problem, reported.
func readFile(path string, max int64, fn func(n int, line string) error) error {
	f, err := openRegular(path, max)
	if err != nil {
		return &problemError{err.Error()}
	}
	defer f.Close()
	return eachLine(f, path, fn)
}

// readAll returns the content of the regular file at path.
func readAll(path string, max int64) (string, error) {
	f, err := openRegular(path, max)
	if err != nil {
		return "", &problemError{err.Error()}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return "", fmt.Errorf("vimport: %s: %w", path, err)
	}
	if strings.IndexByte(string(b), 0) >= 0 {
		return "", problem("NUL byte in the file")
	}
	return string(b), nil
}
