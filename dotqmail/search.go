package dotqmail

import (
	"errors"

	"io/fs"

	"path/filepath"
	"strings"
	"syscall"
)

// MapExt returns ext as it appears in .qmail file names, as qmail-local
// maps it: ASCII upper-case letters lower-cased and every '.' replaced by
// ':'. Nothing else changes; since no '.' survives, no ".." can, so a name
// made from it never leaves the home directory.
func MapExt(ext string) string {
	b := []byte(ext)
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c == '.':
			b[i] = ':'
		}
	}
	return string(b)
}

// A Candidate is one file name qmail-local tries for a recipient, with the
// DEFAULT value it gives when it is the file found.
type Candidate struct {
	// Name is the file name relative to the home directory:
	// ".qmail" + dash + mapped ext, or a "default" form.
	Name string
	// Default is the value of $DEFAULT when this file is used, and
	// HasDefault whether $DEFAULT is set at all.
	Default    string
	HasDefault bool
}

// Candidates returns the .qmail file names qmail-local tries, in order, for
// a recipient with the given dash and ext (see dot-qmail(5)): the
// exact name, then ext cut before each '-' from the right, followed by
// "default", down to dash + "default". For ext "a-b-c":
// .qmail-a-b-c, .qmail-a-b-default, .qmail-a-default, .qmail-default.
//
// DEFAULT comes from the original ext, in its original case: the part the
// "default" stands for. The exact name sets it only when the mapped ext
// itself ends in "default" (to the last 7 bytes of ext).
func Candidates(dash, ext string) []Candidate {
	m := MapExt(ext)
	q := ".qmail" + dash
	out := make([]Candidate, 0, 4)
	exact := Candidate{Name: q + m}
	if strings.HasSuffix(m, "default") {
		exact.Default, exact.HasDefault = ext[len(ext)-7:], true
	}
	out = append(out, exact)
	for i := len(m); i >= 0; i-- {
		if i == 0 || m[i-1] == '-' {
			out = append(out, Candidate{Name: q + m[:i] + "default", Default: ext[i:], HasDefault: true})
		}
	}
	return out
}

// Found is the .qmail file chosen for a recipient.
type Found struct {
	Candidate
	// Path is the file's path: the home directory joined with Name.
	Path string
	// Mode holds the file's permission bits (0o777).
	Mode fs.FileMode
	// Data is the file's contents.
	Data []byte
}

// maxDotQmail bounds how much of a .qmail file is read. qmail-local reads
// the whole file into memory; a file past this size gets its "Out of
// memory." deferral rather than exhausting the delivery's memory.
const maxDotQmail = 16 << 20

// checkName rejects file names that could leave the home directory or that
// no file system can hold. Names from Candidates never fail it (their ext
// is mapped); it is the second line of defence for the paths made from
// mail (paths made from mail never escape their directory).
func checkName(name string) error {
	if strings.IndexByte(name, 0) >= 0 {
		return errors.New("dotqmail: extension contains a NUL byte")
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return errors.New("dotqmail: .qmail name " + name + " leaves the home directory")
		}
	}
	return nil
}

// Find looks for the .qmail file of a recipient in home as qmail-local
// does: the first of [Candidates] that opens and is a regular file. A
// missing file, a directory, or a path through a non-directory counts as
// absent; a file that cannot be opened for a reason that may pass
// (permissions, a temporary errno) is an *Error with qmail-local's
// "Unable to open <name>: <error>. (#4.3.0)", and so is a FIFO, a device
// or a socket ("Unable to open <name>: not a regular file. (#4.3.0)"). It
// returns an error wrapping fs.ErrNotExist when no candidate exists.
//
// Find never blocks on a file (a FIFO named like a .qmail file is not
// opened), so that it may run while an SMTP client waits, to check a
// recipient.
//
// Symbolic links are followed, as qmail-local follows them: the user owns
// the home directory and the links in it. Names made from the extension
// stay below home (see [MapExt]).
func Find(home, dash, ext string) (Found, error) {
	if strings.IndexByte(ext, 0) >= 0 || strings.IndexByte(dash, 0) >= 0 {
		return Found{}, &Error{Text: "Sorry, no mailbox here by that name. (#5.1.1)", Perm: true,
			Err: errors.New("dotqmail: extension contains a NUL byte")}
	}
	for _, c := range Candidates(dash, ext) {
		fnd, ok, err := readDotQmail(home, c)
		if err != nil {
			return Found{}, err
		}
		if ok {
			return fnd, nil
		}
	}
	return Found{}, fs.ErrNotExist
}

