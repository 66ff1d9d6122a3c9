package webadmin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/vmail"
)

// adminMailbox returns the mailbox of the request's path for an
// administrator's page: 404 when there is none, 403 when the session may
// not manage it (a system administrator's mailbox, for a domain
// administrator).
func (s *Server) adminMailbox(w http.ResponseWriter, r *http.Request, who *identity) (vmail.Mailbox, bool) {
	domain, name := pathDomain(r), strings.ToLower(r.PathValue("name"))
	if name == "" || len(name) > maxLocal {
		s.fail(w, r, http.StatusNotFound, "No such mailbox.")
		return vmail.Mailbox{}, false
	}
	m, err := s.opts.Manager.Mailbox(r.Context(), name+"@"+domain)
	if errors.Is(err, vmail.ErrNotFound) || err == nil && (m.Domain != domain || m.Name != name) {
		s.fail(w, r, http.StatusNotFound, "No such mailbox.")
		return m, false
	}
	if err != nil {
		s.failure(w, r, err)
		return m, false
	}
	if !who.mayMailbox(m) {
		s.forbidden(w, r, who)
		return m, false
	}
	return m, true
}

// mailboxForms are the forms of a mailbox's page filled from its record.
func mailboxForms(m vmail.Mailbox) map[string]*Form {
	settings := newForm(nil)
	settings.Values["realname"] = m.RealName
	settings.Values["quota"] = formatQuota(m.Quota)
	for _, fl := range flagNames {
		if m.Flags&fl.Flag != 0 {
			settings.Values["flag_"+fl.Name] = "on"
		}
	}
	fwd := newForm(nil)
	fwd.Values["to"] = strings.Join(m.Forward.To, "\n")
	if m.Forward.KeepCopy {
		fwd.Values["keep"] = "on"
	}
	a := m.Autoresponder
	ar := newForm(nil)
	if a.Enabled {
		ar.Values["enabled"] = "on"
	}
	ar.Values["subject"] = a.Subject
	ar.Values["body"] = a.Body
	if a.Interval > 0 {
		ar.Values["days"] = strconv.FormatInt(int64(a.Interval/(24*time.Hour)), 10)
	}
	if !a.From.IsZero() {
		ar.Values["from"] = a.From.UTC().Format(time.DateOnly)
	}
	if !a.Until.IsZero() {
		// Until is the end of the last day of absence: the form shows that day.
		ar.Values["until"] = a.Until.Add(-time.Nanosecond).UTC().Format(time.DateOnly)
	}
	return map[string]*Form{"settings": settings, "forward": fwd, "autoresponder": ar, "password": newForm(nil), "delete": newForm(nil)}
}

// showMailbox shows a mailbox's page, an administrator's (base is its
// path) or the session's own (/me), with failed, if any, in place of the
// form of the same name.
func (s *Server) showMailbox(w http.ResponseWriter, r *http.Request, who *identity, m vmail.Mailbox, base string, status int, failed map[string]*Form) {
	data := s.page(who, m.Address())
	data.Mailbox, data.Base = &m, base
	data.Self = who.mailbox != nil && who.mailbox.Address() == m.Address()
	data.Editable = editableFlags(who, m)
	data.Forms = mailboxForms(m)
	for k, f := range failed {
		data.Forms[k] = f
	}
	if base == "/me" {
		d, err := s.opts.Manager.Domain(r.Context(), m.Domain)
		if err != nil {
			s.failure(w, r, err)
			return
		}
		if vmail.EffectiveFlags(d, m)&vmail.NoPasswordChange != 0 {
			data.Forms["password"].Values["locked"] = "on"
		}
		data.Domain = &d
	}
	s.render(w, r, status, "mailbox", data)
}

// mailboxPage shows a mailbox to an administrator.
func (s *Server) mailboxPage(w http.ResponseWriter, r *http.Request, who *identity) {
	m, ok := s.adminMailbox(w, r, who)
	if !ok {
		return
	}
	s.showMailbox(w, r, who, m, mailboxURL(m.Domain, m.Name), http.StatusOK, nil)
}

// mePage shows the session's own mailbox.
func (s *Server) mePage(w http.ResponseWriter, r *http.Request, who *identity) {
	s.showMailbox(w, r, who, *who.mailbox, "/me", http.StatusOK, nil)
}

