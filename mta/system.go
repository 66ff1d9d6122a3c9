// Package mta is a whole mail system in a Go program, wired as qmail's
// programs are: the queue and its scheduler (qmail-send) with local
// delivery through dotqmail (qmail-lspawn, qmail-local) and remote
// delivery through smtpclient (qmail-remote); an SMTP server whose
// messages go into that queue (qmail-smtpd), a submission server that
// requires AUTH, a POP3 server over the users' Maildirs (qmail-popup,
// qmail-pop3d), the last two on implicit-TLS ports too (465 and 995,
// RFC 8314), and an LMTP server for a mail system in front of this one;
// every listener with tcpserver's rules and the PROXY protocol of trusted
// load balancers (see Listeners).
//
// A program describes the system in a Config, written in Go or read from a
// qmail home directory by LoadHome, and makes a System of it with New:
//
//	sys, err := mta.New(mta.Config{
//		Hostname: "mx.example.org",
//		QueueDir: "/var/lib/app/queue",
//		Routing:  queue.Routing{Locals: []string{"example.org"}},
//		Users:    mta.Mailboxes{"joe": {Password: hash, Home: "/var/lib/app/joe"}},
//		TLS:      tlsConfig,
//		Listeners: mta.Listeners{SMTP: smtpL, Submission: subL, POP3: popL},
//	})
//	...
//	go sys.Run(ctx)              // serves until ctx ends or Shutdown
//	err = sys.Reload(newConfig)  // new users, routes, policy; no connection dropped
//	err = sys.Shutdown(ctx)
//
// Nothing is global: two Systems with their own queues run side by side in
// one process. Open(home, opts) is LoadHome and New together, as
// examples/mta and examples/qmail-send use it, and ReloadHome rereads the
// home.
//
// # Files
//
// Under the home directory, as in /var/qmail (see LoadHome for every file):
//
//	control/           qmail's control files (me, locals, rcpthosts, virtualdomains,
//	                   smtproutes, concurrencylocal, queuelifetime, bouncefrom, ...)
//	control/tcp.ROLE.cdb   tcprules for each listener (ROLE: smtp, submission, submissions,
//	                   pop3, pop3s, lmtp): who may connect, RELAYCLIENT, ...; absent: allow all
//	control/proxyfrom  the load balancers whose PROXY header (v1 or v2) gives the client's address
//	control/servercert.pem certificate and key for STARTTLS and ports 465 and 995 (re-read when changed)
//	users/cdb          qmail-newu's users/cdb (assign): who receives which address
//	users/poppasswd    passwd(5)-format virtual users for POP3 and SMTP AUTH
//	vmail/vmail.db     virtual domains and mailboxes (package vmail; control/vmaildb may
//	                   name a PostgreSQL database instead), their Maildirs in vmail/domains/
//	queue/             qmail's queue
//
// # Recipients
//
// Unlike qmail-smtpd, the SMTP servers refuse at RCPT (550 5.1.1) a local
// recipient that delivery would bounce: one no user takes but the catch-all
// alias user, whose .qmail files have none for it, or a user's extension
// with no .qmail file (Options.NoRecipientCheck gives qmail's behaviour).
//
// Mail for a virtual domain (Config.Virtual) is refused at RCPT when
// the domain has no such mailbox, alias or catch-all, and delivered in
// this process by vmail.Deliverer, as the process's user: the virtual
// Maildirs are the account's, as vpopmail's were the vpopmail user's, and
// no program of a virtual mailbox is ever run.
//
// # Metrics
//
// System.MetricsHandler serves, through prometheus/client_golang and a
// registry of the System's own, the queue's size, deliveries by outcome,
// connections, and the Go runtime's and the process's metrics;
// System.HealthHandler answers a health check.
//
// # Reload
//
// System.Reload takes a new Config's routing, users, SMTP policy and
// remote client. For a home, users/cdb, the control/tcp.ROLE.cdb rules,
// users/poppasswd and the certificate are re-read when they change,
// without a reload, and System.ReloadHome rereads locals, virtualdomains,
// percenthack, envnoathost, rcpthosts, morercpthosts.cdb, badmailfrom,
// smtproutes, helohost, timeoutconnect and timeoutremote, and the SMTP
// servers' me, smtpgreeting, localiphost, databytes, timeoutsmtpd and
// queueminfree; other control files are read at Open. No connection is
// dropped: an SMTP session keeps the one-line values (greeting, databytes,
// timeout, ...) it started with, as a qmail-smtpd process does, and
// sessions that start after the reload get the new ones.
//
// # Security
//
// Every part runs as the process's user. Local deliveries run in-process
// when that is not root, and only for recipients whose uid and gid are the
// process's own: any other recipient is deferred before a file of theirs
// is opened or a program of theirs run (dotqmail.Local), since the process
// cannot switch to their uid. In a root process dotqmail.Local runs each
// delivery in a QMAILHOME/bin/qmail-local child under the recipient's uid,
// and never delivers as root. examples/qmail-send keeps root, as
// qmail-send's qmail-lspawn does. A program started as root can instead
// drop root once its ports are bound, as examples/mta does, with package
// mta/privsep (qmail-lspawn's split): privsep.Start starts a helper
// process that keeps root, which is the System's Options.LocalDeliverer
// and delivers each message under the recipient's uid, trusting users/cdb
// only while root owns it and users/ (Init, as root, makes them so, and
// gives the home itself and control/ to root too, leaving the account
// only queue/, run/, mail/ and alias/; privsep.CheckUsers, CheckControl
// and CheckHome say when an older home is not so); privsep.Drop then
// makes the process the account's. Those deliveries' forwards come back
// into the queue through a socket in run/ (System.ServeQueueSocket), as
// the queue is not theirs to write. The same helper opens the POP3
// mailboxes of users of other uids in an agent running under that uid
// (privsep.Helper.OpenMailbox). A recipient whose user has the process's
// own uid and gid is delivered in-process even then: a child under that
// uid would have exactly the process's rights.
//
// Users authenticate against users/poppasswd (SHA-crypt, or {PLAIN} for
// entries written by hand; Init stores the demo password as
// {SHA512-CRYPT}); one authlimit.Limiter (System.AuthLimiter) delays and
// refuses guesses per client address and per account for POP3 and SMTP
// AUTH together; SMTP AUTH is offered only after STARTTLS. A new
// transaction is refused (452 4.3.1 at MAIL) while the queue's file
// system has less free space than control/queueminfree, by default one
// and a half times the message size limit. The servers' own limits
// (connections per client and in all, session and command timeouts,
// message size) are their packages' safe defaults.
//
// A PROXY header is read only from the addresses of Config.ProxyFrom
// (control/proxyfrom): anyone who can connect from one of them can claim
// any client address, RELAYCLIENT's networks included, so list only the
// balancers, and keep the ports they reach closed to others. The LMTP
// listener takes mail for local users from whoever reaches it, without
// authentication: keep it on loopback or a private network.
package mta

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qmailkit/qmailkit/aliases"
	"github.com/qmailkit/qmailkit/assign"
	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/authlimit"
	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/uring"
	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/pop3"
	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/smtpclient"
	"github.com/qmailkit/qmailkit/smtpserver"
)

