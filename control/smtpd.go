package control

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"time"

	"github.com/qmailkit/qmailkit/internal/cdb"
	"github.com/qmailkit/qmailkit/smtpserver"
)

// SMTPD applies qmail-smtpd's control files to srv: the one-line files
// of [Dir.SMTPSettings] and the lists of [Dir.SMTPPolicy].
// It fails, like qmail-smtpd's "421 unable to read controls", when a file
// cannot be read or when neither smtpgreeting nor me exists. The returned
// close releases morercpthosts.cdb.
func (d Dir) SMTPD(srv *smtpserver.Server, openRelay bool) (close func() error, err error) {
	set, err := d.SMTPSettings()
	if err != nil {
		return func() error { return nil }, err
	}
	srv.Hostname = set.Hostname
	srv.Greeting = set.Greeting
	srv.LocalIPHost = set.LocalIPHost
	srv.MaxMessageBytes = set.MaxMessageBytes
	srv.Timeout = set.Timeout
	if set.LocalIPHost == "" {
		// qmail: no localiphost and no me: domain literals are not rewritten.
		srv.IsLocalIP = func(netip.Addr) bool { return false }
	}
	return d.SMTPPolicy(srv, openRelay)
}

// SMTPSettings reads qmail-smtpd's one-line control files: me,
// smtpgreeting (default me), localiphost (default me), timeoutsmtpd
// (default 1200 s; values ≤ 0 become 1 s) and databytes (no file: 0, the
// server's default; a file whose value is 0, as qmail reads it, so junk
// too: -1, no limit). It fails when a file cannot be read or when neither smtpgreeting
// nor me exists. LocalIPHost is empty when neither localiphost nor me
// exists: qmail then rewrites no domain literal, which a server does with
// an IsLocalIP that always says false (SMTPD sets one).
func (d Dir) SMTPSettings() (smtpserver.Settings, error) {
	var set smtpserver.Settings
	me, meOK, err := d.Me()
	if err != nil {
		return set, err
	}
	greeting, ok, err := d.Line("smtpgreeting")
	if err != nil {
		return set, err
	}
	if !ok {
		if !meOK {
			return set, errors.New("control: neither smtpgreeting nor me exists")
		}
		greeting = me
	}
	localIPHost, err := d.LineDefault("localiphost", true, "")
	if err != nil {
		return set, err
	}
	timeout, err := d.Int("timeoutsmtpd", 1200)
	if err != nil {
		return set, err
	}
	if timeout <= 0 {
		timeout = 1
	}
	databytes, err := d.Int("databytes", 0)
	if err != nil {
		return set, err
	}
	if databytes == 0 {
		// A databytes file saying 0 is qmail's "no limit", which
		// smtpserver spells as a negative value; with no file, 0 leaves
		// the server's own default (unlimited in Compat mode).
		if _, ok, err := d.Line("databytes"); err != nil {
			return set, err
		} else if ok {
			databytes = -1
		}
	}
	return smtpserver.Settings{
		Hostname:        me,
		Greeting:        greeting,
		LocalIPHost:     localIPHost,
		MaxMessageBytes: databytes,
		Timeout:         time.Duration(timeout) * time.Second,
	}, nil
}

// SMTPLists are qmail-smtpd's list files as functions: RcptHosts from
// rcpthosts with morercpthosts.cdb (nil when rcpthosts does not exist),
// BadMailFrom from badmailfrom (nil when it does not exist). Close
// releases morercpthosts.cdb.
type SMTPLists struct {
	RcptHosts   func(domain string) (bool, error)
	BadMailFrom func(addr string) bool
	Close       func() error
}

// SMTPLists reads badmailfrom, rcpthosts and morercpthosts.cdb. It fails
// when a file cannot be read; the lists' Close is then already done.
func (d Dir) SMTPLists() (SMTPLists, error) {
	l := SMTPLists{Close: func() error { return nil }}
	bmf, ok, err := d.List("badmailfrom")
	if err != nil {
		return l, err
	}
	if ok {
		l.BadMailFrom = smtpserver.AddressList(bmf)
	}
	rh, ok, err := d.List("rcpthosts")
	if err != nil || !ok {
		return l, err
	}
	var more func(string) (bool, error)
	mrh, err := cdb.Open(d.Path("morercpthosts.cdb"))
	switch {
	case err == nil:
		more = func(k string) (bool, error) { return mrh.Has([]byte(k)) }
		l.Close = mrh.Close
	case errors.Is(err, fs.ErrNotExist):
	default:
		return l, fmt.Errorf("control: morercpthosts.cdb: %w", err)
	}
	l.RcptHosts = smtpserver.HostList(rh, more)
	return l, nil
}

// SMTPPolicy applies qmail-smtpd's list files to srv (its
// BadMailFromContext and RcptHostsContext hooks): badmailfrom, and
// rcpthosts with morercpthosts.cdb. It fails when a file cannot be read.
// With no rcpthosts, srv refuses relaying (smtpserver's safe default)
// unless openRelay is set, which gives qmail's behaviour. The returned
// close releases morercpthosts.cdb.
func (d Dir) SMTPPolicy(srv *smtpserver.Server, openRelay bool) (close func() error, err error) {
	l, err := d.SMTPLists()
	if err != nil {
		return l.Close, err
	}
	srv.BadMailFromContext = smtpserver.BadMailFromHook(l.BadMailFrom)
	if l.RcptHosts == nil {
		srv.OpenRelay = openRelay
		return l.Close, nil
	}
	srv.RcptHostsContext = smtpserver.RcptHostsHook(l.RcptHosts)
	return l.Close, nil
}

// QueueProgram is the qmail-queue program clients run: $QMAILQUEUE when
// set, else QMAILHOME/bin/qmail-queue.
func (d Dir) QueueProgram() string {
	if q := os.Getenv("QMAILQUEUE"); q != "" {
		return q
	}
	return d.Home + "/bin/qmail-queue"
}