// newPassword checks the new password fields of f's request.
func newPassword(r *http.Request, f *Form, name string) string {
	pass, pass2 := r.PostForm.Get("new"), r.PostForm.Get("new2")
	if msg := weakPassword(pass, name); msg != "" {
		f.Errors["new"] = msg
	} else if pass != pass2 {
		f.Errors["new2"] = "The two passwords differ."
	}
	return pass
}

// setPassword stores a new password and, when it is the session's own,
// keeps the session (other sessions of the mailbox end).
func (s *Server) setPassword(ctx context.Context, who *identity, m vmail.Mailbox, pass string) error {
	addr := m.Address()
	if err := s.opts.Manager.SetPassword(ctx, addr, pass); err != nil {
		return err
	}
	if who.mailbox != nil && who.mailbox.Address() == addr {
		m, err := s.opts.Manager.Mailbox(ctx, addr)
		if err != nil {
			return err
		}
		s.setPasswordHash(who.key, m.Password)
	}
	s.log().Info("webadmin: password changed", "address", addr, "by", who.login)
	return nil
}

// mailboxPassword sets a mailbox's password (administrators: no old
// password asked).
func (s *Server) mailboxPassword(w http.ResponseWriter, r *http.Request, who *identity) {
	m, ok := s.adminMailbox(w, r, who)
	if !ok {
		return
	}
	f := newForm(nil)
	pass := newPassword(r, f, m.Name)
	if f.OK() {
		if err := s.setPassword(r.Context(), who, m, pass); err != nil && !managerError(f, "new", err) {
			s.failure(w, r, err)
			return
		}
	}
	base := mailboxURL(m.Domain, m.Name)
	if !f.OK() {
		s.showMailbox(w, r, who, m, base, http.StatusUnprocessableEntity, map[string]*Form{"password": f})
		return
	}
	s.setFlash(who.key, "Password changed.")
	redirect(w, r, base)
}

// mePassword changes the session's own password: the old one, checked
// through the Limiter as a login is, then the new one twice; refused with
// NoPasswordChange (the mailbox's or its domain's).
func (s *Server) mePassword(w http.ResponseWriter, r *http.Request, who *identity) {
	m := *who.mailbox
	ctx := r.Context()
	d, err := s.opts.Manager.Domain(ctx, m.Domain)
	if err != nil {
		s.failure(w, r, err)
		return
	}
	f := newForm(nil)
	if vmail.EffectiveFlags(d, m)&vmail.NoPasswordChange != 0 {
		f.Errors["form"] = "This mailbox's password may not be changed here; ask your administrator."
		s.showMailbox(w, r, who, m, "/me", http.StatusForbidden, map[string]*Form{"password": f})
		return
	}
	old := r.PostForm.Get("old")
	pass := newPassword(r, f, m.Name)
	switch {
	case old == "":
		f.Errors["old"] = "Enter your current password."
	case len(old) > auth.MaxPasswordLength:
		f.Errors["old"] = "Wrong password."
	case f.OK():
		addr := remote(r)
		if err := s.wait(ctx, addr, m.Address()); err != nil {
			f.Errors["old"] = "Too many wrong passwords: try again later."
			break
		}
		_, err := s.opts.Manager.Authenticate(ctx, auth.Credentials{
			Service: auth.ServiceWeb, Method: auth.MethodPlain, User: m.Address(), Secret: old, Remote: addr,
		})
		switch {
		case err == nil:
			s.limiter.Done(addr, m.Address(), true)
		case errors.Is(err, auth.ErrFailed):
			s.limiter.Done(addr, m.Address(), false)
			f.Errors["old"] = "Wrong password."
		default:
			s.failure(w, r, err)
			return
		}
	}
	if f.OK() {
		if err := s.setPassword(ctx, who, m, pass); err != nil && !managerError(f, "new", err) {
			s.failure(w, r, err)
			return
		}
	}
	if !f.OK() {
		s.showMailbox(w, r, who, m, "/me", http.StatusUnprocessableEntity, map[string]*Form{"password": f})
		return
	}
	s.setFlash(who.key, "Password changed.")
	redirect(w, r, "/me")
}

// editableFlags are the flags a session may set on a mailbox: a domain
// administrator may not make a system administrator nor exempt a mailbox
// from the limits the system administrator set for the domain, and no
// one takes their own administrator's flags away (and with them the
// page they are on).
func editableFlags(who *identity, m vmail.Mailbox) vmail.Flags {
	f := vmail.DomainAdmin | vmail.NoPasswordChange | vmail.NoPOP | vmail.NoIMAP | vmail.NoSMTP |
		vmail.NoRelay | vmail.NoWebmail | vmail.BounceMail
	if who.role == roleSystemAdmin {
		f |= vmail.Override | vmail.SystemAdmin
	}
	if who.mailbox != nil && who.mailbox.Address() == m.Address() {
		f &^= vmail.DomainAdmin | vmail.SystemAdmin
	}
	return f
}

