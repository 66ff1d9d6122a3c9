// Command vchkpw checks a login against the virtual mailboxes of a qmail
// home (package vmail), with the interface of djb's checkpassword and of
// vpopmail's vchkpw, so that it fits between qmail-popup and
// qmail-pop3d, after an SMTP server's AUTH, or under Dovecot as its
// checkpassword passdb:
//
//	qmail-popup HOST vchkpw [-home DIR] [-delay D] qmail-pop3d Maildir
//	passdb { driver = checkpassword  args = /usr/local/bin/vchkpw }   (dovecot.conf)
//
// It reads "login\0password\0timestamp\0" from descriptor 3 (at most 512
// bytes; Dovecot's "login\0password\0" without the timestamp is taken
// too). The login is name@domain, or vpopmail's name%domain and
// name/domain; a login without a domain takes $VPOPMAIL_DOMAIN's. The
// store is the home's (QMAILHOME, from -home, else $QMAILHOME, else
// /var/qmail): vmail/vmail.db, or the PostgreSQL database named by
// control/vmaildb.
//
// The service a mailbox's flags may refuse (NoPOP, NoSMTP, NoIMAP) is
// $SERVICE's when set (Dovecot sets it: imap, pop3, smtp, ...), else
// the one of $TCPLOCALPORT as vchkpw tells it (25, 465, 587: SMTP; 110,
// 995: POP3; 143, 993: IMAP), else SMTP when the program's name contains
// "true" (an SMTP server's AUTH runs "vchkpw /bin/true"), IMAP when it
// contains "imap", and POP3 otherwise.
//
// On success it sets USER (the mailbox's name, as vchkpw does; under
// Dovecot, that is with $SERVICE set, the whole address, Dovecot's user
// name), HOME (the mailbox's directory), SHELL=NOLOGIN and VPOPUSER (the
// login as typed, lower case), changes into HOME and executes the rest of
// its arguments. Run as root it first becomes the mail system's account
// (the owner of QMAILHOME/queue, who owns the virtual Maildirs), except
// under Dovecot, which refuses a checkpassword program that changes its
// uid: there it stays as it is and passes the account as Dovecot's
// userdb_uid and userdb_gid (in EXTRA, which Dovecot's checkpassword-reply
// reads).
//
// Exit 1: the login is refused (unknown mailbox, wrong password, a
// service its flags refuse, more than 512 bytes); 2: usage, or descriptor
// 3 malformed; 111: a temporary failure (the store cannot be read). The
// many statuses of vpopmail's vchkpw collapse into these, which is all
// qmail-popup and Dovecot tell apart.
//
// Refusals and failures are logged to syslog (facility mail, ident
// vchkpw), as vpopmail's vchkpw logs them, never on standard error, which
// inetd connects to the client; only usage errors go there.
//
// # Security
//
// Every refusal is answered at the same moment: -delay (default 1s)
// after the start, whatever the check took, so that neither the time of
// the password check nor an unknown name shows, and each guess costs the
// guesser that long on its connection (qmail-popup and Dovecot run one
// check per connection). The delay is per process: it keeps no state
// across connections, and a client opening many connections at once is
// limited by the server's connection limits, as with checkpassword.
// The password is checked against its hash (vmail.Manager.Authenticate),
// and an unknown mailbox costs one hash too.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/mta"
	"github.com/qmailkit/qmailkit/mta/privsep"
	"github.com/qmailkit/qmailkit/vmail"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// maxInput is the most read from descriptor 3, as checkpassword reads.
const maxInput = 512

