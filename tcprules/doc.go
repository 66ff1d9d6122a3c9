// Package tcprules reads and writes ucspi-tcp's access rules, and applies
// them to a net.Listener the way tcpserver does.
//
// It replaces three ucspi-tcp programs: tcprules (compile a rules file into
// a cdb: [Compile], [CompileFile]), tcprulescheck (ask what the cdb says
// about a connection: [DB.Lookup], [Decision.Report]), and the part of
// tcpserver that runs around accept ([Listener]): the -x rules, the -c
// concurrency limit, the -h/-p/-l host names, and the environment a server
// program is given (TCPREMOTEIP, RELAYCLIENT, ...). A qmail site keeps its
// rules files and cdbs as they are: the cdbs this package writes are byte for
// byte those of ucspi-tcp 0.88, and it reads theirs. The programs
// examples/tcprules and examples/tcprulescheck are drop-ins for ucspi-tcp's.
//
// # Format of rules
//
// A rules file is read line by line (a last line without LF counts). A line
// starting with '#' and an empty line are ignored. Trailing spaces, tabs and
// LFs are removed; CR is not, so a file with CRLF line ends fails at its
// first rule. A line is then ADDRESS:INSTRUCTIONS, where ADDRESS is every
// byte before the colon (nothing is trimmed) and INSTRUCTIONS is "allow" or
// "deny" followed by zero or more assignments ,NAME=qVALUEq: NAME is every
// byte up to the next '=', q is any one byte, and VALUE every byte up to the
// next q (no escapes). Nothing else may follow. A line without any colon is
// skipped, as tcprules 0.88 does; any other departure fails the whole file
// with a [*ParseError] carrying the line as tcprules prints it ("tcprules:
// fatal: unable to parse this line: ...", exit 100).
//
//	127.0.0.1:allow,RELAYCLIENT=""
//	192.168.1.:allow,RELAYCLIENT=""
//	10.1.2.3-7:deny
//	=.example.com:allow,RBLSMTPD="-Blocked: see https://example.org/policy"
//	joe@=trusted.example.com:allow
//	2001:db8::allow,NET="2001:db8:"
//	:allow,DATABYTES="10485760"
//
// An ADDRESS is stored as one cdb key, byte for byte, except a range: an
// address with no '=' or '@' but with a '-' stands for one key per number
// N-M in that dotted component (10.2-3. is 10.2. and 10.3.; M above 255 is
// cut to 255; N above M gives no key; a part that is not a number fails the
// line, so host-name:allow is an error). The forms: an IP (1.2.3.4), an IP
// prefix ending with a dot (1.2.3., 1.2., 1.), =HOST (that
// $TCPREMOTEHOST), =.DOMAIN (any host name ending with it), = (any
// connection with a host name), INFO@IP and INFO@=HOST ($TCPREMOTEINFO with
// that IP or host), and the empty address (every connection). Keys are
// case-sensitive and tcpserver lower-cases host names, so write =rules in
// lower case.
//
// IPv6 addresses are written as tcpserver formats them (see [FormatIP]) and
// end at the first colon followed by "allow" or "deny", as with the IPv6
// patch of ucspi-tcp: "2001:db8::1:allow" is the key 2001:db8::1,
// "2001:db8::allow" the prefix 2001:db8:, "fe80::deny" the prefix fe80:.
// Ranges are not expanded in IPv6 addresses. Prefixes are textual, not bit
// masks: 2001:db8: does not match 2001:db80::1.
//
// Each key's value is "D\x00" for deny, then "+NAME=VALUE\x00" per
// assignment in order. Keys are added in input order, duplicates included.
//
// # Lookup order
//
// For a connection from IP, with host name HOST and ident answer INFO when
// known, tcpserver tries these keys in order, and the first one present
// decides, by its first record (so the first of two rules for the same
// address wins):
//
//  1. INFO@IP, then INFO@=HOST (only when INFO is known);
//  2. IP;
//  3. =HOST;
//  4. each prefix of IP ending in '.' (or ':' for IPv6), longest first:
//     1.2.3., 1.2., 1.;
//  5. =SUFFIX for each dot of HOST from the left (=.b.example.com,
//     =.example.com, =.com for a.b.example.com), then =;
//  6. the empty key.
//
// No key: the connection is allowed with no variables. A value with D
// denies; otherwise its assignments are set in order (a later one for the
// same name wins). An unreadable cdb drops the connection. [DB.Lookup]
// implements exactly this and reports the key that decided.
//
// # Compatibility
//
// Byte-identical to ucspi-tcp 0.88 (Debian's ucspi-tcp 1:0.88-7, checked by
// the golden tests and by interop tests against Debian's tcprules and
// tcprulescheck on random rule sets), with these choices:
//
//   - Colons: a line is split at its first colon followed by "allow" or
//     "deny", as the IPv6 patch does. On every line 0.88 accepts this is
//     its first colon, so the cdb is the same; a line 0.88 refuses because
//     its address holds a colon (an IPv6 address) is accepted. Where the
//     IPv6 patch loops forever (a colon but no "allow" or "deny" after any
//     colon), this package reports a parse error.
//   - CompileFile removes the temporary file when it fails; tcprules leaves
//     it behind (empty or partial). It also fsyncs the directory after the
//     rename.
//   - Quirks kept: numbers in ranges wrap as C's unsigned long; a NUL byte
//     ends a range's number and cuts the line printed in an error, since
//     tcprules handles both as C strings; tcprulescheck prints + items up to
//     the first D item and items without '=' as they are, while tcpserver
//     (and [Decision.Env]) ignores those.
//   - The Listener's environment follows tcpserver 0.88 for IPv4 clients
//     (IPv4-mapped IPv6 clients count as IPv4, as in the IPv6 tcpserver) and
//     the IPv6 tcpserver for IPv6 clients: PROTO=TCP6, TCPREMOTEIP and
//     TCP6REMOTEIP, and so on. TCPREMOTEINFO (ident, RFC 1413) is not
//     supported: INFO rules never match connections from a Listener, as
//     with tcpserver -R. There is no -B banner.
//
// # Security
//
// The PROXY protocol lets a balancer tell the server who the real client
// is, so whoever may send a header chooses the address the rules are
// applied to. [Listener.ProxyFrom] lists the only sources trusted to do so.
// A connection from one of them must start with a valid v1 or v2 header
// within [Listener.ProxyTimeout]; if it does not (no header, a malformed
// one, a non-TCP one, silence) the connection is closed and counted as
// dropped, never served with the balancer's own address. A v2 LOCAL or v1
// UNKNOWN header (health checks) keeps the socket's addresses.
//
// A connection from any other source is never read for a header: a PROXY
// line it sends reaches the server as ordinary data (an SMTP server answers
// it as an unknown command), and its socket address is what the rules see.
// This is the safe choice over rejecting such connections: detecting a
// header means reading before the server speaks, which would stall
// server-first protocols such as SMTP and POP3, and a header from an
// untrusted source is never honoured either way.
//
// Headers are read in a goroutine per connection with a deadline, so a
// silent client holds one place under [Listener.Limit] for at most
// ProxyTimeout and never delays other connections. The Limit counts
// connections being read as well as those handed out, as tcpserver -c
// counts its children; at the limit nothing more is accepted, and new
// clients wait in the listen backlog.
package tcprules
