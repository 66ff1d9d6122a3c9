// Package smtpclient delivers mail to remote hosts by SMTP: qmail-remote's
// job, with its exact report texts and classification, and the 2026
// improvements qmail lacks.
//
// # Synopsis
//
//	c := &smtpclient.Client{Hostname: "mail.example.org"}
//	res, err := c.Deliver(ctx, "example.net", "me@example.org",
//		[]string{"you@example.net"}, msg)
//
// [Client.Deliver] delivers one message to the recipients at one domain, as
// qmail-remote does, and returns a [Result] with one [RecipientResult] per
// recipient. [Client.Send] is the call for applications: any recipients,
// grouped by domain. [Client.Lookup] shows where a domain's mail would go.
//
// # Description
//
// Resolution ([Client.Lookup]): an artificial route from [Routes] (qmail's
// control/smtproutes) wins; otherwise an IP literal ("[192.0.2.1]",
// "192.0.2.1", "[IPv6:2001:db8::1]") is used as is; otherwise the MX
// records, best preference first, exchangers of equal preference in random
// order, each exchanger's addresses in resolver order (AAAA before A, or A
// first with PreferIPv4); no MX records means the domain's own addresses
// (implicit MX). CNAMEs are
// followed for lookups; addresses are never rewritten. A null MX (RFC 7505)
// fails permanently without any connection. Exchangers whose preference is
// not better than this host's own (the host is listed as an MX) are dropped,
// and if none remain the delivery fails permanently: the domain points here
// but is not local, a configuration error (qmail-remote's #5.4.6). DNS goes
// through the [Resolver] interface: [DNS] (github.com/miekg/dns, reading
// /etc/resolv.conf, retrying over TCP on truncation) or a *net.Resolver.
//
// Delivery: the addresses are tried in order; a refused connection, a
// greeting other than 220, a refused EHLO/HELO or a connection lost before
// MAIL moves on to the next one (RFC 5321 section 5.1). The client sends EHLO
// (HELO when EHLO gets 500, 502 or 504), STARTTLS when offered ([TLSPolicy]),
// AUTH PLAIN or LOGIN to a route with credentials (only over TLS), then MAIL
// with SIZE=, BODY=8BITMIME and SMTPUTF8 as offered and needed, RCPTs
// (pipelined when PIPELINING is offered; at most 100 per transaction; a 452
// defers the rest to another transaction), DATA and the message.
// [Client.DeliverDSN] passes a DSN request (RFC 3461: RET and ENVID on
// MAIL, NOTIFY and ORCPT on RCPT, xtext-encoded) to a server that offers
// DSN, and reports per recipient whether the server took it
// ([RecipientResult].DSNPassed), so that a queue knows when to send a
// "relayed" notification itself.
//
// # Format
//
// The message is read as qmail-queue stores it: LF line ends, no envelope.
// While streaming it, every line end (LF, CR LF or a bare CR) becomes CRLF
// and every line starting with '.' gets another '.', so the client never
// sends a bare CR or LF and never ends DATA early; a last line without LF
// gets its line end (qmail refuses such a message: see QmailCompat).
//
// Results carry qmail-remote's report texts: [Error].Report, Result.Text,
// and [Result.Report] gives the exact bytes qmail-remote writes (recipient
// reports r/h/s, then K/Z/D, each ending with NUL); [RspawnResult] reduces
// them as qmail-rspawn does.
//
// # Errors
//
// Every failure is an [*Error]: Permanent reports qmail's D/h (bounce) as
// opposed to Z/s (retry), under the module's convention; Code, Enhanced and
// Reply hold the server's reply; sentinel errors ([ErrNullMX],
// [ErrConnectionDied], ...) are found with errors.Is. When in doubt the
// client defers: replies outside 200–599, 421, lost connections, timeouts,
// TLS and AUTH failures are temporary.
//
// # Connection reuse
//
// With a [Pool], a connection that finished a transaction is kept idle and
// the next message to the same address (same port, TLS policy, credentials
// and EHLO name) goes over it after a RSET; idle connections end with QUIT
// after IdleTimeout. The pool also bounds the connections open to one
// address and in all (a delivery waits for room, or closes an idle
// connection to make it). Without a pool, each delivery has its own
// connection, as qmail-remote.
//
// # Security
//
// Opportunistic STARTTLS (the default) protects against passive listeners
// only: an attacker on the path can strip it. [TLSVerify] on a route (a
// smarthost) requires a certificate valid for its name. Credentials are never
// sent without TLS. A reply is kept to 5000 bytes and at most 1 MiB is read
// for one reply; every read and write has a deadline ([Timeouts]) and the
// context cancels a delivery at any point.
//
// # Compatibility
//
// With QmailCompat set (examples/qmail-remote sets it) the client is
// qmail-remote on the wire and in its reports: HELO only, no extensions or
// TLS, IPv4 only, one transaction, the report at the first host that
// answered, QUIT without waiting, and a last line without LF fails with
// #5.6.2. Three differences remain, on purpose: a bare CR is sent as a line
// end and dot-stuffed (notqmail sends it so that "x\r." ends DATA early), a
// null MX fails with #5.1.10 rather than #5.4.4, and a reply whose code is
// not three digits from 200 to 599 is a temporary failure (qmail computes a
// number from whatever bytes are there). qmail's tcpto (skip an address that
// timed out twice recently) is kept in memory per Client by default, or in
// qmail's own file with [FileTCPTO]. Non-ASCII domains are looked up in
// their A-label (Punycode) form, lower-cased but without the rest of the
// IDNA2008 mapping. Not implemented yet: MTA-STS (RFC 8461), DANE (RFC
// 7672), TLS-RPT.
package smtpclient