func run(args []string, stderr io.Writer) int {
	start := time.Now()
	logw := syslogWriter()
	defer logw.Close()
	logf := func(format string, a ...any) { fmt.Fprintf(logw, format, a...) }
	fs := flag.NewFlagSet("vchkpw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	homeFlag := fs.String("home", "", "the qmail home (default $QMAILHOME, else /var/qmail)")
	delay := fs.Duration("delay", time.Second, "a refusal is answered this long after the start")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	args = fs.Args()
	if len(args) == 0 {
		fmt.Fprint(stderr, "vchkpw: usage: vchkpw [-home DIR] [-delay D] prog [args...]\n")
		return 2
	}
	refuse := func() int {
		time.Sleep(time.Until(start.Add(*delay)))
		return 1
	}

	fd3 := os.NewFile(3, "fd3")
	buf := make([]byte, maxInput+1)
	n, err := io.ReadFull(fd3, buf)
	fd3.Close()
	switch {
	case err == nil:
		clear(buf)
		return refuse() // more than 512 bytes
	case err != io.EOF && err != io.ErrUnexpectedEOF:
		fmt.Fprintf(stderr, "vchkpw: descriptor 3: %v (vchkpw is run by qmail-popup, an SMTP server or Dovecot)\n", err)
		return 2
	}
	login, password, challenge, ok := parseInput(buf[:n])
	clear(buf)
	if !ok {
		return 2
	}
	service := serviceOf(os.Getenv, args[0])
	tag := "vchkpw-" + string(service)
	remote := os.Getenv("TCPREMOTEIP")
	if login == "" || password == "" {
		logf("%s: null user name or password given %s:%s\n", tag, safe(login), remote)
		return refuse()
	}
	login = strings.ToLower(login)
	full := login
	if !strings.ContainsAny(login, "@%/") {
		dom := os.Getenv("VPOPMAIL_DOMAIN")
		if dom == "" {
			logf("%s: no domain in %s and no VPOPMAIL_DOMAIN:%s\n", tag, safe(login), remote)
			return refuse()
		}
		full = login + "@" + strings.ToLower(dom)
	}

	home := control.Home(*homeFlag, os.Getenv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := mta.OpenVirtual(ctx, home, vmail.Options{Logger: slog.New(slog.NewTextHandler(logw, nil))})
	if err != nil {
		logf("%s: %v\n", tag, err)
		return 111
	}
	defer m.Store().Close()
	cred := auth.Credentials{Service: service, Method: auth.MethodUser, User: full, Secret: password, Challenge: challenge, Env: environ()}
	if ip, err := netip.ParseAddr(remote); err == nil {
		cred.Remote = ip.Unmap()
	}
	u, err := m.Authenticate(ctx, cred)
	if errors.Is(err, auth.ErrFailed) && challenge != "" && service == auth.ServicePOP3 {
		cred.Method = auth.MethodAPOP
		u, err = m.Authenticate(ctx, cred)
	}
	if errors.Is(err, auth.ErrFailed) {
		logf("%s: login failed %s:%s\n", tag, safe(full), remote)
		return refuse()
	}
	if err != nil {
		logf("%s: %v\n", tag, err)
		return 111
	}
	name := u.Name
	if at := strings.LastIndexByte(name, '@'); at > 0 {
		name = name[:at]
	}
	dovecot := os.Getenv("SERVICE") != ""
	env := map[string]string{"USER": name, "HOME": u.Home, "SHELL": "NOLOGIN", "VPOPUSER": login}
	uid, gid := u.UID, u.GID
	if uid < 0 {
		uid, gid = os.Getuid(), os.Getgid()
	}
	if dovecot {
		env["USER"] = u.Name
		env["userdb_uid"], env["userdb_gid"] = fmt.Sprint(uid), fmt.Sprint(gid)
		extra := strings.Fields(os.Getenv("EXTRA"))
		env["EXTRA"] = strings.Join(append(extra, "userdb_uid", "userdb_gid"), " ")
	} else if os.Getuid() == 0 {
		if uid <= 0 {
			logf("%s: the virtual mailboxes have no account to run as (QMAILHOME/queue is root's)\n", tag)
			return 111
		}
		if err := privsep.Drop(uid, gid); err != nil {
			logf("%s: %v\n", tag, err)
			return 111
		}
	}
	if err := os.Chdir(u.Home); err != nil {
		logf("%s: %v\n", tag, err)
		return 111
	}
	for k, v := range env {
		os.Setenv(k, v)
	}
	prog, err := exec.LookPath(args[0])
	if err != nil {
		logf("%s: %v\n", tag, err)
		return 111
	}
	m.Store().Close()
	logw.Close()
	err = syscall.Exec(prog, args, os.Environ())
	logf("%s: exec %s: %v\n", tag, prog, err)
	return 111
}

// parseInput splits descriptor 3's data: login, password and timestamp,
// each ended by NUL; a missing timestamp (Dovecot sends none) is empty.
// Anything after the third NUL is ignored, as checkpassword does.
func parseInput(b []byte) (login, password, challenge string, ok bool) {
	var f [3]string
	for i := range f {
		j := strings.IndexByte(string(b), 0)
		if j < 0 {
			return f[0], f[1], "", i == 2 && len(b) == 0
		}
		f[i], b = string(b[:j]), b[j+1:]
	}
	return f[0], f[1], f[2], true
}

// serviceOf tells the service of the login, as the package doc says.
func serviceOf(getenv func(string) string, prog string) auth.Service {
	switch s := strings.ToLower(getenv("SERVICE")); {
	case s == "imap":
		return auth.ServiceIMAP
	case s == "pop3":
		return auth.ServicePOP3
	case s == "smtp" || s == "submission":
		return auth.ServiceSMTP
	case s != "":
		return auth.Service(s) // a service no flag refuses alone
	}
	switch getenv("TCPLOCALPORT") {
	case "25", "465", "587":
		return auth.ServiceSMTP
	case "110", "995":
		return auth.ServicePOP3
	case "143", "993":
		return auth.ServiceIMAP
	}
	switch {
	case strings.Contains(prog, "true"):
		return auth.ServiceSMTP
	case strings.Contains(prog, "imap"):
		return auth.ServiceIMAP
	}
	return auth.ServicePOP3
}

// environ is the process's environment as Credentials.Env.
func environ() map[string]string {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// safe makes a login fit in a log line.
func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// syslogWriter is where vchkpw logs: syslog's mail facility, as
// vpopmail's vchkpw logs, never its standard error, which inetd connects
// to the client. Without a syslog daemon the lines are dropped.
func syslogWriter() io.WriteCloser {
	w, err := syslog.New(syslog.LOG_MAIL|syslog.LOG_NOTICE, "vchkpw")
	if err != nil {
		return nopCloser{io.Discard}
	}
	return w
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
