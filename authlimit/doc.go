// Package authlimit slows password guessing across sessions: a [Limiter]
// counts failed logins per client address and per account, and makes each
// further attempt wait a delay that doubles per failure, up to a cap, or
// refuses it at once while another attempt already waits. POP3 and SMTP
// AUTH share one Limiter, so a guess costs the same on either port.
//
// qmail has nothing of the kind: qmail-popup and qmail-smtpd's AUTH patches
// slow guessing only within a session (checkpassword's sleep after a
// failure), so a client opening many sessions at once guesses as fast as
// it opens them. This is the per-address and per-account delay of
// Dovecot's auth_failure_delay and OpenSSH's PerSourcePenalties, kept in
// memory.
//
// # Protocol
//
// A server calls [Limiter.Wait] before it checks a client's credentials,
// with the client's address and the user name it gave, and goes ahead
// only when Wait returns nil; after the check it calls [Limiter.Done] with
// the outcome (not for a temporary failure of the authenticator). When
// Wait returns an error (ErrThrottled, or the context's error), the
// server answers as for a temporary failure and does not check the
// credentials.
//
// # Counting
//
// A client is an IPv4 address, or the /64 network of an IPv6 address (one
// host commonly holds a whole /64): the key [connlimit.Client] gives. An
// account is the user name, folded to lower case (so that "Alice" and
// "alice" are one account even for an authenticator that folds case) and
// cut to 255 bytes.
//
// Every attempt that goes ahead counts as a failure of its client and of
// its account from the moment Wait lets it through, until Done reports it
// right: so attempts started in parallel are counted before any of them
// ends, and an attempt whose outcome is never reported stays counted.
// Done(ok=true) takes back its own attempt from the client's count (not
// the client's earlier failures: a client that knows one password must
// not wipe its guesses at other accounts by logging in between them) and
// from the account's count, and marks the client as known to the account for
// TrustFor: later attempts from that client for that account are counted
// and delayed only as the client's, so that guesses at an account from
// elsewhere do not lock its owner out of the places it logs in from.
//
// A count halves after each Decay of quiet (no attempt counted), so a
// client that stops guessing is forgiven gradually, and an entry whose
// count has reached 0 is forgotten.
//
// # Delays
//
// The first ClientFree attempts of a client (AccountFree of an account)
// go ahead at once. After that, the attempt after the n-th counted one may
// go ahead only BaseDelay·2^(n−free) after the n-th began, at most
// ClientMaxDelay (AccountMaxDelay) after it; with the defaults a client
// gets 3 attempts, then waits 1 s, 2 s, 4 s, ... 60 s between attempts,
// and an account gets 10 attempts from everywhere together, then waits 1 s,
// 2 s, ... 15 s. An attempt that must wait sleeps in Wait if fewer than
// ClientWaiters attempts of its client (AccountWaiters of its account)
// are already sleeping, and is refused at once with [ErrThrottled]
// otherwise: 300 parallel connections from one address run one check
// per delay, not 300.
//
// # Memory
//
// At most MaxClients clients and MaxAccounts accounts (and MaxAccounts
// known client–account pairs) are tracked; when a table is full the entry
// touched least recently is forgotten. Entries whose count has decayed to
// 0 are dropped as new attempts come. An account is kept as a seeded hash
// of its name, so an entry takes about 200 bytes whatever the names: some
// 60 MB with the three tables full at the defaults. A refused attempt adds
// no entry.
//
// # Logs and metrics
//
// One Warn line goes to Logger when a client or an account starts being
// delayed (its first attempt that must wait), and one when an attempt of
// a client or account is refused for the first time since it started
// being delayed, so that an attacker cannot fill the log. [Limiter.Stats]
// returns running totals, and Observe, when set, is called for every
// attempt that waits ([EventDelay], with the wait) or is refused
// ([EventRefuse]):
// enough for Prometheus counters and a histogram without this package
// importing Prometheus.
//
// # Security
//
// The limiter bounds how fast one client, and all clients together,
// guess one account's password, and how fast one client guesses any
// account's: with the defaults one IPv4 address or IPv6 /64 gets about 3
// attempts and then one a minute, and one account about 10 and then one
// each 15 s (5,760 a day) from all addresses together. It does not bound
// the guesses of an attacker with many addresses at many accounts (each
// account's first AccountFree guesses from each new client, spread over
// accounts): a strong password policy and hashed passwords remain needed.
//
// An attacker holding many addresses can keep an account's waiting slots
// full, so that its owner, logging in from a client that has not logged
// in to that account during TrustFor, is refused (a temporary failure)
// until the attack stops; clients known to the account are not affected.
// An attacker can evict entries only by making MaxClients (MaxAccounts)
// other attempts between two of its own, each itself limited; a refused
// attempt costs nothing but a lookup. The limiter keeps no state on disk,
// so a restart forgets every count.
package authlimit
