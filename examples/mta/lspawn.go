package main

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
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/assign"
	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/lspawn"
	"github.com/qmailkit/qmailkit/mta"
	"github.com/qmailkit/qmailkit/pop3"
	"golang.org/x/sys/unix"
)

// The program's hidden roles, chosen first thing in main: the mta started
// as root runs a copy of itself that stays root and delivers (qmail-lspawn),
// which runs it as qmail-local under each recipient's uid (by argv[0], as
// dotqmail.Local names it); run as QMAILHOME/bin/qmail-queue,
// bin/qmail-inject, bin/sendmail or bin/fastforward (links the mta makes
// to itself) it is
// that program, for forwards and for mail from the command line.
const roleEnv = "QMAILKIT_MTA_ROLE" // "lspawn" or "mailbox"

// makeRunDir makes home's run/ for the account uid, gid (mode 755), as
// root, when it is missing: homes made before run/ existed. An existing
// run/ must be a directory (not a symbolic link).
func makeRunDir(home string, uid, gid int) error {
	dir := filepath.Join(home, "run")
	fi, err := os.Lstat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		return err
	}
	return os.Lchown(dir, uid, gid)
}

// role runs the program in a hidden role, if it was started in one, and
// returns its exit code.
func role() (int, bool) {
	switch {
	case filepath.Base(os.Args[0]) == "qmail-local":
		// Started by the helper, which leads the session it starts its
		// children in: the first act is a session of its own, so that
		// no program of the delivery can join the helper's process
		// group (see reap.go). Anything else (a program running this
		// one) is refused: the helper spares qmail-local children.
		if sid, err := unix.Getsid(0); err != nil || os.Getppid() <= 1 || sid != os.Getppid() {
			fmt.Fprintln(os.Stderr, "qmail-local: started by the delivery helper only. (#4.3.0)")
			return 111, true
		}
		if _, err := unix.Setsid(); err != nil {
			fmt.Fprintln(os.Stderr, "qmail-local: setsid: "+err.Error()+". (#4.3.0)")
			return 111, true
		}
		syscall.Umask(0o077)
		return dotqmail.QmailLocal(context.Background(), os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr), true
	case os.Getenv(roleEnv) == "lspawn":
		return lspawnMain(os.Args[1:], os.Stderr), true
	case os.Getenv(roleEnv) == "mailbox":
		return mailboxMain(os.Args[1:], os.Stderr), true
	case filepath.Base(os.Args[0]) == "qmail-queue":
		return queueMain(os.Args[0], os.Getenv("QMAILHOME"), os.Stdin, os.NewFile(1, "envelope")), true
	case filepath.Base(os.Args[0]) == "qmail-inject", filepath.Base(os.Args[0]) == "sendmail":
		return injectMain(os.Args, os.Environ()), true
	case filepath.Base(os.Args[0]) == "fastforward":
		return fastforwardMain(os.Args, os.Environ()), true
	}
	return 0, false
}

// helper is the root delivery helper the mta starts before dropping root.
type helper struct {
	client *lspawn.Client
	exited chan struct{} // closed when the process has exited
}

// startHelper starts program (this program, resolved while root) in the
// lspawn role, connected by a socketpair, and returns its client. The
// helper exits when the socket closes; Pdeathsig kills it should this
// process die first.
func startHelper(program, home, defaultDelivery, logFormat string, deliveryTimeout time.Duration, stderr io.Writer) (*helper, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "lspawn"), os.NewFile(uintptr(fds[1]), "lspawn")
	defer mine.Close()
	defer theirs.Close()
	cmd := exec.Command(program, "-home", home, "-defaultdelivery", defaultDelivery, "-program", program, "-log", logFormat,
		"-deliverytimeout", deliveryTimeout.String())
	cmd.Env = append(withoutQmailEnv(os.Environ()), roleEnv+"=lspawn")
	cmd.ExtraFiles = []*os.File{theirs} // descriptor 3
	cmd.Stderr = stderr
	cmd.Dir = "/"
	// A session of its own: no terminal's signals, and the processes it
	// kills (see reap.go) cannot be in the terminal's groups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the delivery helper: %w", err)
	}
	h := &helper{exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(h.exited)
	}()
	c, err := net.FileConn(mine)
	if err != nil {
		return nil, fmt.Errorf("delivery helper: %w", err) // theirs closes: the helper exits
	}
	h.client = lspawn.NewClient(c.(*net.UnixConn))
	return h, nil
}

