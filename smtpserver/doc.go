// Package smtpserver is an SMTP and LMTP server engine with qmail-smtpd's
// semantics: the program that accepts mail from the network, checks the
// few things qmail checks, and hands each message to a queue.
//
// It replaces qmail-smtpd (and rblsmtpd in front of it). A [Server] serves
// connections from a listener ([Server.Serve]) or one connection at a time
// with tcpserver's environment ([Server.ServeConn]), and gives each
// accepted message to an [Enqueuer]: the queue package, qmail-queue
// ([QmailQueue]), or the application's own sink.
//
// # Sessions
//
// Commands are read a line at a time (up to LF, one CR before it dropped)
// and answered with qmail's exact replies; replies are buffered and written
// when the server is about to wait for input, which is how qmail pipelines.
// MAIL starts a transaction (HELO is not required); RCPT is checked in
// qmail's order: no MAIL, syntax, badmailfrom, then RELAYCLIENT (whose
// value is appended to the recipient) or rcpthosts; DATA streams the message
// to the Enqueuer behind a Received line, and the client gets "250 ok
// <time> qp <id>" only after the Enqueuer returned success.
//
// The connection's environment is tcpserver's: TCPREMOTEIP, TCPREMOTEHOST,
// TCPREMOTEINFO and TCPLOCALHOST/TCPLOCALIP for the Received line (in
// modern mode Server.Hostname, when set, comes before TCPLOCALIP),
// RELAYCLIENT (set, even empty: the client may relay), DATABYTES
// (overrides [Server.MaxMessageBytes]) and RBLSMTPD (rblsmtpd's decision).
//
// A session fixes the values of qmail-smtpd's one-line control files
// ([Settings]: hostname, greeting, localiphost, databytes, timeout) when it
// starts and keeps them to its end; [Server.SessionSettingsContext] gives new
// sessions new ones while the server runs, so that a reload of the control
// files drops no connection.
//
// Modern mode (the default) adds, over qmail: SIZE, ENHANCEDSTATUSCODES,
// STARTTLS ([Server.TLSConfig]), AUTH PLAIN and LOGIN ([Server.Auth],
// [Checkpassword]), SMTPUTF8, CHUNKING (BDAT), parameter and address-length
// checks, limits on line length, recipients and errors, recipient and sender
// hooks, a DNSBL ([DNSBL], asking any [DNSBLResolver], *net.Resolver
// included: the package does not import a DNS library), and DSN (RFC 3461: RET and ENVID on MAIL,
// NOTIFY and ORCPT on RCPT, checked, xtext-decoded and given to an
// Enqueuer that takes them, a [DSNEnqueuer]). LMTP ([Server.LMTP], RFC 2033) is the same
// engine with LHLO and one reply per recipient.
//
// # Logs
//
// [Server.Logger] gets one Info line per session, per transaction and per
// rejection, with message "smtpserver: session", "smtpserver: transaction"
// or "smtpserver: reject" and these attributes, whose names and meanings
// are stable (attributes that are unknown are left out):
//
//   - event: "session", "transaction" or "reject";
//   - ip: the client's address; host: its name (TCPREMOTEHOST), if known;
//     helo: the last HELO, EHLO or LHLO argument;
//   - tls: the TLS version ("TLS1.3") and cipher: the cipher suite, after
//     STARTTLS; user: the name the client authenticated as;
//   - from: the envelope sender; to (transaction): each RCPT of the
//     transaction, accepted or refused, as an array of {addr, code}
//     objects (addr:code pairs in text); in LMTP an accepted recipient's
//     code is its reply after the data; at most 2000 are listed, and an
//     address is cut at 320 bytes;
//   - size: the message's bytes (after CRLF→LF, without the Received
//     line); id: the Enqueuer's id (the queue's message number, which
//     qmail-send's lines also give); reply: the reply the client got, on
//     one line ("" when the client went away first);
//   - transactions and messages (session): the transactions that reached
//     the end of DATA or BDAT, and those accepted; duration: seconds, a
//     number; end: how the session ended: quit, dropped (the client went
//     away), timeout, slow, shutdown, errors, auth (too many AUTH
//     failures), tls (a failed handshake), dnsbl, protocol, tempfail
//     (unreadable controls), or error (then err says why);
//   - reason (reject): a token saying why, below; cmd: the command refused
//     (MAIL, RCPT, DATA, BDAT, AUTH, STARTTLS, or CONNECT for a
//     connection refused before the greeting); rcpt: the refused
//     recipient; err: the error of a failed handshake or limiter.
//
// The reason tokens: relay (the domain is not in rcpthosts), badmailfrom,
// unknown-recipient (CheckRecipient refused it), policy (CheckSender
// refused, or AUTH without TLS), tempfail (a check failed temporarily),
// dnsbl, size, loop (too many hops), syntax, sequence (a command out of
// order), protocol (a bare CR or LF, an early talker, data before the
// 354), recipients (too many), connections (too many, in all or from the
// client), slow (below MinDataRate), errors (too many), auth (wrong
// credentials), rate (the AuthLimiter refused the attempt), tls (a failed
// handshake), queue (the Enqueuer refused or failed); a hook or the
// Enqueuer may give its own with [WithReason]. [Server.Rejected] is told
// of each rejection, for metrics.
//
// # Security
//
// Only CRLF "." CRLF ends DATA: no variant of the 2023 SMTP smuggling
// sequences ("\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n", "\r\n.\r", ...) ends a
// message, so no second message can be hidden inside one. A bare LF in DATA
// ends the session with qmail's 451, as qmail does; a bare CR refuses the
// message (554 5.6.0) in modern mode, so that no later hop can mistake it
// for a line end. The DATA reader is strict (not net/textproto's, which
// accepts bare LF) and streams: a message is never held whole in memory,
// and lines may be of any length.
//
// A message is acknowledged only after [Enqueuer.Enqueue] returned nil
// having read it to its end; a failure, a message that broke a rule (too
// big, looping, bare CR), or an Enqueuer that stopped early gives 4xx/5xx,
// never 250. The reader given to the Enqueuer returns an error instead of
// io.EOF for a message that must not be queued.
//
// Relaying is refused unless the client has RELAYCLIENT (from its
// environment, or given by Server.RelayFrom's prefixes or Server.Relay)
// or authenticated:
// the recipient's domain is what follows its last "@" after qmail's
// parsing (quotes and backslashes removed, source routes dropped), so "%"
// hacks, "!" paths, source routes, quoted "@"s and trailing dots never
// reach a foreign domain; the queue must route by that same last "@".
// Without rcpthosts the server refuses every domain (qmail relays for
// everyone): see OpenRelay.
//
// Commands pipelined after STARTTLS are discarded, never executed under
// TLS (CVE-2011-0411). AUTH is offered only under TLS (or on loopback when
// allowed); failures are delayed and limited within a session, and an
// [AuthLimiter] ([Server.AuthLimiter]) can slow guessing across sessions
// and connections. In modern mode a client that talks before the greeting
// ([Server.GreetDelay]) or sends data before the 354 is disconnected, and
// every read and write has a timeout.
//
// No client can stop the server or use it to multiply its load, in modern
// mode: [Server.Serve] runs at most [Server.MaxConns] sessions (1000) and
// [Server.MaxConnsPerIP] (20) per client address (an IPv6 /64), answering
// the others with one 421 line; it survives every failure of accept (no
// descriptors, no memory, ...) by pausing and retrying; a message must
// arrive at [Server.MinDataRate] (1024 bytes/s once the server has waited
// 30 s for it), be at most [DefaultMaxMessageBytes] (35 MiB) unless
// configured, and a recipient given twice in a transaction is queued once.
// An address holding a control character is refused, so that none reaches
// a header line (Return-Path, Delivered-To).
//
// # Compatibility
//
// With [Server.Compat] set the server is byte for byte qmail-smtpd
// (notqmail), with these differences: a missing rcpthosts refuses relaying
// unless OpenRelay is set (the one unsafe default not copied); command lines
// are limited to 1 MiB (qmail: unlimited memory); the HELP text names
// qmailkit; an Enqueuer that fails before reading gives "451 qqt failure"
// as qmail does when it cannot start qmail-queue; an address holding CR,
// LF or NUL is refused with 501, since qmail would write it into the
// Return-Path and Delivered-To header lines. STARTTLS and AUTH are
// offered in compat mode only when configured.
//
// Where the modern default differs from qmail:
//
//   - Replies carry RFC 3463 enhanced codes after EHLO ("250 2.1.5 ok").
//   - EHLO also offers SIZE, ENHANCEDSTATUSCODES, SMTPUTF8 and CHUNKING,
//     and DSN when the Enqueuer is a [DSNEnqueuer]. A malformed or
//     repeated DSN parameter gets 501 5.5.4; an ENVID longer than 100
//     characters or an ORCPT longer than 500 (RFC 3461 sections 4.2 and
//     4.4), or an xtext that decodes to a control character, is malformed.
//   - MAIL needs "FROM:" and RCPT "TO:" (501 otherwise); unknown ESMTP
//     parameters get 555; SIZE above databytes gets 552 at MAIL; addresses
//     longer than RFC 5321's limits get 501 5.1.3 (qmail: 900 bytes); a
//     non-ASCII address needs SMTPUTF8 (553 5.6.7); RCPT TO:<> is refused.
//   - A bare CR in DATA refuses the message; a bare LF gives "451 4.5.0
//     bare LF not allowed, see https://cr.yp.to/docs/smtplf.html".
//   - At most 1000 recipients (452 beyond), 4096-byte command lines (500),
//     20 error replies per session (then 421), one hour per session.
//   - A recipient already accepted in the transaction (its domain compared
//     without case) is answered 250 but queued once; qmail queues it again.
//   - databytes 0 (no control/databytes, DATABYTES=0) means 35 MiB, not
//     unlimited; a negative MaxMessageBytes lifts the limit.
//   - A message sent at less than 1024 bytes/s (after 30 s) ends the
//     session with "451 4.4.2 data transfer too slow, closing connection".
//   - Serve limits sessions to 1000 in all and 20 per client; qmail leaves
//     that to tcpserver (-c 40, no per-client limit).
//   - An address with a control character (below 0x20, DEL, or a C1
//     control U+0080–U+009F) gets 501 5.1.7 (MAIL) or 501 5.1.3 (RCPT).
//     Compat mode refuses only CR, LF and NUL, with the same texts, where
//     qmail accepts them.
//   - Data sent before the 354 (RFC 2920) gets 554 and the connection is
//     closed; qmail tolerates it.
//   - The Received line says ESMTPS/ESMTPA/ESMTPSA (RFC 3848) or UTF8SMTP
//     (RFC 6531) when TLS, AUTH or SMTPUTF8 were used, with the TLS version
//     and cipher; plain sessions keep qmail's exact line, "with SMTP".
//
// rblsmtpd's conversation ([DNSBL]) keeps its texts; modern mode adds
// enhanced codes (451 4.7.1, 553 5.7.1).
package smtpserver
