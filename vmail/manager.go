package vmail

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/auth"
)

// Options configure a Manager.
type Options struct {
	// Store keeps the records. Required.
	Store Store
	// Dir is the directory under which domains' directories are made
	// (Dir/DOMAIN), an absolute path. Required.
	Dir string
	// UID and GID own the directories and files a Manager makes when it
	// runs as root (the mail system's virtual-mail account, vpopmail's
	// "vpopmail" user); -1 (or a Manager not run as root) keeps the
	// process's.
	UID, GID int
	// MinPasswordLength is the shortest password accepted: 0 means 8.
	MinPasswordLength int
	// CacheTTL is how long Resolve and Authenticate may answer from
	// memory after the store last showed the same Generation: 0 means one
	// second; negative means every call asks the store.
	CacheTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives what the Manager does; nil means slog.Default().
	Logger *slog.Logger
}

// The hard limits of what a Manager stores, whatever a domain's Limits say.
const (
	// MaxTargets is the most targets an alias or a forward may have.
	MaxTargets = 1000
	// MaxAddressLength is the longest target address, in bytes.
	MaxAddressLength = 254
	// MaxTextLength is the longest real name, autoresponder subject or
	// catch-all, in bytes; an autoresponder's body may have 64 KiB.
	MaxTextLength = 1024
	maxBody       = 64 << 10
)

// Manager manages virtual domains and mailboxes over a Store. Its methods
// are safe for concurrent use.
type Manager struct {
	opts  Options
	log   *slog.Logger
	cache *cache
	dummy string // a hash checked for unknown users, so that they cost as much
}

