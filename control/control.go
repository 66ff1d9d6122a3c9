// Package control reads a qmail home's control files (QMAILHOME/control/*)
// exactly as qmail's control.c does, and turns them into the packages'
// config values, so no program repeats it.
//
// # Format
//
// One-line files (me, smtpgreeting, databytes, ...): only the first line is
// used, with trailing spaces, tabs and LF removed (leading blanks and a CR
// are kept, as in qmail). Numeric files: the leading decimal digits of that
// line; a line without them leaves the default. List files (rcpthosts,
// locals, badmailfrom, ...): one entry per line, trailing spaces and tabs
// removed, empty lines and lines starting with "#" ignored; a NUL byte
// inside a line splits it into two entries, as qmail's constmap does. A missing file
// means the default; a file that exists but cannot be read is an error
// (qmail's "unable to read controls").
package control

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Dir is a qmail home directory; its control files are under Home/control.
type Dir struct {
	Home string
}

// Path returns the path of control file name.
func (d Dir) Path(name string) string {
	return filepath.Join(d.Home, "control", name)
}

// stripTrailing removes trailing LF, space and tab (control.c's
// striptrailingwhitespace; CR is not removed).
func stripTrailing(s string) string {
	i := len(s)
	for i > 0 && (s[i-1] == '\n' || s[i-1] == ' ' || s[i-1] == '\t') {
		i--
	}
	return s[:i]
}

// open opens a control file; ok is false when it does not exist.
func (d Dir) open(name string) (*os.File, bool, error) {
	f, err := os.Open(d.Path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("control: %w", err)
	}
	return f, true, nil
}

// Line reads the first line of a one-line file (control_readline); ok is
// false when the file does not exist.
func (d Dir) Line(name string) (line string, ok bool, err error) {
	f, ok, err := d.open(name)
	if !ok {
		return "", false, err
	}
	defer f.Close()
	l, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", false, fmt.Errorf("control: %s: %w", name, err)
	}
	return stripTrailing(l), true, nil
}

// Me returns control/me; ok is false when it does not exist.
func (d Dir) Me() (string, bool, error) {
	return d.Line("me")
}

// LineDefault reads a one-line file, defaulting to control/me when flagMe
// is set and me exists, else to def (control_rldef).
func (d Dir) LineDefault(name string, flagMe bool, def string) (string, error) {
	l, ok, err := d.Line(name)
	if err != nil || ok {
		return l, err
	}
	if flagMe {
		me, ok, err := d.Me()
		if err != nil {
			return "", err
		}
		if ok {
			return me, nil
		}
	}
	return def, nil
}

// Int reads a numeric one-line file (control_readint): its leading decimal
// digits, or def when the file is missing or has none.
func (d Dir) Int(name string, def int64) (int64, error) {
	l, ok, err := d.Line(name)
	if err != nil || !ok {
		return def, err
	}
	i := 0
	for i < len(l) && l[i] >= '0' && l[i] <= '9' {
		i++
	}
	if i == 0 {
		return def, nil
	}
	n, err := strconv.ParseUint(l[:i], 10, 63)
	if err != nil {
		return 1<<63 - 1, nil // qmail's unsigned long saturates here
	}
	return int64(n), nil
}

// List reads a list file (control_readfile): its entries, without empty
// and "#" lines, a line holding a NUL split there (see the package
// documentation); ok is false when the file does not exist.
func (d Dir) List(name string) (lines []string, ok bool, err error) {
	f, ok, err := d.open(name)
	if !ok {
		return nil, false, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	lines = []string{}
	for {
		l, rerr := r.ReadString('\n')
		if s := stripTrailing(l); s != "" && s[0] != 0 && s[0] != '#' {
			lines = appendEntries(lines, s)
		}
		if rerr == io.EOF {
			return lines, true, nil
		}
		if rerr != nil {
			return nil, false, fmt.Errorf("control: %s: %w", name, rerr)
		}
	}
}

// appendEntries appends the entries of line s to lines as qmail's
// constmap sees them: control_readfile stores each line NUL-terminated and
// constmap_init splits the whole at NULs, so a NUL inside a line ends one
// entry and starts another (a line starting with NUL is skipped, as an
// empty one). The empty entries a NUL can make are left out: they match
// nothing a server looks up.
func appendEntries(lines []string, s string) []string {
	for s != "" {
		e, rest, _ := strings.Cut(s, "\x00")
		if e != "" {
			lines = append(lines, e)
		}
		s = rest
	}
	return lines
}

// ListDefault is List, defaulting to a one-entry list of control/me when
// flagMe is set (control_readfile with flagme, as for locals).
func (d Dir) ListDefault(name string, flagMe bool) ([]string, bool, error) {
	lines, ok, err := d.List(name)
	if err != nil || ok || !flagMe {
		return lines, ok, err
	}
	me, ok, err := d.Me()
	if err != nil || !ok {
		return nil, false, err
	}
	return []string{me}, true, nil
}