// Options configure Open. The zero value delivers to ./Maildir/ and
// discards logs.
type Options struct {
	// DefaultDelivery is qmail-start's argument: the .qmail lines used for
	// users without a .qmail file. Empty means "./Maildir/".
	DefaultDelivery string
	// Logger receives the servers' structured logs. Nil discards them.
	Logger *slog.Logger
	// SendLogger receives qmail-send's lines (see queue.LogHandler). Nil
	// means Logger.
	SendLogger *slog.Logger
	// Resolver is the DNS of remote delivery; nil means /etc/resolv.conf.
	Resolver smtpclient.Resolver
	// RemotePort is the port remote deliveries connect to when no
	// smtproutes entry gives one; 0 means 25.
	RemotePort int
	// Spawn runs each local delivery in a qmail-local child process, as
	// dotqmail.Local does for a root process (Program, Env).
	Spawn bool
	// Program is the qmail-local program for spawned deliveries; empty
	// means QMAILHOME/bin/qmail-local.
	Program string
	// ProgramEnv is what the environment of local deliveries is taken
	// from (dotqmail.Deliverer.Env, and dotqmail.Local.Env for spawned
	// ones): it should carry QMAILHOME, and QMAILQUEUE when the home's
	// bin/qmail-queue cannot reach the queue, so that a user's forward,
	// condredirect or qmail-inject queues its message. nil means the
	// process's environment.
	ProgramEnv []string
	// LocalDeliverer, when set, makes the local deliveries in place of
	// System.Local (whose settings it then does not use): examples/mta,
	// once it has dropped root, hands them to a helper process that kept
	// it (mta/privsep.Helper). Recipients whose user has the process's own
	// uid and gid are still delivered by System.Local, in-process.
	LocalDeliverer LocalDeliverer
	// Mailboxes, when set, opens the POP3 servers' maildrops (their
	// OpenMailbox) in place of the server's own in-process opening:
	// *privsep.Helper, so that each user's Maildir is read under that
	// user's uid.
	Mailboxes MailboxOpener
	// Aliases is the path of a fastforward database (what newaliases
	// makes of /etc/aliases, package aliases) that the catch-all alias
	// user's .qmail-default runs "fastforward -d" on (examples/mta
	// -aliases writes that line): a local recipient that falls to that
	// file (of the user qmail-getpw falls back to, or of a users/assign
	// entry for the account named alias) is then refused at RCPT unless the database has an alias for
	// it, as it would be bounced with "Sorry, no mailbox here by that
	// name." Empty: no database; the alias user's .qmail-default takes
	// every such recipient.
	Aliases string
	// DNSServer, when set, is the one recursive DNS server ("address:port",
	// see DNSServer) LoadHome puts in Config.DNS, in place of
	// control/dnsserver's: examples/mta's -dns.
	DNSServer string
	// NoRecipientCheck accepts every local recipient at RCPT, as qmail
	// does (unknown users are bounced later). By default a recipient that
	// no user, .qmail file or default delivery would take is refused with
	// 550 at RCPT.
	NoRecipientCheck bool
	// QmailCompat makes remote delivery qmail-remote's (smtpclient's
	// QmailCompat: HELO, no TLS, one recipient per delivery, tcpto kept in
	// queue/lock/tcpto), as the qmail-send drop-in needs.
	QmailCompat bool
	// ShutdownTimeout bounds how long Run waits, once stopped, for SMTP
	// and POP3 sessions and for deliveries in progress to finish; then
	// sessions are cut (no message is acknowledged that is not queued)
	// and the deliveries' contexts cancelled, which kills a local
	// delivery's programs and defers it. 0 means one minute.
	ShutdownTimeout time.Duration
}

// MailboxOpener gives a POP3 server its OpenMailbox (*privsep.Helper is
// one).
type MailboxOpener interface {
	OpenMailbox(srv *pop3.Server) func(ctx context.Context, u *pop3.User) (pop3.Mailbox, error)
}

// LocalDeliverer delivers a message to one local recipient as
// dotqmail.Local.Deliver does (*dotqmail.Local is one): the report is
// qmail-lspawn's, without its status letter, and the error nil, permanent
// or temporary.
type LocalDeliverer interface {
	Deliver(ctx context.Context, sender, recipient string, msg io.Reader) (dotqmail.Result, error)
}

// System is a running mail system: its queue and scheduler, its local
// and remote delivery, and the servers Run serves. New makes one of a
// Config, Open of a qmail home directory.
type System struct {
	// Home is the home directory the System was opened from (Open, or a
	// Config from LoadHome); its Home is "" for a Config built in Go.
	Home      control.Dir
	Queue     *queue.Queue
	Scheduler *queue.Scheduler
	// Users is users/cdb when the Config came from a home, else nil.
	Users *assign.Users
	Local *dotqmail.Local
	// Metrics counts deliveries and the connections Run serves.
	Metrics *Metrics
	// AuthLimiter delays and refuses logins after repeated failures, per
	// client address and per account, for POP3 and SMTP AUTH together.
	AuthLimiter *authlimit.Limiter

	opts   Options
	cfg    Config // as New or the last Reload took it; s.mu
	logger *slog.Logger

	remote atomic.Pointer[smtpclient.Client] // replaced by Reload
	tcpto  smtpclient.TCPTO

	// Reloadable policy, swapped by Reload while servers run.
	routing     atomic.Pointer[queue.Routing]
	users       atomic.Pointer[userSet]
	smtpd       atomic.Pointer[smtpserver.Settings] // one-line files, for new sessions
	rcpthosts   atomic.Pointer[func(string) (bool, error)]
	badmailfrom atomic.Pointer[func(string) bool]
	relay       atomic.Pointer[[]netip.Prefix]
	smtpLoaded  bool         // the SMTP policy was applied; s.mu
	release     func() error // releases the SMTP policy in use; s.mu
	ring        *uring.Ring  // the queue's and the Maildir deliveries' fsyncs; nil: fsync(2)
	mu          sync.Mutex   // serializes Reload
	space       *spaceCheck  // free space for new transactions
	minFree     atomic.Int64 // the bytes space wants free (see minFree)
	ipme        func() map[netip.Addr]bool
	aliases     aliasDB                         // Options.Aliases, for the RCPT check
	virtual     atomic.Pointer[virtualSet]      // Config.Virtual; nil: none
	locals      atomic.Pointer[map[string]bool] // Routing.Locals as configured, without the virtual domains
	vmu         sync.Mutex                      // serializes the routing's changes for virtual domains

	stopOnce sync.Once
	stopping chan struct{} // closed by Shutdown
	cutOnce  sync.Once
	cutNow   chan struct{} // closed when Shutdown's context ends first
	served   chan struct{} // closed when Serve returns
	serving  atomic.Bool
}

