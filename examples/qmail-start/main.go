// Command qmail-start is a drop-in for qmail's qmail-start: run as root
// from /var/qmail/rc, it starts the logger under the qmaill account and
// becomes qmail-send, with qmail-send's log going into the logger
// (qmail-start(8)).
//
//	qmail-start [defaultdelivery [logger [arg ...]]]
//	exec env - PATH="/var/qmail/bin:$PATH" qmail-start ./Maildir/ splogger qmail
//
// Steps: chdir to "/", umask 077; look up the accounts qmaill, qmailq,
// qmailr and qmails and the groups nofiles and qmail (a missing one
// prints "fatal: unable to find user NAME" or "fatal: unable to find
// group NAME" on standard error and exits 111); set the group list and gid
// to qmail. With a logger (the arguments after defaultdelivery), start it,
// found through $PATH, under uid qmaill, gid nofiles and that one group,
// with a pipe on its standard input, qmail-start's standard output as its
// own, and its standard error closed, as qmail's logger has them. Then
// exec qmail-send, found through $PATH, as
//
//	qmail-send DEFAULTDELIVERY
//
// (defaultdelivery defaults to ./Mailbox) with its standard output, where
// it logs, going into the logger's pipe (or qmail-start's standard output
// when there is no logger), its standard input and error those qmail-start
// was given, in the qmail home: $QMAILHOME, else /var/qmail, which is
// where qmail's qmail-send changes to and where ours, without $QMAILHOME,
// takes its home from. The environment reaches qmail-send and its
// deliveries unchanged. Any failure but a missing account exits 111
// without a word, as qmail-start does.
//
// # Compatibility
//
// qmail's qmail-start starts five programs: qmail-send under qmails,
// qmail-lspawn as root, qmail-rspawn under qmailr and qmail-clean under
// qmailq, connected by pipes on descriptors 0 to 6. This module's
// qmail-send is one process that schedules the queue and does the local,
// remote and cleanup work itself: it stays root (with gid qmail) because
// it runs each local delivery in a qmail-local child under the
// recipient's uid, which only root can start. There are therefore no
// qmail-lspawn, qmail-rspawn and qmail-clean processes and no pipes on
// descriptors 2 to 6. A logger that cannot be started makes qmail-start
// exit 111, where qmail's would run on without a log.
package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/internal/account"
	"golang.org/x/sys/unix"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run returns only when qmail-send could not be started.
func run(args []string) int {
	if syscall.Chdir("/") != nil {
		return 111
	}
	syscall.Umask(0o077)
	// The accounts qmail-start knows; qmail-send does not drop root here.
	uids, gids, err := account.IDs([]string{"qmaill", "qmailq", "qmailr", "qmails"}, []string{"nofiles", "qmail"})
	if err != nil {
		os.Stderr.WriteString(account.Fatal(err))
		return 111
	}
	qmaill, nofiles, qmail := uids[0], gids[0], gids[1]
	if syscall.Setgroups([]int{qmail}) != nil || syscall.Setgid(qmail) != nil {
		return 111
	}
	delivery := "./Mailbox"
	if len(args) > 0 {
		delivery, args = args[0], args[1:]
	}
	if len(args) > 0 {
		if startLogger(args, qmaill, nofiles) != nil {
			return 111
		}
	}
	send, err := lookPath("qmail-send") // from "/", as qmail's execvp
	if err == nil {
		send, err = filepath.Abs(send)
	}
	if err != nil {
		return 111
	}
	if syscall.Chdir(control.Home("", os.Getenv)) != nil {
		return 111
	}
	syscall.Exec(send, []string{"qmail-send", delivery}, os.Environ())
	return 111
}

// startLogger starts argv under uid and gid (the only group), reading a
// pipe whose write end becomes descriptor 1.
func startLogger(argv []string, uid, gid int) error {
	path, err := lookPath(argv[0])
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer w.Close()
	p, err := os.StartProcess(path, argv, &os.ProcAttr{
		Files: []*os.File{r, os.Stdout, nil}, // standard error closed
		Sys: &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)},
		}},
	})
	r.Close()
	if err != nil {
		return err
	}
	p.Release() // it outlives us: qmail-send is exec'd over this process
	return unix.Dup3(int(w.Fd()), 1, 0)
}

// lookPath finds a program as execvp does: a name with a slash as it is,
// another through $PATH (current-directory entries included).
func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil && p != "" {
		return p, nil // exec.ErrDot: execvp would run it
	}
	return p, err
}