// mailboxSettings sets a mailbox's real name, quota and flags.
func (s *Server) mailboxSettings(w http.ResponseWriter, r *http.Request, who *identity) {
	m, ok := s.adminMailbox(w, r, who)
	if !ok {
		return
	}
	ctx := r.Context()
	f := newForm(r.PostForm, "realname", "quota")
	realName := strings.TrimSpace(f.Value("realname"))
	if len(realName) > maxRealName || !printable(realName) {
		f.Errors["realname"] = "At most 100 characters, on one line."
	}
	q, err := vmail.ParseQuota(f.Value("quota"))
	if err != nil {
		f.Errors["quota"] = quotaHelp
	}
	edit := editableFlags(who, m)
	flags := m.Flags &^ edit
	for _, fl := range flagNames {
		if r.PostForm.Get("flag_"+fl.Name) != "" {
			f.Values["flag_"+fl.Name] = "on"
			flags |= fl.Flag & edit
		} else if fl.Flag&edit == 0 && m.Flags&fl.Flag != 0 {
			f.Values["flag_"+fl.Name] = "on" // shown, not changed
		}
	}
	addr := m.Address()
	if f.OK() {
		if realName != m.RealName {
			err = s.opts.Manager.SetRealName(ctx, addr, realName)
		}
		if err == nil && q != m.Quota {
			err = s.opts.Manager.SetQuota(ctx, addr, q)
		}
		if err == nil && flags != m.Flags {
			err = s.opts.Manager.SetFlags(ctx, addr, flags)
		}
		if err != nil && !managerError(f, "form", err) {
			s.failure(w, r, err)
			return
		}
	}
	base := mailboxURL(m.Domain, m.Name)
	if !f.OK() {
		s.showMailbox(w, r, who, m, base, http.StatusUnprocessableEntity, map[string]*Form{"settings": f})
		return
	}
	s.log().Info("webadmin: mailbox settings", "address", addr, "quota", formatQuota(q), "flags", flags, "by", who.login)
	s.setFlash(who.key, "Settings saved.")
	redirect(w, r, base)
}

// setForward reads a forward form and stores it.
func (s *Server) setForward(w http.ResponseWriter, r *http.Request, who *identity, m vmail.Mailbox, base string) {
	ctx := r.Context()
	f := newForm(r.PostForm, "to", "keep")
	to, err := parseTargets(f.Value("to"), m.Domain)
	if err != nil {
		f.Errors["to"] = err.Error()
	}
	if f.OK() {
		d, err := s.opts.Manager.Domain(ctx, m.Domain)
		if err != nil {
			s.failure(w, r, err)
			return
		}
		if n := d.Limits.MaxForwards; n > 0 && len(to) > n {
			f.Errors["to"] = "At most " + strconv.Itoa(n) + " addresses."
		}
	}
	fwd := vmail.Forward{To: to, KeepCopy: f.Checked("keep") && len(to) > 0}
	if f.OK() {
		if err := s.opts.Manager.SetForward(ctx, m.Address(), fwd); err != nil && !managerError(f, "to", err) {
			s.failure(w, r, err)
			return
		}
	}
	if !f.OK() {
		s.showMailbox(w, r, who, m, base, http.StatusUnprocessableEntity, map[string]*Form{"forward": f})
		return
	}
	s.log().Info("webadmin: forward set", "address", m.Address(), "to", to, "keep", fwd.KeepCopy, "by", who.login)
	if len(to) == 0 {
		s.setFlash(who.key, "Forwarding off.")
	} else {
		s.setFlash(who.key, "Forwarding saved.")
	}
	redirect(w, r, base)
}

func (s *Server) mailboxForward(w http.ResponseWriter, r *http.Request, who *identity) {
	if m, ok := s.adminMailbox(w, r, who); ok {
		s.setForward(w, r, who, m, mailboxURL(m.Domain, m.Name))
	}
}

func (s *Server) meForward(w http.ResponseWriter, r *http.Request, who *identity) {
	s.setForward(w, r, who, *who.mailbox, "/me")
}

