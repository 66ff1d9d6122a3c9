// Package pop3 is a POP3 server (RFC 1939) with the semantics of qmail's
// qmail-popup, checkpassword and qmail-pop3d, for Maildirs and for any
// maildrop behind the [Mailbox] interface.
//
// It replaces the chain
//
//	tcpserver 0 110 qmail-popup HOST checkpassword qmail-pop3d Maildir
//
// with one [Server], which serves each connection in a goroutine: it
// greets, checks the login with an [Authenticator] (a Go func, a
// checkpassword program through [Checkpassword], or virtual users from a
// password file with [PasswdFile]), opens the user's maildrop (by default
// the Maildir in the user's home with [OpenMaildir]) and serves STAT,
// LIST, UIDL, TOP, RETR, DELE, RSET, NOOP and QUIT. The programs under
// examples/ (qmail-popup, qmail-pop3d, checkpassword) are the drop-ins,
// built on the same code; qmail-popup can also keep the chain and hand
// each login to checkpassword ([Server.Handoff]).
//
//	srv := &pop3.Server{
//		Hostname:  "pop.example.org",
//		Auth:      &pop3.PasswdFile{Path: "/etc/qmailkit/poppasswd"},
//		TLSConfig: tlsConfig, // offers STLS
//	}
//	err := srv.Serve(listener)
//
// The zero Server works: modern behaviour, every login refused until Auth
// is set. Like net/http, Serve blocks and owns its goroutines; Shutdown
// stops it gracefully and Close at once. ServeConn serves one connection
// with its tcpserver environment (TCPREMOTEIP, ...), and a listener whose
// connections have an Env() map[string]string method (the tcprules
// package's) passes theirs through Serve.
//
// # Sessions
//
// Messages are numbered 1..n at login, in delivery order (the files'
// modification times, new/ before cur/ on ties), and the numbers never
// change during the session. Only files modified before the second the
// session started are listed: a message delivered in that second waits for
// the next session. Messages are sent as they are read, a buffer at a time,
// with LF turned into CRLF and dot-stuffing; a whole message is never held
// in memory. Nothing changes in the maildrop before QUIT: then the messages
// marked with DELE are unlinked and every other message still in new/ is
// moved to cur/ with the info ":2,". A session that ends any other way (the
// client goes away, a timeout, Shutdown) deletes and moves nothing. UIDLs
// are Maildir unique names: stable across sessions, the move to cur/ and
// flag changes.
//
// Commands may be pipelined (RFC 2449): replies are written in order and
// flushed when no further command is waiting.
//
// # Compatibility
//
// With Compat set the server is qmail-popup(8) and qmail-pop3d(8) byte for
// byte: the greeting "+OK <pid.time@host>" (the APOP
// timestamp), "+OK " with its trailing space and no text, qmail's error
// texts ("-ERR authorization first", "-ERR not that many messages", ...),
// STAT counting deleted messages too, sizes as stored (LF line ends), the
// empty line qmail-pop3d sends before the terminating dot, LAST, RETR n k
// as TOP n k, message numbers read as djb's scan_ulong reads them (leading
// digits, wrapping on overflow), one login attempt per connection, no line
// length limit (1 MiB here), no mailbox lock, and a failed unlink at QUIT
// reported as "-ERR unable to unlink all deleted messages" before "+OK ".
// CAPA, STLS and AUTH are spoken in compat mode only when TLSConfig is
// set, so an unconfigured drop-in answers them like qmail.
//
// Without Compat (the default) the server follows the RFCs:
// STAT and LIST count only undeleted messages and report sizes as sent
// (CRLF line ends; for a Maildir counted once and cached in the file
// pop3sizes, or read from a Dovecot ",W=" field); no extra empty line; no
// LAST; three login attempts with a growing delay; CAPA (RFC 2449) with
// RESP-CODES and PIPELINING; AUTH PLAIN (RFC 5034, RFC 4616); STLS (RFC
// 2595); UTF8 (RFC 6856, accepted and announced: names, passwords and
// messages pass unchanged); APOP when [Server.APOP] is set; command lines up to 255 octets;
// one session at a time per maildrop ("-ERR [IN-USE] mailbox already
// locked"), by flock(2) on pop3.lock in the Maildir and an in-process set;
// a UIDL that is not 1–70 printable characters is replaced by a stable
// hash ([SafeUID]); a Maildir that does not exist yet is a mailbox with no
// mail, where qmail-pop3d answers "-ERR this user has no $HOME/Maildir". [Server.SeenOnRetr] adds the flag S to messages
// retrieved with RETR.
//
// The checkpassword interface is kept exactly: [Checkpassword] writes
// "user\0password\0timestamp\0" on fd 3 and reads the exit status (1 bad
// login, 111 temporary failure), whether it hands the connection to the
// chain (qmail-popup) or asks it who the user is.
//
// # Logs
//
// [Server.Logger] gets one Info line per login attempt ("pop3: login")
// and per session ("pop3: session"), with these attributes, whose names
// and meanings are stable (those unknown are left out):
//
//   - event: "login" or "session"; ip: the client's address; tls and
//     cipher: the TLS version ("TLS1.3") and cipher suite, under TLS;
//   - login: user (the name given), method (USER, APOP or AUTH), result:
//     ok, failed (wrong credentials), tempfail (the check or the mailbox
//     failed) or rate (the AuthLimiter refused the attempt); err: why it
//     failed;
//   - session: user (once logged in); retrieved and retrieved_bytes: the
//     messages retrieved whole with RETR, and their bytes as stored;
//     deleted and deleted_bytes: those QUIT removed; duration: seconds, a
//     number; end: quit, dropped (the client went away), timeout,
//     shutdown, auth (too many failed logins, or qmail-popup's one), tls
//     (a failed handshake), login (handed off: see Handoff), or error
//     (then err says why).
//
// A connection refused by Serve gets a line "pop3: connection refused"
// with event "reject" and reason "connections". [Server.Rejected] is told
// of failed logins, failed handshakes and refused connections, for
// metrics.
//
// # Security
//
// Passwords are refused in the clear: USER/PASS and AUTH PLAIN are
// accepted only under TLS (STLS, or a tls.Listener for port 995) or from a
// loopback address, unless [Server.AllowPlaintext] is set (the qmail-popup
// drop-in sets it, since qmail has no TLS; put it behind a TLS proxy or on
// a trusted network). Bytes a client pipelines after STLS are discarded,
// never executed. APOP is off by default in modern mode (it needs the
// clear-text secret on the server, and MD5). Failed logins are delayed,
// and a modern session allows three. Secrets are compared in constant
// time; [PasswdFile] reads SHA-crypt ($5$, $6$) hashes and
// [HashPassword] makes them. Passwords over [MaxPasswordLength] are
// refused before hashing, and an unknown user's password is hashed all
// the same, so that timing does not tell which accounts exist.
//
// The in-process server reads every Maildir with its own rights: it does
// not change uid per user. Where users must be separated by the kernel,
// keep qmail's chain (qmail-popup hands each login to checkpassword, which
// switches to the user before running qmail-pop3d). So that a user can
// reach nothing outside their mailbox, [OpenMaildir] opens the Maildir
// without following a symbolic link (nor any directory between the user's
// home and it), then tmp/, new/ and cur/ relative to it, likewise, and
// does everything after (listing, reading, the QUIT update's renames and
// unlinks, the lock, the size cache) relative to those handles; messages
// must be regular files (a FIFO is never opened so that it could block),
// and when the user's uid is known the Maildir and every message must
// belong to it. A Maildir that fails these checks is refused with "-ERR
// [SYS/PERM] unable to open mailbox".
//
// Timeouts bound each connection: 1200 s by default (qmail's) for each
// whole command line, however slowly it trickles in, and for each write;
// and in modern mode an hour for the whole session.
// Serve admits at most 1000 connections at once per listener, 20 from one
// client address (an IPv6 /64), in modern mode; more get "-ERR [SYS/TEMP]
// too many connections". An [AuthLimiter] can slow password guessing
// across connections; a refused attempt gets "-ERR [SYS/TEMP] too many
// failed logins, try again later". Serve survives transient accept errors
// (a full descriptor table, ...), retrying after a pause.
package pop3
