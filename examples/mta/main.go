// Command mta is a whole mail server in one program, configured by a qmail
// home directory: SMTP (qmail-smtpd with tcprules), submission (AUTH after
// STARTTLS, or on implicit TLS), the queue and its scheduler (qmail-send),
// local delivery through users/cdb and .qmail files (qmail-lspawn,
// qmail-local), remote delivery by SMTP (qmail-remote, with
// control/smtproutes), POP3 (qmail-popup, qmail-pop3d; also on implicit
// TLS) and, when asked for, LMTP.
//
//	go run ./examples/mta
//
// With no -home and no $QMAILHOME it uses $HOME/.qmailkit (as root:
// /var/lib/qmailkit), and makes it there on the first start: a local domain (localhost), a demo mailbox with
// a password, a self-signed certificate, and rules letting 127.0.0.1 relay.
// It prints the addresses it listens on, the mailbox and its password, and
// how to send and fetch a message. A second start reuses the home.
//
// Flags:
//
//	-home DIR           the home directory (default $QMAILHOME, else $HOME/.qmailkit)
//	-smtp ADDR          SMTP listen address (default 127.0.0.1:2525; "" disables,
//	                    as for each listen address)
//	-submission ADDR    submission listen address (default 127.0.0.1:2587)
//	-submissions ADDR   submission on implicit TLS (RFC 8314, port 465 in
//	                    production) listen address (default 127.0.0.1:2465)
//	-pop3 ADDR          POP3 listen address (default 127.0.0.1:2110)
//	-pop3s ADDR         POP3 on implicit TLS (port 995 in production) listen
//	                    address (default 127.0.0.1:2995)
//	-lmtp ADDR          LMTP listen address (default: none): a mail system in
//	                    front of this one hands over the mail of local users,
//	                    one reply per recipient; local recipients only, no
//	                    AUTH: keep it on loopback or a private network
//	-domain NAME        the local domain of a new home (default localhost)
//	-defaultdelivery L  qmail-start's argument (default ./Maildir/)
//	-log text|json|qmail log format on standard error (default text); qmail
//	                    writes qmail-send's lines, as splogger timestamps them
//	                    (readable by qmailanalog's matchup), and the servers' as text
//	-metrics ADDR       HTTP address for /metrics (Prometheus: queue size,
//	                    deliveries by outcome, connections, and the Go runtime's
//	                    and the process's metrics, resident memory among them)
//	                    and /healthz; keep it on loopback (default: none)
//	-user NAME          as root: the account to run as (default qmailkit,
//	                    which is created with useradd if missing; nobody,
//	                    uid 65534 and uid 0 are refused: the account owns
//	                    the queue and reads the key, so it must be the mta's alone)
//	-grace D            at a stop, how long sessions and deliveries in progress
//	                    may go on (default 1m); then they are cut
//	-aliases FILE       a fastforward database (what newaliases makes of
//	                    /etc/aliases: /etc/aliases.cdb) for the alias user;
//	                    see below (default: none)
//	-dns ADDR           the recursive DNS server for remote delivery and DNS
//	                    lists, ADDR or ADDR:PORT (default control/dnsserver,
//	                    else /etc/resolv.conf)
//	-admin ADDR         the web admin's listen address (default 127.0.0.1:2443;
//	                    "" disables): HTTPS with control/servercert.pem
//	                    (without it, plain HTTP and only on loopback); its
//	                    administrator is users/adminpasswd's "admin", made at
//	                    the first start with a password the banner shows once;
//	                    mailboxes log in as name@domain (package webadmin)
//	-apop               offer APOP on POP3 (for users whose password is
//	                    stored {PLAIN}; MD5, so off by default)
//	-deliverytimeout D  as root: the time limit of a local delivery (default
//	                    1060s: qmail-local's 1000 s for each program, and a
//	                    minute), after which its processes are killed and it
//	                    is deferred
//
// Started as root, it makes the home for the account (root's, mode 755, as
// /var/qmail, so that the account cannot replace control/ or users/;
// queue/, mail/, alias/ and run/ are the account's; users/ with assign and cdb belong to root, as qmail-newu's
// files do, and users/poppasswd is root's, readable by the account's
// group; control/ is root's too, so that the account cannot rewrite who
// may relay, and control/servercert.pem root's and readable by the
// account's group alone; on an older home whose control/ the account can
// write, the start-up log says so with the command that fixes it), binds its ports (so -smtp :25 works), starts a delivery
// helper, and runs everything else as that account. The helper, a copy of
// this program that stays root (qmail's qmail-lspawn), is connected to it
// by a socketpair and exits when it goes away; the mta passes it each
// local delivery (sender, recipient, and the queue's message file as a
// descriptor), and it resolves the recipient by users/cdb and the system's
// passwd (users/cdb only while it and users/ belong to root and only root
// may write them; otherwise deliveries to other uids are deferred and the
// start-up log says how to fix the owners) and runs this program again, as qmail-local, under the
// recipient's uid and gid with no supplementary groups. Mail is never
// delivered as root: a recipient with uid 0 is deferred ("Not allowed to
// perform deliveries as root."). The qmail-local child may not write the
// queue, so its forwards run QMAILHOME/bin/qmail-queue, this program (see
// below), which hands the message and envelope descriptors to the mta over
// the socket QMAILHOME/run/qmail-queue.sock (mode 666 as root: any local
// user may queue mail, as with qmail-queue and Postfix's postdrop); the
// Received line names the caller's uid. A message
// there has the SMTP servers' size limit (control/databytes as read at
// start, else 35 MiB; exit 31 beyond it) and is refused (exit 53) while
// the queue's file system is short of space, as SMTP refuses at MAIL. So this
// program must be executable by the users, and the home searchable by
// them; the mta warns at start when either is not (as with go run, whose
// build directory is root's alone). Should the helper die, the mta stops (exit 1): it can no longer
// start one. A recipient whose user is the account the mta runs as is
// delivered in-process, since a child under that uid would have the same
// rights. Each delivery the helper runs has -deliverytimeout; processes a
// delivery leaves behind are killed (the helper adopts them as a child
// subreaper).
//
// POP3, as root: a user of users/poppasswd whose uid and gid are the
// account's (the demo mailbox) is read in-process; any other user's
// Maildir is read by a mailbox agent, a copy of this program that the
// helper starts under the user's uid and gid (looked up by the helper in
// users/poppasswd, believed only while it and users/ are root's; uid 0
// refused), with no supplementary groups and an empty environment, so
// that the kernel checks the user's rights on every file, as qmail-pop3d
// runs after checkpassword's setuid. The agent passes each message's
// descriptor to the mta, which reads it directly; it ends with its
// session, or after two hours; at most 256 run at once.
//
// Started as an ordinary user, it delivers in-process as that user, and
// its queue socket is mode 600 (that user only).
//
// Mail from the command line: at every start the mta makes
// QMAILHOME/bin/qmail-queue, bin/qmail-inject and bin/sendmail symbolic
// links to itself (bin/ is root's as root; a file there that is not a link
// is left alone), and runs as each by its name: qmail-queue hands its
// descriptors to the running mta over the socket (when no mta answers and
// the queue is the caller's own, it queues the message itself, delivered
// at the next start); qmail-inject and sendmail are those of
// examples/qmail-inject and examples/sendmail, with QMAILHOME taken from
// where they are run when it is not set. So
//
//	echo 'To: demo' | ~/.qmailkit/bin/qmail-inject
//
// delivers to the demo mailbox, as does any qmail-inject or sendmail run
// with QMAILHOME set to the home; the banner says so. The deliveries'
// programs get QMAILHOME and QMAILQUEUE=QMAILHOME/bin/qmail-queue, so
// forward, condredirect and a user's own qmail-inject queue the same way.
// /etc/aliases: with -aliases /etc/aliases.cdb (compiled by newaliases,
// examples/newaliases), the catch-all alias user's alias/.qmail-default
// is made, when missing, as "|QMAILHOME/bin/fastforward -d
// /etc/aliases.cdb" (bin/fastforward is this program too, which runs as
// fastforward, package aliases), as qmail sites put fastforward in
// ~alias/.qmail-default; an alias/.qmail-NAME file still wins for NAME.
// A recipient that falls to it is refused at RCPT unless the database
// has an alias for it. The aliases' programs run as the account, as
// qmail runs them as the alias user.
//
// A new home whose domain has no dot (localhost) also accepts
// DOMAIN.localdomain, with control/defaultdomain "localdomain": the name
// qmail-inject completes a bare "demo" to.
//
// Signals: SIGTERM or SIGINT stops accepting connections, lets the sessions
// finish the message they are receiving, lets the deliveries in progress
// finish, and exits 0: every message acknowledged is in the queue and is
// delivered at the next start. Sessions and deliveries get the grace
// period (-grace); then sessions are cut and the deliveries still running
// are cancelled: their programs are killed with every process of their
// group (by the helper, for those under users' uids) and they are
// deferred, to be made again, whole, at the next start. So the mta exits
// within the grace period and a few seconds whatever users' programs do,
// in-process deliveries included. SIGHUP rereads locals, virtualdomains,
// rcpthosts, morercpthosts.cdb, badmailfrom and smtproutes, and
// qmail-smtpd's me, smtpgreeting, localiphost, databytes and timeoutsmtpd,
// without dropping a connection: an SMTP session keeps the greeting, size
// limit and timeout it started with, and sessions that start after the
// signal get the new ones; if a file cannot be read, nothing changes (the
// error is logged). users/cdb, control/tcp.smtp.cdb, users/poppasswd and
// control/servercert.pem are followed without a signal. SIGALRM makes
// every waiting delivery due now, as qmail-send's does.
//
// Queue administration, as with Postfix's postqueue and postsuper:
//
//	mta [-home DIR] queue list [-sender S] [-recipient S] [-held] [-older D] [-json]
//	mta [-home DIR] queue show|hold|release|delete|flush|requeue [ID...]
//
// talks to the running mta over QMAILHOME/run/queue-admin.sock (root or
// the mta's account only), or works on the queue itself when no mta runs;
// queuecmd.go describes each subcommand, the -json fields and the exit
// codes (0 done, 1 an ID not found or failed, 2 usage, 111 temporary).
//
// Virtual domains, mailboxes and aliases (vpopmail's vadddomain,
// vadduser, vpasswd, vsetuserquota, valias), while the mta runs or not:
//
//	mta [-home DIR] domain add|del|list [DOMAIN]
//	mta [-home DIR] user add|del|passwd|quota|list ADDRESS
//	mta [-home DIR] alias add|del|list ADDRESS [TARGET...]
//	mta [-home DIR] import vpopmail VPOPHOME | poppasswd DOMAIN FILE | assign FILE
//
// admincmd.go describes each, the -json fields and the exit codes (0 done,
// 1 refused, 2 usage, 111 temporary); passwords are read from standard
// input, never from the command line.
//
// Exit status: 0 after a clean stop, 1 on a failure, 2 for bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/qmailkit/qmailkit/internal/connlimit"
	"github.com/qmailkit/qmailkit/internal/logbuf"
	"github.com/qmailkit/qmailkit/internal/lspawn"
	"github.com/qmailkit/qmailkit/internal/queueadmin"
	"github.com/qmailkit/qmailkit/mta"
	"github.com/qmailkit/qmailkit/mta/privsep"
	"github.com/qmailkit/qmailkit/queue"
)

