// Package aliases is fastforward 0.51 (djb's /etc/aliases support for
// qmail): the reader and compiler of sendmail's aliases file (newaliases),
// the compiler of fastforward's own syntax (setforward) and its printer
// (printforward), binary mailing lists (setmaillist, printmaillist), and
// the database lookup and expansion of fastforward itself, as a [Plan] a Go
// program can carry out without running fastforward.
//
// A mail server that wants /etc/aliases compiles it with [CompileFile] (or
// lets an administrator run newaliases), then, for each message to an
// alias-user address, opens the database with [Open], calls [DB.Expand]
// with the recipient and envelope sender, runs the plan's programs with the
// message on their standard input and queues one copy, with a
// Delivered-To line first, for the plan's sender and targets. A recipient
// the database does not know gives [ErrNoMailbox]: bounce it, or (as
// "fastforward -p" does) go on with the next delivery instruction.
//
// # Format
//
// The database is a cdb. A key ":ADDRESS" holds instructions, each ended
// by a NUL byte: "&ADDRESS" forwards, "|COMMAND" runs "sh -c COMMAND",
// "!COMMAND" runs "preline sh -c COMMAND", "/PATH" and ".PATH" name a
// binary mailing list (NUL-terminated "&ADDRESS", "/PATH" and ".PATH"
// entries). A key "?ADDRESS" holds a new envelope sender, without NUL. Keys
// are lower-cased (ASCII) when written and when looked up; data keeps its
// case. Duplicate keys may occur; the first record wins.
//
// /etc/aliases (see [AliasReader]) is read in logical lines: a physical
// line starting with a space or tab continues the previous one, an empty
// line is skipped without ending it, a logical line starting "#" is a
// comment (with its continuation lines), and bytes after the last LF are
// ignored. A line is tokenized as an RFC 822 address list (quotes,
// comments, <routes>, backslash) and read from right to left: "|COMMAND"
// becomes "!COMMAND" (always through preline), ":include:NAME" becomes
// "NAME.bin" ("./" first unless NAME starts "/" or "."), and each address
// gets "@" when it has none and is completed with the [Controls]; the
// leftmost address is the alias's name, so "a b c" means "a: b, c". The
// instructions come out in the order found: a plain address list is
// stored right to left. A name starting "owner-" also gets a "?" record
// giving the completed name as the sender of the list without the prefix.
// File deliveries ("/var/mail/x") are refused.
//
// setforward's input (see [ForwardReader]) is "TARGET: INSTR, INSTR;"
// entries; spaces, tabs and LFs are ignored everywhere, "#" comments to the
// end of the line, "\" quotes the next byte; an instruction "?SENDER"
// makes a "?" record, one starting "|", "!", "/" or "." is kept, anything
// else is an address ("&" added). Nothing is completed.
//
// # Security
//
// Programs and list files come only from records the database's writer
// put there: list entries cannot run programs. A list file must be
// readable by everyone, so that a user cannot make fastforward read a
// private file; it is opened without blocking and read up to
// [DB.MaxListBytes]. Every input is read with a bound
// ([AliasReader.MaxLineBytes], [ForwardReader.MaxBytes]) and a corrupt
// database gives an error, never a panic or an allocation beyond the
// file's size.
//
// # Compatibility
//
// Records, their order and every error text are fastforward 0.51's, so
// that the databases written here are byte-identical to those of
// newaliases and setforward. Errors are *[Error]: its Text is what the
// program prints after "PROGRAM: fatal: ", and it is permanent exactly
// when the program exits 100. The limits replace fastforward's "out of
// memory" deaths; at their defaults no real aliases file or list meets
// them.
package aliases
