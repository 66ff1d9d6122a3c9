// Command newaliases compiles /etc/aliases into /etc/aliases.cdb for
// fastforward, a drop-in for fastforward 0.51's newaliases (Debian's
// qmail-newaliases). It takes no arguments: it reads the controls me,
// defaultdomain, defaulthost and plusdomain of $QMAILHOME (else
// /var/qmail), writes /etc/aliases.tmp with umask 033, fsyncs it and
// renames it to /etc/aliases.cdb. Silent and exit 0 on success; on
// failure "newaliases: fatal: ..." and exit 111 (100 for an address over
// 800 bytes). The paths are fixed, as qmail's are. See package
// github.com/qmailkit/qmailkit/aliases.
package main

import (
	"os"
	"syscall"

	"github.com/qmailkit/qmailkit/aliases/command"
)

func main() {
	syscall.Umask(0o033)
	os.Exit(command.Newaliases("/etc/aliases", "/etc/aliases.tmp", "/etc/aliases.cdb", command.IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Env: os.Environ(),
	}))
}
