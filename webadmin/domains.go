package webadmin

import (
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/qmailkit/qmailkit/vmail"
)

// pageSize is how many mailboxes a domain's page lists at once.
const pageSize = 100

// pathDomain is the {domain} of a request's path, lower case.
func pathDomain(r *http.Request) string { return strings.ToLower(r.PathValue("domain")) }

// domainsPage lists the domains (system administrators).
func (s *Server) domainsPage(w http.ResponseWriter, r *http.Request, who *identity) {
	s.showDomains(w, r, who, http.StatusOK, nil)
}

func (s *Server) showDomains(w http.ResponseWriter, r *http.Request, who *identity, status int, add *Form) {
	ds, err := s.opts.Manager.Domains(r.Context())
	if err != nil {
		s.failure(w, r, err)
		return
	}
	data := s.page(who, "Domains")
	data.Domains = ds
	if add == nil {
		add = newForm(nil)
	}
	data.Forms["add"] = add
	s.render(w, r, status, "domains", data)
}

// addDomain adds a domain.
func (s *Server) addDomain(w http.ResponseWriter, r *http.Request, who *identity) {
	f := newForm(r.PostForm, "name")
	name := strings.ToLower(strings.TrimSpace(f.Value("name")))
	if vmail.ValidDomain(name) != nil {
		f.Errors["name"] = "Enter a domain name such as example.com."
	}
	if f.OK() {
		_, err := s.opts.Manager.AddDomain(r.Context(), name)
		if err != nil && !managerError(f, "name", err) {
			s.failure(w, r, err)
			return
		}
	}
	if !f.OK() {
		s.showDomains(w, r, who, http.StatusUnprocessableEntity, f)
		return
	}
	s.log().Info("webadmin: domain added", "domain", name, "by", who.login)
	s.setFlash(who.key, "Domain "+name+" added.")
	redirect(w, r, domainURL(name))
}

// domainFor returns the domain of the request's path, answering 404 when
// there is none (or when the name is an alias domain's: pages use the
// real name).
func (s *Server) domainFor(w http.ResponseWriter, r *http.Request) (vmail.Domain, bool) {
	name := pathDomain(r)
	d, err := s.opts.Manager.Domain(r.Context(), name)
	if errors.Is(err, vmail.ErrNotFound) || err == nil && d.Name != name {
		s.fail(w, r, http.StatusNotFound, "No such domain.")
		return d, false
	}
	if err != nil {
		s.failure(w, r, err)
		return d, false
	}
	return d, true
}

// domainPage shows a domain: its mailboxes, aliases and catch-all, and
// for system administrators its limits, alias domains and deletion.
func (s *Server) domainPage(w http.ResponseWriter, r *http.Request, who *identity) {
	d, ok := s.domainFor(w, r)
	if !ok {
		return
	}
	s.showDomain(w, r, who, d, http.StatusOK, nil)
}

func (s *Server) showDomain(w http.ResponseWriter, r *http.Request, who *identity, d vmail.Domain, status int, forms map[string]*Form) {
	ctx := r.Context()
	after := r.URL.Query().Get("after")
	if len(after) > maxLocal {
		after = ""
	}
	ms, err := s.opts.Manager.Mailboxes(ctx, d.Name, after, pageSize+1)
	if err != nil {
		s.failure(w, r, err)
		return
	}
	as, err := s.opts.Manager.Aliases(ctx, d.Name)
	if err != nil {
		s.failure(w, r, err)
		return
	}
	data := s.page(who, d.Name)
	data.Domain = &d
	if len(ms) > pageSize {
		ms = ms[:pageSize]
		data.Next = ms[pageSize-1].Name
	}
	data.Mailboxes, data.Aliases = ms, as
	data.Forms["catchall"] = &Form{Values: map[string]string{"target": d.CatchAll}, Errors: map[string]string{}}
	data.Forms["limits"] = limitsForm(d.Limits)
	for k, f := range forms {
		data.Forms[k] = f
	}
	s.render(w, r, status, "domain", data)
}

