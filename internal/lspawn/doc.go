// Package lspawn separates local delivery from the rest of a mail server
// by process and uid, as qmail's qmail-lspawn does: a [Server] running as
// root delivers each message a [Client] sends it, over a socket, under the
// recipient's uid (through dotqmail.Local, which runs a qmail-local child
// for every delivery); a [QueueServer] in the unprivileged process that
// owns the queue takes back the messages those children forward, sent by
// [Enqueue] from a qmail-queue compatible program.
//
// examples/mta uses it when started as root: it starts a helper, a copy of
// itself that stays root and serves the Client, then drops root.
//
// # Format
//
// Both protocols run over SOCK_SEQPACKET unix sockets, one record per
// packet, so that a record and the descriptors passed with it
// (SCM_RIGHTS) arrive together. A record is a kind byte followed by
// netstrings ("5:hello,"):
//
//	D id sender recipient size   + the message file: deliver (Client to Server)
//	C id                         cancel delivery id (Client to Server)
//	R id status report error     its outcome: status K, Z or D (Server to Client)
//	Q                            + descriptors 0 and 1 of qmail-queue: inject (Enqueue to QueueServer)
//	X code                       qmail-queue's exit code (QueueServer to Enqueue)
//
// Ids are decimal; a Client has many deliveries in progress at once and
// matches replies by id. report is qmail-lspawn's report without its status
// letter and error the text of the delivery's error, so that the queue
// logs and bounces exactly what an in-process delivery gives.
//
// # Security
//
// The Server trusts its Client as qmail-lspawn trusts qmail-send; nothing
// else can reach it (the socket is a socketpair). It never delivers as
// root (dotqmail.Local refuses uid 0), and it gives each qmail-local child
// a private copy of the message, never the queue's file, whose inode the
// queue recycles for later messages. Anyone who can connect to the
// QueueServer's socket can queue mail, as anyone can run qmail-queue; the
// Received line names the sender's uid (SO_PEERCRED). The QueueServer only
// reads the descriptors it is given (regular files, pipes or sockets),
// never changes their flags (O_NONBLOCK is shared with the sender), gives
// up on them after Timeout, and serves at most MaxConns connections at
// once, telling the others to try again later.
package lspawn
