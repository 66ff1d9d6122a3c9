// Package dotqmail delivers mail to local users by their .qmail files,
// exactly as qmail-local does, and resolves recipients to users as
// qmail-lspawn does. It replaces qmail-local ([Deliverer.Deliver],
// [Deliverer.Plan] for qmail-local -n, [QmailLocal] for its command line)
// and qmail-lspawn ([Local]); the programs people put in .qmail lines
// (preline, forward, condredirect, bouncesaying, except) are in the helper
// subpackage.
//
//	d := &dotqmail.Deliverer{Forwarder: q}
//	res, err := d.Deliver(ctx, dotqmail.Target{
//		User: "joe", Home: "/home/joe", Local: "joe-list", Dash: "-", Ext: "list",
//		Domain: "example.com", Sender: "bob@example.org", DefaultDelivery: "./Maildir/",
//	}, msg)
//	// res.Report == "did 1+0+0\n"; err is nil, permanent or temporary.
//
// # Format
//
// A .qmail file is a list of lines, executed in order; the first byte of a
// line decides what it is (see dot-qmail(5)). Trailing spaces and tabs are
// removed; a CR is not.
//
//	# comment                 ignored
//	|command                  run "/bin/sh -c command" with the message on stdin
//	./Maildir/  /var/mail/x/  deliver into a Maildir (the line ends in '/')
//	./Mailbox   /var/mail/x   append to an mbox file
//	&address    address       forward (the whole line; " ./Mailbox" is an address)
//	+list                     forward-only mode for the following lines
//	(empty line)              ignored, except as the first line: the file is refused
//
// Maildir files get "Return-Path: <sender>" and "Delivered-To: local@domain"
// lines in front of the message; mbox files also the "From sender date"
// line, ">From " quoting of the body and a blank line after it; programs
// get the bare message and the environment USER, HOME, LOCAL, HOST,
// RECIPIENT, SENDER, NEWSENDER, EXT, EXT2, EXT3, EXT4, HOST2, HOST3, HOST4,
// DEFAULT, DTLINE, RPLINE and UFLINE (see qmail-command(8)), with PATH, TZ,
// LANG, LC_* and QMAIL* of the inherited environment ([AllowedEnv]). A
// program's exit code decides: 0 go on, 99 stop with success, 100 (and 64,
// 65, 70, 76, 77, 78, 112) bounce, anything else or a signal retry
// ([ExitError]).
// A program's stdin is a descriptor of the message open for reading only
// (a copy when the caller's message is not a regular file, or is one open
// for writing too), rewound for each program: a program's write to it
// fails with EBADF, so that it can neither grow a file it does not own nor
// change the message the following lines deliver. Its stdout and stderr
// are pipes, or the caller's pipes or sockets, never a file.
// Forwards are collected and sent as one message, with the Delivered-To
// line, after the last line ran ([Forwarder]); a sender gets rewritten to
// local-owner@domain when .qmail-ext-owner exists, and to the VERP form
// local-owner-@domain-@[] when .qmail-ext-owner-default exists too. The
// first failing line ends the delivery: earlier lines stay delivered, later
// ones and the forwards do not happen.
//
// # Search order
//
// For the recipient local@domain resolved to (user, home, dash, ext), the
// file is home/.qmail + dash + ext, with ext lower-cased and its dots
// written as ':' ([MapExt]). When it does not exist, ext is cut before each
// '-' from the right and "default" added ([Candidates]):
//
//	ext a-b-c:   .qmail-a-b-c  .qmail-a-b-default  .qmail-a-default  .qmail-default
//
// and $DEFAULT holds the part "default" stood for (b-c for
// .qmail-a-default). A directory counts as no file. No file at all bounces
// ("Sorry, no mailbox here by that name. (#5.1.1)") for an extension
// address, and uses the default delivery (Target.DefaultDelivery, as
// qmail-start's argument) for the user's own address, as does an empty
// .qmail file. A message whose header already holds the recipient's exact
// Delivered-To line bounces as a loop, which ends every forwarding loop at
// its second pass.
//
// # Security
//
// Nothing is delivered as root, and nothing under another uid than the
// recipient's: [Local] refuses uid 0 and, in a root process, runs each
// delivery as a child process (examples/qmail-local) under the user's uid
// and gid with no supplementary groups; a process that is not root
// delivers only to users with its own uid and gid, and defers the others'
// mail ([IDError]) rather than run their programs or open the files their
// .qmail lines name with its own rights.
//
// Nothing a user controls can stop a delivery for long. The .qmail files,
// mboxes and a Maildir's maildirsize are stat'ed, opened with O_NONBLOCK
// and checked to be regular files, and directories are opened so that a
// FIFO fails at once: a FIFO, a socket or a device where one of them
// should be defers the message ("Unable to open .qmail-x: not a regular
// file. (#4.3.0)"), so [Find], which a server may call while an SMTP
// client waits, never blocks. Every delivery has a time limit
// ([DefaultTimeout], 1000 seconds, unless [Deliverer.Timeout] or
// [Local.Timeout] says otherwise): when it passes, or when the delivery
// is cancelled, the running program is killed with SIGKILL together with
// its whole process group, whatever it does with SIGTERM, and the message
// is deferred ("Timeout on program delivery. (#4.3.0)"). Only a process
// that leaves the group (setsid) survives, as the user's own process.
// Users' programs, and the qmail-local children that run them, get only
// the environment variables of [AllowedEnv] and qmail-local's: root's or
// the mail server's other variables (credentials among them) never reach
// them.
//
// A home
// directory or .qmail file writable by others defers mail ("Uh-oh: home
// directory is writable. (#4.7.0)"), a sticky home directory defers it while
// the user edits (chmod +t ~, edit, chmod -t ~), and a .qmail file with its
// owner-execute bit set (or a "+list" line) may only forward: a program or
// file line in it defers the message, so a mailing-list file others may add
// addresses to cannot run commands. File names made from an extension never
// leave the home directory: dots are mapped, so ".." cannot occur, and a
// NUL is refused. Symbolic links in the home directory are followed, as the
// user who owns it made them. Program environment values come from the
// remote sender and must be quoted by the programs.
//
// # Compatibility
//
// Report texts (a system error in them worded as qmail's error_str words
// it: "Unable to open ./Mailbox: file does not exist. (#4.2.1)", "access
// denied", "disk quota exceeded", not the C library's "No such file or
// directory"), exit codes (through [ExitCode] and [SpawnReport]), the
// prepended lines byte for byte, the search order and its quirks (ext ""
// tries .qmaildefault; $DEFAULT "default" for an exact .qmail-x-default;
// a space before ./Mailbox makes a forward; CRLF files give paths ending in
// CR) are qmail-local's (notqmail). Differences: Maildir files get modern
// unique names ("sec.MusecPpidQnRrandom.host" rather than "sec.pid.host")
// and new/ is fsynced; mbox locking waits for the lock by polling flock for
// LockTimeout rather than with an alarm; a message that cannot be re-read
// in place is copied to a temporary file instead of being refused; a .qmail
// file larger than 16 MiB defers with "Out of memory."; a line holding a
// NUL byte is refused; an inherited $DEFAULT is removed when no default
// applies; an over-quota Maildir++ (which qmail ignores) defers with
// "Mailbox is full. (#4.2.2)". For
// security (see above), a FIFO, socket or device named like a .qmail file
// defers the message (qmail-local opens it with O_NDELAY and takes it for
// absent; a directory still counts as absent) and so does one named as an
// mbox (qmail-local writes into it, or blocks on a FIFO); programs get an
// allow-list of the inherited environment, not all of it; and a delivery
// has a time limit, where qmail-local has none.
package dotqmail