// setAutoresponder reads an autoresponder form and stores it.
func (s *Server) setAutoresponder(w http.ResponseWriter, r *http.Request, who *identity, m vmail.Mailbox, base string) {
	f := newForm(r.PostForm, "enabled", "subject", "body", "days", "from", "until")
	a := vmail.Autoresponder{Enabled: f.Checked("enabled")}
	a.Subject = strings.TrimSpace(f.Value("subject"))
	switch {
	case !printable(a.Subject):
		f.Errors["subject"] = "The subject must be one line of text."
	case len(a.Subject) > maxSubject:
		f.Errors["subject"] = "At most 200 characters."
	case a.Enabled && a.Subject == "":
		f.Errors["subject"] = "Enter a subject."
	}
	a.Body = strings.ReplaceAll(f.Value("body"), "\r\n", "\n")
	switch {
	case !text(a.Body):
		f.Errors["body"] = "The text may not hold control characters."
	case len(a.Body) > maxBody:
		f.Errors["body"] = "At most 16 KiB of text."
	case a.Enabled && strings.TrimSpace(a.Body) == "":
		f.Errors["body"] = "Enter the text of the reply."
	}
	if v := strings.TrimSpace(f.Value("days")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 365 {
			f.Errors["days"] = "Enter a number of days from 1 to 365."
		}
		a.Interval = time.Duration(n) * 24 * time.Hour
	}
	day := func(name string) time.Time {
		v := strings.TrimSpace(f.Value(name))
		if v == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.DateOnly, v)
		if err != nil || t.Year() < 2000 || t.Year() > 9999 {
			f.Errors[name] = "Enter a date as 2026-12-24."
			return time.Time{}
		}
		return t
	}
	a.From = day("from")
	if a.Until = day("until"); !a.Until.IsZero() {
		a.Until = a.Until.AddDate(0, 0, 1) // the end of that day
		if !a.From.IsZero() && !a.Until.After(a.From) {
			f.Errors["until"] = "The last day comes before the first."
		}
	}
	if f.OK() {
		if err := s.opts.Manager.SetAutoresponder(r.Context(), m.Address(), a); err != nil && !managerError(f, "form", err) {
			s.failure(w, r, err)
			return
		}
	}
	if !f.OK() {
		s.showMailbox(w, r, who, m, base, http.StatusUnprocessableEntity, map[string]*Form{"autoresponder": f})
		return
	}
	s.log().Info("webadmin: autoresponder set", "address", m.Address(), "enabled", a.Enabled, "by", who.login)
	if a.Enabled {
		s.setFlash(who.key, "Autoresponder on.")
	} else {
		s.setFlash(who.key, "Autoresponder off.")
	}
	redirect(w, r, base)
}

func (s *Server) mailboxAutoresponder(w http.ResponseWriter, r *http.Request, who *identity) {
	if m, ok := s.adminMailbox(w, r, who); ok {
		s.setAutoresponder(w, r, who, m, mailboxURL(m.Domain, m.Name))
	}
}

func (s *Server) meAutoresponder(w http.ResponseWriter, r *http.Request, who *identity) {
	s.setAutoresponder(w, r, who, *who.mailbox, "/me")
}

// deleteMailbox deletes a mailbox with its mail, when the form's box is
// ticked; never postmaster (qmailadmin keeps it) nor the session's own.
func (s *Server) deleteMailbox(w http.ResponseWriter, r *http.Request, who *identity) {
	m, ok := s.adminMailbox(w, r, who)
	if !ok {
		return
	}
	base := mailboxURL(m.Domain, m.Name)
	f := newForm(r.PostForm, "confirm")
	switch {
	case m.Name == "postmaster":
		f.Errors["confirm"] = "The postmaster mailbox cannot be deleted."
	case who.mailbox != nil && who.mailbox.Address() == m.Address():
		f.Errors["confirm"] = "You cannot delete your own mailbox."
	case !f.Checked("confirm"):
		f.Errors["confirm"] = "Tick the box to delete the mailbox and all its mail."
	}
	if !f.OK() {
		s.showMailbox(w, r, who, m, base, http.StatusUnprocessableEntity, map[string]*Form{"delete": f})
		return
	}
	if err := s.opts.Manager.DeleteMailbox(r.Context(), m.Address()); err != nil && !errors.Is(err, vmail.ErrNotFound) {
		s.failure(w, r, err)
		return
	}
	s.log().Info("webadmin: mailbox deleted", "address", m.Address(), "by", who.login)
	s.setFlash(who.key, "Mailbox "+m.Address()+" deleted.")
	redirect(w, r, domainURL(m.Domain))
}
