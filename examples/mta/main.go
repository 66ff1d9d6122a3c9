// Command mta is a whole mail server in one program, configured by a qmail
// home directory: SMTP (qmail-smtpd with tcprules), submission (AUTH after
// STARTTLS), the queue and its scheduler (qmail-send), local delivery
// through users/cdb and .qmail files (qmail-lspawn, qmail-local), remote
// delivery by SMTP (qmail-remote, with control/smtproutes) and POP3
// (qmail-popup, qmail-pop3d).
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
//	-smtp ADDR          SMTP listen address (default 127.0.0.1:2525; "" disables)
//	-submission ADDR    submission listen address (default 127.0.0.1:2587)
//	-pop3 ADDR          POP3 listen address (default 127.0.0.1:2110)
//	-domain NAME        the local domain of a new home (default localhost)
//	-defaultdelivery L  qmail-start's argument (default ./Maildir/)
//	-log text|json      log format on standard error (default text)
//	-metrics ADDR       HTTP address for /metrics (Prometheus: queue size,
//	                    deliveries by outcome, connections, and the Go runtime's
//	                    and the process's metrics, resident memory among them)
//	                    and /healthz; keep it on loopback (default: none)
//	-user NAME          as root: the account to run as (default qmailkit, else nobody)
//
// Started as root, it makes the home for the account (mode 755, as
// /var/qmail; users/ with assign and cdb belong to root, as qmail-newu's
// files do, and users/poppasswd is root's, readable by the account's
// group), binds its ports (so -smtp :25 works), starts a delivery
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
// queue, so its forwards run this program as qmail-queue, which hands the
// message and envelope descriptors to the mta over the socket
// QMAILHOME/qmail-queue.sock (mode 666: any local user may queue mail, as
// with qmail-queue); the Received line names the caller's uid. So this
// program must be executable by the users, and the home searchable by
// them; the mta warns at start when either is not (as with go run, whose
// build directory is root's alone). Should the helper die, the mta stops (exit 1): it can no longer
// start one. A recipient whose user is the account the mta runs as is
// delivered in-process, since a child under that uid would have the same
// rights. Started as an ordinary user, it delivers in-process as that
// user.
//
// Signals: SIGTERM or SIGINT stops accepting connections, lets the sessions
// finish the message they are receiving, lets the deliveries in progress
// finish, and exits 0: every message acknowledged is in the queue and is
// delivered at the next start. SIGHUP rereads locals, virtualdomains,
// rcpthosts, morercpthosts.cdb, badmailfrom and smtproutes, and
// qmail-smtpd's me, smtpgreeting, localiphost, databytes and timeoutsmtpd,
// without dropping a connection: an SMTP session keeps the greeting, size
// limit and timeout it started with, and sessions that start after the
// signal get the new ones; if a file cannot be read, nothing changes (the
// error is logged). users/cdb, control/tcp.smtp.cdb, users/poppasswd and
// control/servercert.pem are followed without a signal.
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
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/internal/logbuf"
	"github.com/qmailkit/qmailkit/internal/lspawn"
	"github.com/qmailkit/qmailkit/internal/system"
)