// withoutQmailEnv drops the variables the roles set from env.
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

// lspawnMain is the helper: it stays root and serves the mta's local
// deliveries on descriptor 3, each through dotqmail.Local, which runs
// program as qmail-local under the recipient's uid and refuses uid 0. The
// qmail-local children's forwards run program as qmail-queue, which hands
// them to the mta over lspawn.QueueSocket(home).
func lspawnMain(args []string, stderr io.Writer) int {
	// The mta stops first and then closes the socket: a terminal's ^C
	// must not end deliveries under way.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	fs := flag.NewFlagSet("mta lspawn", flag.ContinueOnError)
	fs.SetOutput(stderr)
	home := fs.String("home", "", "home directory")
	def := fs.String("defaultdelivery", "./Maildir/", "default delivery")
	program := fs.String("program", "", "this program")
	logFormat := fs.String("log", "text", "log format")
	deliveryTimeout := fs.Duration("deliverytimeout", lspawn.DefaultDeliveryTimeout, "time limit of a delivery")
	if err := fs.Parse(args); err != nil || *home == "" || *program == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "mta lspawn: started by the mta only")
		return 2
	}
	var logger *slog.Logger
	if *logFormat == "json" {
		logger = slog.New(slog.NewJSONHandler(stderr, nil))
	} else {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
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
		logger.Error("mta lspawn: descriptor 3 is not a unix socket")
		return 1
	}
	defer conn.Close()
	// users/cdb is believed only while root's (see trust.go).
	users := &assign.Users{CDB: filepath.Join(*home, "users", "cdb"), Passwd: assign.SystemPasswd{}, Trust: trustUsersCDB}
	defer users.Close()
	env := append(withoutQmailEnv(os.Environ()),
		"QMAILHOME="+*home,
		"QMAILQUEUE="+queueProgram(*home))
	local := &dotqmail.Local{
		Users:           mta.UsersAdapter(users),
		DefaultDelivery: *def,
		Program:         *program,
		Env:             env,
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
// users/cdb, and never takes a uid or home from the mta.
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
// and serves it to the mta on descriptor 3 (lspawn.ServeMailbox) until
// the mta closes it or -lifetime is up.
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
	if os.Geteuid() == 0 {
		fmt.Fprintln(stderr, "mta mailbox: refusing to run as root")
		return 1
	}
	f := os.NewFile(3, "mailbox")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(stderr, "mta mailbox: descriptor 3: "+err.Error())
		return 1
	}
	conn, ok := c.(*net.UnixConn)
	if !ok {
		fmt.Fprintln(stderr, "mta mailbox: descriptor 3 is not a unix socket")
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
		return pop3.OpenMaildir(*path, pop3.MaildirOptions{User: owner, Lock: true, WireSizes: true, Seen: *seen, MissingOK: true})
	})
	if err != nil && !errors.Is(err, pop3.ErrInUse) {
		fmt.Fprintln(stderr, "mta mailbox: "+err.Error())
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
		var ue *untrustedError
		if errors.As(err, &ue) {
			res.Report = ue.report()
			logger.Error("mta lspawn: deferring a delivery: "+ue.Error()+"; it must belong to root and be writable by root alone", "recipient", recipient)
		}
		return res, err
	})
}

// othersCanRun reports whether a user other than the owner can execute
// program: every directory on its path searchable, and the file executable,
// by others. qmail-local children run it under the recipients' uids.
// Otherwise it returns the first path that is not.
func othersCanRun(program string) (string, bool) {
	for p := program; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return p, false
		}
		if p == filepath.Dir(p) {
			return "", true
		}
	}
}
