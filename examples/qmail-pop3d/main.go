// Command qmail-pop3d is a drop-in for qmail's qmail-pop3d: the POP3
// transaction state on one Maildir, run by checkpassword as the user, in
// the user's home directory, with the client's connection on fd 0 and 1:
//
//	qmail-pop3d Maildir
//
// Its replies, message order, QUIT update and exit status are
// qmail-pop3d's, as qmail-pop3d(8) and maildir(5) describe them. -modern
// gives the modern server's behaviour instead: RFC 1939 sizes and STAT, a
// mailbox lock, no LAST.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/qmailkit/qmailkit/pop3"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin, stdout *os.File, stderr io.Writer) int {
	fs := flag.NewFlagSet("qmail-pop3d", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modern := fs.Bool("modern", false, "modern behaviour (RFC 1939 sizes and STAT, a mailbox lock, no LAST) instead of qmail-pop3d's")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	args = fs.Args()
	// notqmail: never serve mail as root.
	if os.Getuid() == 0 {
		fmt.Fprint(stderr, "qmail-pop3d invoked as uid 0, terminating\n")
		return 1
	}
	if len(args) < 1 {
		fmt.Fprint(stdout, "-ERR this user has no $HOME/Maildir\r\n")
		return 0
	}
	if fi, err := os.Stat(args[0]); err != nil || !fi.IsDir() {
		fmt.Fprint(stdout, "-ERR this user has no $HOME/Maildir\r\n")
		return 0
	}
	// qmail-pop3d runs as the user (checkpassword switched to it), so the
	// kernel checks every access: ~/Maildir may be a symbolic link, as
	// qmail allows.
	opt := pop3.MaildirOptions{FollowLink: true}
	if *modern {
		opt = pop3.MaildirOptions{Lock: true, WireSizes: true, MissingOK: true, FollowLink: true}
	}
	mb, err := pop3.OpenMaildir(args[0], opt)
	if err != nil {
		if *modern && isInUse(err) {
			fmt.Fprint(stdout, "-ERR [IN-USE] mailbox already locked\r\n")
			return 0
		}
		fmt.Fprint(stdout, "-ERR unable to scan $HOME/Maildir\r\n")
		return 0
	}
	srv := &pop3.Server{Compat: !*modern}
	srv.ServeMailbox(context.Background(), pop3.StdioConn(stdin, stdout), pop3.EnvMap(os.Environ()), mb)
	return 0
}

func isInUse(err error) bool { return errors.Is(err, pop3.ErrInUse) }
