// Package assign is qmail-users: the users/assign file, the users/cdb that
// qmail-newu compiles from it, and the address-to-user lookup of
// qmail-lspawn with qmail-getpw's password-database fallback. It replaces
// qmail-newu ([Compile]), qmail-lspawn's lookup and qmail-getpw
// ([Users.Lookup]) and qmail-pw2u ([Pw2u]).
//
// Virtual users need no system account: an assign line gives an address
// (or every address with a prefix) a user name, uid, gid, home directory
// and the .qmail file that decides its delivery.
//
// # Format
//
// users/assign is a sequence of lines, each ending in "\n", closed by a
// line whose first byte is '.' (normally "."); nothing after it is read:
//
//	=local:user:uid:gid:home:dash:ext:
//	+prefix:user:uid:gid:home:dash:pre:
//	.
//
// A '=' line assigns the address local exactly, a '+' line every address
// that begins with prefix ("+:" is the catch-all); the address's rest is
// appended to pre to make the extension. Local parts and prefixes match
// case-insensitively (ASCII). The first byte of a line is its type: '+'
// is a wildcard and anything else ('=', but also '-' or '#') a simple line;
// there are no comments and no blank lines. Fields are taken literally
// (spaces included); each of the six after the local part ends at a ':',
// and text after the last of those colons is ignored, including the CR of
// a CRLF file. Lines must not contain NUL.
//
// users/cdb holds one record per line, in file order: key "!" +
// lower(local) + "\x00" for a '=' line, "!" + lower(prefix) for a '+' line;
// value user, uid, gid, home, dash and ext joined by NUL bytes. A last
// record with the empty key lists the last byte (as written) of every
// non-empty '+' prefix, each once: the lookup tries only prefixes that end
// in one of them. [Compile] writes it byte for byte as qmail-newu does, to
// a temporary file renamed into place after fsync.
//
// # Lookup
//
// [Users.Lookup] answers for a local part as qmail-lspawn does: the exact
// key; then the wildcard keys from the longest prefix down, only for
// prefixes ending in one of the empty key's bytes, and finally "!"; then,
// with no users/cdb match, qmail-getpw's rules over a [Passwd] database:
// the longest prefix of the address ending before the break character
// ('-'), lower-cased and under 32 bytes, that names an account with a uid
// other than 0 and a home directory it owns (dash "-", ext the rest), or
// else the account "alias" (dash "-", ext the whole local part). The result
// is a [User]: Name, UID, GID, Home, Dash and Ext, what qmail-local is given.
// [DB] is one opened users/cdb for callers that manage files themselves.
//
// # Security
//
// A match whose uid reads as 0 (including a uid field that is not a
// number) comes with [ErrRoot]: nothing may be delivered as root. Every
// lookup error is temporary, so that a broken users/cdb defers mail rather
// than bouncing it. A root process, which must not believe a users/cdb that
// others could have written, vets the file with [Users].Trust at every
// lookup. Tests and applications pass their own [Passwd]
// ([PasswdFile]); [SystemPasswd] is the system's.
//
// # Compatibility
//
// The users/cdb written is byte-identical to qmail-newu's (notqmail 1.09),
// and any users/cdb written by qmail-newu is read. The quirks are kept: a
// '+' prefix ending in an upper-case letter records that letter as a
// wildcard character, which a lower-cased address never matches; a uid
// such as "abc" reads as 0 and is refused; duplicate keys are all stored
// and the first wins. Differences: on a malformed assign file qmail-newu
// leaves a users/cdb.tmp behind (empty or partial), while [Compile] removes
// it (nothing reads it and the next run truncates it anyway), and the
// users/ directory is fsynced after the rename. Unlike qmail-lspawn, which
// opens users/cdb for every delivery, [Users] keeps the file mapped and
// stats it on every lookup, reopening it when it was replaced, so a lookup
// answers from the old file or the new one, never a mix ([Users.MaxAge]
// trades that immediacy for fewer stats). Replace users/cdb by rename, as
// qmail-newu and [Compile] do: a file rewritten in place (cp over it) can be
// read half-written, as by qmail-lspawn, and a read past its new end gives
// ErrCDB rather than crashing the process. [ExitCode] gives qmail-lspawn's
// exit codes for the errors.
package assign
