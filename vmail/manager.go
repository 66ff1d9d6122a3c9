package vmail

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/qmailkit/qmailkit/auth"
)

// errTODO marks the methods the first version of this file declares for
// the packages built beside it; each is replaced by its implementation.
var errTODO = errors.New("vmail: not implemented yet")

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

// Manager manages virtual domains and mailboxes over a Store. Its methods
// are safe for concurrent use.
type Manager struct {
	opts Options
}

// New returns a Manager.
func New(opts Options) (*Manager, error) { return nil, errTODO }

// Store returns the Manager's store.
func (m *Manager) Store() Store { return m.opts.Store }

// AddDomain adds a domain and makes its directory.
func (m *Manager) AddDomain(ctx context.Context, name string) (Domain, error) {
	return Domain{}, errTODO
}

// DeleteDomain removes a domain, its records and its directory with every
// mailbox's mail.
func (m *Manager) DeleteDomain(ctx context.Context, name string) error { return errTODO }

// Domain returns a domain by its name or an alias domain's.
func (m *Manager) Domain(ctx context.Context, name string) (Domain, error) {
	return Domain{}, errTODO
}

// Domains lists the domains.
func (m *Manager) Domains(ctx context.Context) ([]Domain, error) { return nil, errTODO }

// SetCatchAll sets a domain's catch-all (see Domain.CatchAll).
func (m *Manager) SetCatchAll(ctx context.Context, domain, target string) error { return errTODO }

// SetLimits sets a domain's limits.
func (m *Manager) SetLimits(ctx context.Context, domain string, l Limits) error { return errTODO }

// AddAliasDomain makes alias an alias domain of domain.
func (m *Manager) AddAliasDomain(ctx context.Context, alias, domain string) error { return errTODO }

// DeleteAliasDomain removes an alias domain.
func (m *Manager) DeleteAliasDomain(ctx context.Context, alias string) error { return errTODO }

// AddMailbox adds a mailbox with a password (hashed here), the domain's
// default quota, and its Maildir in the next hashed directory.
func (m *Manager) AddMailbox(ctx context.Context, address, password string) (Mailbox, error) {
	return Mailbox{}, errTODO
}

// DeleteMailbox removes a mailbox and its directory.
func (m *Manager) DeleteMailbox(ctx context.Context, address string) error { return errTODO }

// Mailbox returns a mailbox by address (an alias domain's too).
func (m *Manager) Mailbox(ctx context.Context, address string) (Mailbox, error) {
	return Mailbox{}, errTODO
}

// Mailboxes lists a domain's mailboxes (see Store.Mailboxes).
func (m *Manager) Mailboxes(ctx context.Context, domain, after string, limit int) ([]Mailbox, error) {
	return nil, errTODO
}

// SetPassword hashes and stores a mailbox's new password.
func (m *Manager) SetPassword(ctx context.Context, address, password string) error { return errTODO }

// SetQuota sets a mailbox's quota and rewrites its maildirsize file.
func (m *Manager) SetQuota(ctx context.Context, address string, q Quota) error { return errTODO }

// SetFlags sets a mailbox's flags.
func (m *Manager) SetFlags(ctx context.Context, address string, f Flags) error { return errTODO }

// SetRealName sets a mailbox's real name.
func (m *Manager) SetRealName(ctx context.Context, address, name string) error { return errTODO }

// SetForward sets a mailbox's forwarding; a Forward with no address
// switches it off.
func (m *Manager) SetForward(ctx context.Context, address string, f Forward) error { return errTODO }

// SetAutoresponder sets a mailbox's autoresponder.
func (m *Manager) SetAutoresponder(ctx context.Context, address string, a Autoresponder) error {
	return errTODO
}

// AddAlias adds targets to an alias, making it if needed.
func (m *Manager) AddAlias(ctx context.Context, address string, targets ...string) error {
	return errTODO
}

// DeleteAlias removes targets from an alias, or the whole alias when no
// target is given; an alias left with no target is removed.
func (m *Manager) DeleteAlias(ctx context.Context, address string, targets ...string) error {
	return errTODO
}

// Alias returns an alias by address.
func (m *Manager) Alias(ctx context.Context, address string) (Alias, error) {
	return Alias{}, errTODO
}

// Aliases lists a domain's aliases.
func (m *Manager) Aliases(ctx context.Context, domain string) ([]Alias, error) { return nil, errTODO }

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
}

// IsDomain reports whether domain is a virtual domain or an alias domain
// (the mail system accepts mail for it: rcpthosts).
func (m *Manager) IsDomain(ctx context.Context, domain string) (bool, error) {
	return false, errTODO
}

// Resolve looks an address up as the mail system needs at RCPT time and
// at delivery: a mailbox, an alias, the catch-all, or Unknown. An error
// wraps ErrNotFound when the domain is not a virtual domain; any other is
// temporary.
func (m *Manager) Resolve(ctx context.Context, address string) (Recipient, error) {
	return Recipient{}, errTODO
}

// Authenticate implements auth.Authenticator for the mailboxes: the login
// is "name@domain" (or "name%domain", "name/domain"), the password is
// checked against the stored hash, and a mailbox whose flags refuse the
// credentials' Service (NoPOP, NoSMTP, NoIMAP) is refused as a wrong
// password would be. The User's Home is the mailbox's directory and its
// Maildir the mailbox's Maildir.
func (m *Manager) Authenticate(ctx context.Context, c auth.Credentials) (*auth.User, error) {
	return nil, errTODO
}