// notRegular is readDotQmail's verdict on a candidate that is not a regular
// file: a directory counts as absent, as with qmail-local; anything else (a
// FIFO, a device, a socket) defers the message. qmail-local opens it
// with O_NDELAY and takes it for absent; this deferral tells the user
// instead of falling through to .qmail-default.
func notRegular(c Candidate, path string, mode uint32) (Found, bool, error) {
	if mode&syscall.S_IFMT == syscall.S_IFDIR {
		return Found{}, false, nil
	}
	return Found{}, false, &Error{Text: "Unable to open " + c.Name + ": " + errNotRegular.Error() + ". (#4.3.0)",
		Err: &fs.PathError{Op: "open", Path: path, Err: errNotRegular}}
}

// readDotQmail reads home/name as qmail-local's qmeexists and slurpclose
// do. ok is false when the file does not exist in
// qmail-local's sense: missing, a directory, or unreachable for a reason
// other than permissions or a temporary errno. Anything else that is not a
// regular file is an *Error (temporary).
//
// Nothing here can block on the file: it is stat'ed first, so that a FIFO
// or a device is not even opened, and then opened with O_NONBLOCK (qmail's
// O_NDELAY) and checked again with fstat, for a file replaced in between.
// It uses the system calls directly (stat, open, fstat, read, close): it
// runs for every delivery and every RCPT, and the file needs neither the
// poller nor buffering.
func readDotQmail(home string, c Candidate) (Found, bool, error) {
	if err := checkName(c.Name); err != nil {
		return Found{}, false, &Error{Text: "Sorry, no mailbox here by that name. (#5.1.1)", Perm: true, Err: err}
	}
	path := filepath.Join(home, c.Name)
	unable := func(op string, err error) error {
		return &Error{Text: "Unable to open " + c.Name + ": " + errText(err) + ". (#4.3.0)",
			Err: &fs.PathError{Op: op, Path: path, Err: err}}
	}
	var pre syscall.Stat_t
	if err := ignoringEINTR(func() error { return syscall.Stat(path, &pre) }); err != nil {
		if isAccess(err) || isTemp(err) {
			return Found{}, false, unable("stat", err)
		}
		return Found{}, false, nil
	}
	if pre.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return notRegular(c, path, pre.Mode)
	}
	fd, st, err := openRegular(path, syscall.O_RDONLY, 0)
	switch {
	case err == errNotRegular:
		return notRegular(c, path, st.Mode)
	case isAccess(err) || isTemp(err):
		return Found{}, false, unable("open", err)
	case err != nil:
		return Found{}, false, nil // gone since the stat
	}
	defer syscall.Close(fd)
	if st.Size > maxDotQmail {
		return Found{}, false, &Error{Text: "Out of memory. (#4.3.0)", Err: errors.New("dotqmail: " + c.Name + " is larger than 16 MiB")}
	}
	// The size fstat gave, read to its end: a file edited while it is
	// read is the race the sticky home directory exists to avoid.
	data := make([]byte, st.Size)
	n := 0
	for n < len(data) {
		k, err := syscall.Read(fd, data[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			// qmail-local's slurpclose failing reads as running out of memory.
			return Found{}, false, &Error{Text: "Out of memory. (#4.3.0)", Err: &fs.PathError{Op: "read", Path: path, Err: err}}
		}
		if k == 0 {
			break // the file shrank
		}
		n += k
	}
	return Found{Candidate: c, Path: path, Mode: fs.FileMode(st.Mode & 0o777), Data: data[:n]}, true, nil
}