// New returns a Manager. It checks the Options and makes nothing on disk:
// Options.Dir is made with the first domain.
func New(opts Options) (*Manager, error) {
	if opts.Store == nil {
		return nil, errors.New("vmail: new: no Store")
	}
	if !filepath.IsAbs(opts.Dir) {
		return nil, fmt.Errorf("vmail: new: Dir %q is not an absolute path", opts.Dir)
	}
	opts.Dir = filepath.Clean(opts.Dir)
	if opts.MinPasswordLength == 0 {
		opts.MinPasswordLength = 8
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Manager{opts: opts, log: opts.Logger, cache: &cache{ttl: opts.CacheTTL}}
	if m.log == nil {
		m.log = slog.Default()
	}
	dummy, err := auth.HashPassword(rand.Text())
	if err != nil {
		return nil, fmt.Errorf("vmail: new: %w", err)
	}
	m.dummy = dummy
	return m, nil
}

// Store returns the Manager's store.
func (m *Manager) Store() Store { return m.opts.Store }

// changed is called after every change: this Manager sees its own
// changes at once, others within their CacheTTL.
func (m *Manager) changed() { m.cache.forget() }

// AddDomain adds a domain and makes its directory (Dir/DOMAIN, mode 0750).
// The name is lower-cased and checked with [ValidDomain].
func (m *Manager) AddDomain(ctx context.Context, name string) (Domain, error) {
	name = strings.ToLower(name)
	if err := ValidDomain(name); err != nil {
		return Domain{}, err
	}
	d := Domain{Name: name, Dir: filepath.Join(m.opts.Dir, name), Created: m.opts.Now()}
	if err := m.opts.Store.AddDomain(ctx, d); err != nil {
		return Domain{}, fmt.Errorf("vmail: add domain %s: %w", name, err)
	}
	m.changed()
	root, err := m.openBase()
	if err == nil {
		_, err = m.mkdirs(root, name)
		root.Close()
	}
	if err != nil {
		if derr := m.opts.Store.DeleteDomain(context.WithoutCancel(ctx), name); derr != nil {
			m.log.Error("vmail: add domain: undo", "domain", name, "err", derr)
		}
		return Domain{}, fmt.Errorf("vmail: add domain %s: %w", name, err)
	}
	m.log.Info("vmail: domain added", "domain", name)
	return d, nil
}

// DeleteDomain removes a domain, its records and its directory with every
// mailbox's mail. The name may not be an alias domain's (that is
// DeleteAliasDomain's job).
func (m *Manager) DeleteDomain(ctx context.Context, name string) error {
	name = strings.ToLower(name)
	d, err := m.opts.Store.Domain(ctx, name)
	if err != nil {
		return fmt.Errorf("vmail: delete domain %s: %w", name, err)
	}
	if d.Name != name {
		return fmt.Errorf("vmail: delete domain %s: %w: an alias domain of %s", name, ErrInvalid, d.Name)
	}
	if err := m.opts.Store.DeleteDomain(ctx, name); err != nil {
		return fmt.Errorf("vmail: delete domain %s: %w", name, err)
	}
	m.changed()
	if err := m.removeDir(name); err != nil {
		return fmt.Errorf("vmail: delete domain %s: records removed, directory left: %w", name, err)
	}
	m.log.Info("vmail: domain deleted", "domain", name)
	return nil
}

// Domain returns a domain by its name or an alias domain's.
func (m *Manager) Domain(ctx context.Context, name string) (Domain, error) {
	d, err := m.opts.Store.Domain(ctx, strings.ToLower(name))
	if err != nil {
		return Domain{}, fmt.Errorf("vmail: domain %s: %w", name, err)
	}
	return d, nil
}

// Domains lists the domains.
func (m *Manager) Domains(ctx context.Context) ([]Domain, error) {
	ds, err := m.opts.Store.Domains(ctx)
	if err != nil {
		return nil, fmt.Errorf("vmail: domains: %w", err)
	}
	return ds, nil
}

// updateDomain reads a domain, lets f change it and stores it.
func (m *Manager) updateDomain(ctx context.Context, name string, f func(*Domain) error) error {
	d, err := m.opts.Store.Domain(ctx, strings.ToLower(name))
	if err != nil {
		return err
	}
	if err := f(&d); err != nil {
		return err
	}
	if err := m.opts.Store.UpdateDomain(ctx, d); err != nil {
		return err
	}
	m.changed()
	return nil
}

// SetCatchAll sets a domain's catch-all (see Domain.CatchAll): "", "delete",
// "@other.example", an address, or the name of a mailbox of the domain.
func (m *Manager) SetCatchAll(ctx context.Context, domain, target string) error {
	target = strings.ToLower(strings.TrimSpace(target))
	err := m.updateDomain(ctx, domain, func(d *Domain) error {
		switch {
		case target == "" || target == "delete":
		case strings.HasPrefix(target, "@"):
			if err := ValidDomain(target[1:]); err != nil {
				return err
			}
		case strings.Contains(target, "@"):
			if err := validAddress(target); err != nil {
				return err
			}
		default:
			if err := ValidName(target); err != nil {
				return err
			}
		}
		d.CatchAll = target
		return nil
	})
	if err != nil {
		return fmt.Errorf("vmail: set catch-all of %s: %w", domain, err)
	}
	return nil
}

// SetLimits sets a domain's limits. Negative counts are refused.
func (m *Manager) SetLimits(ctx context.Context, domain string, l Limits) error {
	err := m.updateDomain(ctx, domain, func(d *Domain) error {
		if l.MaxMailboxes < 0 || l.MaxAliases < 0 || l.MaxForwards < 0 || l.MaxAutoresponders < 0 ||
			l.DefaultQuota.Bytes < 0 || l.DefaultQuota.Count < 0 {
			return fmt.Errorf("%w: negative limit", ErrInvalid)
		}
		d.Limits = l
		return nil
	})
	if err != nil {
		return fmt.Errorf("vmail: set limits of %s: %w", domain, err)
	}
	return nil
}

// AddAliasDomain makes alias an alias domain of domain: mail for
// anyone@alias is anyone@domain's.
func (m *Manager) AddAliasDomain(ctx context.Context, alias, domain string) error {
	alias, domain = strings.ToLower(alias), strings.ToLower(domain)
	if err := ValidDomain(alias); err != nil {
		return fmt.Errorf("vmail: add alias domain: %w", err)
	}
	d, err := m.opts.Store.Domain(ctx, domain)
	if err != nil {
		return fmt.Errorf("vmail: add alias domain %s: %w", alias, err)
	}
	if err := m.opts.Store.AddAliasDomain(ctx, alias, d.Name); err != nil {
		return fmt.Errorf("vmail: add alias domain %s: %w", alias, err)
	}
	m.changed()
	m.log.Info("vmail: alias domain added", "alias", alias, "domain", d.Name)
	return nil
}

// DeleteAliasDomain removes an alias domain.
func (m *Manager) DeleteAliasDomain(ctx context.Context, alias string) error {
	alias = strings.ToLower(alias)
	d, err := m.opts.Store.Domain(ctx, alias)
	if err != nil {
		return fmt.Errorf("vmail: delete alias domain %s: %w", alias, err)
	}
	if d.Name == alias {
		return fmt.Errorf("vmail: delete alias domain %s: %w: a domain, not an alias domain", alias, ErrInvalid)
	}
	if err := m.opts.Store.DeleteAliasDomain(ctx, alias); err != nil {
		return fmt.Errorf("vmail: delete alias domain %s: %w", alias, err)
	}
	m.changed()
	return nil
}

// addressDomain splits an address, checks its name and finds its (real)
// domain.
func (m *Manager) addressDomain(ctx context.Context, address string) (string, Domain, error) {
	name, domain, err := splitAddress(address)
	if err != nil {
		return "", Domain{}, err
	}
	if err := ValidName(name); err != nil {
		return "", Domain{}, err
	}
	d, err := m.opts.Store.Domain(ctx, domain)
	if err != nil {
		return "", Domain{}, err
	}
	return name, d, nil
}

// AddMailbox adds a mailbox with a password (hashed here), the domain's
// default quota, and its Maildir in the next hashed directory. The
// address is lower-cased; its name is checked with [ValidName], the
// password must be MinPasswordLength to auth.MaxPasswordLength bytes
// without NUL, CR or LF; the domain's MaxMailboxes refuses it with
// ErrLimit.
func (m *Manager) AddMailbox(ctx context.Context, address, password string) (Mailbox, error) {
	if err := validPassword(password, m.opts.MinPasswordLength); err != nil {
		return Mailbox{}, fmt.Errorf("vmail: add mailbox %s: %w", truncate(address), err)
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return Mailbox{}, fmt.Errorf("vmail: add mailbox %s: %w: %v", truncate(address), ErrInvalid, err)
	}
	mb, err := m.addMailbox(ctx, Mailbox{Name: address, Password: hash}, true)
	if err != nil {
		return Mailbox{}, fmt.Errorf("vmail: add mailbox %s: %w", truncate(address), err)
	}
	return mb, nil
}

// Import adds a mailbox as an importer has it: mb.Name is the address
// (name@domain, or the name with mb.Domain), mb.Password a ready hash (or
// empty: no login), and mb.Dir, when set, its existing directory, used as
// it is (an absolute path, not made); when empty, a directory and Maildir
// are made as AddMailbox makes them. Quota, Flags, RealName, Forward,
// Autoresponder, Created and the last login are kept; a zero Created is
// now. The domain's MaxMailboxes limit does not apply.
func (m *Manager) Import(ctx context.Context, mb Mailbox) error {
	if mb.Domain != "" && !strings.Contains(mb.Name, "@") {
		mb.Name += "@" + mb.Domain
	}
	if strings.ContainsAny(mb.Password, "\x00\r\n") || len(mb.Password) > 512 {
		return fmt.Errorf("vmail: import %s: %w: bad password hash", truncate(mb.Name), ErrInvalid)
	}
	if mb.Dir != "" && (!filepath.IsAbs(mb.Dir) || strings.ContainsAny(mb.Dir, "\x00\r\n")) {
		return fmt.Errorf("vmail: import %s: %w: directory %q is not an absolute path", truncate(mb.Name), ErrInvalid, truncate(mb.Dir))
	}
	if _, err := m.addMailbox(ctx, mb, false); err != nil {
		return fmt.Errorf("vmail: import %s: %w", truncate(mb.Name), err)
	}
	return nil
}

// addMailbox adds mb, whose Name is the address. fresh applies the
// domain's limits and default quota.
func (m *Manager) addMailbox(ctx context.Context, mb Mailbox, fresh bool) (Mailbox, error) {
	name, d, err := m.addressDomain(ctx, mb.Name)
	if err != nil {
		return Mailbox{}, err
	}
	mb.Name, mb.Domain = name, d.Name
	if err := m.checkMailbox(&mb); err != nil {
		return Mailbox{}, err
	}
	if fresh {
		if d.Limits.MaxMailboxes > 0 {
			n, err := m.opts.Store.CountMailboxes(ctx, d.Name)
			if err != nil {
				return Mailbox{}, err
			}
			if n >= d.Limits.MaxMailboxes {
				return Mailbox{}, fmt.Errorf("%w: the domain has %d mailboxes (max=%d)", ErrLimit, n, d.Limits.MaxMailboxes)
			}
		}
		mb.Quota = d.Limits.DefaultQuota
		mb.RealName = name
	}
	if mb.Created.IsZero() {
		mb.Created = m.opts.Now()
	}
	made := ""
	if mb.Dir == "" {
		// The name must be free before a directory is made for it.
		if _, err := m.opts.Store.Mailbox(ctx, d.Name, name); err == nil {
			return Mailbox{}, fmt.Errorf("%w: mailbox %s", ErrExists, mb.Address())
		} else if !errors.Is(err, ErrNotFound) {
			return Mailbox{}, err
		}
		if _, err := m.opts.Store.Alias(ctx, d.Name, name); err == nil {
			return Mailbox{}, fmt.Errorf("%w: %s is an alias", ErrExists, mb.Address())
		} else if !errors.Is(err, ErrNotFound) {
			return Mailbox{}, err
		}
		h, err := m.opts.Store.NextDir(ctx, d.Name)
		if err != nil {
			return Mailbox{}, err
		}
		if !validHashDir(h) {
			return Mailbox{}, fmt.Errorf("vmail: the store gave %q as a hashed directory", truncate(h))
		}
		rel := d.Name + "/" + name
		if h != "" {
			rel = d.Name + "/" + h + "/" + name
		}
		if err := m.makeMailboxDir(rel); err != nil {
			return Mailbox{}, err
		}
		made = rel
		mb.Dir = filepath.Join(m.opts.Dir, filepath.FromSlash(rel))
	}
	if err := m.opts.Store.AddMailbox(ctx, mb); err != nil {
		if made != "" {
			if rerr := m.removeDir(made); rerr != nil {
				m.log.Error("vmail: add mailbox: undo", "address", mb.Address(), "err", rerr)
			}
		}
		return Mailbox{}, err
	}
	m.changed()
	if made != "" && mb.Quota != (Quota{}) {
		if err := m.writeQuota(mb); err != nil {
			m.log.Warn("vmail: add mailbox: maildirsize", "address", mb.Address(), "err", err)
		}
	}
	m.log.Info("vmail: mailbox added", "address", mb.Address(), "dir", mb.Dir)
	return mb, nil
}

// checkMailbox checks the fields of a mailbox other than its name.
func (m *Manager) checkMailbox(mb *Mailbox) error {
	if len(mb.RealName) > MaxTextLength || strings.ContainsAny(mb.RealName, "\x00\r\n") {
		return fmt.Errorf("%w: real name", ErrInvalid)
	}
	if mb.Quota.Bytes < 0 || mb.Quota.Count < 0 {
		return fmt.Errorf("%w: negative quota", ErrInvalid)
	}
	if err := m.checkForward(mb.Domain, &mb.Forward); err != nil {
		return err
	}
	return checkAutoresponder(mb.Autoresponder)
}

// DeleteMailbox removes a mailbox and its directory. A directory outside
// the domain's under Options.Dir (an imported one) is left where it is.
// The mailbox a domain's catch-all names cannot be deleted (vdeluser's
// rule): change the catch-all first.
func (m *Manager) DeleteMailbox(ctx context.Context, address string) error {
	name, d, err := m.addressDomain(ctx, address)
	if err != nil {
		return fmt.Errorf("vmail: delete mailbox %s: %w", truncate(address), err)
	}
	if d.CatchAll == name || d.CatchAll == name+"@"+d.Name {
		return fmt.Errorf("vmail: delete mailbox %s@%s: %w: can't delete catchall account", name, d.Name, ErrInvalid)
	}
	mb, err := m.opts.Store.Mailbox(ctx, d.Name, name)
	if err != nil {
		return fmt.Errorf("vmail: delete mailbox %s@%s: %w", name, d.Name, err)
	}
	if err := m.opts.Store.DeleteMailbox(ctx, d.Name, name); err != nil {
		return fmt.Errorf("vmail: delete mailbox %s: %w", mb.Address(), err)
	}
	m.changed()
	rel, inside := m.relDir(mb.Dir, d.Name)
	if !inside {
		m.log.Warn("vmail: mailbox deleted, its directory outside the domain's left", "address", mb.Address(), "dir", mb.Dir)
		return nil
	}
	if err := m.removeDir(rel); err != nil {
		return fmt.Errorf("vmail: delete mailbox %s: record removed, directory left: %w", mb.Address(), err)
	}
	m.log.Info("vmail: mailbox deleted", "address", mb.Address())
	return nil
}

// Mailbox returns a mailbox by address (an alias domain's too).
func (m *Manager) Mailbox(ctx context.Context, address string) (Mailbox, error) {
	name, domain, err := splitAddress(address)
	if err != nil {
		return Mailbox{}, fmt.Errorf("vmail: mailbox: %w", err)
	}
	d, err := m.opts.Store.Domain(ctx, domain)
	if err != nil {
		return Mailbox{}, fmt.Errorf("vmail: mailbox %s: %w", truncate(address), err)
	}
	mb, err := m.opts.Store.Mailbox(ctx, d.Name, name)
	if err != nil {
		return Mailbox{}, fmt.Errorf("vmail: mailbox %s: %w", truncate(address), err)
	}
	return mb, nil
}

// Mailboxes lists a domain's mailboxes (see Store.Mailboxes).
func (m *Manager) Mailboxes(ctx context.Context, domain, after string, limit int) ([]Mailbox, error) {
	d, err := m.opts.Store.Domain(ctx, strings.ToLower(domain))
	if err != nil {
		return nil, fmt.Errorf("vmail: mailboxes of %s: %w", domain, err)
	}
	mbs, err := m.opts.Store.Mailboxes(ctx, d.Name, strings.ToLower(after), limit)
	if err != nil {
		return nil, fmt.Errorf("vmail: mailboxes of %s: %w", domain, err)
	}
	return mbs, nil
}

// updateMailbox reads a mailbox, lets f change it, checks and stores it.
func (m *Manager) updateMailbox(ctx context.Context, address string, f func(d Domain, mb *Mailbox) error) (Mailbox, error) {
	name, d, err := m.addressDomain(ctx, address)
	if err != nil {
		return Mailbox{}, err
	}
	mb, err := m.opts.Store.Mailbox(ctx, d.Name, name)
	if err != nil {
		return Mailbox{}, err
	}
	if err := f(d, &mb); err != nil {
		return Mailbox{}, err
	}
	if err := m.checkMailbox(&mb); err != nil {
		return Mailbox{}, err
	}
	if err := m.opts.Store.UpdateMailbox(ctx, mb); err != nil {
		return Mailbox{}, err
	}
	m.changed()
	return mb, nil
}

// SetPassword hashes and stores a mailbox's new password. It does not
// look at NoPasswordChange: a page that lets users change their own
// password checks that flag (with EffectiveFlags).
func (m *Manager) SetPassword(ctx context.Context, address, password string) error {
	if err := validPassword(password, m.opts.MinPasswordLength); err != nil {
		return fmt.Errorf("vmail: set password of %s: %w", truncate(address), err)
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return fmt.Errorf("vmail: set password of %s: %w: %v", truncate(address), ErrInvalid, err)
	}
	_, err = m.updateMailbox(ctx, address, func(_ Domain, mb *Mailbox) error {
		mb.Password = hash
		return nil
	})
	if err != nil {
		return fmt.Errorf("vmail: set password of %s: %w", truncate(address), err)
	}
	return nil
}

// SetQuota sets a mailbox's quota and rewrites its maildirsize file: removed
// for no quota, else recounted from the Maildir (vsetuserquota's way).
func (m *Manager) SetQuota(ctx context.Context, address string, q Quota) error {
	mb, err := m.updateMailbox(ctx, address, func(_ Domain, mb *Mailbox) error {
		mb.Quota = q
		return nil
	})
	if err != nil {
		return fmt.Errorf("vmail: set quota of %s: %w", truncate(address), err)
	}
	if err := m.writeQuota(mb); err != nil {
		return fmt.Errorf("vmail: set quota of %s: %w", mb.Address(), err)
	}
	return nil
}

// SetFlags sets a mailbox's flags.
func (m *Manager) SetFlags(ctx context.Context, address string, f Flags) error {
	_, err := m.updateMailbox(ctx, address, func(_ Domain, mb *Mailbox) error {
		mb.Flags = f
		return nil
	})
	if err != nil {
		return fmt.Errorf("vmail: set flags of %s: %w", truncate(address), err)
	}
	return nil
}

// SetRealName sets a mailbox's real name (at most MaxTextLength bytes, no
// NUL, CR or LF).
func (m *Manager) SetRealName(ctx context.Context, address, name string) error {
	_, err := m.updateMailbox(ctx, address, func(_ Domain, mb *Mailbox) error {
		mb.RealName = name
		return nil
	})
	if err != nil {
		return fmt.Errorf("vmail: set real name of %s: %w", truncate(address), err)
	}
	return nil
}

// SetForward sets a mailbox's forwarding; a Forward with no address
// switches it off. A target without '@' is a mailbox of the same domain.
// The domain's MaxForwards refuses more addresses with ErrLimit.
func (m *Manager) SetForward(ctx context.Context, address string, f Forward) error {
	_, err := m.updateMailbox(ctx, address, func(d Domain, mb *Mailbox) error {
		if d.Limits.MaxForwards > 0 && len(f.To) > d.Limits.MaxForwards {
			return fmt.Errorf("%w: %d forward addresses (max=%d)", ErrLimit, len(f.To), d.Limits.MaxForwards)
		}
		mb.Forward = Forward{To: slices.Clone(f.To), KeepCopy: f.KeepCopy}
		if len(mb.Forward.To) == 0 {
			mb.Forward = Forward{}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("vmail: set forward of %s: %w", truncate(address), err)
	}
	return nil
}

// checkForward normalises and checks a forward's targets.
func (m *Manager) checkForward(domain string, f *Forward) error {
	to, err := normTargets(domain, f.To)
	if err != nil {
		return err
	}
	f.To = to
	return nil
}

// SetAutoresponder sets a mailbox's autoresponder. The domain's
// MaxAutoresponders refuses enabling one more with ErrLimit.
func (m *Manager) SetAutoresponder(ctx context.Context, address string, a Autoresponder) error {
	_, err := m.updateMailbox(ctx, address, func(d Domain, mb *Mailbox) error {
		if a.Enabled && !mb.Autoresponder.Enabled && d.Limits.MaxAutoresponders > 0 {
			n, err := m.countAutoresponders(ctx, d.Name)
			if err != nil {
				return err
			}
			if n >= d.Limits.MaxAutoresponders {
				return fmt.Errorf("%w: the domain has %d autoresponders (max=%d)", ErrLimit, n, d.Limits.MaxAutoresponders)
			}
		}
		mb.Autoresponder = a
		return nil
	})
	if err != nil {
		return fmt.Errorf("vmail: set autoresponder of %s: %w", truncate(address), err)
	}
	return nil
}

// countAutoresponders counts a domain's enabled autoresponders, a page of
// mailboxes at a time.
func (m *Manager) countAutoresponders(ctx context.Context, domain string) (int, error) {
	n, after := 0, ""
	for {
		page, err := m.opts.Store.Mailboxes(ctx, domain, after, 1000)
		if err != nil {
			return 0, err
		}
		for _, mb := range page {
			if mb.Autoresponder.Enabled {
				n++
			}
		}
		if len(page) < 1000 {
			return n, nil
		}
		after = page[len(page)-1].Name
	}
}

func checkAutoresponder(a Autoresponder) error {
	switch {
	case len(a.Subject) > MaxTextLength || strings.ContainsAny(a.Subject, "\x00\r\n"):
		return fmt.Errorf("%w: autoresponder subject", ErrInvalid)
	case len(a.Body) > maxBody || strings.ContainsRune(a.Body, 0):
		return fmt.Errorf("%w: autoresponder body (NUL, or longer than %d bytes)", ErrInvalid, maxBody)
	case a.Interval < 0:
		return fmt.Errorf("%w: negative autoresponder interval", ErrInvalid)
	}
	return nil
}

// AddAlias adds targets to an alias, making it if needed. A target without
// '@' is a mailbox of the same domain; targets are lower-cased and kept
// once each. The domain's MaxAliases refuses a new alias with ErrLimit.
func (m *Manager) AddAlias(ctx context.Context, address string, targets ...string) error {
	fail := func(err error) error { return fmt.Errorf("vmail: add alias %s: %w", truncate(address), err) }
	if len(targets) == 0 {
		return fail(fmt.Errorf("%w: no target", ErrInvalid))
	}
	name, d, err := m.addressDomain(ctx, address)
	if err != nil {
		return fail(err)
	}
	add, err := normTargets(d.Name, targets)
	if err != nil {
		return fail(err)
	}
	a, err := m.opts.Store.Alias(ctx, d.Name, name)
	switch {
	case errors.Is(err, ErrNotFound):
		a = Alias{Name: name, Domain: d.Name}
		if d.Limits.MaxAliases > 0 {
			as, err := m.opts.Store.Aliases(ctx, d.Name)
			if err != nil {
				return fail(err)
			}
			if len(as) >= d.Limits.MaxAliases {
				return fail(fmt.Errorf("%w: the domain has %d aliases (max=%d)", ErrLimit, len(as), d.Limits.MaxAliases))
			}
		}
	case err != nil:
		return fail(err)
	}
	for _, t := range add {
		if !slices.Contains(a.Targets, t) {
			a.Targets = append(a.Targets, t)
		}
	}
	if len(a.Targets) > MaxTargets {
		return fail(fmt.Errorf("%w: more than %d targets", ErrLimit, MaxTargets))
	}
	if err := m.opts.Store.PutAlias(ctx, a); err != nil {
		return fail(err)
	}
	m.changed()
	return nil
}

// DeleteAlias removes targets from an alias, or the whole alias when no
// target is given; an alias left with no target is removed.
func (m *Manager) DeleteAlias(ctx context.Context, address string, targets ...string) error {
	fail := func(err error) error { return fmt.Errorf("vmail: delete alias %s: %w", truncate(address), err) }
	name, d, err := m.addressDomain(ctx, address)
	if err != nil {
		return fail(err)
	}
	a, err := m.opts.Store.Alias(ctx, d.Name, name)
	if err != nil {
		return fail(err)
	}
	if len(targets) > 0 {
		del, err := normTargets(d.Name, targets)
		if err != nil {
			return fail(err)
		}
		for _, t := range del {
			if !slices.Contains(a.Targets, t) {
				return fail(fmt.Errorf("%w: %s is not a target of the alias", ErrNotFound, t))
			}
		}
		a.Targets = slices.DeleteFunc(a.Targets, func(t string) bool { return slices.Contains(del, t) })
	}
	if len(targets) == 0 || len(a.Targets) == 0 {
		err = m.opts.Store.DeleteAlias(ctx, d.Name, name)
	} else {
		err = m.opts.Store.PutAlias(ctx, a)
	}
	if err != nil {
		return fail(err)
	}
	m.changed()
	return nil
}

// Alias returns an alias by address.
func (m *Manager) Alias(ctx context.Context, address string) (Alias, error) {
	name, domain, err := splitAddress(address)
	if err != nil {
		return Alias{}, fmt.Errorf("vmail: alias: %w", err)
	}
	d, err := m.opts.Store.Domain(ctx, domain)
	if err != nil {
		return Alias{}, fmt.Errorf("vmail: alias %s: %w", truncate(address), err)
	}
	a, err := m.opts.Store.Alias(ctx, d.Name, name)
	if err != nil {
		return Alias{}, fmt.Errorf("vmail: alias %s: %w", truncate(address), err)
	}
	return a, nil
}

// Aliases lists a domain's aliases.
func (m *Manager) Aliases(ctx context.Context, domain string) ([]Alias, error) {
	d, err := m.opts.Store.Domain(ctx, strings.ToLower(domain))
	if err != nil {
		return nil, fmt.Errorf("vmail: aliases of %s: %w", domain, err)
	}
	as, err := m.opts.Store.Aliases(ctx, d.Name)
	if err != nil {
		return nil, fmt.Errorf("vmail: aliases of %s: %w", domain, err)
	}
	return as, nil
}

// normTargets lower-cases targets, makes a bare name an address of domain,
// drops duplicates and checks each.
func normTargets(domain string, targets []string) ([]string, error) {
	if len(targets) > MaxTargets {
		return nil, fmt.Errorf("%w: more than %d targets", ErrLimit, MaxTargets)
	}
	var out []string
	for _, t := range targets {
		t = strings.ToLower(strings.TrimSpace(t))
		t = strings.TrimPrefix(t, "&")
		if !strings.Contains(t, "@") {
			if err := ValidName(t); err != nil {
				return nil, fmt.Errorf("target: %w", err)
			}
			t += "@" + domain
		}
		if err := validAddress(t); err != nil {
			return nil, err
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// validAddress checks a target address, local or remote: a local part of
// 1 to 64 printable bytes without space, quotes, brackets, '\', ',', ';'
// or ':' (nothing a .qmail line or a header would read differently), '@',
// and a domain ValidDomain accepts.
func validAddress(a string) error {
	bad := func(why string) error { return fmt.Errorf("%w: address %q: %s", ErrInvalid, truncate(a), why) }
	if len(a) > MaxAddressLength {
		return bad("too long")
	}
	i := strings.LastIndexByte(a, '@')
	if i < 1 || i > 64 {
		return bad("not local@domain")
	}
	for j := 0; j < i; j++ {
		c := a[j]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),:;<>@[\\]|", c) >= 0 {
			return bad(fmt.Sprintf("byte %q not allowed in the local part", c))
		}
	}
	if a[0] == '.' || a[0] == '-' || a[0] == '|' || a[0] == '/' || a[0] == '#' {
		return bad("starts with a byte a .qmail line would read differently")
	}
	return ValidDomain(a[i+1:])
}

// EffectiveFlags returns a mailbox's flags with those its domain's
// Limits.Disabled sets, unless the mailbox has Override (vpopmail's
// "gid | domain mask").
func EffectiveFlags(d Domain, mb Mailbox) Flags {
	if mb.Flags&Override != 0 {
		return mb.Flags
	}
	return mb.Flags | d.Limits.Disabled
}

// Kind is what an address of a virtual domain is.
type Kind int

// The kinds of address.
const (
	Unknown    Kind = iota // no mailbox, no alias, no catch-all: refuse at RCPT
	IsMailbox              // a mailbox: Recipient.Mailbox
	IsAlias                // an alias: Recipient.Targets
	IsCatchAll             // the domain's catch-all: Recipient.Targets (empty: discard)
)

// Recipient is what Resolve found for an address.
type Recipient struct {
	Kind    Kind
	Address string // the address, lower case, with the real domain
	Mailbox Mailbox
	Targets []string
	// Domain is the address's (real) domain.
	Domain Domain
}

// domain looks a domain up through the cache.
func (m *Manager) domain(ctx context.Context, gen int64, cached bool, name string) (Domain, error) {
	if cached {
		if e, ok := m.cache.domain(gen, name); ok {
			if !e.found {
				return Domain{}, fmt.Errorf("vmail: domain %s: %w", name, ErrNotFound)
			}
			return e.d, nil
		}
	}
	if ValidDomain(name) != nil {
		return Domain{}, fmt.Errorf("vmail: domain %s: %w", truncate(name), ErrNotFound)
	}
	d, err := m.opts.Store.Domain(ctx, name)
	switch {
	case errors.Is(err, ErrNotFound):
		if cached {
			m.cache.putDomain(gen, name, domainEntry{})
		}
		return Domain{}, fmt.Errorf("vmail: domain %s: %w", name, err)
	case err != nil:
		return Domain{}, fmt.Errorf("vmail: domain %s: %w", name, err)
	}
	if cached {
		m.cache.putDomain(gen, name, domainEntry{d: d, found: true})
	}
	return d, nil
}

// IsDomain reports whether domain is a virtual domain or an alias domain
// (the mail system accepts mail for it: rcpthosts).
func (m *Manager) IsDomain(ctx context.Context, domain string) (bool, error) {
	gen, cached := m.cache.epoch(ctx, m.opts.Store, m.opts.Now())
	_, err := m.domain(ctx, gen, cached, strings.ToLower(domain))
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// Resolve looks an address up as the mail system needs at RCPT time and
// at delivery: a mailbox, an alias, the catch-all, or Unknown. An error
// wraps ErrNotFound when the domain is not a virtual domain (ErrInvalid
// when the address has no '@'); any other is temporary. The local part is
// taken whole: neither '-' nor '+' separates an extension (vdelivermail's
// default).
func (m *Manager) Resolve(ctx context.Context, address string) (Recipient, error) {
	addr := strings.ToLower(address)
	gen, cached := m.cache.epoch(ctx, m.opts.Store, m.opts.Now())
	if cached {
		if r, ok := m.cache.recipient(gen, addr); ok {
			return cloneRecipient(r), nil
		}
	}
	r, err := m.resolve(ctx, gen, cached, addr)
	if err != nil {
		return Recipient{}, err
	}
	if cached {
		m.cache.putRecipient(gen, addr, r)
	}
	return cloneRecipient(r), nil
}

func (m *Manager) resolve(ctx context.Context, gen int64, cached bool, addr string) (Recipient, error) {
	name, domain, err := splitAddress(addr)
	if err != nil {
		return Recipient{}, fmt.Errorf("vmail: resolve: %w", err)
	}
	d, err := m.domain(ctx, gen, cached, domain)
	if err != nil {
		return Recipient{}, fmt.Errorf("vmail: resolve %s: %w", truncate(addr), err)
	}
	r := Recipient{Address: name + "@" + d.Name, Domain: d}
	if ValidName(name) == nil {
		mb, err := m.opts.Store.Mailbox(ctx, d.Name, name)
		if err == nil {
			r.Kind, r.Mailbox = IsMailbox, mb
			return r, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Recipient{}, fmt.Errorf("vmail: resolve %s: %w", truncate(addr), err)
		}
		a, err := m.opts.Store.Alias(ctx, d.Name, name)
		if err == nil {
			r.Kind, r.Targets = IsAlias, a.Targets
			return r, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Recipient{}, fmt.Errorf("vmail: resolve %s: %w", truncate(addr), err)
		}
	}
	switch ca := d.CatchAll; {
	case ca == "":
		r.Kind = Unknown
	case ca == "delete":
		r.Kind = IsCatchAll
	case strings.HasPrefix(ca, "@"):
		r.Kind, r.Targets = IsCatchAll, []string{name + ca}
	case strings.Contains(ca, "@"):
		r.Kind, r.Targets = IsCatchAll, []string{ca}
	default:
		r.Kind, r.Targets = IsCatchAll, []string{ca + "@" + d.Name}
	}
	return r, nil
}

// cloneRecipient copies the slices a cached Recipient shares.
func cloneRecipient(r Recipient) Recipient {
	r.Targets = slices.Clone(r.Targets)
	r.Mailbox.Forward.To = slices.Clone(r.Mailbox.Forward.To)
	r.Domain.Aliases = slices.Clone(r.Domain.Aliases)
	return r
}

// Authenticate implements auth.Authenticator for the mailboxes: the login
// is "name@domain" (or "name%domain", "name/domain"; see [SplitLogin]),
// the password is checked against the stored hash, and a mailbox whose
// effective flags ([EffectiveFlags]) refuse the credentials' Service
// (NoPOP, NoSMTP, NoIMAP; NoWebmail for POP3 and IMAP from 127.0.0.1, as
// vchkpw did) is refused as a wrong password would be (auth.ErrFailed).
// An unknown user costs one password check too. A successful login is
// recorded in the store (a failure to record is logged, not fatal). The
// User's Name is the address, Home the mailbox's directory and Maildir the
// mailbox's Maildir; UID and GID are Options'.
func (m *Manager) Authenticate(ctx context.Context, c auth.Credentials) (*auth.User, error) {
	refuse := func(why, login string) (*auth.User, error) {
		m.log.Info("vmail: login refused", "login", truncate(login), "service", string(c.Service), "remote", c.Remote.String(), "why", why)
		return nil, fmt.Errorf("vmail: %s: %w", why, auth.ErrFailed)
	}
	name, domain, err := SplitLogin(c.User, "")
	if err != nil || len(c.User) > MaxAddressLength {
		auth.VerifyPassword(m.dummy, c)
		return refuse("bad login name", c.User)
	}
	r, err := m.Resolve(ctx, name+"@"+domain)
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalid) {
		return nil, fmt.Errorf("vmail: authenticate: %w", err)
	}
	if err != nil || r.Kind != IsMailbox {
		auth.VerifyPassword(m.dummy, c)
		return refuse("no such mailbox", name+"@"+domain)
	}
	mb := r.Mailbox
	if mb.Password == "" {
		auth.VerifyPassword(m.dummy, c)
		return refuse("no password", mb.Address())
	}
	if !auth.VerifyPassword(mb.Password, c) {
		return refuse("password fail", mb.Address())
	}
	f := EffectiveFlags(r.Domain, mb)
	switch {
	case c.Service == auth.ServicePOP3 && f&NoPOP != 0:
		return refuse("pop access denied", mb.Address())
	case c.Service == auth.ServiceSMTP && f&NoSMTP != 0:
		return refuse("smtp access denied", mb.Address())
	case c.Service == auth.ServiceIMAP && f&NoIMAP != 0:
		return refuse("imap access denied", mb.Address())
	case (c.Service == auth.ServicePOP3 || c.Service == auth.ServiceIMAP) && f&NoWebmail != 0 &&
		c.Remote.Unmap() == netip.AddrFrom4([4]byte{127, 0, 0, 1}):
		return refuse("webmail access denied", mb.Address())
	}
	ip := ""
	if c.Remote.IsValid() {
		ip = c.Remote.Unmap().String()
	}
	if err := m.opts.Store.RecordLogin(context.WithoutCancel(ctx), mb.Domain, mb.Name, m.opts.Now(), ip); err != nil {
		m.log.Warn("vmail: login not recorded", "address", mb.Address(), "err", err)
	}
	return &auth.User{
		Name:    mb.Address(),
		Home:    mb.Dir,
		Shell:   "NOLOGIN",
		UID:     m.opts.UID,
		GID:     m.opts.GID,
		Maildir: mb.Maildir(),
	}, nil
}