func main() {
	if err := privsep.CloseOnExec(); err != nil {
		fmt.Fprintln(os.Stderr, "mta: marking inherited descriptors close-on-exec: "+err.Error())
		os.Exit(111)
	}
	if code, ok := role(); ok {
		os.Exit(code)
	}
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 2)
	signal.Notify(hup, syscall.SIGHUP, syscall.SIGALRM)
	os.Exit(run(ctx, os.Args[1:], os.Getenv, hup, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, hup <-chan os.Signal, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mta", flag.ContinueOnError)
	fs.SetOutput(stderr)
	home := fs.String("home", "", "home directory (default $QMAILHOME, else $HOME/.qmailkit)")
	smtpAddr := fs.String("smtp", "127.0.0.1:2525", "SMTP listen address (empty: none)")
	subAddr := fs.String("submission", "127.0.0.1:2587", "submission listen address (empty: none)")
	subsAddr := fs.String("submissions", "127.0.0.1:2465", "submission on implicit TLS (RFC 8314; port 465) listen address (empty: none)")
	popAddr := fs.String("pop3", "127.0.0.1:2110", "POP3 listen address (empty: none)")
	popsAddr := fs.String("pop3s", "127.0.0.1:2995", "POP3 on implicit TLS (port 995) listen address (empty: none)")
	lmtpAddr := fs.String("lmtp", "", "LMTP listen address, for local recipients only and without AUTH: loopback or a private network (empty: none)")
	domain := fs.String("domain", "localhost", "local domain of a new home")
	defDelivery := fs.String("defaultdelivery", "./Maildir/", "delivery for users without .qmail (qmail-start's argument)")
	logFormat := fs.String("log", "text", "log format: text, json, or qmail (qmail-send's lines for the queue, text for the servers)")
	metricsAddr := fs.String("metrics", "", "HTTP address for /metrics (Prometheus text) and /healthz, e.g. 127.0.0.1:9125 (empty: none)")
	account := fs.String("user", "", "as root: the account everything runs as once the ports are bound (default qmailkit, created if missing; never nobody or root)")
	grace := fs.Duration("grace", time.Minute, "at a stop: how long sessions and deliveries in progress may go on before they are cut")
	aliasesDB := fs.String("aliases", "", "a fastforward database (newaliases' /etc/aliases.cdb) for the alias user: its .qmail-default runs bin/fastforward -d on it, and unknown names are refused at RCPT")
	deliveryTimeout := fs.Duration("deliverytimeout", lspawn.DefaultDeliveryTimeout, "as root: the time limit of a local delivery, after which its processes are killed and it is deferred")
	dnsAddr := fs.String("dns", "", "the recursive DNS server to ask, ADDR or ADDR:PORT, for remote delivery and DNS lists (default: control/dnsserver, else /etc/resolv.conf)")
	adminAddr := fs.String("admin", "127.0.0.1:2443", "the web admin's listen address, HTTPS with control/servercert.pem (empty: none)")
	apop := fs.Bool("apop", false, "offer APOP on POP3 (MD5 of a shared secret: only users whose password is stored {PLAIN} can use it)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 && fs.Arg(0) == "queue" { // see queuecmd.go
		return queueCommand(defaultHome(*home, getenv), fs.Args()[1:], stdout, stderr)
	}
	if fs.NArg() > 0 && (fs.Arg(0) == "domain" || fs.Arg(0) == "user" || fs.Arg(0) == "alias" || fs.Arg(0) == "import") { // see admincmd.go
		return adminCommand(defaultHome(*home, getenv), fs.Arg(0), fs.Args()[1:], os.Stdin, stdout, stderr)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mta: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	// Log lines are written by a goroutine of their own, many in one
	// write under load; Close writes the last ones before run returns.
	logOut := logbuf.New(stderr)
	defer logOut.Close()
	var handler slog.Handler
	switch *logFormat {
	case "text", "qmail":
		handler = slog.NewTextHandler(logOut, nil)
	case "json":
		handler = slog.NewJSONHandler(logOut, nil)
	default:
		fmt.Fprintf(stderr, "mta: -log must be text, json or qmail\n")
		return 2
	}
	logger := slog.New(handler)
	fail := func(err error) int {
		logger.Error("mta: " + err.Error())
		return 1
	}

	if *grace <= 0 {
		fmt.Fprintf(stderr, "mta: -grace must be positive\n")
		return 2
	}
	root := os.Getuid() == 0
	var uid, gid int
	if root {
		var err error
		if uid, gid, err = lookupAccount(*account, createAccount, logger); err != nil {
			return fail(err)
		}
	} else if *account != "" {
		return fail(errors.New("-user needs root"))
	}
	if *home == "" {
		*home = getenv("QMAILHOME")
	}
	if *home == "" && root {
		*home = "/var/lib/qmailkit"
	}
	if *home == "" {
		h := getenv("HOME")
		if h == "" {
			return fail(errors.New("no -home, $QMAILHOME or $HOME"))
		}
		*home = filepath.Join(h, ".qmailkit")
	}
	demo, created, err := mta.Init(*home, mta.InitOptions{Domain: *domain, UID: uid, GID: gid})
	if err != nil {
		return fail(err)
	}
	var srv mta.Servers
	var ls mta.Listeners
	defer func() {
		for _, l := range []net.Listener{ls.SMTP, ls.Submission, ls.Submissions, ls.POP3, ls.POP3S, ls.LMTP} {
			if l != nil {
				l.Close()
			}
		}
	}()
	// Sockets systemd handed over take the place of the flags' addresses,
	// role by role.
	handed, err := activated(logger)
	if err != nil {
		return fail(err)
	}
	listen := func(role, addr string) (net.Listener, error) {
		if l := handed[role]; l != nil {
			logger.Info("mta: listening on a socket from systemd", "role", role, "addr", l.Addr().String())
			return l, nil
		}
		if addr == "" {
			return nil, nil
		}
		return net.Listen("tcp", addr)
	}
	if ls.SMTP, err = listen("smtp", *smtpAddr); err != nil {
		return fail(err)
	}
	if ls.Submission, err = listen("submission", *subAddr); err != nil {
		return fail(err)
	}
	if ls.Submissions, err = listen("submissions", *subsAddr); err != nil {
		return fail(err)
	}
	if ls.POP3, err = listen("pop3", *popAddr); err != nil {
		return fail(err)
	}
	if ls.POP3S, err = listen("pop3s", *popsAddr); err != nil {
		return fail(err)
	}
	if ls.LMTP, err = listen("lmtp", *lmtpAddr); err != nil {
		return fail(err)
	}
	var metricsL net.Listener
	if metricsL, err = listen("metrics", *metricsAddr); err != nil {
		return fail(err)
	}
	var adminL net.Listener
	if adminL, err = listen("admin", *adminAddr); err != nil {
		return fail(err)
	}
	// The HTTP listeners' connection limits (the mail servers have theirs).
	if metricsL != nil {
		metricsL = limitListener{metricsL, &connlimit.Limiter{Max: 64, PerClient: 16}}
	}
	if adminL != nil {
		adminL = limitListener{adminL, &connlimit.Limiter{Max: 256, PerClient: 32}}
	}
	if *home, err = filepath.Abs(*home); err != nil {
		return fail(err)
	}
	// The program is resolved now: once root is dropped, the account may
	// not be able to read /proc/self/exe.
	program, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	// QMAILHOME/bin/qmail-queue is this program: forwards, sendmail and
	// qmail-inject reach the queue through it; bin/sendmail and
	// bin/qmail-inject are this program too.
	kept, err := linkPrograms(*home, program)
	if err != nil {
		return fail(err)
	}
	for _, path := range kept {
		logger.Warn("mta: not a link to this program; left as it is", "path", path)
	}
	if *aliasesDB != "" {
		if *aliasesDB, err = filepath.Abs(*aliasesDB); err != nil {
			return fail(err)
		}
	}
	// Virtual domains and mailboxes (mta domain|user|alias, the web admin)
	// live in vmail/, the account's; users/adminpasswd, the web admin's
	// administrator, is made (root's, as users/ is) with its password
	// shown once.
	if err := mta.MakeVirtualDir(*home, uid, gid); err != nil {
		return fail(err)
	}
	var adminPassword string
	if adminL != nil {
		if adminPassword, err = mta.EnsureAdmin(*home, gid); err != nil {
			return fail(err)
		}
	}
	var lsp *privsep.Helper
	if root {
		// Local deliveries run under each recipient's uid: a helper that
		// stays root (qmail-lspawn) starts them.
		if err := privsep.CheckUsers(*home); err != nil {
			// A home from an older mta, whose users/ is the account's:
			// the helper defers deliveries to other uids until it is fixed.
			logger.Error("mta: " + err.Error() + ": deliveries under users' uids are deferred until it belongs to root; as root run: " + privsep.UsersFix(*home, gid))
		}
		if err := privsep.CheckControl(*home, uid, gid); err != nil {
			// A home from an older mta, whose control/ is the account's.
			logger.Warn("mta: "+err.Error()+": the account could rewrite the control files (an open relay) or replace the key; as root run: "+privsep.ControlFix(*home, gid), "home", *home)
		}
		if err := privsep.CheckHome(*home, uid, gid); err != nil {
			// A home from an older mta, which the account owns: it could
			// rename control/ or users/ away and make its own.
			logger.Warn("mta: "+err.Error()+": the account could replace control/ (an open relay, its own key) or users/; as root run: "+privsep.HomeFix(*home), "home", *home)
		}
		if err := privsep.MakeRunDir(*home, uid, gid); err != nil {
			return fail(err)
		}
		if fi, err := os.Stat(*home); err == nil && fi.Mode()&0o001 == 0 {
			logger.Warn("mta: the home is not searchable by others (chmod o+x): forwards from deliveries under users' uids will fail", "home", *home)
		}
		if dir, ok := privsep.OthersCanRun(program); !ok {
			// go run's build directory is root's alone, for one.
			logger.Warn("mta: other users cannot run this program ("+dir+" is not o+x): deliveries under other users' uids will be deferred; build it (go build -o /usr/local/bin/mta ./examples/mta) into a directory every user can reach", "program", program)
		}
		lsp, err = privsep.Start(privsep.Options{
			Home:            *home,
			Program:         program,
			DefaultDelivery: *defDelivery,
			DeliveryTimeout: *deliveryTimeout,
			// The deliveries' forwards queue through bin/qmail-queue.
			Env:    append(withoutQmailEnv(os.Environ()), "QMAILHOME="+*home, "QMAILQUEUE="+queueProgram(*home)),
			Logger: logger,
		})
		if err != nil {
			return fail(err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := lsp.Stop(ctx); err != nil {
				logger.Warn("mta: the delivery helper has not exited yet", "err", err)
			}
		}()
		// The ports are bound (25, 465, 587, 110 and 995 need root); nothing else
		// needs it, and nothing is delivered as root.
		if err := privsep.Drop(uid, gid); err != nil {
			return fail(err)
		}
		logger.Info("mta: running as an unprivileged account; local deliveries under the recipients' uids", "uid", uid, "gid", gid)
	}
	// In alias/, the account's own directory: made without root.
	if *aliasesDB != "" {
		if err := aliasDefault(*home, *aliasesDB, logger); err != nil {
			return fail(err)
		}
	}
	if *dnsAddr != "" {
		server, err := mta.DNSServer(*dnsAddr)
		if err != nil {
			fmt.Fprintf(stderr, "mta: -dns: %v\n", err)
			return 2
		}
		*dnsAddr = server
	}
	opts := mta.Options{DefaultDelivery: *defDelivery, Logger: logger, ShutdownTimeout: *grace, Aliases: *aliasesDB, DNSServer: *dnsAddr,
		// In-process deliveries' programs (forward, condredirect, a
		// user's qmail-inject) queue through bin/qmail-queue too.
		ProgramEnv: append(withoutQmailEnv(os.Environ()), "QMAILHOME="+*home, "QMAILQUEUE="+queueProgram(*home)),
	}
	if *logFormat == "qmail" {
		opts.SendLogger = slog.New(queue.NewLogHandler(logOut, true))
	}
	if lsp != nil {
		opts.LocalDeliverer = lsp
		opts.Mailboxes = lsp // each POP3 user's Maildir read under that user's uid
	}
	sys, err := mta.Open(*home, opts)
	if err != nil {
		return fail(err)
	}
	defer sys.Close()
	var helperGone <-chan struct{}
	if lsp != nil {
		helperGone = lsp.Done()
	}
	// The way into the queue for what may not write it, or should not:
	// the forwards of deliveries (under other uids as root), sendmail and
	// qmail-inject. They run bin/qmail-queue, which connects here. As
	// root any local user may (mode 666: qmail-queue is executable by
	// all); else only this uid.
	mode := os.FileMode(0o600)
	if root {
		mode = 0o666
	} else if err := os.Mkdir(filepath.Join(*home, "run"), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fail(err) // a home made before run/ was
	}
	stopQQ, err := sys.ServeQueueSocket(lspawn.QueueSocket(*home), mode, nil)
	if err != nil {
		return fail(err)
	}
	defer stopQQ() // before sys.Close
	// mta queue ... (queuecmd.go) talks to it.
	stopQA, err := sys.ServeQueueAdmin(queueadmin.SocketPath(*home))
	if err != nil {
		return fail(err)
	}
	defer stopQA()
	tc, err := sys.TLSConfig()
	if err != nil {
		return fail(err)
	}
	if srv.SMTP, err = sys.SMTP(false, tc, nil); err != nil {
		return fail(err)
	}
	if ls.Submission != nil || ls.Submissions != nil {
		if tc == nil {
			return fail(errors.New("submission needs control/servercert.pem"))
		}
		if srv.Submission, err = sys.SMTP(true, tc, sys.Auth()); err != nil {
			return fail(err)
		}
	}
	if ls.POP3S != nil && tc == nil {
		return fail(errors.New("-pop3s needs control/servercert.pem"))
	}
	if srv.POP3, err = sys.POP3(tc); err != nil {
		return fail(err)
	}
	srv.POP3.APOP = *apop
	if ls.LMTP != nil {
		if srv.LMTP, err = sys.LMTP(); err != nil {
			return fail(err)
		}
	}
	if adminL != nil {
		stop, err := serveAdmin(sys, adminL, tc, *home, logger, handler)
		if err != nil {
			return fail(err)
		}
		defer stop()
	}
	banner(stdout, *home, created, demo, ls, metricsL, root, adminInfo{adminL, tc == nil, adminPassword})
	if metricsL != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", sys.MetricsHandler())
		mux.Handle("GET /healthz", sys.HealthHandler())
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(handler, slog.LevelWarn)}
		go hs.Serve(metricsL)
		defer hs.Close()
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	// At a stop, sessions and deliveries have the grace period; then Run
	// cancels the deliveries still running, in-process ones and the
	// helper's alike, which kills their programs whatever they do (they
	// are deferred).
	go func() { done <- sys.Serve(runCtx, srv, ls) }()
	// systemd (Type=notify): ready once the listeners are bound and the
	// servers start on them; stopping from the first moment of a stop.
	notify(logger, "READY=1\nSTATUS="+status(ls))
	defer context.AfterFunc(ctx, func() { notify(logger, "STOPPING=1") })()
	for {
		select {
		case sig := <-hup:
			if sig == syscall.SIGALRM {
				// qmail-send's SIGALRM: every waiting delivery is made now.
				sys.Scheduler.Flush()
				logger.Info("mta: flushing the queue (SIGALRM)")
				continue
			}
			notify(logger, fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
			if err := sys.ReloadHome(); err != nil {
				logger.Error("mta: reload failed, keeping the old settings", "err", err)
			} else {
				logger.Info("mta: reloaded control files")
			}
			notify(logger, "READY=1")
		case err := <-done:
			if err != nil {
				return fail(err)
			}
			logger.Info("mta: stopped")
			return 0
		case <-helperGone:
			// Without its helper the mta cannot deliver locally (it is
			// no longer root to start another): stop, so that a
			// supervisor restarts it; nothing queued is lost.
			logger.Error("mta: the delivery helper is gone; stopping", "err", lsp.Err())
			cancel()
			<-done
			return 1
		}
	}
}

// defaultAccount is the account a root mta runs as without -user.
const defaultAccount = "qmailkit"

// lookupAccount finds the account a root process runs as: name, else
// qmailkit, which create makes when it does not exist. The account must
// be the mta's alone: never root (uid 0) nor nobody (uid 65534, or that
// name), which other daemons share and which would then own the queue,
// control/ and the key.
func lookupAccount(name string, create func(name string) error, logger *slog.Logger) (uid, gid int, err error) {
	n := name
	if n == "" {
		n = defaultAccount
	}
	if n == "nobody" || n == "nfsnobody" {
		return 0, 0, fmt.Errorf("-user %s: the account is shared with other daemons; choose one of the mta's own (default %s)", n, defaultAccount)
	}
	u, err := user.Lookup(n)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) && name == "" {
		if err := create(n); err != nil {
			return 0, 0, fmt.Errorf("no account %s, and creating it failed: %w (create it, or choose one with -user)", n, err)
		}
		u, err = user.Lookup(n)
		if err == nil {
			logger.Info("mta: created the system account "+n+" to run as", "user", n, "uid", u.Uid, "gid", u.Gid)
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("account %s: %w: create it or choose one with -user", n, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("account %s: uid %q gid %q", n, u.Uid, u.Gid)
	}
	switch {
	case uid == 0 || gid == 0:
		return 0, 0, fmt.Errorf("account %s has uid or gid 0: choose an unprivileged one with -user", n)
	case uid == 65534:
		return 0, 0, fmt.Errorf("account %s has nobody's uid 65534, which other daemons share: choose one of the mta's own with -user", n)
	}
	return uid, gid, nil
}

// createAccount makes a system account and its group for the mta, with no
// home and no login shell, as useradd(8) does.
func createAccount(name string) error {
	shell := "/usr/sbin/nologin"
	if _, err := os.Stat(shell); err != nil {
		shell = "/bin/false"
	}
	out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
		"--shell", shell, "--user-group", name).CombinedOutput()
	if err != nil {
		if _, lerr := user.Lookup(name); lerr == nil {
			return nil // made meanwhile, by another start
		}
		return fmt.Errorf("useradd: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func banner(w io.Writer, home string, created bool, d mta.Demo, ls mta.Listeners, metrics net.Listener, root bool, admin adminInfo) {
	state := "reused"
	if created {
		state = "created"
	}
	fmt.Fprintf(w, "qmailkit mta: home %s (%s)\n", home, state)
	addr := func(l net.Listener) string {
		if l == nil {
			return "off"
		}
		return l.Addr().String()
	}
	fmt.Fprintf(w, "  SMTP        %-21s mail for %s; 127.0.0.1 may relay (control/tcp.smtp)\n", addr(ls.SMTP), d.Domain)
	fmt.Fprintf(w, "  submission  %-21s STARTTLS, then AUTH as a POP3 user\n", addr(ls.Submission))
	fmt.Fprintf(w, "  submissions %-21s TLS from the first byte (RFC 8314), then AUTH as a POP3 user\n", addr(ls.Submissions))
	fmt.Fprintf(w, "  POP3        %-21s STLS, or plain text from loopback\n", addr(ls.POP3))
	fmt.Fprintf(w, "  POP3S       %-21s TLS from the first byte\n", addr(ls.POP3S))
	if ls.LMTP != nil {
		fmt.Fprintf(w, "  LMTP        %-21s local recipients only, no AUTH (control/tcp.lmtp)\n", addr(ls.LMTP))
	}
	if metrics != nil {
		fmt.Fprintf(w, "  metrics     http://%s/metrics and /healthz\n", metrics.Addr())
	}
	admin.print(w)
	pw := d.Password
	if pw == "" {
		pw = "(hashed in users/poppasswd)"
	}
	if d.User != "" {
		fmt.Fprintf(w, "  mailbox     %s password %s (Maildir %s)\n", d.Address(), pw, d.Maildir)
	}
	if ls.SMTP != nil && ls.POP3 != nil && d.User != "" {
		bannerHints(w, home, d, ls, root)
	}
	self := "mta"
	if exe, err := os.Executable(); err == nil {
		self = exe
	}
	fmt.Fprintf(w, "Virtual domains and mailboxes (or in the web admin):\n")
	fmt.Fprintf(w, "  %s -home %s domain add example.com\n", self, home)
	fmt.Fprintf(w, "  echo 'a long password' | %s -home %s user add joe@example.com\n", self, home)
	fmt.Fprintf(w, "Stop with Ctrl-C or SIGTERM; SIGHUP rereads the control files; SIGALRM retries the queue now.\n")
}

// bannerHints prints how to send to the demo mailbox and fetch its mail.
func bannerHints(w io.Writer, home string, d mta.Demo, ls mta.Listeners, root bool) {
	host, port, _ := net.SplitHostPort(ls.SMTP.Addr().String())
	phost, pport, _ := net.SplitHostPort(ls.POP3.Addr().String())
	fmt.Fprintf(w, "Send a message:\n")
	fmt.Fprintf(w, "  swaks --server %s --port %s --to %s\n", host, port, d.Address())
	fmt.Fprintf(w, "  python3 -c 'import smtplib; smtplib.SMTP(\"%s\", %s).sendmail(\"me@example.org\", [\"%s\"], \"Subject: hi\\n\\nhello\\n\")'\n",
		host, port, d.Address())
	fmt.Fprintf(w, "Fetch it (a second after delivery):\n")
	fmt.Fprintf(w, "  python3 -c 'import poplib; p = poplib.POP3(\"%s\", %s); p.user(\"%s\"); p.pass_(\"%s\"); [print(b\"\\n\".join(p.retr(i + 1)[1]).decode()) for i in range(len(p.list()[1]))]; p.quit()'\n",
		phost, pport, d.User, d.Password)
	who := "as this user"
	if root {
		who = "as any local user"
	}
	bin := filepath.Join(home, "bin")
	fmt.Fprintf(w, "Send from the command line (%s; any qmail-inject or sendmail run with QMAILHOME=%s works too):\n", who, home)
	fmt.Fprintf(w, "  echo 'To: %s' | %s/qmail-inject\n", d.User, bin)
	fmt.Fprintf(w, "  printf 'To: %s\\nSubject: hi\\n\\nhello\\n' | %s/sendmail -t\n", d.User, bin)
}

// notify tells the service manager the mta's state (sd_notify(3)) when it
// runs under systemd with Type=notify ($NOTIFY_SOCKET); elsewhere it does
// nothing.
func notify(logger *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		logger.Warn("mta: sd_notify failed", "state", state, "err", err)
	}
}

// status is the one line systemctl status shows: where the mta listens.
func status(ls mta.Listeners) string {
	var parts []string
	add := func(name string, l net.Listener) {
		if l != nil {
			parts = append(parts, name+" "+l.Addr().String())
		}
	}
	add("SMTP", ls.SMTP)
	add("submission", ls.Submission)
	add("submissions", ls.Submissions)
	add("POP3", ls.POP3)
	add("POP3S", ls.POP3S)
	add("LMTP", ls.LMTP)
	return "serving " + strings.Join(parts, ", ")
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, which systemd wants
// with RELOADING=1.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}