// userSet is who receives local mail and who logs in, swapped by Reload.
type userSet struct {
	users     dotqmail.Users
	assign    *assign.Users // when users is users/cdb
	mailboxes Mailboxes     // when users is Mailboxes
	auth      pop3.Authenticator
}

// newUserSet is the userSet of cfg.
func newUserSet(cfg Config) *userSet {
	u := &userSet{users: cfg.Users, assign: cfg.assign, auth: cfg.Auth}
	u.mailboxes, _ = cfg.Users.(Mailboxes)
	return u
}

// Open reads the home directory (see LoadHome) and makes a System of it
// (New): the queue in home/queue, opened and made complete where parts
// are missing, the scheduler, with local delivery through users/cdb and
// the .qmail files, and remote delivery by SMTP. Unlike LoadHome, the SMTP
// servers' control files are read only when a server is first made
// (System.SMTP), so that a program that runs only the queue, as
// qmail-send, does not depend on them. Close releases it.
func Open(home string, opts Options) (*System, error) {
	cfg, err := loadHome(home, opts, true)
	if err != nil {
		return nil, err
	}
	if err := cfg.openVirtual(); err != nil {
		return nil, err
	}
	s, err := New(cfg)
	if err != nil && cfg.Virtual != nil {
		cfg.Virtual.Store().Close()
	}
	return s, err
}

// New makes a System of cfg: it opens the queue (making what is missing
// of it) and builds the scheduler with local and remote delivery. Run
// serves it; Close releases it. Two Systems with different queues may
// run in one process.
func New(cfg Config) (*System, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if err := checkListeners(cfg.Listeners, cfg.TLS, cfg.Rules); err != nil {
		return nil, err
	}
	opts := cfg.Options
	s := &System{Home: control.Dir{Home: cfg.home}, opts: opts, cfg: cfg, logger: opts.Logger,
		ipme:     sync.OnceValue(smtpserver.InterfaceIPs),
		stopping: make(chan struct{}), cutNow: make(chan struct{}), served: make(chan struct{})}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	sendLog := opts.SendLogger
	if sendLog == nil {
		sendLog = s.logger
	}
	routing := cfg.Routing
	s.routing.Store(&routing)
	s.users.Store(newUserSet(cfg))
	s.Users = cfg.assign
	// The queue's and the Maildir deliveries' fsyncs go through one
	// io_uring where the kernel has one (see queue.Options.Fsync).
	if r, rerr := uring.New(256); rerr == nil {
		s.ring = r
	}
	fsync := func(fd int) error { return uring.Fsync(s.ring, fd) }
	var err error
	s.Queue, err = queue.Open(cfg.QueueDir, queue.Options{Fsync: fsync})
	if err != nil {
		s.closeRing()
		return nil, err
	}
	s.Metrics = NewMetrics()
	s.AuthLimiter = &authlimit.Limiter{Logger: s.logger.With("part", "authlimit"), Observe: s.Metrics.observeAuth}
	s.Metrics.reg.MustRegister(authCollector{s.AuthLimiter})
	s.space = &spaceCheck{dir: s.Queue.Dir(), need: s.minFree.Load, interval: 250 * time.Millisecond}
	s.minFree.Store(defaultMinFree)
	// One tcpto for every client Reload makes: what it learnt survives.
	if opts.QmailCompat {
		s.tcpto = &smtpclient.FileTCPTO{Path: filepath.Join(s.Queue.Dir(), "lock", "tcpto")}
	} else {
		s.tcpto = &smtpclient.MemoryTCPTO{}
	}
	s.remote.Store(s.newRemote(cfg))
	if !cfg.lazySMTP {
		s.applySMTPLocked(cfg.SMTP)
	}
	def := opts.DefaultDelivery
	if def == "" {
		def = "./Maildir/"
	}
	// Modern Maildir deliveries: no tmp/ name (see maildir.Deliverer.Unnamed).
	md := &maildir.Deliverer{Unnamed: !opts.QmailCompat, Fsync: fsync}
	s.Local = &dotqmail.Local{
		Users:           dotqmail.UsersFunc(s.lookupUser),
		Deliverer:       &dotqmail.Deliverer{Forwarder: s.Queue, Logger: s.logger.With("part", "local"), Maildir: md, Env: opts.ProgramEnv},
		DefaultDelivery: def,
		Program:         opts.Program,
		Env:             opts.ProgramEnv,
		Spawn:           opts.Spawn,
	}
	s.virtual.Store(s.newVirtual(cfg.Virtual))
	s.locals.Store(localSet(routing))
	routing = s.withVirtual(routing, s.virtual.Load())
	s.routing.Store(&routing)
	s.Scheduler = &queue.Scheduler{
		Queue:             s.Queue,
		Local:             queue.LocalFunc(s.deliverLocal),
		Remote:            queue.RemoteFunc(s.deliverRemote),
		Routing:           routing,
		ConcurrencyLocal:  cfg.Scheduling.ConcurrencyLocal,
		ConcurrencyRemote: cfg.Scheduling.ConcurrencyRemote,
		ConcurrencyDomain: cfg.Scheduling.ConcurrencyDomain,
		Lifetime:          cfg.Scheduling.Lifetime,
		Bounce:            cfg.Bounce,
		Logger:            sendLog,
	}
	if opts.QmailCompat {
		s.Scheduler.RemoteBatch = 1
	}
	s.Metrics.watchScheduler(s.Scheduler)
	return s, nil
}

// fill checks cfg and gives its empty fields their defaults.
func (cfg *Config) fill() error {
	if cfg.Hostname == "" {
		return errors.New("mta: Config.Hostname is empty")
	}
	if cfg.QueueDir == "" {
		return errors.New("mta: Config.QueueDir is empty")
	}
	if cfg.home != "" {
		return nil // LoadHome gave every field qmail's value
	}
	if len(cfg.Routing.Locals) == 0 {
		cfg.Routing.Locals = []string{cfg.Hostname}
	}
	if cfg.Routing.EnvNoAtHost == "" {
		cfg.Routing.EnvNoAtHost = cfg.Hostname
	}
	b := &cfg.Bounce
	if b.From == "" {
		b.From = "MAILER-DAEMON"
	}
	if b.Host == "" {
		b.Host = cfg.Hostname
	}
	if b.DoubleHost == "" {
		b.DoubleHost = cfg.Hostname
	}
	if b.DoubleTo == "" && !b.DoubleToEmpty {
		b.DoubleTo = "postmaster"
	}
	sc := &cfg.Scheduling
	if sc.ConcurrencyLocal == 0 {
		sc.ConcurrencyLocal = 10
	}
	if sc.ConcurrencyRemote == 0 {
		sc.ConcurrencyRemote = 20
	}
	if sc.Lifetime == 0 {
		sc.Lifetime = 7 * 24 * time.Hour
	}
	if cfg.SMTP.RcptHosts == nil {
		cfg.SMTP.RcptHosts = localDomains(cfg.Routing)
	}
	if cfg.Users == nil {
		cfg.Users = dotqmail.UsersFunc(func(context.Context, string) (dotqmail.User, error) {
			return dotqmail.User{}, ErrNoUser
		})
	}
	if m, ok := cfg.Users.(Mailboxes); ok {
		if err := m.prepare(); err != nil {
			return err
		}
		if cfg.Auth == nil {
			cfg.Auth = m
		}
	}
	return nil
}

