package privsep

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/qmailkit/qmailkit/assign"
	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/lspawn"
	"github.com/qmailkit/qmailkit/mta"
	"github.com/qmailkit/qmailkit/pop3"
	"golang.org/x/sys/unix"
)

// roleEnv names the role of a copy of the program that Start or the
// helper started: "lspawn" (the helper) or "mailbox" (a mailbox agent).
// qmail-local children are known by their argv[0], as dotqmail.Local
// names them.
const roleEnv = "QMAILKIT_MTA_ROLE"

// IsChild reports whether this process is one of the copies of the
// program that privilege separation starts: the delivery helper ([Start]),
// a qmail-local child of the helper (argv[0] "qmail-local"), or a mailbox
// agent. Then the program must run [ChildMain] and exit with its code.
func IsChild() bool {
	switch {
	case filepath.Base(os.Args[0]) == "qmail-local":
		return true
	case os.Getenv(roleEnv) == "lspawn", os.Getenv(roleEnv) == "mailbox":
		return true
	}
	return false
}

// ChildMain runs the process in the role IsChild found and returns its
// exit code, for os.Exit; it returns 2 when the process has no role. It
// must be the first thing main does (before any file is opened or
// goroutine started): it marks every inherited descriptor above 2
// close-on-exec, and the helper's and the agents' sockets are descriptor
// 3.
func ChildMain() int {
	if err := CloseOnExec(); err != nil {
		fmt.Fprintln(os.Stderr, "privsep: marking inherited descriptors close-on-exec: "+err.Error())
		return 111
	}
	switch {
	case filepath.Base(os.Args[0]) == "qmail-local":
		return qmailLocalMain(os.Args[1:], os.Stderr)
	case os.Getenv(roleEnv) == "lspawn":
		return helperMain(os.Args[1:], os.Stderr)
	case os.Getenv(roleEnv) == "mailbox":
		return mailboxMain(os.Args[1:], os.Stderr)
	}
	fmt.Fprintln(os.Stderr, "privsep: not started as a privilege-separated process")
	return 2
}

// qmailLocalMain is qmail-local, as the helper runs it under a
// recipient's uid (dotqmail.Local, argv[0] "qmail-local").
func qmailLocalMain(args []string, stderr io.Writer) int {
	// Started by the helper, which leads the session it starts its
	// children in: the first act is a session of its own, so that no
	// program of the delivery can join the helper's process group (see
	// reap.go). Anything else (a program running this one) is refused:
	// the helper spares qmail-local children.
	if sid, err := unix.Getsid(0); err != nil || os.Getppid() <= 1 || sid != os.Getppid() {
		fmt.Fprintln(stderr, "qmail-local: started by the delivery helper only. (#4.3.0)")
		return 111
	}
	if _, err := unix.Setsid(); err != nil {
		fmt.Fprintln(stderr, "qmail-local: setsid: "+err.Error()+". (#4.3.0)")
		return 111
	}
	syscall.Umask(0o077)
	return dotqmail.QmailLocal(context.Background(), args, os.Environ(), os.Stdin, os.Stdout, stderr)
}

// withoutQmailEnv drops from env the variables that say where a home and
// its qmail-queue are, and privilege separation's own.
func withoutQmailEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if name == "QMAILHOME" || name == "QMAILQUEUE" || strings.HasPrefix(name, "QMAILKIT_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// withoutRole drops roleEnv from env.
func withoutRole(env []string) []string {
	var out []string
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); name != roleEnv {
			out = append(out, kv)
		}
	}
	return out
}

