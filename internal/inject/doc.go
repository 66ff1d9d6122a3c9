// Package inject prepares a locally generated message for the queue as
// qmail's qmail-inject does, and decides what qmail's sendmail wrapper
// runs. It holds the logic of examples/qmail-inject and examples/sendmail.
//
// An [Injector] carries the configuration ([Load] reads it from the
// environment and QMAILHOME/control as qmail-inject does). [Injector.ParseArgs]
// reads qmail-inject's command line; [Injector.Prepare] reads the header,
// rewrites its address fields, drops and adds fields and decides the
// envelope; the returned [Message] streams the body from the input, either
// to standard output ([Message.Print], for -n) or to the queue
// ([Message.Queue]) through a [QueueFunc] such as internal/qq's Program.Run,
// which runs $QMAILQUEUE or QMAILHOME/bin/qmail-queue with qmail-queue's
// descriptor protocol.
// [Sendmail] maps sendmail's options to the program it hands over to.
//
// # Format
//
// The header is the lines up to the first empty one; a line that cannot
// start a field ends it (a blank line is inserted before it); a "From "
// line becomes "MBOX-Line: From ...". Address fields (To, Cc, Bcc,
// Apparently-To, Resent-To/-Cc/-Bcc, Return-Path, Sender, From, Reply-To,
// Return-Receipt-To, Errors-To, Resent-Sender/-From/-Reply-To) are
// tokenised as qmail's token822.c does, read right to left, each address
// rewritten (a source route dropped, "@defaulthost" added when there is no
// "@", "host+" made "host.plusdomain", a dotless domain given
// ".defaultdomain"), then printed back folded at 78 bytes with ",\n  ".
// Other fields are kept byte for byte; Bcc, Resent-Bcc, Return-Path and
// Content-Length are dropped. Date, Message-ID, From and
// "Cc: recipient list not shown: ;" are added when absent (with a
// "Resent-" prefix for a resent message), and Mail-Followup-To when a To or
// Cc address is on the $QMAILMFTFILE list.
//
// # Security
//
// Only the header is held in memory, up to [Injector.MaxHeaderBytes]; the
// body is streamed. Nothing here runs a program: the caller's [QueueFunc]
// does, and [Sendmail] only names the program for the caller to exec.
//
// # Compatibility
//
// The rules are notqmail's, quirks included: an atom runs on to the next
// space or special, so "joe)" is one atom (printed quoted) and not a syntax
// error; nested comment parentheses are dropped; a recipient field that
// does not parse is kept verbatim and the addresses to the right of the
// error stay recipients (qmail 1.03 exited 100); the envelope sender from a
// Return-Path field is the last address of the first such field (lists
// are read right to left). A missing injector program gives qmail's
// "unable to exec qq (#4.3.0)" (exit 111). The sendmail wrapper accepts
// -q (a queue run) and does nothing, and keeps -F together with -f; qmail
// rejects the first and loses the second.
package inject
