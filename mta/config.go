package mta

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/assign"
	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/pop3"
	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/smtpclient"
	"github.com/qmailkit/qmailkit/smtpserver"
	"github.com/qmailkit/qmailkit/vmail"
)

// Config is a whole mail system: what New makes a System of. A program
// can write one in Go, without any file but the queue and the mailboxes,
// or load one from a qmail home directory with LoadHome. Fields left zero
// take the defaults their comments give, qmail's where qmail has one.
type Config struct {
	// Hostname is the system's name, qmail's control/me: the greetings,
	// the Received lines, the host of bounces' sender and, unless Remote
	// names another, the HELO of remote deliveries. Required.
	Hostname string
	// QueueDir is the queue's directory; New makes it (and what is
	// missing in it) when needed. Required.
	QueueDir string

	// Routing says which domains are local (Locals; none means
	// Hostname alone), which belong to a user (VirtualDomains: qmail's
	// control/virtualdomains), the percent hack and envnoathost (empty
	// means Hostname).
	Routing queue.Routing
	// Bounce says who bounces come from and where double bounces go.
	// Empty From means "MAILER-DAEMON", empty Host and DoubleHost mean
	// Hostname, empty DoubleTo "postmaster" (unless DoubleToEmpty).
	Bounce queue.Bounce
	// Scheduling is how many deliveries run at once and how long a
	// message may stay queued; zero fields mean qmail's 10 local, 20
	// remote and a week, a negative concurrency holds the channel.
	Scheduling Scheduling

	// Users resolve the local part of a local recipient to the user who
	// receives it (qmail-lspawn's lookup). Mailboxes are users written
	// in Go; LoadHome gives qmail's users/cdb and the system's passwd. A
	// lookup error that wraps ErrNoUser refuses the recipient at RCPT
	// (550 5.1.1) and bounces a message queued for it another way. Nil
	// means no local user: every local recipient is refused.
	Users dotqmail.Users
	// Auth checks the passwords of POP3 logins and of SMTP AUTH (on the
	// submission port, and on the SMTP port). Mailboxes is one; LoadHome
	// gives users/poppasswd. Nil means Users when Users is Mailboxes,
	// else none: no POP3 server and no submission server are run, and
	// SMTP offers no AUTH.
	Auth pop3.Authenticator
	// Virtual keeps virtual domains and mailboxes (vpopmail's job): mail
	// for its domains and their alias domains is accepted as for
	// rcpthosts', checked at RCPT (an unknown address is refused with 550
	// 5.1.1, a failure of the store with 451), routed as local and
	// delivered in this process into the mailboxes' Maildirs, forwarded
	// or discarded as the domain says (vmail.Deliverer), and its
	// mailboxes log in to POP3 and SMTP AUTH as name@domain (after Auth,
	// for names without '@'). The flags NoPOP and NoSMTP refuse those
	// logins; NoRelay changes nothing, since no login here opens relaying
	// to the client's address as vpopmail's roaming users did. A domain
	// the Manager learns while the System runs (another process added it)
	// is accepted once the Manager's cache sees it. A domain of
	// Routing.Locals stays the local users'. LoadHome opens the home's
	// (OpenVirtual) when it has vmail/ or control/vmaildb. Nil means none.
	Virtual *vmail.Manager
	// SMTP is the policy of the SMTP servers: who may relay, which
	// domains are accepted, the servers' limits.
	SMTP SMTPPolicy
	// Remote is the SMTP client of remote deliveries, copied by New and
	// Reload: routes to smarthosts (with AUTH and a TLS policy per
	// route), timeouts, connection reuse (a Pool), the resolver. Nil
	// means a zero Client (MX lookups through /etc/resolv.conf, port 25,
	// opportunistic STARTTLS). Empty Hostname means Config.Hostname;
	// nil Logger means the System's; nil TCPTO one of the System's own
	// that outlives reloads.
	Remote *smtpclient.Client
	// TLS, when set, is offered by STARTTLS on the SMTP ports and STLS on
	// POP3; SMTP AUTH is offered only after STARTTLS. Use GetCertificate
	// to change certificates without a reload.
	TLS *tls.Config
	// Listeners are where Run serves; a nil listener is not served.
	// Listeners.Submissions and Listeners.POP3S need TLS.
	Listeners Listeners
	// Rules are tcprules databases (tcprules(1): tcpserver's -x cdb), by
	// listener role: RoleSMTP ("smtp"), RoleSubmission, RoleSubmissions,
	// RolePOP3, RolePOP3S, RoleLMTP (another key is an error). A
	// listener's rules refuse clients and set their environment
	// (RELAYCLIENT, DATABYTES, RBLSMTPD, ... for the SMTP servers); the
	// file is looked at for each connection, so it may be rebuilt at any
	// time. LoadHome gives every role control/tcp.ROLE.cdb. A role
	// without rules, or whose file does not exist, allows every client,
	// without variables. Serve reads the paths when it starts.
	Rules map[string]string
	// ProxyFrom are the load balancers trusted to send a PROXY protocol
	// header (HAProxy's v1 or v2) on every listener: a connection from
	// one of them must start with one (or it is closed), and the client
	// address it gives is the client's for the rules, RelayClients, the
	// limits per client, the logs and the Received line. Connections from
	// elsewhere are served as themselves, whatever they send. LoadHome
	// reads control/proxyfrom. Nil trusts none. Serve reads it when it
	// starts.
	ProxyFrom []netip.Prefix
	// DNS are the recursive DNS servers ("address:port") that remote
	// delivery and the DNS lists ask, in order, when Remote.Resolver and
	// DNSBL.Resolver are nil; empty means those of /etc/resolv.conf.
	DNS []string
	// DNSBL, when set, is rblsmtpd in front of the SMTP port (not of
	// submission): a client its DNS lists name gets rblsmtpd's
	// conversation, whose every RCPT is refused with the list's text.
	DNSBL *smtpserver.DNSBL

	// Options are the settings shared with Open: the default delivery,
	// loggers, spawned deliveries, the grace period of a stop.
	Options

	// home is the directory LoadHome read, "" for a Config built in Go.
	home string
	// assign is Users when it is users/cdb (LoadHome): the recipient
	// check then knows the catch-all alias user.
	assign *assign.Users
	// ownVirtual is set when LoadHome opened Virtual: the System closes
	// its store.
	ownVirtual bool
	// lazySMTP is set by Open: the SMTP policy is read from home when a
	// server is first made, so that a program running only the queue
	// (qmail-send) never depends on qmail-smtpd's files.
	lazySMTP bool
}