// helperMain is the helper: it stays root and serves the parent's local
// deliveries on descriptor 3, each through dotqmail.Local, which runs
// -program as qmail-local under the recipient's uid and refuses uid 0,
// with the helper's environment (Options.Env); and it starts the mailbox
// agents. It logs JSON lines on stderr, which Start's relay hands to the
// parent's Logger.
func helperMain(args []string, stderr io.Writer) int {
	// The parent stops first and then closes the socket: a terminal's ^C
	// must not end deliveries under way.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	fs := flag.NewFlagSet("mta lspawn", flag.ContinueOnError)
	fs.SetOutput(stderr)
	home := fs.String("home", "", "home directory")
	def := fs.String("defaultdelivery", "./Maildir/", "default delivery")
	program := fs.String("program", "", "this program")
	deliveryTimeout := fs.Duration("deliverytimeout", lspawn.DefaultDeliveryTimeout, "time limit of a delivery")
	if err := fs.Parse(args); err != nil || *home == "" || *program == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "mta lspawn: started by the mta only")
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	if os.Geteuid() != 0 {
		logger.Error("mta lspawn: not root")
		return 1
	}
	f := os.NewFile(3, "lspawn")
	c, err := net.FileConn(f) // a close-on-exec copy
	f.Close()                 // so that no delivery inherits descriptor 3
	if err != nil {
		logger.Error("mta lspawn: descriptor 3: " + err.Error())
		return 1
	}
	conn, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		logger.Error("mta lspawn: descriptor 3 is not a unix socket")
		return 1
	}
	defer conn.Close()
	// users/cdb is believed only while root's (see trust.go).
	users := &assign.Users{CDB: filepath.Join(*home, "users", "cdb"), Passwd: assign.SystemPasswd{}, Trust: trustUsersCDB}
	defer users.Close()
	local := &dotqmail.Local{
		Users:           mta.UsersAdapter(users),
		DefaultDelivery: *def,
		Program:         *program,
		Env:             withoutRole(os.Environ()),
	}
	agents := &lspawn.Agents{
		Lookup: func(name string) (lspawn.MailboxUser, error) {
			return lookupMailbox(filepath.Join(*home, "users", "poppasswd"), name)
		},
		Command: func(u lspawn.MailboxUser, seen bool) *exec.Cmd {
			args := []string{"-maildir", u.Maildir}
			if seen {
				args = append(args, "-seen")
			}
			cmd := exec.Command(*program, args...)
			cmd.Args[0] = "mta-mailbox"
			cmd.Env = []string{roleEnv + "=mailbox"}
			cmd.Stderr = stderr
			return cmd
		},
		Logger: logger,
	}
	// Whatever a delivery leaves running is killed: see reap.go.
	reapCtx, stopReaping := context.WithCancel(context.Background())
	var inflight, started atomic.Int64 // local deliveries in progress, and ever started
	reaped := reapOrphans(reapCtx, agents.Started, func() (int, int64) { return int(inflight.Load()), started.Load() }, logger)
	counted := lspawn.DelivererFunc(func(ctx context.Context, sender, recipient string, msg io.Reader) (dotqmail.Result, error) {
		started.Add(1)
		inflight.Add(1)
		defer inflight.Add(-1)
		return local.Deliver(ctx, sender, recipient, msg)
	})
	srv := &lspawn.Server{Local: refusalReporter(counted, logger), Mailboxes: agents, DeliveryTimeout: *deliveryTimeout, Logger: logger}
	err = srv.ServeConn(context.Background(), conn)
	stopReaping()
	<-reaped
	if err != nil {
		logger.Error("mta lspawn: " + err.Error())
		return 1
	}
	return 0
}

// lookupMailbox finds user name in users/poppasswd (at path) for a
// mailbox agent: the helper reads the file itself, believing it only while
// it and users/ belong to root and only root may write them, as for
// users/cdb, and never takes a uid or home from its parent.
func lookupMailbox(path, name string) (lspawn.MailboxUser, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return lspawn.MailboxUser{}, err
	}
	if err := trustUsersCDB(path, fi); err != nil {
		return lspawn.MailboxUser{}, err
	}
	pf := &pop3.PasswdFile{Path: path}
	e, err := pf.Lookup(name)
	if err != nil {
		return lspawn.MailboxUser{}, err
	}
	if !filepath.IsAbs(e.Home) {
		return lspawn.MailboxUser{}, fmt.Errorf("user %q: home %q is not an absolute path", name, e.Home)
	}
	return lspawn.MailboxUser{Name: e.Name, UID: e.UID, GID: e.GID, Maildir: filepath.Join(e.Home, "Maildir")}, nil
}