// localDomains is the RcptHosts of a Config written in Go: the local
// domains and those of the virtual domains.
func localDomains(r queue.Routing) func(string) (bool, error) {
	list := append([]string(nil), r.Locals...)
	for _, vd := range r.VirtualDomains {
		if vd.Key != "" && !strings.Contains(vd.Key, "@") {
			list = append(list, vd.Key)
		}
	}
	return smtpserver.HostList(list, nil)
}

// lookupUser is the local deliveries' Users: Config.Users as last loaded.
func (s *System) lookupUser(ctx context.Context, local string) (dotqmail.User, error) {
	return s.users.Load().users.Lookup(ctx, local)
}

// authenticate is the servers' Authenticator: Config.Auth as last loaded.
func (s *System) authenticate(ctx context.Context, c pop3.Credentials) (*pop3.User, error) {
	a := s.users.Load().auth
	if s.virtual.Load() != nil {
		return s.authenticateVirtual(ctx, a, c)
	}
	if a == nil {
		return nil, fmt.Errorf("mta: no users: %w", pop3.ErrAuthFailed)
	}
	return a.Authenticate(ctx, c)
}

// Close closes the queue and releases the open cdbs. Call it after Run
// returned.
func (s *System) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.Queue.Close()
	if s.Users != nil {
		err = errors.Join(err, s.Users.Close())
	}
	if u := s.users.Load(); u.assign != nil && u.assign != s.Users {
		err = errors.Join(err, u.assign.Close())
	}
	s.aliases.mu.Lock()
	s.aliases.close()
	s.aliases.mu.Unlock()
	s.closeRing()
	if p := s.remote.Load().Pool; p != nil {
		p.Close()
	}
	if s.release != nil {
		err = errors.Join(err, s.release())
		s.release = nil
	}
	if s.cfg.ownVirtual && s.cfg.Virtual != nil {
		err = errors.Join(err, s.cfg.Virtual.Store().Close())
		s.cfg.Virtual = nil
	}
	return err
}

// closeRing releases the fsyncs' io_uring once nothing uses it.
func (s *System) closeRing() {
	if s.ring != nil {
		s.ring.Close()
	}
}

// newRemote makes the SMTP client of remote deliveries: a copy of
// cfg.Remote with the System's defaults.
func (s *System) newRemote(cfg Config) *smtpclient.Client {
	c := cloneClient(cfg.Remote)
	if c.Hostname == "" && cfg.home == "" {
		c.Hostname = cfg.Hostname
	}
	if c.TCPTO == nil {
		c.TCPTO = s.tcpto
	}
	if c.Logger == nil {
		c.Logger = s.logger.With("part", "remote")
	}
	if c.Resolver == nil {
		c.Resolver = s.opts.Resolver
	}
	if c.Resolver == nil && len(cfg.DNS) > 0 {
		c.Resolver = &smtpclient.DNS{Servers: cfg.DNS}
	}
	if c.Port == 0 {
		c.Port = s.opts.RemotePort
	}
	c.QmailCompat = c.QmailCompat || s.opts.QmailCompat
	return c
}

// cloneClient copies the settings of a Client (nil: a zero one), which
// may not itself be copied once used.
func cloneClient(r *smtpclient.Client) *smtpclient.Client {
	if r == nil {
		return &smtpclient.Client{}
	}
	return &smtpclient.Client{
		Hostname: r.Hostname, Resolver: r.Resolver, Dialer: r.Dialer, Port: r.Port,
		Routes: r.Routes, TLS: r.TLS, TLSConfig: r.TLSConfig, Timeouts: r.Timeouts,
		Network: r.Network, PreferIPv4: r.PreferIPv4, LocalAddrs: r.LocalAddrs, Rand: r.Rand,
		Pool: r.Pool, QmailCompat: r.QmailCompat, Logger: r.Logger, TCPTO: r.TCPTO, Now: r.Now,
		HostTLS: r.HostTLS,
	}
}

// RemoteClient returns the SMTP client remote deliveries use now.
func (s *System) RemoteClient() *smtpclient.Client { return s.remote.Load() }

// UsersAdapter turns assign's lookup into dotqmail's (the adapter dotqmail's
// UsersFunc documents), keeping qmail-lspawn's exit code for the report.
func UsersAdapter(a *assign.Users) dotqmail.Users {
	return dotqmail.UsersFunc(func(ctx context.Context, local string) (dotqmail.User, error) {
		u, err := a.Lookup(ctx, local)
		if err != nil {
			return dotqmail.User{}, &dotqmail.LookupError{Code: assign.ExitCode(err), Err: err}
		}
		return dotqmail.User{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home, Dash: u.Dash, Ext: u.Ext}, nil
	})
}

func (s *System) deliverLocal(ctx context.Context, d queue.Delivery) queue.Result {
	if v, ok, err := s.virtualRecipient(ctx, d.Recipients[0]); err != nil {
		return queue.Result{Report: "temporary failure looking up the virtual domains (#4.3.0)\n", Err: err}
	} else if ok {
		return s.deliverVirtual(ctx, v, d, d.Recipients[0])
	}
	var l LocalDeliverer = s.Local
	if us := s.users.Load(); us.mailboxes != nil {
		return s.deliverMailbox(ctx, us.mailboxes, d)
	} else if us.assign == nil {
		// Users written in Go, looked up here once: a recipient none of
		// them takes bounces, as qmail-local bounces an address no
		// .qmail file takes.
		rcpt := d.Recipients[0]
		u, err := us.users.Lookup(ctx, rcpt[:max(strings.LastIndexByte(rcpt, '@'), 0)])
		if errors.Is(err, ErrNoUser) {
			s.Metrics.delivered(false, errNoMailbox)
			return queue.Result{Report: errNoMailbox.Text + "\n", Err: errNoMailbox}
		}
		if err == nil {
			l = s.localWith(u)
		}
	}
	if s.opts.LocalDeliverer != nil {
		l = s.localFor(ctx, d.Recipients[0])
	}
	ctx, cancel := cuttable(ctx)
	defer cancel()
	res, err := l.Deliver(ctx, d.Sender, d.Recipients[0], d.Message)
	if err != nil && errors.Is(context.Cause(ctx), errGraceOver) {
		s.logger.Warn("mta: local delivery cut at the end of the grace period; deferred", "recipient", d.Recipients[0], "id", d.ID)
	}
	s.Metrics.delivered(false, err)
	return queue.Result{Report: res.Report, Err: err}
}