// limitsForm shows a domain's limits.
func limitsForm(l vmail.Limits) *Form {
	f := newForm(nil)
	itoa := func(n int) string {
		if n == 0 {
			return ""
		}
		return strconv.Itoa(n)
	}
	f.Values["maxmailboxes"] = itoa(l.MaxMailboxes)
	f.Values["maxaliases"] = itoa(l.MaxAliases)
	f.Values["maxforwards"] = itoa(l.MaxForwards)
	f.Values["maxautoresponders"] = itoa(l.MaxAutoresponders)
	if l.DefaultQuota != (vmail.Quota{}) {
		f.Values["defaultquota"] = formatQuota(l.DefaultQuota)
	}
	for _, fl := range flagNames {
		if l.Disabled&fl.Flag != 0 {
			f.Values["disable_"+fl.Name] = "on"
		}
	}
	return f
}

// domainFlags are the flags a domain's limits may set for all its
// mailboxes.
const domainFlags = vmail.NoPOP | vmail.NoIMAP | vmail.NoSMTP | vmail.NoPasswordChange | vmail.NoRelay | vmail.NoWebmail

// setLimits sets a domain's limits (system administrators).
func (s *Server) setLimits(w http.ResponseWriter, r *http.Request, who *identity) {
	d, ok := s.domainFor(w, r)
	if !ok {
		return
	}
	f := newForm(r.PostForm, "maxmailboxes", "maxaliases", "maxforwards", "maxautoresponders", "defaultquota")
	var l vmail.Limits
	l.MaxMailboxes = intField(f, "maxmailboxes")
	l.MaxAliases = intField(f, "maxaliases")
	l.MaxForwards = intField(f, "maxforwards")
	l.MaxAutoresponders = intField(f, "maxautoresponders")
	q, err := vmail.ParseQuota(f.Value("defaultquota"))
	if err != nil {
		f.Errors["defaultquota"] = quotaHelp
	}
	l.DefaultQuota = q
	for _, fl := range flagNames {
		if fl.Flag&domainFlags != 0 && r.PostForm.Get("disable_"+fl.Name) != "" {
			l.Disabled |= fl.Flag
			f.Values["disable_"+fl.Name] = "on"
		}
	}
	if f.OK() {
		if err := s.opts.Manager.SetLimits(r.Context(), d.Name, l); err != nil && !managerError(f, "form", err) {
			s.failure(w, r, err)
			return
		}
	}
	if !f.OK() {
		s.showDomain(w, r, who, d, http.StatusUnprocessableEntity, map[string]*Form{"limits": f})
		return
	}
	s.log().Info("webadmin: limits set", "domain", d.Name, "by", who.login)
	s.setFlash(who.key, "Limits saved.")
	redirect(w, r, domainURL(d.Name))
}

const nameHelp = "Use 2 to 64 lower-case letters, digits and . - _ + = & (not first: . or -)."

const quotaHelp = "Enter a quota such as 50M, 100K, 500C, 50M,500C, or NOQUOTA."

// addAliasDomain makes another name an alias of the domain.
func (s *Server) addAliasDomain(w http.ResponseWriter, r *http.Request, who *identity) {
	d, ok := s.domainFor(w, r)
	if !ok {
		return
	}
	f := newForm(r.PostForm, "alias")
	alias := strings.ToLower(strings.TrimSpace(f.Value("alias")))
	if vmail.ValidDomain(alias) != nil {
		f.Errors["alias"] = "Enter a domain name such as example.net."
	}
	if f.OK() {
		if err := s.opts.Manager.AddAliasDomain(r.Context(), alias, d.Name); err != nil && !managerError(f, "alias", err) {
			s.failure(w, r, err)
			return
		}
	}
	if !f.OK() {
		s.showDomain(w, r, who, d, http.StatusUnprocessableEntity, map[string]*Form{"aliasdomain": f})
		return
	}
	s.log().Info("webadmin: alias domain added", "domain", d.Name, "alias", alias, "by", who.login)
	s.setFlash(who.key, "Alias domain "+alias+" added.")
	redirect(w, r, domainURL(d.Name))
}

