package mta

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/autorespond"
	"github.com/qmailkit/qmailkit/pop3"
	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/smtpserver"
	"github.com/qmailkit/qmailkit/vmail"
)

// Virtual domains (Config.Virtual): their mail is accepted as the
// rcpthosts' is, checked at RCPT, routed as local and delivered in this
// process by a vmail.Deliverer, and their mailboxes log in to POP3 and
// SMTP AUTH as name@domain.

// virtualTimeout bounds a lookup in the virtual store made where the
// caller gives no context (rcpthosts).
const virtualTimeout = 30 * time.Second

// virtualSet is the System's virtual mailboxes: Config.Virtual and its
// deliverer, swapped by Reload.
type virtualSet struct {
	m *vmail.Manager
	d *vmail.Deliverer
}

// Virtual returns the System's virtual mailboxes (Config.Virtual, as
// Reload and ReloadHome last set it; for a home, the Manager Open opened),
// nil when it has none: what a web admin or the admin commands of the
// same process manage.
func (s *System) Virtual() *vmail.Manager {
	if v := s.virtual.Load(); v != nil {
		return v.m
	}
	return nil
}

// newVirtual makes the virtualSet of m, nil for none.
func (s *System) newVirtual(m *vmail.Manager) *virtualSet {
	if m == nil {
		return nil
	}
	return &virtualSet{m: m, d: &vmail.Deliverer{
		Manager:   m,
		Injector:  s.Queue,
		Maildir:   s.Local.Deliverer.Maildir,
		Responder: s.responder(),
		Logger:    s.logger.With("part", "vmail"),
	}}
}

// domainOf returns the domain of addr, "" when it has none.
func domainOf(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return ""
	}
	return strings.ToLower(addr[at+1:])
}

// localSet is the set of r's local domains, lower case.
func localSet(r queue.Routing) *map[string]bool {
	m := make(map[string]bool, len(r.Locals))
	for _, d := range r.Locals {
		m[strings.ToLower(d)] = true
	}
	return &m
}

// virtualDomain reports whether domain is a virtual domain (or an alias
// domain) of Config.Virtual; a domain found is made local in the routing.
// A domain of the configured locals (control/locals) is not: it stays
// the local users', and needs no look-up in the store.
func (s *System) virtualDomain(ctx context.Context, domain string) (bool, error) {
	ok, err := s.inVirtual(ctx, s.virtual.Load(), domain)
	if ok {
		s.routeVirtual(domain)
	}
	return ok, err
}

// inVirtual reports whether domain is a domain (or an alias domain) of
// v's store, not one of the configured locals; v nil has none.
func (s *System) inVirtual(ctx context.Context, v *virtualSet, domain string) (bool, error) {
	if v == nil || domain == "" || (*s.locals.Load())[domain] {
		return false, nil
	}
	ok, err := v.m.IsDomain(ctx, domain)
	if err != nil {
		return false, fmt.Errorf("mta: virtual domains: %w", err)
	}
	return ok, nil
}

// rcptHostVirtual is the part of rcpthosts the virtual domains add.
func (s *System) rcptHostVirtual(ctx context.Context, domain string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, virtualTimeout)
	defer cancel()
	return s.virtualDomain(ctx, domain)
}

// withVirtual returns r with the virtual domains known now (and those
// routeVirtual added since) among its locals, so that the scheduler
// delivers their mail here. A domain added later is added when its first
// recipient is accepted (routeVirtual); the remote channel hands any it
// still gets to the virtual deliverer.
func (s *System) withVirtual(r queue.Routing, v *virtualSet) queue.Routing {
	if v == nil {
		return r
	}
	ctx, cancel := context.WithTimeout(context.Background(), virtualTimeout)
	defer cancel()
	doms, err := v.m.Domains(ctx)
	if err != nil {
		s.logger.Warn("mta: cannot list the virtual domains; they are routed as their first message comes", "err", err)
	}
	locals := slices.Clone(r.Locals)
	for _, d := range doms {
		locals = append(locals, d.Name)
		locals = append(locals, d.Aliases...)
	}
	r.Locals = locals
	return r
}