// errNoMailbox is the permanent failure of a delivery to a local
// recipient no user of a Config written in Go takes.
var errNoMailbox = &dotqmail.Error{Text: "Sorry, no mailbox here by that name. (#5.1.1)", Perm: true, Err: ErrNoUser}

// localFor chooses, when Options.LocalDeliverer is set, who delivers to
// recipient: System.Local if recipient's user has the process's own uid and
// gid (and is not root), since a child under that uid would have exactly
// this process's rights, and Options.LocalDeliverer otherwise. System.Local
// is then given the user found here, so as not to look it up twice.
func (s *System) localFor(ctx context.Context, recipient string) LocalDeliverer {
	at := strings.LastIndexByte(recipient, '@')
	uid := os.Geteuid()
	if at <= 0 || uid == 0 {
		return s.opts.LocalDeliverer
	}
	u, err := s.Local.Users.Lookup(ctx, recipient[:at])
	if err != nil || u.UID != uid || u.GID != os.Getegid() {
		return s.opts.LocalDeliverer
	}
	return s.localWith(u)
}

// localWith is System.Local for a recipient whose user u is already
// known, so that the delivery does not look it up again.
func (s *System) localWith(u dotqmail.User) *dotqmail.Local {
	own := *s.Local
	own.Users = dotqmail.UsersFunc(func(context.Context, string) (dotqmail.User, error) { return u, nil })
	return &own
}

func (s *System) deliverRemote(ctx context.Context, d queue.Delivery) []queue.Result {
	if out, ok := s.deliverRemoteVirtual(ctx, d); ok {
		return out
	}
	ctx, cancel := cuttable(ctx)
	defer cancel()
	out := deliverRemote(ctx, s.remote.Load(), d)
	for _, r := range out {
		s.Metrics.delivered(true, r.Err)
	}
	return out
}

// RemoteDeliverer is the scheduler's remote delivery made by an SMTP
// client, qmail-rspawn's job: the recipients of one delivery (all at one
// domain) in one transaction, with their DSN parameters, each recipient's
// result in qmail-remote's words and with its permanence.
func RemoteDeliverer(c *smtpclient.Client) queue.RemoteDeliverer {
	return queue.RemoteFunc(func(ctx context.Context, d queue.Delivery) []queue.Result {
		return deliverRemote(ctx, c, d)
	})
}

func deliverRemote(ctx context.Context, c *smtpclient.Client, d queue.Delivery) []queue.Result {
	rcpt := d.Recipients[0]
	domain := rcpt[strings.LastIndexByte(rcpt, '@')+1:]
	res, err := c.DeliverDSN(ctx, domain, d.Sender, d.Recipients, d.Message, remoteDSN(d.DSN))
	out := make([]queue.Result, len(d.Recipients))
	for i := range out {
		if res == nil || i >= len(res.Recipients) {
			out[i] = queue.Result{Report: smtpclient.ReportText(err), Err: err}
			if err == nil {
				out[i].Err = errors.New("mta: remote delivery gave no result")
			}
			continue
		}
		out[i] = queue.Result{Report: res.RecipientReport(i), Err: res.Recipients[i].Err, DSNPassed: res.Recipients[i].DSNPassed}
	}
	return out
}