func main() {
	if code, ok := role(); ok {
		os.Exit(code)
	}
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	os.Exit(run(ctx, os.Args[1:], os.Getenv, hup, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, hup <-chan os.Signal, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mta", flag.ContinueOnError)
	fs.SetOutput(stderr)
	home := fs.String("home", "", "home directory (default $QMAILHOME, else $HOME/.qmailkit)")
	smtpAddr := fs.String("smtp", "127.0.0.1:2525", "SMTP listen address (empty: none)")
	subAddr := fs.String("submission", "127.0.0.1:2587", "submission listen address (empty: none)")
	popAddr := fs.String("pop3", "127.0.0.1:2110", "POP3 listen address (empty: none)")
	domain := fs.String("domain", "localhost", "local domain of a new home")
	defDelivery := fs.String("defaultdelivery", "./Maildir/", "delivery for users without .qmail (qmail-start's argument)")
	logFormat := fs.String("log", "text", "log format: text or json")
	metricsAddr := fs.String("metrics", "", "HTTP address for /metrics (Prometheus text) and /healthz, e.g. 127.0.0.1:9125 (empty: none)")
	account := fs.String("user", "", "as root: the account everything runs as once the ports are bound (default qmailkit, else nobody)")
	if err := fs.Parse(args); err != nil {
		return 2
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
	case "text":
		handler = slog.NewTextHandler(logOut, nil)
	case "json":
		handler = slog.NewJSONHandler(logOut, nil)
	default:
		fmt.Fprintf(stderr, "mta: -log must be text or json\n")
		return 2
	}
	logger := slog.New(handler)
	fail := func(err error) int {
		logger.Error("mta: " + err.Error())
		return 1
	}

	root := os.Getuid() == 0
	var uid, gid int
	if root {
		var err error
		if uid, gid, err = lookupAccount(*account); err != nil {
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
	demo, created, err := system.Init(*home, system.InitOptions{Domain: *domain, UID: uid, GID: gid})
	if err != nil {
		return fail(err)
	}
	var srv system.Servers
	var ls system.Listeners
	defer func() {
		for _, l := range []net.Listener{ls.SMTP, ls.Submission, ls.POP3} {
			if l != nil {
				l.Close()
			}
		}
	}()
	listen := func(addr string) (net.Listener, error) {
		if addr == "" {
			return nil, nil
		}
		return net.Listen("tcp", addr)
	}
	if ls.SMTP, err = listen(*smtpAddr); err != nil {
		return fail(err)
	}
	if ls.Submission, err = listen(*subAddr); err != nil {
		return fail(err)
	}
	if ls.POP3, err = listen(*popAddr); err != nil {
		return fail(err)
	}
	var metricsL net.Listener
	if metricsL, err = listen(*metricsAddr); err != nil {
		return fail(err)
	}
	var lsp *helper
	if root {
		// Local deliveries run under each recipient's uid: a helper that
		// stays root (qmail-lspawn) starts them. The program is resolved
		// now: the account may not be able to read /proc/self/exe.
		if *home, err = filepath.Abs(*home); err != nil {
			return fail(err)
		}
		if err := checkUsers(*home); err != nil {
			// A home from an older mta, whose users/ is the account's:
			// the helper defers deliveries to other uids until it is fixed.
			logger.Error("mta: " + err.Error() + ": deliveries under users' uids are deferred until it belongs to root; as root run: " + usersFix(*home, gid))
		}
		if fi, err := os.Stat(*home); err == nil && fi.Mode()&0o001 == 0 {
			logger.Warn("mta: the home is not searchable by others (chmod o+x): forwards from deliveries under users' uids will fail", "home", *home)
		}
		program, err := os.Executable()
		if err != nil {
			return fail(err)
		}
		if dir, ok := othersCanRun(program); !ok {
			// go run's build directory is root's alone, for one.
			logger.Warn("mta: other users cannot run this program ("+dir+" is not o+x): deliveries under other users' uids will be deferred; build it (go build ./examples/mta) into a directory every user can reach", "program", program)
		}
		// Pdeathsig is sent when the thread that started the helper ends:
		// keep this goroutine on its thread, which then lives as long as
		// the process (run is main's goroutine).
		runtime.LockOSThread()
		if lsp, err = startHelper(program, *home, *defDelivery, *logFormat, stderr); err != nil {
			return fail(err)
		}
		defer func() {
			lsp.client.Close() // the helper's end sees EOF and exits
			select {
			case <-lsp.exited:
			case <-time.After(10 * time.Second):
				logger.Warn("mta: the delivery helper has not exited yet")
			}
		}()
		// The ports are bound (25, 587 and 110 need root); nothing else
		// needs it, and nothing is delivered as root.
		if err := dropPrivileges(uid, gid); err != nil {
			return fail(err)
		}
		logger.Info("mta: running as an unprivileged account; local deliveries under the recipients' uids", "uid", uid, "gid", gid)
	}
	opts := system.Options{DefaultDelivery: *defDelivery, Logger: logger}
	if lsp != nil {
		opts.LocalDeliverer = lsp.client
	}
	sys, err := system.Open(*home, opts)
	if err != nil {
		return fail(err)
	}
	defer sys.Close()
	var helperGone <-chan struct{}
	if lsp != nil {
		helperGone = lsp.client.Done()
		// The way back into the queue for the forwards of deliveries under
		// other uids, which may not write it: they run this program as
		// qmail-queue, which connects here.
		stopQQ, err := serveQueueSocket(sys, queueSocket(*home), logger)
		if err != nil {
			return fail(err)
		}
		defer stopQQ() // before sys.Close
	}
	tc, err := sys.TLSConfig()
	if err != nil {
		return fail(err)
	}
	if srv.SMTP, err = sys.SMTP(false, tc, nil); err != nil {
		return fail(err)
	}
	if ls.Submission != nil {
		if tc == nil {
			return fail(errors.New("submission needs control/servercert.pem"))
		}
		if srv.Submission, err = sys.SMTP(true, tc, system.SMTPAuth(sys.Passwd())); err != nil {
			return fail(err)
		}
	}
	if srv.POP3, err = sys.POP3(tc); err != nil {
		return fail(err)
	}
	banner(stdout, *home, created, demo, ls, metricsL)
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
	go func() { done <- sys.Run(runCtx, srv, ls) }()
	for {
		select {
		case <-hup:
			if err := sys.Reload(); err != nil {
				logger.Error("mta: reload failed, keeping the old settings", "err", err)
			} else {
				logger.Info("mta: reloaded control files")
			}
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
			logger.Error("mta: the delivery helper is gone; stopping", "err", lsp.client.Err())
			cancel()
			<-done
			return 1
		}
	}
}

// lookupAccount finds the account a root process runs as: name, else
// qmailkit, else nobody. It must not be uid 0.
func lookupAccount(name string) (uid, gid int, err error) {
	names := []string{name}
	if name == "" {
		names = []string{"qmailkit", "nobody"}
	}
	for _, n := range names {
		u, err := user.Lookup(n)
		if err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("account %s: uid %q gid %q", n, u.Uid, u.Gid)
		}
		if uid == 0 {
			return 0, 0, fmt.Errorf("account %s has uid 0: choose an unprivileged one with -user", n)
		}
		return uid, gid, nil
	}
	return 0, 0, fmt.Errorf("no account %s: create it or choose one with -user", strings.Join(names, " or "))
}

// serveQueueSocket serves lspawn.QueueServer for sys's queue on a unix
// socket at path that every local uid may connect to (qmail-queue is
// executable by all). stop ends it.
func serveQueueSocket(sys *system.System, path string, logger *slog.Logger) (stop func(), err error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		l.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		qs := &lspawn.QueueServer{Queue: sys.Queue, Logger: logger.With("part", "qmail-queue")}
		if err := qs.Serve(ctx, l); err != nil {
			logger.Error("mta: qmail-queue socket: " + err.Error())
		}
	}()
	return func() {
		cancel()
		<-done
		os.Remove(path)
	}, nil
}

// dropPrivileges makes every thread of the process run as uid and gid,
// with no supplementary groups (Linux applies these to all threads).
func dropPrivileges(uid, gid int) error {
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	if os.Getuid() != uid || os.Geteuid() != uid {
		return errors.New("setuid did not take")
	}
	return nil
}

func banner(w io.Writer, home string, created bool, d system.Demo, ls system.Listeners, metrics net.Listener) {
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
	fmt.Fprintf(w, "  POP3        %-21s STLS, or plain text from loopback\n", addr(ls.POP3))
	if metrics != nil {
		fmt.Fprintf(w, "  metrics     http://%s/metrics and /healthz\n", metrics.Addr())
	}
	pw := d.Password
	if pw == "" {
		pw = "(hashed in users/poppasswd)"
	}
	if d.User != "" {
		fmt.Fprintf(w, "  mailbox     %s password %s (Maildir %s)\n", d.Address(), pw, d.Maildir)
	}
	if ls.SMTP == nil || ls.POP3 == nil || d.User == "" {
		return
	}
	host, port, _ := net.SplitHostPort(ls.SMTP.Addr().String())
	phost, pport, _ := net.SplitHostPort(ls.POP3.Addr().String())
	fmt.Fprintf(w, "Send a message:\n")
	fmt.Fprintf(w, "  swaks --server %s --port %s --to %s\n", host, port, d.Address())
	fmt.Fprintf(w, "  python3 -c 'import smtplib; smtplib.SMTP(\"%s\", %s).sendmail(\"me@example.org\", [\"%s\"], \"Subject: hi\\n\\nhello\\n\")'\n",
		host, port, d.Address())
	fmt.Fprintf(w, "Fetch it (a second after delivery):\n")
	fmt.Fprintf(w, "  python3 -c 'import poplib; p = poplib.POP3(\"%s\", %s); p.user(\"%s\"); p.pass_(\"%s\"); [print(b\"\\n\".join(p.retr(i + 1)[1]).decode()) for i in range(len(p.list()[1]))]; p.quit()'\n",
		phost, pport, d.User, d.Password)
	fmt.Fprintf(w, "Stop with Ctrl-C or SIGTERM; SIGHUP rereads the control files.\n")
}