// SMTPPolicy is what the SMTP servers accept and from whom.
type SMTPPolicy struct {
	// Settings are qmail-smtpd's one-line values (greeting, databytes,
	// timeout, localiphost), fixed for each session when it starts; an
	// empty Hostname means Config.Hostname.
	Settings smtpserver.Settings
	// RcptHosts reports whether mail for a domain is accepted from a
	// client that may not relay (qmail's control/rcpthosts and
	// morercpthosts.cdb: see smtpserver.HostList). Nil means the local
	// domains (Routing.Locals) and the domains of Routing.VirtualDomains,
	// so that a Config written in Go never relays for strangers.
	RcptHosts func(domain string) (bool, error)
	// BadMailFrom refuses envelope senders (control/badmailfrom: see
	// smtpserver.AddressList). Nil refuses none.
	BadMailFrom func(addr string) bool
	// RelayClients may relay through the SMTP port, as clients given
	// RELAYCLIENT by tcp.smtp: those whose address is in one of these
	// prefixes, the address a trusted balancer's PROXY header gave
	// (Config.ProxyFrom) when there was one. (Clients that authenticate
	// may always relay.)
	RelayClients []netip.Prefix
	// MaxConns is the number of sessions each server runs at once (the
	// control file concurrencyincoming); 0 means the servers' default,
	// 1000.
	MaxConns int
	// MinFree is the free space in bytes the queue's file system must
	// keep for a new transaction to start (control/queueminfree); 0
	// means one and a half times the message size limit, or 64 MiB
	// when there is none; negative means no reserve (a few free inodes
	// are still required).
	MinFree int64

	// release closes what the policy keeps open (morercpthosts.cdb).
	release func() error
}

// ErrNoUser is what a Users lookup wraps when no user takes the local
// part: the recipient is refused at RCPT, and a message for it bounced.
var ErrNoUser = errors.New("mta: no mailbox here by that name")

// ErrNoControls is qmail-send's "unable to read controls": neither
// control/locals nor control/me exists, so no domain would be local.
var ErrNoControls = errors.New("mta: neither control/locals nor control/me exists")

// Routing reads what qmail-send routes by: control/locals
// (default: me; neither is ErrNoControls), percenthack, virtualdomains and
// envnoathost (default: me, else the literal "envnoathost").
func Routing(d control.Dir) (queue.Routing, error) {
	var r queue.Routing
	locals, ok, err := d.ListDefault("locals", true)
	if err != nil {
		return r, fmt.Errorf("mta: %w", err)
	}
	if !ok {
		return r, ErrNoControls
	}
	r.Locals = locals
	if r.PercentHack, _, err = d.List("percenthack"); err != nil {
		return r, fmt.Errorf("mta: %w", err)
	}
	vd, _, err := d.List("virtualdomains")
	if err != nil {
		return r, fmt.Errorf("mta: %w", err)
	}
	// control.List has already dropped comments and blank lines; the
	// parser drops lines without a colon, as qmail's constmap does.
	if r.VirtualDomains, err = queue.ParseVirtualDomains(strings.NewReader(strings.Join(vd, "\n"))); err != nil {
		return r, fmt.Errorf("mta: virtualdomains: %w", err)
	}
	if r.EnvNoAtHost, err = d.LineDefault("envnoathost", true, "envnoathost"); err != nil {
		return r, fmt.Errorf("mta: %w", err)
	}
	return r, nil
}

