package mta

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/internal/durable"
)

// AdminPasswdPath returns the path of a home's file of system
// administrators, users/adminpasswd: passwd(5) lines as users/poppasswd
// has them ("admin:{SHA512-CRYPT}$6$...:uid:gid:comment:home:shell", a
// pop3.PasswdFile reads them), the accounts that may log in to the web
// admin and manage every domain.
func AdminPasswdPath(home string) string { return filepath.Join(home, "users", "adminpasswd") }

// EnsureAdmin makes users/adminpasswd when it does not exist, with one
// administrator, "admin", and a random password, which it returns (the
// only time it is seen: the file holds its hash). When the file exists it
// changes nothing and returns "". As root the file is root's, readable by
// group gid (the mta's account, which checks logins), mode 640; otherwise
// the process's, mode 600.
func EnsureAdmin(home string, gid int) (string, error) {
	path := AdminPasswdPath(home)
	if _, err := os.Lstat(path); err == nil {
		return "", nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("mta: %w", err)
	}
	password := randomPassword()
	hashed, err := auth.HashPassword(password)
	if err != nil {
		return "", fmt.Errorf("mta: %w", err)
	}
	line := fmt.Sprintf("admin:%s:%d:%d:administrator:%s:/bin/false\n", hashed, os.Getuid(), os.Getgid(), home)
	tmp := path + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("mta: %w", err)
	}
	_, err = f.WriteString(line)
	if err == nil && os.Getuid() == 0 {
		if err = f.Chown(0, gid); err == nil {
			err = f.Chmod(0o640)
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Not over a file made meanwhile: link fails if path exists.
		err = os.Link(tmp, path)
	}
	os.Remove(tmp)
	if errors.Is(err, os.ErrExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("mta: %w", err)
	}
	if err := durable.SyncDir(filepath.Dir(path)); err != nil {
		return "", fmt.Errorf("mta: %w", err)
	}
	return password, nil
}
