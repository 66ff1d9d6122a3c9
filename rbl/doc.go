// Package rbl keeps clients listed in DNS block lists away from an SMTP
// server, as ucspi-tcp's rblsmtpd does in front of qmail-smtpd.
//
// A [Checker] decides about a client from its address: it asks each
// [Source] in order (rblsmtpd's -r and -a options, each with the -b and -c
// settings in force where it stands) through a [Resolver], until one
// decides. $RBLSMTPD, which tcpserver's rules set per client, decides
// before any list when it is set: see [Override]. A blocked client gets a
// [Session] instead of the SMTP server: a fake server that answers its
// greeting and MAIL, refuses every recipient with the list's reason, and
// ends after a fixed time whatever the client does. The program
// examples/rblsmtpd is a drop-in for rblsmtpd built on this package.
//
// # Decision
//
// For the client at address IP (the text of $TCPREMOTEIP):
//
//  1. $RBLSMTPD set and empty accepts; set to "-TEXT" blocks with 553 TEXT;
//     set to anything else blocks with 451 and the value. No list is asked.
//  2. Otherwise each source in turn, once nothing has decided: the query
//     name is the parts of IP between dots in reverse order, each followed
//     by a dot, then the source's base (192.0.2.7 and zen.example give
//     7.2.0.192.zen.example). An -r source (TXT query) lists the client
//     when the strings of its TXT records, concatenated, are not empty: the
//     client is blocked with that text, 553 under -b and 451 otherwise. An
//     -a source (A query) with any address accepts the client.
//  3. A lookup that fails temporarily (SERVFAIL, no answer, ...) is passed
//     over by an -r source and accepts the client at an -a source (-C, the
//     default), or blocks with 451 "temporary RBL lookup error" at an -r
//     source and is passed over by an -a source (-c). Either way, once a
//     lookup has failed, a later listing answers 451 even under -b.
//  4. Nothing decided: the client is accepted.
//
// The reply and the log line carry [Result.Message]: the code, a space and
// at most 200 bytes of the text, every byte outside 32..126 as '?'.
//
// # Session
//
// "220 rblsmtpd.local" first; then, per line, "250 rblsmtpd.local" for
// HELO, EHLO, MAIL, RSET and NOOP, "221 rblsmtpd.local" for QUIT (the end),
// and the refusal for anything else. The time limit (-t, 60 s by default)
// is counted from the start and never reset; -t 0 writes the refusal once
// and reads nothing. See [Session.Serve].
//
// # Compatibility
//
// With [Checker.Compat] and a [DNSResolver], the decisions, query names,
// texts and replies are those of ucspi-tcp 0.88's rblsmtpd as Debian ships
// it (1:0.88-7), checked by interop tests that run both against one DNS
// server: the same address text reversed as text whatever it holds, djb's
// reading of names (empty labels skipped, octal escapes) and of -a bases
// that are numbers, and djb's choice of servers ($DNSCACHEIP, then
// /etc/resolv.conf). Differences: Debian's build, which this package
// follows, has no default list, where djb's original asked
// rbl.maps.vix.com when no -r was given; a server answering SERVFAIL is
// given up at once rather than after 11 s; modern mode (Compat false)
// reverses IPv6 addresses into nibbles (RFC 5782), which rblsmtpd 0.88
// never did, and leaves every IPv4 query name as it was.
//
// # Security
//
// A blocked client costs the goroutine serving it and a fixed 4 KiB buffer
// for at most the session's time: lines are parsed as they arrive and never
// stored, so an endless line or megabytes of commands use no more memory,
// and the time limit holds whatever the client sends or fails to read (on a
// connection with deadlines). The list's text reaches the client and the
// log only cut to 200 bytes of printable ASCII.
package rbl