// mailboxMain is a mailbox agent: started by the helper under a POP3
// user's uid and gid, it opens the user's Maildir with the user's rights
// and serves it to the helper's parent on descriptor 3
// (lspawn.ServeMailbox) until the parent closes it or -lifetime is up.
func mailboxMain(args []string, stderr io.Writer) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	syscall.Umask(0o077)
	fs := flag.NewFlagSet("mta mailbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("maildir", "", "the Maildir")
	seen := fs.Bool("seen", false, "flag messages retrieved whole as seen")
	lifetime := fs.Duration("lifetime", lspawn.DefaultAgentLifetime, "longest life")
	if err := fs.Parse(args); err != nil || *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "mta mailbox: started by the delivery helper only")
		return 2
	}
	// Its stderr is the helper's: JSON lines for the relay.
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	if os.Geteuid() == 0 {
		logger.Error("mta mailbox: refusing to run as root")
		return 1
	}
	f := os.NewFile(3, "mailbox")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		logger.Error("mta mailbox: descriptor 3: " + err.Error())
		return 1
	}
	conn, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		logger.Error("mta mailbox: descriptor 3 is not a unix socket")
		return 1
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *lifetime)
	defer cancel()
	// The kernel keeps out what the user may not read; the Maildir is
	// still confined as the in-process reader's is (its directories not
	// links, the user's own, and only the user's files messages).
	owner := &pop3.User{UID: os.Getuid(), GID: os.Getgid(), Home: filepath.Dir(*path), Maildir: *path}
	err = lspawn.ServeMailbox(ctx, conn, func() (pop3.Mailbox, error) {
		return pop3.OpenMaildir(*path, pop3.MaildirOptions{User: owner, Lock: true, WireSizes: true, Seen: *seen, MissingOK: true, MissingEmpty: true})
	})
	if err != nil && !errors.Is(err, pop3.ErrInUse) {
		logger.Error("mta mailbox: "+err.Error(), "uid", os.Getuid())
		return 1
	}
	return 0
}

// refusalReporter delivers through l, but a delivery deferred because
// users/cdb is not trusted gets a report naming the file and the reason
// (qmail-lspawn's would only say "Trouble reading users/cdb"), and is
// logged as an error: the operator must fix the home.
func refusalReporter(l lspawn.Deliverer, logger *slog.Logger) lspawn.Deliverer {
	return lspawn.DelivererFunc(func(ctx context.Context, sender, recipient string, msg io.Reader) (dotqmail.Result, error) {
		res, err := l.Deliver(ctx, sender, recipient, msg)
		var ue *UntrustedError
		if errors.As(err, &ue) {
			res.Report = ue.report()
			logger.Error("mta lspawn: deferring a delivery: "+ue.Error()+"; it must belong to root and be writable by root alone", "recipient", recipient)
		}
		return res, err
	})
}

// CloseOnExec marks every descriptor of the process above 2 close-on-exec,
// so that none that the program was started with (a supervisor's, a
// shell's, a test harness's) reaches the programs it starts: the helper,
// qmail-local and the users' programs under it, the mailbox agents. A root
// program calls it first in main, as ChildMain does for the roles; what a
// role is handed on purpose (descriptor 3), it takes as a close-on-exec
// copy (net.FileConn) and closes. Descriptors Go opens are close-on-exec
// already; sockets handed over by systemd stay open (only marked).
func CloseOnExec() error {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd <= 2 {
			continue
		}
		// The directory's own descriptor, closed meanwhile, gives EBADF.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && err != unix.EBADF {
			return err
		}
	}
	return nil
}
