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

// SMTPD applies qmail-smtpd's control files (smtpd.md §3) to srv: me,
// smtpgreeting, localiphost, rcpthosts with morercpthosts.cdb, badmailfrom,
// databytes, timeoutsmtpd. It fails, like qmail-smtpd's "421 unable to read
// controls", when a file cannot be read or when neither smtpgreeting nor me
// exists. With no rcpthosts, srv refuses relaying (smtpserver's safe default)
// unless openRelay is set, which gives qmail's behaviour. The returned close
// releases morercpthosts.cdb.
func (d Dir) SMTPD(srv *smtpserver.Server, openRelay bool) (close func() error, err error) {
	close = func() error { return nil }
	me, meOK, err := d.Me()
	if err != nil {
		return close, err
	}
	greeting, ok, err := d.Line("smtpgreeting")
	if err != nil {
		return close, err
	}
	if !ok {
		if !meOK {
			return close, errors.New("control: neither smtpgreeting nor me exists")
		}
		greeting = me
	}
	srv.Hostname = me
	srv.Greeting = greeting
	if srv.LocalIPHost, err = d.LineDefault("localiphost", true, ""); err != nil {
		return close, err
	}
	if srv.LocalIPHost == "" {
		// qmail: no localiphost and no me: domain literals are not rewritten.
		srv.IsLocalIP = func(netip.Addr) bool { return false }
	}
	timeout, err := d.Int("timeoutsmtpd", 1200)
	if err != nil {
		return close, err
	}
	if timeout <= 0 {
		timeout = 1
	}
	srv.Timeout = time.Duration(timeout) * time.Second
	if srv.MaxMessageBytes, err = d.Int("databytes", 0); err != nil {
		return close, err
	}
	bmf, ok, err := d.List("badmailfrom")
	if err != nil {
		return close, err
	}
	if ok {
		srv.BadMailFrom = smtpserver.AddressList(bmf)
	}
	rh, ok, err := d.List("rcpthosts")
	if err != nil {
		return close, err
	}
	if !ok {
		srv.OpenRelay = openRelay
		return close, nil
	}
	var more func(string) (bool, error)
	mrh, err := cdb.Open(d.Path("morercpthosts.cdb"))
	switch {
	case err == nil:
		more = func(k string) (bool, error) { return mrh.Has([]byte(k)) }
		close = mrh.Close
	case errors.Is(err, fs.ErrNotExist):
	default:
		return close, fmt.Errorf("control: morercpthosts.cdb: %w", err)
	}
	srv.RcptHosts = smtpserver.HostList(rh, more)
	return close, nil
}

// QueueProgram is the qmail-queue program clients run: $QMAILQUEUE when
// set, else QMAILHOME/bin/qmail-queue (queue.md §2.1).
func (d Dir) QueueProgram() string {
	if q := os.Getenv("QMAILQUEUE"); q != "" {
		return q
	}
	return d.Home + "/bin/qmail-queue"
}
