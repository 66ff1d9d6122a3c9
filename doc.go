// Package qmailkit is a set of mail-system building blocks with qmail's
// semantics, and example programs that compose them into a complete MTA.
//
// This package holds no code; it is the module's overview. Each building block
// is its own package, importable alone:
//
//   - maildir: deliver into, read and flag Maildirs, crash- and NFS-safe,
//     with Maildir++ quotas (qmail-local's maildir delivery, maildirmake).
//   - tcprules: ucspi-tcp's access rules and rules cdbs, and a net.Listener
//     that applies them (tcprules, tcpserver -x).
//   - assign: qmail-users' assign file, users/cdb and the user lookup
//     (qmail-newu, qmail-lspawn, qmail-getpw).
//   - dotqmail: .qmail files parsed and executed as qmail-local does.
//   - smtpclient: remote delivery with MX resolution (qmail-remote).
//   - pop3: the POP3 server engine (qmail-popup, qmail-pop3d).
//   - queue: the crash-safe on-disk queue and its scheduler (qmail-queue,
//     qmail-send).
//   - smtpserver: the SMTP server engine (qmail-smtpd).
//   - authlimit: failed-login limits per client and per account.
//   - rbl: DNS block lists and the fake SMTP session of a blocked client
//     (ucspi-tcp's rblsmtpd).
//   - aliases: /etc/aliases and fastforward's database: compile, print,
//     look up and expand (fastforward, newaliases, setforward,
//     printforward, setmaillist, printmaillist).
//   - dotforward: ~/.forward files as dot-forward reads them.
//
// # How they compose
//
// A message flows as in qmail: smtpserver accepts it and hands it to an
// Enqueuer, which the queue satisfies; the queue's scheduler hands each
// recipient to a local deliverer (assign finds the user, dotqmail runs the
// .qmail lines, maildir stores the message) or a remote one (smtpclient).
// pop3 serves the Maildir back. Each package declares the small interface it
// needs, so any part can be replaced by the application's own. Besides this
// package (IsPermanent) and tcpenv (a connection's environment), which the
// others share, the only imports between them are dotqmail and pop3 using
// maildir, dotforward using dotqmail, and aliases and control reading
// control files; package mta composes them all.
//
// Where the packages meet, one convention carries qmail's temporary/permanent
// distinction (exit 111 vs 100, 4xx vs 5xx): an error is permanent when
// errors.As finds a Permanent() bool method that returns true, and temporary
// otherwise: IsPermanent tests it and Permanent marks an error so.
//
// # Example
//
// The package example (example_test.go) composes two packages: an
// smtpserver.Server whose Enqueuer delivers each message into a Maildir,
// with a maildir.Deliverer that streams, fsyncs and links before the server
// answers 250. Delivering into a Maildir alone:
//
//	dir, err := maildir.Create("/home/joe/Maildir") // a complete one: err wraps fs.ErrExist
//	if err != nil && !errors.Is(err, fs.ErrExist) {
//		return err
//	}
//	name, err := dir.Deliver(ctx, strings.NewReader("Subject: hi\n\nhello\n"))
//
// The programs under examples/ are thin mains over these packages, each a
// drop-in for the qmail program of the same name; examples/mta is the whole
// server in one process, a thin main over package mta.
package qmailkit