// Bounce reads the bounce settings: control/bouncefrom, bouncehost,
// doublebounceto, doublebouncehost and the bouncemaxbytes extension, with
// qmail's defaults.
func Bounce(d control.Dir) (queue.Bounce, error) {
	var b queue.Bounce
	var err error
	if b.From, err = d.LineDefault("bouncefrom", false, "MAILER-DAEMON"); err != nil {
		return b, fmt.Errorf("mta: %w", err)
	}
	if b.Host, err = d.LineDefault("bouncehost", true, "bouncehost"); err != nil {
		return b, fmt.Errorf("mta: %w", err)
	}
	to, ok, err := d.Line("doublebounceto")
	if err != nil {
		return b, fmt.Errorf("mta: %w", err)
	}
	switch {
	case !ok:
		b.DoubleTo = "postmaster"
	case to == "":
		b.DoubleToEmpty = true
	default:
		b.DoubleTo = to
	}
	if b.DoubleHost, err = d.LineDefault("doublebouncehost", true, "doublebouncehost"); err != nil {
		return b, fmt.Errorf("mta: %w", err)
	}
	if b.MaxBytes, err = d.Int("bouncemaxbytes", 0); err != nil {
		return b, fmt.Errorf("mta: %w", err)
	}
	return b, nil
}

// Scheduling holds the scheduler's numeric control files.
type Scheduling struct {
	ConcurrencyLocal, ConcurrencyRemote int
	// ConcurrencyDomain limits the remote deliveries in progress to one
	// domain (control/concurrencydomain); 0 means no limit, as in qmail.
	ConcurrencyDomain int
	Lifetime          time.Duration
}

// ReadScheduling reads control/concurrencylocal (10), concurrencyremote (20),
// queuelifetime (604800 s) and concurrencydomain (0: no limit). A concurrency of 0 holds the channel, as in
// qmail.
func ReadScheduling(d control.Dir) (Scheduling, error) {
	var s Scheduling
	cl, err := d.Int("concurrencylocal", 10)
	if err != nil {
		return s, fmt.Errorf("mta: %w", err)
	}
	cr, err := d.Int("concurrencyremote", 20)
	if err != nil {
		return s, fmt.Errorf("mta: %w", err)
	}
	lt, err := d.Int("queuelifetime", 604800)
	if err != nil {
		return s, fmt.Errorf("mta: %w", err)
	}
	cd, err := d.Int("concurrencydomain", 0)
	if err != nil {
		return s, fmt.Errorf("mta: %w", err)
	}
	s.ConcurrencyDomain = int(min(max(cd, 0), queue.MaxConcurrency))
	s.ConcurrencyLocal, s.ConcurrencyRemote = channel(cl), channel(cr)
	s.Lifetime = time.Duration(lt) * time.Second
	return s, nil
}

// channel maps qmail's concurrency value to the Scheduler's: qmail's 0
// (hold) is the Scheduler's negative value.
func channel(n int64) int {
	if n <= 0 {
		return -1
	}
	if n > queue.MaxConcurrency {
		return queue.MaxConcurrency
	}
	return int(n)
}

// Remote reads what qmail-remote reads into c: control/helohost (default
// me), smtproutes, timeoutconnect and timeoutremote.
func Remote(d control.Dir, c *smtpclient.Client) error {
	var err error
	if c.Hostname, err = d.LineDefault("helohost", true, ""); err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	f, err := os.Open(d.Path("smtproutes"))
	switch {
	case err == nil:
		c.Routes, err = smtpclient.ParseRoutes(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("mta: smtproutes: %w", err)
		}
	case errors.Is(err, os.ErrNotExist):
		c.Routes = nil
	default:
		return fmt.Errorf("mta: %w", err)
	}
	tc, err := d.Int("timeoutconnect", 60)
	if err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	tr, err := d.Int("timeoutremote", 1200)
	if err != nil {
		return fmt.Errorf("mta: %w", err)
	}
	c.Timeouts.Connect = time.Duration(max(tc, 1)) * time.Second
	c.Timeouts.Remote = time.Duration(max(tr, 1)) * time.Second
	return nil
}
