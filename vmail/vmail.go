// Package vmail keeps virtual mail domains and their mailboxes, the job
// vpopmail did for qmail: domains that are not the host's own, mailboxes
// that are not Unix accounts, aliases and forwards, quotas and
// autoresponders, in a database, with the mailboxes' Maildirs spread over
// hashed directories so that no directory holds more than about a hundred
// of them.
//
// A [Manager] is the API: it validates what it is given, hashes passwords
// (SHA512-CRYPT, which Dovecot reads), makes and removes directories, and
// keeps the records in a [Store]. Package vmail/sqlstore has the two
// stores: an embedded SQLite database (the default, pure Go) and
// PostgreSQL, for several machines sharing one user base.
//
// The Manager is also what the mail system asks: [Manager.Resolve] tells
// whether an address exists (at RCPT time) and where its mail goes,
// [Manager.Deliver] delivers a message to a virtual address (vdelivermail's
// job), and [Manager.Authenticate] is an [auth.Authenticator] for POP3,
// SMTP AUTH, IMAP (through a checkpassword program) and the web admin.
// Those three may answer from a cache for Options.CacheTTL: a change made
// by another process sharing the store (the admin command) is seen once
// the store's Generation is checked again, within that time.
//
// # Layout
//
// A domain's directory is Dir/DOMAIN (mode 0750); a mailbox's is
// Dir/DOMAIN/HASH/NAME with its Maildir in it, where HASH spreads
// mailboxes as vpopmail's dir_control does ([HashDir]): none for the first
// 99 mailboxes of a domain, then "0" to "z" for a hundred each, then
// "0/0" to "z/z", then three levels. Run as root, a Manager gives what it
// makes to Options.UID and GID.
//
// # Security
//
// Names become directory names, so they are checked before anything is
// made: domains as vadddomain checks them ([ValidDomain]), local parts
// with a smaller alphabet than vpopmail's, without '/' ([ValidName]).
// Removing a domain or a mailbox never follows a symbolic link, in its
// path or inside it, and never touches anything outside Options.Dir; a
// mailbox directory outside its domain's (an imported one) is left where
// it is. Passwords are stored hashed (SHA512-CRYPT, which Dovecot reads);
// an unknown user costs a login as much time as a known one.
//
// # Compatibility
//
// Flags keep vpopmail's bits, quotas its Maildir++ strings ([ParseQuota]),
// logins its three forms ([SplitLogin]). Unlike vpopmail, a mailbox name
// may not hold '/' or the other bytes outside [ValidName]'s alphabet, a
// new domain's catch-all refuses mail for unknown local parts (vpopmail
// discarded it), and the hashed directory counter never goes down when a
// mailbox is deleted, so that each directory receives 100 mailboxes.
package vmail

import (
	"context"
	"errors"
	"time"
)

// Errors a Manager and a Store return, wrapped; test with errors.Is.
var (
	ErrNotFound = errors.New("vmail: not found")      // no such domain, mailbox or alias
	ErrExists   = errors.New("vmail: already exists") // the name is taken (by a mailbox, an alias or a domain)
	ErrInvalid  = errors.New("vmail: invalid")        // a bad name, address, password or quota
	ErrLimit    = errors.New("vmail: limit reached")  // a domain limit (Limits) refuses the addition
)

// Flags are a mailbox's switches, vpopmail's bits (its vpasswd "gid"
// field) so that imported records keep their meaning.
type Flags uint32

// The flags. A domain's Limits.Disabled sets them for all its mailboxes,
// except those with Override.
const (
	NoPasswordChange Flags = 0x0001  // the user may not change the password
	NoPOP            Flags = 0x0002  // POP3 logins refused
	NoWebmail        Flags = 0x0004  // logins from the webmail host refused
	NoIMAP           Flags = 0x0008  // IMAP logins refused
	BounceMail       Flags = 0x0010  // all mail to the mailbox bounces ("account is locked")
	NoRelay          Flags = 0x0020  // no relaying after a POP3 login
	NoDialup         Flags = 0x0040  // informational
	NoSMTP           Flags = 0x0800  // SMTP AUTH refused
	DomainAdmin      Flags = 0x1000  // administers its domain (qmailadmin's QA_ADMIN)
	Override         Flags = 0x2000  // the domain's Disabled flags do not apply
	SystemAdmin      Flags = 0x10000 // administers every domain (SA_ADMIN)
)

// Quota is a Maildir++ quota (the "maildirsize" file's first line): a
// limit on the bytes and one on the number of messages. Zero is no limit.
type Quota struct {
	Bytes, Count int64
}

// Limits are a domain's limits (vpopmail's .qmailadmin-limits). Zero
// counts mean no limit.
type Limits struct {
	MaxMailboxes      int
	MaxAliases        int
	MaxForwards       int // forward addresses per mailbox
	MaxAutoresponders int
	// DefaultQuota is given to new mailboxes that do not name their own.
	DefaultQuota Quota
	// Disabled are flags set for every mailbox of the domain (NoPOP,
	// NoSMTP, NoIMAP, NoPasswordChange, NoRelay, NoWebmail), except those
	// with Override.
	Disabled Flags
}

// Domain is a virtual mail domain.
type Domain struct {
	Name string // lower case, e.g. "example.com"
	// Dir is the domain's directory: mailboxes' directories are under it.
	// A Manager sets it when the domain is added.
	Dir string
	// CatchAll decides the mail for local parts that are neither a mailbox
	// nor an alias: "" refuses it at RCPT time (550 5.1.1); an address
	// (or a mailbox name of the domain) receives it; "@other.example"
	// forwards every local part to the same local part at another domain;
	// "delete" accepts and discards it (vpopmail's default, not ours).
	CatchAll string
	Limits   Limits
	// Aliases are the alias domains whose mail is this domain's
	// ("example.net" for "example.com"). Read only: Manager.AddAliasDomain
	// and DeleteAliasDomain change them.
	Aliases []string
	Created time.Time
}