// routeVirtual makes domain local in the scheduler's routing when it is
// not yet: a virtual domain added while the System runs.
func (s *System) routeVirtual(domain string) {
	if slices.Contains(s.routing.Load().Locals, domain) {
		return
	}
	s.vmu.Lock()
	defer s.vmu.Unlock()
	cur := s.routing.Load()
	if slices.Contains(cur.Locals, domain) {
		return
	}
	r := *cur
	r.Locals = append(slices.Clone(cur.Locals), domain)
	s.routing.Store(&r)
	s.Scheduler.Reload(r)
}

// checkVirtual is the RCPT check of a recipient in a virtual domain:
// done is false when the recipient is not in one.
func (s *System) checkVirtual(ctx context.Context, to string) (done bool, err error) {
	v := s.virtual.Load()
	if v == nil {
		return false, nil
	}
	ok, err := s.virtualDomain(ctx, domainOf(to))
	if err != nil {
		s.logger.Warn("mta: virtual domains unavailable at RCPT", "err", err)
		return true, smtpserver.Reply{Code: 451, Enhanced: "4.3.0", Text: "temporary failure looking up the mailbox"}
	}
	if !ok {
		return false, nil
	}
	r, err := v.m.Resolve(ctx, to)
	switch {
	case errors.Is(err, vmail.ErrNotFound):
		return true, smtpserver.Reply{Code: 550, Enhanced: "5.1.1", Text: "sorry, no mailbox here by that name"}
	case err != nil:
		s.logger.Warn("mta: virtual mailbox lookup failed at RCPT", "err", err)
		return true, smtpserver.Reply{Code: 451, Enhanced: "4.3.0", Text: "temporary failure looking up the mailbox"}
	case r.Kind == vmail.Unknown:
		return true, smtpserver.Reply{Code: 550, Enhanced: "5.1.1", Text: "sorry, no mailbox here by that name"}
	case r.Kind == vmail.IsMailbox && r.Mailbox.Flags&vmail.BounceMail != 0:
		// vdelivermail bounces it later; refusing now spares the bounce.
		return true, smtpserver.Reply{Code: 550, Enhanced: "5.2.1", Text: "account is locked email bounced " + r.Address}
	}
	return true, nil
}

// deliverVirtual delivers to recipient, an address of a virtual domain,
// with the virtual deliverer.
func (s *System) deliverVirtual(ctx context.Context, v *virtualSet, d queue.Delivery, recipient string) queue.Result {
	ctx, cancel := cuttable(ctx)
	defer cancel()
	res, err := v.d.Deliver(ctx, d.Sender, recipient, d.Message)
	s.Metrics.delivered(false, err)
	if err != nil {
		text := err.Error()
		if de := (*vmail.DeliveryError)(nil); errors.As(err, &de) {
			text = de.Text
		}
		if errors.Is(context.Cause(ctx), errGraceOver) {
			s.logger.Warn("mta: virtual delivery cut at the end of the grace period; deferred", "recipient", recipient, "id", d.ID)
		}
		return queue.Result{Report: text + "\n", Err: err}
	}
	return queue.Result{Report: res.Report}
}

// virtualRecipient reports whether the local delivery d is for a virtual
// domain; a failure to tell is a temporary failure of the delivery.
func (s *System) virtualRecipient(ctx context.Context, rcpt string) (*virtualSet, bool, error) {
	v := s.virtual.Load()
	ok, err := s.inVirtual(ctx, v, domainOf(rcpt))
	return v, ok, err
}

