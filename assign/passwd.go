package assign

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// Passwd is a password database: getpwnam. Lookup returns nil and no error
// when there is no account of that name, and an error only for trouble
// (which makes the delivery temporary).
type Passwd interface {
	Lookup(name string) (*PasswdEntry, error)
}

// PasswdEntry is one account.
type PasswdEntry struct {
	Name     string
	UID, GID int
	Gecos    string
	Home     string
	Shell    string
}

// PasswdFile is a password database in passwd(5) format
// (name:password:uid:gid:gecos:home:shell), read on every lookup as the
// "files" source of getpwnam does. The first line with the name wins; lines
// that are malformed (fewer than seven fields, a uid or gid that is not a
// decimal number below 2^32) or NIS compat lines (starting with '+' or '-')
// are skipped. A missing file is an empty database.
type PasswdFile struct {
	Path string
}

// Lookup finds name in the file.
func (p PasswdFile) Lookup(name string) (*PasswdEntry, error) {
	f, err := os.Open(p.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("assign: passwd: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 1<<20)
	prefix := []byte(name + ":")
	for sc.Scan() {
		if name == "" || !bytes.HasPrefix(sc.Bytes(), prefix) {
			continue
		}
		line := sc.Text()
		if e := ParsePasswdLine(line); e != nil && e.Name == name {
			return e, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("assign: passwd: read %s: %w", p.Path, err)
	}
	return nil, nil
}

// ParsePasswdLine parses one passwd(5) line, or returns nil if it is
// malformed.
func ParsePasswdLine(line string) *PasswdEntry {
	line = strings.TrimSuffix(line, "\n")
	f := strings.Split(line, ":")
	if len(f) != 7 || f[0] == "" || f[0][0] == '+' || f[0][0] == '-' {
		return nil
	}
	uid, err1 := strconv.ParseUint(f[2], 10, 32)
	gid, err2 := strconv.ParseUint(f[3], 10, 32)
	if err1 != nil || err2 != nil {
		return nil
	}
	return &PasswdEntry{Name: f[0], UID: int(uid), GID: int(gid), Gecos: f[4], Home: f[5], Shell: f[6]}
}

// SystemPasswd is the system's password database, through os/user (NSS
// with cgo, /etc/passwd without).
type SystemPasswd struct{}

// Lookup finds name with os/user.Lookup.
func (SystemPasswd) Lookup(name string) (*PasswdEntry, error) {
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return nil, nil
		}
		return nil, fmt.Errorf("assign: passwd: %w", err)
	}
	return entryFromUser(u)
}

func entryFromUser(u *user.User) (*PasswdEntry, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("assign: passwd: %s: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("assign: passwd: %s: gid %q: %w", u.Username, u.Gid, err)
	}
	return &PasswdEntry{Name: u.Username, UID: int(uid), GID: int(gid), Gecos: u.Name, Home: u.HomeDir}, nil
}

// StatOwner returns the uid that owns path (following symlinks), with
// os.Stat: the home-directory check of qmail-getpw and qmail-pw2u.
func StatOwner(path string) (int, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("assign: stat %s: no owner information", path)
	}
	return int(st.Uid), nil
}

// isTemp is qmail's error_temp: the errno values that mean "try again
// later". Errors that are not errno values count as temporary (when in
// doubt, defer), except "does not exist" and "permission denied".
func isTemp(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission)
	}
	switch errno {
	case syscall.EINTR, syscall.ENOMEM, syscall.ETXTBSY, syscall.EIO, syscall.ETIMEDOUT,
		syscall.EAGAIN, syscall.EDEADLK, syscall.EBUSY, syscall.ENFILE, syscall.EMFILE,
		syscall.EFBIG, syscall.ENOSPC, syscall.ENETDOWN, syscall.ENETUNREACH, syscall.ENETRESET,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.ENOBUFS, syscall.ECONNREFUSED,
		syscall.EHOSTDOWN, syscall.EHOSTUNREACH, syscall.EUSERS, syscall.EDQUOT, syscall.ESTALE,
		syscall.ENOLCK:
		return true
	}
	return false
}