// Forward is a mailbox's forwarding.
type Forward struct {
	To       []string // addresses, each "local@domain"
	KeepCopy bool     // also deliver to the mailbox
}

// Autoresponder is a mailbox's automatic reply (a vacation message), sent
// as RFC 3834 asks: to the envelope sender only, never to lists, bulk or
// automatic mail, with an empty envelope sender and Auto-Submitted:
// auto-replied, at most once per sender per Interval.
type Autoresponder struct {
	Enabled  bool
	Subject  string
	Body     string
	Interval time.Duration // 0 means 7 days
	// From and Until bound the period of absence; zero times do not.
	From, Until time.Time
}

// Mailbox is a virtual mailbox.
type Mailbox struct {
	Name   string // the local part, lower case
	Domain string // the domain's name
	// Password is the hash of the password ("{SHA512-CRYPT}$6$..."); empty
	// means no login. Set it with Manager.SetPassword, never in clear.
	Password string
	RealName string
	// Dir is the mailbox's directory (USERDIR); the Maildir is Dir/Maildir.
	// A Manager sets it when the mailbox is added.
	Dir           string
	Quota         Quota
	Flags         Flags
	Forward       Forward
	Autoresponder Autoresponder
	Created       time.Time
	// LastLogin and LastLoginIP are the last successful login's.
	LastLogin   time.Time
	LastLoginIP string
}

// Address returns name@domain.
func (m Mailbox) Address() string { return m.Name + "@" + m.Domain }

// Maildir returns the path of the mailbox's Maildir.
func (m Mailbox) Maildir() string { return m.Dir + "/Maildir" }

// Alias is an address of a domain that is not a mailbox: its mail goes to
// Targets (addresses, local or remote).
type Alias struct {
	Name, Domain string
	Targets      []string
}

// Store keeps domains, mailboxes and aliases. It checks no rule beyond
// uniqueness (a Manager validates): names are stored as given. Every
// method is safe for concurrent use, also by several processes (and, for a
// network database, several machines) sharing the store. Errors wrap
// ErrNotFound or ErrExists where those apply; any other error is a failure
// of the store, temporary.
type Store interface {
	// AddDomain stores a new domain; ErrExists when the name is a domain or
	// an alias domain already.
	AddDomain(ctx context.Context, d Domain) error
	// Domain returns a domain by its name or the name of one of its alias
	// domains (the Domain returned is the real one).
	Domain(ctx context.Context, name string) (Domain, error)
	// UpdateDomain stores d's CatchAll and Limits.
	UpdateDomain(ctx context.Context, d Domain) error
	// DeleteDomain removes a domain with its mailboxes, aliases and alias
	// domains.
	DeleteDomain(ctx context.Context, name string) error
	// Domains lists the domains by name.
	Domains(ctx context.Context) ([]Domain, error)
	// AddAliasDomain makes alias an alias domain of domain; ErrExists
	// when alias is a domain or an alias domain already, ErrNotFound when
	// domain is not a domain.
	AddAliasDomain(ctx context.Context, alias, domain string) error
	// DeleteAliasDomain removes an alias domain.
	DeleteAliasDomain(ctx context.Context, alias string) error

	// AddMailbox stores a new mailbox; ErrExists when the name is a
	// mailbox or an alias of the domain, ErrNotFound when the domain is
	// not a domain.
	AddMailbox(ctx context.Context, m Mailbox) error
	// Mailbox returns a mailbox of a domain (a real domain's name).
	Mailbox(ctx context.Context, domain, name string) (Mailbox, error)
	// UpdateMailbox stores every field of m but Name, Domain and Created.
	UpdateMailbox(ctx context.Context, m Mailbox) error
	// DeleteMailbox removes a mailbox.
	DeleteMailbox(ctx context.Context, domain, name string) error
	// Mailboxes lists a domain's mailboxes in name order (byte order), at
	// most limit (0: all) of those whose name sorts after after;
	// ErrNotFound when the domain is not a domain.
	Mailboxes(ctx context.Context, domain, after string, limit int) ([]Mailbox, error)
	// CountMailboxes returns the number of a domain's mailboxes;
	// ErrNotFound when the domain is not a domain.
	CountMailboxes(ctx context.Context, domain string) (int, error)
	// RecordLogin stores a successful login's time and address;
	// ErrNotFound when there is no such mailbox.
	RecordLogin(ctx context.Context, domain, name string, at time.Time, ip string) error

	// PutAlias stores an alias, replacing one of the same name;
	// ErrExists when the name is a mailbox, ErrNotFound when the domain
	// is not a domain.
	PutAlias(ctx context.Context, a Alias) error
	// Alias returns an alias of a domain.
	Alias(ctx context.Context, domain, name string) (Alias, error)
	// DeleteAlias removes an alias.
	DeleteAlias(ctx context.Context, domain, name string) error
	// Aliases lists a domain's aliases in name order; ErrNotFound when
	// the domain is not a domain.
	Aliases(ctx context.Context, domain string) ([]Alias, error)

	// NextDir allocates the hashed directory for a domain's next mailbox,
	// as vpopmail's dir_control does, atomically: "" for the first 99,
	// then "0", "1", ... "z", "0/0", ... (see [HashDir]).
	NextDir(ctx context.Context, domain string) (string, error)

	// Generation returns a number that changes whenever anything a cache
	// may hold changes (RecordLogin's last-login fields and NextDir's
	// counter need not change it), so that a cache can tell it is stale.
	Generation(ctx context.Context) (int64, error)
	// Close releases the store.
	Close() error
}