// deleteAliasDomain removes one of the domain's alias domains.
func (s *Server) deleteAliasDomain(w http.ResponseWriter, r *http.Request, who *identity) {
	d, ok := s.domainFor(w, r)
	if !ok {
		return
	}
	alias := strings.ToLower(r.PostForm.Get("alias"))
	if !slices.Contains(d.Aliases, alias) {
		s.fail(w, r, http.StatusNotFound, "No such alias domain.")
		return
	}
	if err := s.opts.Manager.DeleteAliasDomain(r.Context(), alias); err != nil {
		s.failure(w, r, err)
		return
	}
	s.log().Info("webadmin: alias domain deleted", "domain", d.Name, "alias", alias, "by", who.login)
	s.setFlash(who.key, "Alias domain "+alias+" deleted.")
	redirect(w, r, domainURL(d.Name))
}

// deleteDomain deletes a domain with all its mail, when the form repeats
// its name.
func (s *Server) deleteDomain(w http.ResponseWriter, r *http.Request, who *identity) {
	d, ok := s.domainFor(w, r)
	if !ok {
		return
	}
	f := newForm(r.PostForm, "confirm")
	if strings.ToLower(strings.TrimSpace(f.Value("confirm"))) != d.Name {
		f.Errors["confirm"] = "Type the domain's name to delete it."
		s.showDomain(w, r, who, d, http.StatusUnprocessableEntity, map[string]*Form{"delete": f})
		return
	}
	if err := s.opts.Manager.DeleteDomain(r.Context(), d.Name); err != nil {
		s.failure(w, r, err)
		return
	}
	s.log().Info("webadmin: domain deleted", "domain", d.Name, "by", who.login)
	s.setFlash(who.key, "Domain "+d.Name+" deleted.")
	redirect(w, r, "/domains")
}

// setCatchAll sets what becomes of mail to unknown local parts.
func (s *Server) setCatchAll(w http.ResponseWriter, r *http.Request, who *identity) {
	d, ok := s.domainFor(w, r)
	if !ok {
		return
	}
	f := newForm(r.PostForm, "target")
	t := strings.TrimSpace(f.Value("target"))
	switch {
	case t == "" || t == "delete":
	case strings.HasPrefix(t, "@"):
		t = strings.ToLower(t)
		if !domainOK(t[1:]) {
			f.Errors["target"] = "After @, enter a domain name."
		}
	case strings.Contains(t, "@"):
		if !addressOK(t) {
			f.Errors["target"] = "This is not an address."
		}
	default:
		t = strings.ToLower(t)
		if !localOK(t) {
			f.Errors["target"] = "Enter a mailbox's name, an address, @domain, delete, or nothing."
		}
	}
	if f.OK() {
		if err := s.opts.Manager.SetCatchAll(r.Context(), d.Name, t); err != nil && !managerError(f, "target", err) {
			s.failure(w, r, err)
			return
		}
	}
	if !f.OK() {
		s.showDomain(w, r, who, d, http.StatusUnprocessableEntity, map[string]*Form{"catchall": f})
		return
	}
	s.log().Info("webadmin: catch-all set", "domain", d.Name, "target", t, "by", who.login)
	s.setFlash(who.key, "Catch-all saved.")
	redirect(w, r, domainURL(d.Name))
}