// deliverRemoteVirtual delivers, in place of the remote channel, a
// delivery to a virtual domain that the routing did not know yet as
// local; handled is false for any other domain.
func (s *System) deliverRemoteVirtual(ctx context.Context, d queue.Delivery) (out []queue.Result, handled bool) {
	v, ok, err := s.virtualRecipient(ctx, d.Recipients[0])
	if err == nil && !ok {
		return nil, false
	}
	out = make([]queue.Result, len(d.Recipients))
	for i, rcpt := range d.Recipients {
		if err != nil {
			out[i] = queue.Result{Report: "temporary failure looking up the virtual domains (#4.3.0)\n", Err: err}
			continue
		}
		out[i] = s.deliverVirtual(ctx, v, d, rcpt)
	}
	return out, true
}

// authenticateVirtual is the login chain: a name with '@' is a virtual
// mailbox's; any other is first Config.Auth's (users/poppasswd), then,
// when it has '%' or '/' (vpopmail's other forms of name@domain), a
// virtual mailbox's. A virtual mailbox's user gets the process's uid and
// gid: its Maildir is the account's, read in this process.
func (s *System) authenticateVirtual(ctx context.Context, a auth.Authenticator, c auth.Credentials) (*auth.User, error) {
	v := s.virtual.Load()
	virtual := v != nil && strings.ContainsAny(c.User, "@%/")
	if a != nil && (v == nil || !strings.Contains(c.User, "@")) {
		u, err := a.Authenticate(ctx, c)
		if err == nil || !virtual || !errors.Is(err, auth.ErrFailed) {
			return u, err
		}
	}
	if !virtual {
		return nil, fmt.Errorf("mta: no users: %w", auth.ErrFailed)
	}
	u, err := v.m.Authenticate(ctx, c)
	if err != nil {
		return nil, err
	}
	u.UID, u.GID = os.Geteuid(), os.Getegid()
	return u, nil
}

// virtualMailboxes makes srv open the Maildirs of virtual mailboxes
// (users named name@domain) in this process, whatever Options.Mailboxes
// does for the others: they are the account's.
func (s *System) virtualMailboxes(srv *pop3.Server) {
	other := srv.OpenMailbox
	if other == nil {
		return // the server's own opening is in-process already
	}
	srv.OpenMailbox = func(ctx context.Context, u *pop3.User) (pop3.Mailbox, error) {
		if s.virtual.Load() == nil || !strings.Contains(u.Name, "@") || u.Maildir == "" {
			return other(ctx, u)
		}
		return pop3.OpenMaildir(filepath.Clean(u.Maildir), pop3.MaildirOptions{User: u, Lock: true, WireSizes: true, Seen: srv.SeenOnRetr, MissingOK: true, MissingEmpty: !srv.Compat, Now: srv.Now})
	}
}

// responder is the virtual mailboxes' autoresponder: package
// autorespond with the mailbox's Autoresponder, its log of senders in
// USERDIR/vacation (where qmailadmin had autorespond keep it), the reply
// queued with an empty envelope sender.
func (s *System) responder() vmail.Responder {
	return vacation{logger: s.logger.With("part", "autorespond")}
}

// vacation is a vmail.Responder through package autorespond.
type vacation struct {
	logger *slog.Logger
}

// Respond answers r.Message as r.Mailbox's Autoresponder says: at most
// once per sender per Interval (7 days when 0), never to lists, bulk or
// automatic mail, nor to a bounce.
func (v vacation) Respond(ctx context.Context, r vmail.Response, inj vmail.Injector) error {
	ar := r.Mailbox.Autoresponder
	dir := filepath.Join(r.Mailbox.Dir, "vacation")
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("mta: autoresponder: %w", err)
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("mta: autoresponder: %s is not a directory", dir)
	}
	resp := &autorespond.Responder{
		Subject:   ar.Subject,
		Body:      ar.Body,
		From:      r.Mailbox.Address(),
		Interval:  ar.Interval,
		Max:       1,
		Dir:       dir,
		Since:     ar.From,
		Until:     ar.Until,
		Forwarder: inj,
		Logger:    v.logger,
	}
	_, err := resp.Respond(ctx, r.Message, autorespond.Envelope{Sender: r.Sender, Recipient: r.Recipient})
	return err
}