// Reload makes cfg the System's, for what can change while it runs: the
// routing (Routing), the users (Users, Auth and Virtual), the SMTP policy (SMTP),
// applied to sessions that start later and to the checks of those in
// progress, and remote delivery (Remote), for deliveries that start
// later. Other fields are those New took; cfg's are ignored. Deliveries
// and SMTP sessions in progress finish with the old settings; no
// connection is dropped. cfg is checked as New checks it; on error
// nothing changes.
func (s *System) Reload(cfg Config) error {
	cfg.Options = s.opts
	if err := cfg.fill(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reloadLocked(cfg)
	return nil
}

// reloadLocked applies cfg (filled); s.mu is held.
func (s *System) reloadLocked(cfg Config) {
	s.vmu.Lock()
	defer s.vmu.Unlock()
	if cfg.Virtual != s.cfg.Virtual {
		s.virtual.Store(s.newVirtual(cfg.Virtual))
	}
	s.locals.Store(localSet(cfg.Routing))
	routing := s.withVirtual(cfg.Routing, s.virtual.Load())
	old := s.remote.Swap(s.newRemote(cfg))
	if old != nil && old.Pool != nil && old.Pool != s.remote.Load().Pool {
		// Its idle connections end now; those in use after their delivery.
		go old.Pool.Close()
	}
	s.routing.Store(&routing)
	if s.smtpLoaded || !cfg.lazySMTP {
		s.applySMTPLocked(cfg.SMTP)
	}
	s.users.Store(newUserSet(cfg))
	s.cfg.Routing, s.cfg.SMTP, s.cfg.Remote, s.cfg.Users, s.cfg.Auth = cfg.Routing, cfg.SMTP, cfg.Remote, cfg.Users, cfg.Auth
	if cfg.Virtual != s.cfg.Virtual {
		if s.cfg.ownVirtual && s.cfg.Virtual != nil {
			s.cfg.Virtual.Store().Close()
		}
		s.cfg.Virtual, s.cfg.ownVirtual = cfg.Virtual, cfg.ownVirtual
	}
	s.Scheduler.Reload(routing)
}

// ReloadHome rereads the home the System was opened from and reloads
// (see Reload): the control files the scheduler routes by (locals,
// virtualdomains, percenthack, envnoathost), those of remote delivery
// (smtproutes, helohost, timeouts: qmail-remote reads them for every
// delivery) and qmail-smtpd's (rcpthosts, morercpthosts.cdb, badmailfrom,
// me, smtpgreeting, localiphost, databytes, timeoutsmtpd, queueminfree),
// as qmail-send and a restarted qmail-smtpd would. users/cdb,
// users/poppasswd, control/tcp.ROLE.cdb and the certificate need no
// reload: they are read again when they change; control/proxyfrom is read
// when serving starts. On error nothing changes.
func (s *System) ReloadHome() error {
	if s.Home.Home == "" {
		return errors.New("mta: ReloadHome: the System was not opened from a home directory")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg, err := loadHome(s.Home.Home, s.opts, !s.smtpLoaded)
	if err != nil {
		return err
	}
	// The same connections to remote hosts, if they are to be kept as long.
	if old := s.remote.Load().Pool; old != nil && cfg.Remote.Pool != nil && old.IdleTimeout == cfg.Remote.Pool.IdleTimeout {
		cfg.Remote.Pool = old
	}
	// The same users/cdb and passwd file: they follow their files.
	u := s.users.Load()
	cfg.Users, cfg.assign, cfg.Auth = u.users, u.assign, u.auth
	// The same virtual store: it follows its database. A home that has
	// got one since (the first "mta domain add") opens it now.
	cfg.Virtual, cfg.ownVirtual = s.cfg.Virtual, s.cfg.ownVirtual
	if cfg.Virtual == nil {
		if err := cfg.openVirtual(); err != nil {
			return err
		}
	}
	cfg.lazySMTP = false
	s.reloadLocked(cfg)
	return nil
}

// loadSMTPPolicy reads the SMTP policy from the home, once, for a System
// that Open made (see Config.lazySMTP).
func (s *System) loadSMTPPolicy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.smtpLoaded {
		return nil
	}
	p, err := ReadSMTPPolicy(s.Home)
	if err != nil {
		return err
	}
	s.cfg.SMTP = p
	s.applySMTPLocked(p)
	return nil
}

// applySMTPLocked makes p the SMTP servers' for new sessions and checks;
// s.mu is held (or s is not yet shared).
func (s *System) applySMTPLocked(p SMTPPolicy) {
	set := p.Settings
	if set.Hostname == "" {
		set.Hostname = s.cfg.Hostname
	}
	databytes := set.MaxMessageBytes
	if databytes == 0 {
		databytes = defaultDataBytes
	}
	s.minFree.Store(minFree(p.MinFree, p.MinFree != 0, databytes))
	s.smtpd.Store(&set)
	rh := p.RcptHosts
	if rh == nil {
		rh = localDomains(*s.routing.Load())
	}
	s.rcpthosts.Store(&rh)
	bmf := p.BadMailFrom
	s.badmailfrom.Store(&bmf)
	relay := append([]netip.Prefix(nil), p.RelayClients...)
	s.relay.Store(&relay)
	if s.release != nil && s.smtpLoaded {
		s.release()
	}
	s.release = p.release
	s.smtpLoaded = true
}

// SMTP returns an SMTP server with the System's SMTP policy (as Reload
// changes it) whose messages go into the queue. With submission set it
// is a submission server (RFC 6409): it takes mail only from clients
// that authenticated with auth, which must be set then. tlsConfig, when
// not nil, offers STARTTLS. Run makes its servers with it; a program
// that wants to change a server before it serves calls it and Serve.
func (s *System) SMTP(submission bool, tlsConfig *tls.Config, auth auth.Authenticator) (*smtpserver.Server, error) {
	srv := &smtpserver.Server{Enqueuer: s.Queue, TLSConfig: tlsConfig, Auth: auth, AuthLimiter: s.AuthLimiter, Logger: s.logger.With("part", "smtp")}
	if !submission {
		// SMTPPolicy.RelayClients, as Reload last set them.
		srv.Relay = func(_ context.Context, ss *smtpserver.Session) bool {
			ip := ss.RemoteIP.Unmap()
			for _, p := range *s.relay.Load() {
				if p.Contains(ip) {
					return true
				}
			}
			return false
		}
	}
	if !submission && s.cfg.DNSBL != nil {
		b := *s.cfg.DNSBL
		if b.DNS == nil && b.Resolver == nil && len(s.cfg.DNS) > 0 {
			b.DNS = &smtpserver.DNSResolver{Servers: s.cfg.DNS}
		}
		srv.DNSBL = &b
	}
	if submission {
		if auth == nil {
			return nil, errors.New("mta: submission needs an authenticator")
		}
		srv.Logger = s.logger.With("part", "submission")
		srv.CheckSender = func(ctx context.Context, ss *smtpserver.Session, from string) error {
			if ss.User == "" {
				return smtpserver.Reply{Code: 530, Enhanced: "5.7.0", Text: "authentication required"}
			}
			return nil
		}
	}
	if err := s.loadSMTPPolicy(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	srv.MaxConns = s.cfg.SMTP.MaxConns
	s.mu.Unlock()
	// Everything is read through the pointers Reload swaps: the one-line
	// values once per session, the lists at each check.
	srv.SessionSettingsContext = func(context.Context, *smtpserver.Session) smtpserver.Settings { return *s.smtpd.Load() }
	srv.IsLocalIP = func(ip netip.Addr) bool {
		// qmail: no localiphost and no me: domain literals are not rewritten.
		return s.smtpd.Load().LocalIPHost != "" && s.ipme()[ip]
	}
	srv.OpenRelay = false
	srv.RcptHostsContext = func(ctx context.Context, _ *smtpserver.Session, domain string) (bool, error) {
		if ok, err := (*s.rcpthosts.Load())(domain); ok || err != nil {
			return ok, err
		}
		return s.rcptHostVirtual(ctx, domain)
	}
	srv.BadMailFromContext = func(_ context.Context, _ *smtpserver.Session, addr string) bool {
		if f := *s.badmailfrom.Load(); f != nil {
			return f(addr)
		}
		return false
	}
	if !s.opts.NoRecipientCheck {
		srv.CheckRecipient = s.checkRecipient
	}
	// Nothing is accepted that the queue has no room for: 452 at MAIL.
	check := srv.CheckSender
	srv.CheckSender = func(ctx context.Context, ss *smtpserver.Session, from string) error {
		if check != nil {
			if err := check(ctx, ss, from); err != nil {
				return err
			}
		}
		if err := s.space.check(time.Now()); err != nil {
			s.logger.Warn("mta: refusing mail: the queue's file system is nearly full", "err", err, "ip", ss.RemoteIP)
			return err
		}
		return nil
	}
	return srv, nil
}

// checkRecipient refuses, at RCPT, a local recipient that delivery would
// bounce with "no mailbox here by that name": an address that only the
// catch-all alias user (or no user) takes, for which the alias has no
// .qmail file. Only the .qmail files of users with this process's own uid
// are looked at: others' are read by their deliveries, under their uids. Remote recipients, and every case in doubt, are accepted:
// the queue decides later, as in qmail.
func (s *System) checkRecipient(ctx context.Context, ss *smtpserver.Session, to string) error {
	if done, err := s.checkVirtual(ctx, to); done {
		return err
	}
	addr, remote := s.routing.Load().Route(to)
	if remote {
		return nil
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return nil // "@domain" is the trash address
	}
	us := s.users.Load()
	if us.assign == nil {
		u, err := us.users.Lookup(ctx, addr[:at])
		if errors.Is(err, ErrNoUser) {
			return smtpserver.Reply{Code: 550, Enhanced: "5.1.1", Text: "sorry, no mailbox here by that name"}
		}
		if err != nil || u.Ext == "" || us.mailboxes != nil || u.UID != os.Geteuid() || u.UID == 0 {
			return nil
		}
		// An extension: the user's .qmail file for it decides, as
		// below for users/cdb.
		if _, err := dotqmail.Find(u.Home, u.Dash, u.Ext); errors.Is(err, fs.ErrNotExist) {
			return smtpserver.Reply{Code: 550, Enhanced: "5.1.1", Text: "sorry, no mailbox here by that name"}
		}
		return nil
	}
	u, err := us.assign.Lookup(ctx, addr[:at])
	switch {
	case errors.Is(err, assign.ErrNoAlias):
		return smtpserver.Reply{Code: 550, Enhanced: "5.1.1", Text: "sorry, no mailbox here by that name"}
	case err != nil:
		return nil
	case u.Match != assign.MatchAlias && u.Ext == "":
		return nil // the user's own address: the default delivery takes it
	case u.UID != os.Geteuid() || u.UID == 0:
		// The user's .qmail files are theirs to read, not this
		// process's: looking would tell a client what this process can
		// see (a symlink to a file the user cannot read) and cost its
		// memory. Accept, and let the delivery under their uid decide,
		// as qmail does.
		return nil
	}
	found, err := dotqmail.Find(u.Home, u.Dash, u.Ext)
	if errors.Is(err, fs.ErrNotExist) {
		return smtpserver.Reply{Code: 550, Enhanced: "5.1.1", Text: "sorry, no mailbox here by that name"}
	}
	// The alias user: qmail-getpw's fallback, or users/assign's catch-all
	// for the account named alias (as examples/mta's home has it).
	alias := u.Match == assign.MatchAlias || u.Name == "alias"
	if err == nil && s.opts.Aliases != "" && alias && found.Name == ".qmail"+u.Dash+"default" {
		// fastforward -d: the recipient is $DEFAULT@$HOST.
		if known, err := s.aliases.has(s.opts.Aliases, found.Default+addr[at:]); err == nil && !known {
			return smtpserver.Reply{Code: 550, Enhanced: "5.1.1", Text: "sorry, no mailbox here by that name"}
		}
	}
	return nil
}

// aliasDB is the fastforward database of Options.Aliases, kept open
// between RCPTs and opened again when the file at its path changes (as
// newaliases renames a new one over it): one stat per lookup.
type aliasDB struct {
	mu sync.Mutex
	db *aliases.DB
	fi os.FileInfo // of the file db was opened from
}

// has reports whether the database at path has an alias for addr, as
// fastforward looks the original recipient up (with the "@domain" and
// "local@" wildcards).
func (a *aliasDB) has(path, addr string) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fi, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	if a.db == nil || !os.SameFile(fi, a.fi) || !fi.ModTime().Equal(a.fi.ModTime()) || fi.Size() != a.fi.Size() {
		db, err := aliases.Open(path)
		if err != nil {
			return false, err
		}
		a.close()
		a.db, a.fi = db, fi
	}
	data, err := a.db.Lookup(':', addr, true)
	return data != nil, err
}

// close unmaps the database, if one is open; a.mu is held.
func (a *aliasDB) close() {
	if a.db != nil {
		a.db.Close()
		a.db = nil
	}
}

// POP3 returns a POP3 server whose users are Config.Auth's (as Reload
// changes them; users/poppasswd for a home), each reading the Maildir the
// authenticator gives, by default the one in their home directory.
// tlsConfig, when not nil, offers STLS.
func (s *System) POP3(tlsConfig *tls.Config) (*pop3.Server, error) {
	s.mu.Lock()
	host, maxConns := s.cfg.Hostname, s.cfg.SMTP.MaxConns
	s.mu.Unlock()
	srv := &pop3.Server{
		Hostname:    host,
		Auth:        s.Auth(),
		AuthLimiter: s.AuthLimiter,
		MaxConns:    maxConns,
		TLSConfig:   tlsConfig,
		Logger:      s.logger.With("part", "pop3"),
	}
	if s.opts.Mailboxes != nil {
		srv.OpenMailbox = s.opts.Mailboxes.OpenMailbox(srv)
		s.virtualMailboxes(srv)
	}
	return srv, nil
}

// Auth returns the System's authenticator: Config.Auth as New or the last
// Reload took it, for POP3 and SMTP AUTH alike.
func (s *System) Auth() auth.Authenticator { return auth.Func(s.authenticate) }

// Passwd returns the System's authenticator, as Auth does.
//
// Deprecated: use Auth.
func (s *System) Passwd() pop3.Authenticator { return s.Auth() }

// TLSConfig returns Config.TLS: for a home, a server configuration serving
// control/servercert.pem (re-read when it changes), or nil when the file
// does not exist.
func (s *System) TLSConfig() (*tls.Config, error) { return s.cfg.TLS, nil }

// SMTPAuth is an smtpserver.Authenticator over the same users as POP3.
//
// Deprecated: an [auth.Authenticator] serves SMTP AUTH as it is; give
// [System.SMTP] s.Auth().
func SMTPAuth(a auth.Authenticator) smtpserver.Authenticator {
	return func(ctx context.Context, user, password string) error {
		_, err := a.Authenticate(ctx, auth.Credentials{Service: auth.ServiceSMTP, User: user, Secret: password})
		if errors.Is(err, pop3.ErrAuthFailed) {
			return smtpserver.ErrBadCredentials
		}
		return err
	}
}

// cutKey is the context key under which Run gives the scheduler's
// deliveries the context that Run cancels at the end of the grace period.
type cutKey struct{}

// cuttable returns a context for one delivery made under ctx: the
// scheduler gives deliveries a context that Run's cancellation does not
// reach (a stop lets them finish), so it is cancelled as well when the
// context Run put under cutKey is, at the end of the grace period.
func cuttable(ctx context.Context) (context.Context, context.CancelFunc) {
	cut, ok := ctx.Value(cutKey{}).(context.Context)
	if !ok {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(cut, func() { cancel(context.Cause(cut)) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

// errGraceOver is the cause of a delivery's context cancelled at the end
// of Run's grace period.
var errGraceOver = errors.New("mta: stopping: grace period over")

// Run makes the System's servers and serves Config.Listeners until ctx
// is done or Shutdown is called (see Serve): SMTP on Listeners.SMTP (with
// STARTTLS when Config.TLS is set, and AUTH after it when Config.Auth is
// set), submission on Listeners.Submission and Listeners.Submissions
// (implicit TLS) and POP3 on Listeners.POP3 and Listeners.POP3S (implicit
// TLS) when Config.Auth is set, and LMTP (System.LMTP) on Listeners.LMTP.
func (s *System) Run(ctx context.Context) error {
	var srv Servers
	ls := s.cfg.Listeners
	if err := checkListeners(ls, s.cfg.TLS, s.cfg.Rules); err != nil {
		return err
	}
	var err error
	var auth auth.Authenticator
	if s.cfg.Auth != nil {
		auth = s.Auth()
	}
	if ls.SMTP != nil {
		if srv.SMTP, err = s.SMTP(false, s.cfg.TLS, auth); err != nil {
			return err
		}
	}
	if (ls.Submission != nil || ls.Submissions != nil) && auth != nil {
		if srv.Submission, err = s.SMTP(true, s.cfg.TLS, auth); err != nil {
			return err
		}
	}
	if (ls.POP3 != nil || ls.POP3S != nil) && s.cfg.Auth != nil {
		if srv.POP3, err = s.POP3(s.cfg.TLS); err != nil {
			return err
		}
	}
	if ls.LMTP != nil {
		if srv.LMTP, err = s.LMTP(); err != nil {
			return err
		}
	}
	return s.Serve(ctx, srv, ls)
}

// Shutdown stops a System that Run or Serve is serving, as the end of
// their context does, and waits until they return. When ctx ends first,
// the sessions and deliveries still running are cut at once, without
// waiting for the end of Options.ShutdownTimeout (nothing acknowledged is
// lost; deliveries cut are made again at the next start), and Shutdown
// returns ctx's error once they have. Shutdown of a System that is not
// serving returns nil at once.
func (s *System) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stopping) })
	if !s.serving.Load() {
		return nil
	}
	select {
	case <-s.served:
		return nil
	case <-ctx.Done():
	}
	s.cutOnce.Do(func() { close(s.cutNow) })
	<-s.served
	return ctx.Err()
}

// Serve runs the scheduler and serves the listeners until ctx is done or
// Shutdown is called: srv.SMTP on ls.SMTP, srv.Submission on
// ls.Submission and ls.Submissions, srv.POP3 on ls.POP3 and ls.POP3S,
// srv.LMTP on ls.LMTP (a listener without its server is not served). Each
// listener is wrapped as Listeners says: Config.Rules for its role and
// Config.ProxyFrom (a tcprules.Listener), SMTPPolicy.RelayClients on
// SMTP, and ls.Submissions and ls.POP3S in tls.NewListener with
// Config.TLS, at least TLS 1.2. Serve fails at once when those two are
// set and Config.TLS is not, when Config.Rules names an unknown role, or
// when control/proxyfrom cannot be read.
//
// Serve then stops accepting, lets the sessions finish the message they are
// receiving (every message acknowledged is in the queue), stops the
// scheduler after the deliveries in progress, and returns. Sessions and
// deliveries get Options.ShutdownTimeout from the stop: then sessions
// are cut and the deliveries still running cancelled (a local delivery's
// programs are killed; the delivery is deferred, and made again, whole,
// at the next start, as qmail's at-least-once delivery allows), so that
// Run returns within that time and a few seconds whatever users'
// programs or remote servers do. A server that fails ends the others
// and Run returns its error.
func (s *System) Serve(ctx context.Context, srv Servers, ls Listeners) error {
	if err := checkListeners(ls, s.cfg.TLS, s.cfg.Rules); err != nil {
		return err
	}
	rules, proxy, err := s.listenerPolicy()
	if err != nil {
		return err
	}
	tlsConfig := implicitTLS(s.cfg.TLS)
	if !s.serving.CompareAndSwap(false, true) {
		return errors.New("mta: the System is already serving")
	}
	defer close(s.served)
	cutCtx, cut := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cut(nil)
	schedCtx, stopSched := context.WithCancel(context.WithValue(context.WithoutCancel(ctx), cutKey{}, cutCtx))
	defer stopSched()
	schedDone := make(chan error, 1)
	go func() { schedDone <- s.Scheduler.Run(schedCtx) }()

	type shutdowner interface{ Shutdown(context.Context) error }
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
		stops []shutdowner
	)
	failed := make(chan struct{})
	var failOnce sync.Once
	serve := func(name string, sd shutdowner, f func() error) {
		if !slices.Contains(stops, sd) {
			// One server may serve two listeners (submission on 587 and
			// 465): it is shut down, and its rejections counted, once.
			stops = append(stops, sd)
			s.Metrics.watchServer(name, sd)
		}
		wg.Go(func() {
			err := f()
			if errors.Is(err, smtpserver.ErrServerClosed) || errors.Is(err, pop3.ErrServerClosed) {
				return
			}
			errMu.Lock()
			if first == nil {
				first = fmt.Errorf("mta: %s: %w", name, err)
			}
			errMu.Unlock()
			failOnce.Do(func() { close(failed) })
		})
	}
	type server interface {
		shutdowner
		Serve(net.Listener) error
	}
	add := func(role string, l net.Listener, srv server) {
		if l != nil {
			wl := s.wrap(role, l, rules[role], proxy, tlsConfig)
			serve(role, srv, func() error { return srv.Serve(wl) })
		}
	}
	// A nil server leaves its listeners unserved (tested here: in the
	// interface it would be a typed nil).
	if srv.SMTP != nil {
		add(RoleSMTP, ls.SMTP, srv.SMTP)
	}
	if srv.Submission != nil {
		add(RoleSubmission, ls.Submission, srv.Submission)
		add(RoleSubmissions, ls.Submissions, srv.Submission)
	}
	if srv.POP3 != nil {
		add(RolePOP3, ls.POP3, srv.POP3)
		add(RolePOP3S, ls.POP3S, srv.POP3)
	}
	if srv.LMTP != nil {
		add(RoleLMTP, ls.LMTP, srv.LMTP)
	}
	select {
	case <-ctx.Done():
	case <-s.stopping:
	case <-failed:
	case err := <-schedDone:
		schedDone <- err
		errMu.Lock()
		if first == nil && err != nil {
			first = fmt.Errorf("mta: scheduler: %w", err)
		}
		errMu.Unlock()
	}
	// Shutdown waits for sessions in DATA to finish, so nothing
	// acknowledged is lost; the scheduler stops last and records the
	// outcome of the deliveries it is running.
	grace := s.opts.ShutdownTimeout
	if grace <= 0 {
		grace = time.Minute
	}
	graceOver := time.NewTimer(grace)
	defer graceOver.Stop()
	for _, sd := range stops {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
			defer cancel()
			go func() {
				select {
				case <-s.cutNow:
					cancel()
				case <-sctx.Done():
				}
			}()
			if sd.Shutdown(sctx) != nil {
				// A session still in DATA after the grace period is
				// cut: its client got no 250 and will retry.
				_ = sd.(interface{ Close() error }).Close()
			}
		})
	}
	wg.Wait()
	stopSched()
	select {
	case err = <-schedDone:
	case <-s.cutNow:
		s.logger.Warn("mta: shutdown: cancelling the deliveries still running (they are deferred)")
		cut(errGraceOver)
		err = <-schedDone
	case <-graceOver.C:
		s.logger.Warn("mta: grace period over: cancelling the deliveries still running (they are deferred)", "grace", grace)
		cut(errGraceOver)
		err = <-schedDone
	}
	if err != nil {
		errMu.Lock()
		if first == nil {
			first = fmt.Errorf("mta: scheduler: %w", err)
		}
		errMu.Unlock()
	}
	return first
}
