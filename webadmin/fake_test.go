package webadmin

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/qmailkit/qmailkit/auth"
	"github.com/qmailkit/qmailkit/vmail"
)

// fakeManager is a Manager in memory with the rules of vmail.Manager the
// pages depend on: ErrExists, ErrNotFound, ErrLimit, ErrInvalid, alias
// domains, and passwords checked by auth.VerifyPassword.
type fakeManager struct {
	mu        sync.Mutex
	domains   map[string]*vmail.Domain
	aliasOf   map[string]string // alias domain → domain
	mailboxes map[string]*vmail.Mailbox
	aliases   map[string]*vmail.Alias
	fail      error // returned by every call when set
	now       time.Time
}

var _ Manager = (*fakeManager)(nil)

func newFakeManager() *fakeManager {
	return &fakeManager{
		domains:   map[string]*vmail.Domain{},
		aliasOf:   map[string]string{},
		mailboxes: map[string]*vmail.Mailbox{},
		aliases:   map[string]*vmail.Alias{},
		now:       time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC),
	}
}

func (f *fakeManager) real(name string) string {
	name = strings.ToLower(name)
	if r, ok := f.aliasOf[name]; ok {
		return r
	}
	return name
}

func (f *fakeManager) split(address string) (string, string, error) {
	local, domain, ok := strings.Cut(strings.ToLower(address), "@")
	if !ok || local == "" || domain == "" {
		return "", "", fmt.Errorf("fake: %q: %w", address, vmail.ErrInvalid)
	}
	domain = f.real(domain)
	if f.domains[domain] == nil {
		return "", "", fmt.Errorf("fake: domain %q: %w", domain, vmail.ErrNotFound)
	}
	return local, domain, nil
}

func (f *fakeManager) Domains(ctx context.Context) ([]vmail.Domain, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	var out []vmail.Domain
	for _, d := range f.domains {
		out = append(out, *d)
	}
	slices.SortFunc(out, func(a, b vmail.Domain) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (f *fakeManager) Domain(ctx context.Context, name string) (vmail.Domain, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return vmail.Domain{}, f.fail
	}
	d := f.domains[f.real(name)]
	if d == nil {
		return vmail.Domain{}, fmt.Errorf("fake: domain %q: %w", name, vmail.ErrNotFound)
	}
	c := *d
	c.Aliases = slices.Clone(d.Aliases)
	return c, nil
}

func (f *fakeManager) AddDomain(ctx context.Context, name string) (vmail.Domain, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return vmail.Domain{}, f.fail
	}
	name = strings.ToLower(name)
	if !domainOK(name) {
		return vmail.Domain{}, fmt.Errorf("fake: %q: %w", name, vmail.ErrInvalid)
	}
	if f.domains[name] != nil || f.aliasOf[name] != "" {
		return vmail.Domain{}, fmt.Errorf("fake: %q: %w", name, vmail.ErrExists)
	}
	d := &vmail.Domain{Name: name, Dir: "/fake/" + name, Created: f.now}
	f.domains[name] = d
	return *d, nil
}

func (f *fakeManager) DeleteDomain(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.domains[name]
	if d == nil {
		return fmt.Errorf("fake: %q: %w", name, vmail.ErrNotFound)
	}
	for _, a := range d.Aliases {
		delete(f.aliasOf, a)
	}
	delete(f.domains, name)
	for k, m := range f.mailboxes {
		if m.Domain == name {
			delete(f.mailboxes, k)
		}
	}
	for k, a := range f.aliases {
		if a.Domain == name {
			delete(f.aliases, k)
		}
	}
	return nil
}

func (f *fakeManager) SetCatchAll(ctx context.Context, domain, target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.domains[f.real(domain)]
	if d == nil {
		return fmt.Errorf("fake: %q: %w", domain, vmail.ErrNotFound)
	}
	d.CatchAll = target
	return nil
}

func (f *fakeManager) SetLimits(ctx context.Context, domain string, l vmail.Limits) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.domains[f.real(domain)]
	if d == nil {
		return fmt.Errorf("fake: %q: %w", domain, vmail.ErrNotFound)
	}
	d.Limits = l
	return nil
}

func (f *fakeManager) AddAliasDomain(ctx context.Context, alias, domain string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.domains[domain]
	if d == nil {
		return fmt.Errorf("fake: %q: %w", domain, vmail.ErrNotFound)
	}
	if f.domains[alias] != nil || f.aliasOf[alias] != "" {
		return fmt.Errorf("fake: %q: %w", alias, vmail.ErrExists)
	}
	f.aliasOf[alias] = domain
	d.Aliases = append(d.Aliases, alias)
	return nil
}

func (f *fakeManager) DeleteAliasDomain(ctx context.Context, alias string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	domain, ok := f.aliasOf[alias]
	if !ok {
		return fmt.Errorf("fake: %q: %w", alias, vmail.ErrNotFound)
	}
	delete(f.aliasOf, alias)
	d := f.domains[domain]
	d.Aliases = slices.DeleteFunc(d.Aliases, func(a string) bool { return a == alias })
	return nil
}

