// Command checkpassword checks a POP3 login against virtual users in a
// password file, with the interface of djb's checkpassword, so that it
// fits between qmail-popup and qmail-pop3d:
//
//	qmail-popup HOST checkpassword [-f FILE] qmail-pop3d Maildir
//
// It reads "user\0password\0timestamp\0" from fd 3 (at most 512 bytes),
// looks the user up in FILE (default $POPPASSWD, else
// $QMAILHOME/users/poppasswd, QMAILHOME defaulting to /var/qmail): lines
// "name:password:uid:gid:gecos:home:shell" as pop3.PasswdFile reads them,
// or a cdb of them when FILE ends in ".cdb". The password may also be an
// APOP digest of the timestamp and a {PLAIN} secret. On success it switches
// to the user's gid and uid (when run as root), changes to the home
// directory, sets USER, HOME and SHELL, and executes the rest of its
// arguments. Exit 1: bad login; 2: misuse; 111: temporary failure.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/pop3"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	file := ""
	if len(args) >= 2 && args[0] == "-f" {
		file, args = args[1], args[2:]
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, "checkpassword: usage: checkpassword [-f file] prog [args...]\n")
		return 2
	}
	if file == "" {
		file = os.Getenv("POPPASSWD")
	}
	if file == "" {
		home := control.Home("", os.Getenv)
		file = filepath.Join(home, "users", "poppasswd")
	}

	fd3 := os.NewFile(3, "fd3")
	if fd3 == nil {
		return 2
	}
	buf := make([]byte, pop3.MaxCheckpasswordInput+1)
	n, err := io.ReadFull(fd3, buf)
	fd3.Close()
	switch {
	case err == nil:
		return 1 // more than 512 bytes
	case err != io.EOF && err != io.ErrUnexpectedEOF:
		return 111
	}
	cred, err := pop3.ParseCheckpasswordInput(buf[:n])
	clear(buf)
	if err != nil {
		return 2
	}
	users := &pop3.PasswdFile{Path: file}
	// Authenticate checks an unknown user's password against a dummy
	// hash too, so that the time taken tells no one which users exist.
	e, err := users.Authenticate(context.Background(), pop3.Credentials{User: cred.User, Secret: cred.Secret, Method: pop3.MethodUser})
	if errors.Is(err, pop3.ErrAuthFailed) && cred.Challenge != "" {
		e, err = users.Authenticate(context.Background(), pop3.Credentials{User: cred.User, Secret: cred.Secret, Challenge: cred.Challenge, Method: pop3.MethodAPOP})
	}
	if errors.Is(err, pop3.ErrAuthFailed) {
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "checkpassword: %v\n", err)
		return 111
	}

	// Only root can become the user; run as anyone else, checkpassword
	// runs the program as itself (for tests and single-user setups).
	if os.Getuid() == 0 {
		if err := syscall.Setgroups([]int{e.GID}); err != nil {
			return 111
		}
		if err := syscall.Setgid(e.GID); err != nil {
			return 111
		}
		if err := syscall.Setuid(e.UID); err != nil {
			return 111
		}
	}
	if err := os.Chdir(e.Home); err != nil {
		return 111
	}
	os.Setenv("USER", e.Name)
	os.Setenv("HOME", e.Home)
	os.Setenv("SHELL", e.Shell)
	prog, err := exec.LookPath(args[0])
	if err != nil {
		return 111
	}
	syscall.Exec(prog, args, os.Environ())
	return 111
}
