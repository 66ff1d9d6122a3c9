package mta

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/qmailkit/qmailkit/assign"
	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/pop3"
	"github.com/qmailkit/qmailkit/smtpclient"
	"github.com/qmailkit/qmailkit/smtpserver"
)

// LoadHome reads a qmail home directory (such as /var/qmail) into a
// Config, as qmail's programs read it:
//
//	control/me, locals, percenthack, virtualdomains, envnoathost   Hostname, Routing
//	control/bouncefrom, bouncehost, doublebounceto, doublebouncehost, bouncemaxbytes   Bounce
//	control/concurrencylocal, concurrencyremote, queuelifetime   Scheduling
//	control/concurrencydomain   Scheduling.ConcurrencyDomain (remote deliveries at once to one domain)
//	control/bounceformat   Bounce.DSN: "qmail" (QSBMF, the default) or "dsn" (RFC 3464)
//	control/helohost, smtproutes, timeoutconnect, timeoutremote   Remote
//	control/smtproutes's "relay:port user password" (the qmail-remote AUTH patch's syntax)   AUTH to a smarthost
//	control/tlshosts/HOST.pem, tlshosts/exhaustivelist, notlshosts/HOST (qmail's TLS patch)   Remote.HostTLS
//	control/remotereuse   Remote.Pool: seconds a connection stays open for the next message to its host
//	control/dnsserver   DNS: recursive DNS servers, one address[:port] per line
//	control/dnsbllist   DNSBL: rblsmtpd's zones and options (ZONE, -r ZONE, -a ZONE, -b, -c, -t N), one per line
//	control/smtpgreeting, localiphost, databytes, timeoutsmtpd, rcpthosts,
//	morercpthosts.cdb, badmailfrom, concurrencyincoming, queueminfree   SMTP
//	control/tcp.smtp.cdb, tcp.submission.cdb, tcp.submissions.cdb,
//	tcp.pop3.cdb, tcp.pop3s.cdb, tcp.lmtp.cdb   Rules (by listener role; a missing file allows everyone)
//	control/proxyfrom   ProxyFrom (one address or prefix per line, # comments)
//	control/servercert.pem   TLS (certificate and key, read again when the file changes)
//	users/cdb and the system's passwd   Users (qmail-newu's users/cdb, else qmail-getpw's rules)
//	users/poppasswd   Auth (passwd(5) lines with SHA-crypt or {PLAIN} passwords)
//	queue/   QueueDir
//	vmail/vmail.db, vmail/domains/, control/vmaildb   Virtual (see OpenVirtual), when vmail/ or control/vmaildb exists
//
// A home without control/rcpthosts accepts no domain from clients that may
// not relay (qmail would relay for everyone). opts become the Config's
// Options; an empty Program means home/bin/qmail-local. A file that cannot
// be read or parsed is an error naming it; neither control/locals nor
// control/me is ErrNoControls. Listeners are left to the caller.
func LoadHome(home string, opts Options) (Config, error) {
	cfg, err := loadHome(home, opts, false)
	if err != nil {
		return Config{}, err
	}
	if err := cfg.openVirtual(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// openVirtual opens the home's virtual mailboxes into Virtual, which the
// System made of cfg closes, when the home has them: vmail/ or
// control/vmaildb. A qmail home without either (the qmail-send drop-in's)
// is left as it is.
func (cfg *Config) openVirtual() error {
	if !hasVirtual(cfg.home) {
		return nil
	}
	m, err := openHomeVirtual(cfg.home, cfg.Logger)
	if err != nil {
		return err
	}
	cfg.Virtual, cfg.ownVirtual = m, true
	return nil
}

// loadHome is LoadHome; with lazySMTP the SMTP policy and control/proxyfrom
// are not read (see Config.lazySMTP).
func loadHome(home string, opts Options, lazySMTP bool) (Config, error) {
	home, err := filepath.Abs(home)
	if err != nil {
		return Config{}, fmt.Errorf("mta: %w", err)
	}
	d := control.Dir{Home: home}
	cfg := Config{home: home, QueueDir: filepath.Join(home, "queue"), Options: opts, lazySMTP: lazySMTP}
	if cfg.Routing, err = Routing(d); err != nil {
		return Config{}, err
	}
	me, _, err := d.Me()
	if err != nil {
		return Config{}, fmt.Errorf("mta: %w", err)
	}
	cfg.Hostname = me
	if cfg.Hostname == "" && len(cfg.Routing.Locals) > 0 {
		cfg.Hostname = cfg.Routing.Locals[0]
	}
	if cfg.Bounce, err = Bounce(d); err != nil {
		return Config{}, err
	}
	if cfg.Bounce.DSN, err = readBounceFormat(d); err != nil {
		return Config{}, err
	}
	if cfg.DNS, err = readDNSServers(d); err != nil {
		return Config{}, err
	}
	if opts.DNSServer != "" {
		cfg.DNS = []string{opts.DNSServer}
	}
	if cfg.DNSBL, err = readDNSBL(d); err != nil {
		return Config{}, err
	}
	if cfg.Scheduling, err = ReadScheduling(d); err != nil {
		return Config{}, err
	}
	if cfg.Remote, err = homeRemote(d, opts); err != nil {
		return Config{}, err
	}
	if !lazySMTP {
		if cfg.SMTP, err = ReadSMTPPolicy(d); err != nil {
			return Config{}, err
		}
		// With lazySMTP, Serve reads it (see System.listenerPolicy).
		if cfg.ProxyFrom, err = ReadProxyFrom(d); err != nil {
			return Config{}, err
		}
	}
	cfg.Rules = homeRules(d)
	if cfg.TLS, err = homeTLS(d); err != nil {
		return Config{}, err
	}
	cfg.assign = &assign.Users{CDB: filepath.Join(home, "users", "cdb"), Passwd: assign.SystemPasswd{}}
	cfg.Users = UsersAdapter(cfg.assign)
	cfg.Auth = &pop3.PasswdFile{Path: filepath.Join(home, "users", "poppasswd")}
	if cfg.Program == "" {
		cfg.Program = filepath.Join(home, "bin", "qmail-local")
	}
	return cfg, nil
}

// homeRemote makes the SMTP client of remote deliveries from the control
// files (helohost, smtproutes, timeoutconnect, timeoutremote).
func homeRemote(d control.Dir, opts Options) (*smtpclient.Client, error) {
	c := &smtpclient.Client{
		Resolver:    opts.Resolver,
		Port:        opts.RemotePort,
		QmailCompat: opts.QmailCompat,
	}
	if err := Remote(d, c); err != nil {
		return nil, err
	}
	ht, err := readHostTLS(d)
	if err != nil {
		return nil, err
	}
	if ht != nil {
		c.HostTLS = ht.lookup
	}
	if c.Pool, err = readRemoteReuse(d); err != nil {
		return nil, err
	}
	return c, nil
}

// ReadSMTPPolicy reads qmail-smtpd's control files into an SMTPPolicy:
// me, smtpgreeting, localiphost, databytes and timeoutsmtpd (Settings),
// rcpthosts with morercpthosts.cdb (no rcpthosts: no domain is accepted
// from clients that may not relay), badmailfrom, concurrencyincoming,
// queueminfree. The policy keeps
// morercpthosts.cdb open until the System that uses it is closed or
// reloaded.
func ReadSMTPPolicy(d control.Dir) (SMTPPolicy, error) {
	var p SMTPPolicy
	set, err := d.SMTPSettings()
	if err != nil {
		return p, fmt.Errorf("mta: %w", err)
	}
	p.Settings = set
	lists, err := d.SMTPLists()
	if err != nil {
		lists.Close()
		return p, fmt.Errorf("mta: %w", err)
	}
	release := lists.Close
	p.release = release
	p.RcptHosts, p.BadMailFrom = lists.RcptHosts, lists.BadMailFrom
	if p.RcptHosts == nil {
		p.RcptHosts = func(string) (bool, error) { return false, nil }
	}
	n, err := d.Int("concurrencyincoming", 0)
	if err != nil {
		release()
		return SMTPPolicy{}, fmt.Errorf("mta: %w", err)
	}
	p.MaxConns = int(min(max(n, 0), 1<<20))
	if _, ok, err := d.Line("queueminfree"); err != nil {
		release()
		return SMTPPolicy{}, fmt.Errorf("mta: %w", err)
	} else if ok {
		free, err := d.Int("queueminfree", 0)
		if err != nil {
			release()
			return SMTPPolicy{}, fmt.Errorf("mta: %w", err)
		}
		// A file saying 0 (or less) asks for no reserve at all.
		p.MinFree = max(free, -1)
		if p.MinFree == 0 {
			p.MinFree = -1
		}
	}
	return p, nil
}

// homeTLS returns a server TLS configuration serving
// control/servercert.pem (certificate and key in one file, re-read when it
// changes), or nil when the file does not exist.
func homeTLS(d control.Dir) (*tls.Config, error) {
	path := d.Path("servercert.pem")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("mta: %w", err)
	}
	cr := &smtpserver.CertReloader{CertFile: path, KeyFile: path}
	if _, err := cr.GetCertificate(nil); err != nil {
		return nil, fmt.Errorf("mta: servercert.pem: %w", err)
	}
	return &tls.Config{GetCertificate: cr.GetCertificate, MinVersion: tls.VersionTLS12}, nil
}