func (f *fakeManager) Mailboxes(ctx context.Context, domain, after string, limit int) ([]vmail.Mailbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	var out []vmail.Mailbox
	for _, m := range f.mailboxes {
		if m.Domain == domain && m.Name > after {
			out = append(out, *m)
		}
	}
	slices.SortFunc(out, func(a, b vmail.Mailbox) int { return strings.Compare(a.Name, b.Name) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (f *fakeManager) Mailbox(ctx context.Context, address string) (vmail.Mailbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return vmail.Mailbox{}, f.fail
	}
	local, domain, err := f.split(address)
	if err != nil {
		return vmail.Mailbox{}, err
	}
	m := f.mailboxes[local+"@"+domain]
	if m == nil {
		return vmail.Mailbox{}, fmt.Errorf("fake: %q: %w", address, vmail.ErrNotFound)
	}
	c := *m
	c.Forward.To = slices.Clone(m.Forward.To)
	return c, nil
}

func (f *fakeManager) AddMailbox(ctx context.Context, address, password string) (vmail.Mailbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return vmail.Mailbox{}, f.fail
	}
	local, domain, err := f.split(address)
	if err != nil {
		return vmail.Mailbox{}, err
	}
	if len(password) < 8 {
		return vmail.Mailbox{}, fmt.Errorf("fake: password too short: %w", vmail.ErrInvalid)
	}
	addr := local + "@" + domain
	if f.mailboxes[addr] != nil || f.aliases[addr] != nil {
		return vmail.Mailbox{}, fmt.Errorf("fake: %q: %w", addr, vmail.ErrExists)
	}
	d := f.domains[domain]
	if n := d.Limits.MaxMailboxes; n > 0 {
		count := 0
		for _, m := range f.mailboxes {
			if m.Domain == domain {
				count++
			}
		}
		if count >= n {
			return vmail.Mailbox{}, fmt.Errorf("fake: %w", vmail.ErrLimit)
		}
	}
	m := &vmail.Mailbox{Name: local, Domain: domain, Password: "{PLAIN}" + password, Dir: d.Dir + "/" + local,
		Quota: d.Limits.DefaultQuota, Created: f.now}
	f.mailboxes[addr] = m
	return *m, nil
}

func (f *fakeManager) DeleteMailbox(ctx context.Context, address string) error {
	return f.update(address, func(m *vmail.Mailbox) error {
		delete(f.mailboxes, m.Address())
		return nil
	})
}

// update runs fn on a mailbox under the lock.
func (f *fakeManager) update(address string, fn func(m *vmail.Mailbox) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	local, domain, err := f.split(address)
	if err != nil {
		return err
	}
	m := f.mailboxes[local+"@"+domain]
	if m == nil {
		return fmt.Errorf("fake: %q: %w", address, vmail.ErrNotFound)
	}
	return fn(m)
}

func (f *fakeManager) SetPassword(ctx context.Context, address, password string) error {
	if len(password) < 8 {
		return fmt.Errorf("fake: password too short: %w", vmail.ErrInvalid)
	}
	return f.update(address, func(m *vmail.Mailbox) error { m.Password = "{PLAIN}" + password; return nil })
}

func (f *fakeManager) SetQuota(ctx context.Context, address string, q vmail.Quota) error {
	return f.update(address, func(m *vmail.Mailbox) error { m.Quota = q; return nil })
}

func (f *fakeManager) SetFlags(ctx context.Context, address string, fl vmail.Flags) error {
	return f.update(address, func(m *vmail.Mailbox) error { m.Flags = fl; return nil })
}

func (f *fakeManager) SetRealName(ctx context.Context, address, name string) error {
	return f.update(address, func(m *vmail.Mailbox) error { m.RealName = name; return nil })
}

func (f *fakeManager) SetForward(ctx context.Context, address string, fw vmail.Forward) error {
	return f.update(address, func(m *vmail.Mailbox) error { m.Forward = fw; return nil })
}

func (f *fakeManager) SetAutoresponder(ctx context.Context, address string, a vmail.Autoresponder) error {
	return f.update(address, func(m *vmail.Mailbox) error { m.Autoresponder = a; return nil })
}

func (f *fakeManager) Aliases(ctx context.Context, domain string) ([]vmail.Alias, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	var out []vmail.Alias
	for _, a := range f.aliases {
		if a.Domain == domain {
			out = append(out, *a)
		}
	}
	slices.SortFunc(out, func(a, b vmail.Alias) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (f *fakeManager) AddAlias(ctx context.Context, address string, targets ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	local, domain, err := f.split(address)
	if err != nil {
		return err
	}
	addr := local + "@" + domain
	if f.mailboxes[addr] != nil {
		return fmt.Errorf("fake: %q: %w", addr, vmail.ErrExists)
	}
	a := f.aliases[addr]
	if a == nil {
		a = &vmail.Alias{Name: local, Domain: domain}
		f.aliases[addr] = a
	}
	for _, t := range targets {
		if !slices.Contains(a.Targets, t) {
			a.Targets = append(a.Targets, t)
		}
	}
	return nil
}

func (f *fakeManager) DeleteAlias(ctx context.Context, address string, targets ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	local, domain, err := f.split(address)
	if err != nil {
		return err
	}
	addr := local + "@" + domain
	if f.aliases[addr] == nil {
		return fmt.Errorf("fake: %q: %w", addr, vmail.ErrNotFound)
	}
	delete(f.aliases, addr)
	return nil
}

func (f *fakeManager) Authenticate(ctx context.Context, c auth.Credentials) (*auth.User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	local, domain, err := f.split(c.User)
	if err != nil {
		return nil, auth.ErrFailed
	}
	m := f.mailboxes[local+"@"+domain]
	if m == nil || !auth.VerifyPassword(m.Password, c) {
		return nil, auth.ErrFailed
	}
	return &auth.User{Name: m.Address(), Home: m.Dir, Maildir: m.Maildir()}, nil
}