// addMailbox adds a mailbox to the domain.
func (s *Server) addMailbox(w http.ResponseWriter, r *http.Request, who *identity) {
	d, ok := s.domainFor(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	f := newForm(r.PostForm, "name", "realname", "quota", "domainadmin")
	name := strings.ToLower(strings.TrimSpace(f.Value("name")))
	pass, pass2 := r.PostForm.Get("password"), r.PostForm.Get("password2")
	if vmail.ValidName(name) != nil {
		f.Errors["name"] = nameHelp
	}
	if msg := weakPassword(pass, name); msg != "" {
		f.Errors["password"] = msg
	} else if pass != pass2 {
		f.Errors["password2"] = "The two passwords differ."
	}
	realName := strings.TrimSpace(f.Value("realname"))
	if len(realName) > maxRealName || !printable(realName) {
		f.Errors["realname"] = "At most 100 characters, on one line."
	}
	var q vmail.Quota
	quota := strings.TrimSpace(f.Value("quota"))
	if quota != "" {
		var err error
		if q, err = vmail.ParseQuota(quota); err != nil {
			f.Errors["quota"] = quotaHelp
		}
	}
	addr := name + "@" + d.Name
	if f.OK() {
		m, err := s.opts.Manager.AddMailbox(ctx, addr, pass)
		if err != nil {
			field := "name"
			if errors.Is(err, vmail.ErrInvalid) {
				field = "password"
			}
			if !managerError(f, field, err) {
				s.failure(w, r, err)
				return
			}
		} else {
			if quota != "" {
				err = s.opts.Manager.SetQuota(ctx, addr, q)
			}
			if err == nil && realName != "" {
				err = s.opts.Manager.SetRealName(ctx, addr, realName)
			}
			if err == nil && f.Checked("domainadmin") {
				err = s.opts.Manager.SetFlags(ctx, addr, m.Flags|vmail.DomainAdmin)
			}
			if err != nil {
				s.failure(w, r, err)
				return
			}
		}
	}
	if !f.OK() {
		s.showDomain(w, r, who, d, http.StatusUnprocessableEntity, map[string]*Form{"mailbox": f})
		return
	}
	s.log().Info("webadmin: mailbox added", "address", addr, "by", who.login)
	s.setFlash(who.key, "Mailbox "+addr+" added.")
	redirect(w, r, mailboxURL(d.Name, name))
}

// addAlias adds an alias, or addresses to one.
func (s *Server) addAlias(w http.ResponseWriter, r *http.Request, who *identity) {
	d, ok := s.domainFor(w, r)
	if !ok {
		return
	}
	f := newForm(r.PostForm, "name", "targets")
	name := strings.ToLower(strings.TrimSpace(f.Value("name")))
	if vmail.ValidName(name) != nil {
		f.Errors["name"] = nameHelp
	}
	targets, err := parseTargets(f.Value("targets"), d.Name)
	if err != nil {
		f.Errors["targets"] = err.Error()
	} else if len(targets) == 0 {
		f.Errors["targets"] = "Enter at least one address."
	}
	addr := name + "@" + d.Name
	if f.OK() {
		if err := s.opts.Manager.AddAlias(r.Context(), addr, targets...); err != nil && !managerError(f, "name", err) {
			s.failure(w, r, err)
			return
		}
	}
	if !f.OK() {
		s.showDomain(w, r, who, d, http.StatusUnprocessableEntity, map[string]*Form{"alias": f})
		return
	}
	s.log().Info("webadmin: alias added", "address", addr, "targets", targets, "by", who.login)
	s.setFlash(who.key, "Alias "+addr+" saved.")
	redirect(w, r, domainURL(d.Name))
}

// deleteAlias removes an alias.
func (s *Server) deleteAlias(w http.ResponseWriter, r *http.Request, who *identity) {
	d, ok := s.domainFor(w, r)
	if !ok {
		return
	}
	name := strings.ToLower(r.PostForm.Get("name"))
	if name == "" || len(name) > maxLocal {
		s.fail(w, r, http.StatusNotFound, "No such alias.")
		return
	}
	addr := name + "@" + d.Name
	err := s.opts.Manager.DeleteAlias(r.Context(), addr)
	if errors.Is(err, vmail.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, "No such alias.")
		return
	}
	if err != nil {
		s.failure(w, r, err)
		return
	}
	s.log().Info("webadmin: alias deleted", "address", addr, "by", who.login)
	s.setFlash(who.key, "Alias "+addr+" deleted.")
	redirect(w, r, domainURL(d.Name))
}

// queuePage shows the queue's status (system administrators).
func (s *Server) queuePage(w http.ResponseWriter, r *http.Request, who *identity) {
	if s.opts.Queue == nil {
		s.fail(w, r, http.StatusNotFound, "No queue status here.")
		return
	}
	st, err := s.opts.Queue(r.Context())
	if err != nil {
		s.failure(w, r, err)
		return
	}
	data := s.page(who, "Queue")
	data.Status = &st
	for _, k := range slices.Sorted(maps.Keys(st.ByState)) {
		data.States = append(data.States, stateCount{k, st.ByState[k]})
	}
	s.render(w, r, http.StatusOK, "queue", data)
}
