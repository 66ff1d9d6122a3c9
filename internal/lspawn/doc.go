// Package lspawn separates local delivery from the rest of a mail server
// by process and uid, as qmail's qmail-lspawn does: a [Server] running as
// root delivers each message a [Client] sends it, over a socket, under the
// recipient's uid (through dotqmail.Local, which runs a qmail-local child
// for every delivery); a [QueueServer] in the unprivileged process that
// owns the queue takes back the messages those children forward, sent by
// [Enqueue] from a qmail-queue compatible program.
//
// Package mta/privsep is built on it: a program started as root starts a
// helper, a copy of itself that stays root and serves the Server's end,
// keeps the Client, and drops root (examples/mta does so).
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
//	M id name seen               open user name's maildrop in a mailbox agent (Client to Server)
//	A id status text             + on status K, the agent's socket; Z: text says why (Server to Client)
//	Q                            + descriptors 0 and 1 of qmail-queue: inject (Enqueue to QueueServer)
//	X code                       qmail-queue's exit code (QueueServer to Enqueue)
//
// A mailbox agent ([Agents], [ServeMailbox]) and the mta ([RemoteMailbox])
// speak over the socket an A record passes: the agent says O (open) or
// E kind text (kind "inuse" for a locked maildrop); then L lists (l
// records of uid, size and wire size, then ". count"), G i opens message i
// (g with the file's descriptor), U records carry the QUIT update (a byte
// a message: '0', 'd' deleted, 'r' retrieved) and C applies it (c with
// the failures' texts), Q closes (q).
//
// Ids are decimal; a Client has many deliveries in progress at once and
// matches replies by id. report is qmail-lspawn's report without its status
// letter and error the text of the delivery's error, so that the queue
// logs and bounces exactly what an in-process delivery gives.
//
// # Security
//
// The Server trusts its Client as qmail-lspawn trusts qmail-send; nothing
// else can reach it (the socket is a socketpair). Each delivery has a time
// limit (Server.DeliveryTimeout), and the deliveries still running when
// the Client goes are cancelled. A mailbox agent runs under the uid and
// gid the Server's own lookup gives for the name the Client sends (never
// uid 0), so that a POP3 session reads the maildrop with its owner's
// rights; the mta accepts from an agent only regular files as messages. It never delivers as
// root (dotqmail.Local refuses uid 0), and it gives each qmail-local child
// a private copy of the message, never the queue's file, whose inode the
// queue recycles for later messages. Anyone who can connect to the
// QueueServer's socket can queue mail, as anyone can run qmail-queue; the
// Received line names the sender's uid (SO_PEERCRED). The QueueServer only
// reads the descriptors it is given (regular files, pipes or sockets),
// never changes their flags (O_NONBLOCK is shared with the sender), gives
// up on them after Timeout (1 hour) or when they give nothing for
// IdleTimeout (10 minutes), and serves at most MaxConns connections at
// once (64), and MaxPerUID for one uid (8), so that one local user cannot
// take every slot, telling the others to try again later.
package lspawn
