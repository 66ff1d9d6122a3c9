// Package maildir reads and writes Maildirs: qmail's mailbox format, one
// file per message, safe without locks on local disks and over NFS. It does
// what qmail-local does when it delivers to a Maildir, what maildirmake does
// when it makes one, and what qmail-pop3d needs to read one: list, move
// from new/ to cur/, set flags, delete, clean up tmp/. It also keeps the
// Maildir++ conventions later software added: the ",S=" size tag, folders,
// and the maildirsize quota file.
//
//	dir, err := maildir.Ensure("/home/joe/Maildir") // made if missing, parents too
//	name, err := dir.Deliver(ctx, msg)          // new/<name>
//	msgs, err := dir.List()                     // new/ and cur/, by delivery time
//	m, err = dir.SetFlags(msgs[0], msgs[0].Flags().Add(maildir.Seen))
//
// A [Deliverer] carries what a delivery may need to change: host name,
// clock, random source, size tags, quota. [Dir.Deliver] uses a zero one.
//
// # Format
//
// A Maildir is a directory holding tmp/, new/ and cur/ (mode 0700). Each
// message is one file, its bytes exactly as delivered. A delivery writes
// tmp/X, fsyncs it, links it to new/X, fsyncs new/ and unlinks tmp/X; the
// link is the instant of delivery. Readers rename new/X to cur/X:2,FLAGS.
// X, the unique name, is
//
//	<sec>.M<usec>P<pid>Q<n>R<random>.<host>[,S=<size>]
//
// for example 1700000000.M123456P4321Q1R0123456789abcdef.mx1,S=1234: the
// time of delivery, the process id, Q the number of names this [Deliverer]
// has made, R 8 bytes from crypto/rand in hex, and the host name with '/'
// written as \057, ':' as \072 and ',' as \054. qmail-local's form
// <sec>.<pid>.<host> is available as [NamingQmail]. Readers never interpret
// a unique name beyond cutting it at the first ':' ([Unique], the POP3
// UIDL) and reading a ",S=" size ([Name.Size]).
//
// The info after ':' is "2," and the flags in ASCII order: D draft, F
// flagged, P passed, R replied, S seen, T trashed ([Flags]). Other
// characters (IMAP keyword letters) and a ",extra" part after the flags are
// kept when flags change; an experimental "1," info is left alone until
// flags are set.
//
// Maildir++: folders are subdirectories named ".Name", each a Maildir
// holding an empty file maildirfolder. The root's file maildirsize holds
// the quota ("10000000S,1000C") on its first line and "<bytes> <count>"
// deltas on the next ones; a delivery appends one line, a [Dir.Remove] a
// negative one, and a delivery that would go over quota fails with a
// [*QuotaError] (errors.Is [ErrQuota]). As in Courier's maildirquota, the
// file is recalculated (new/ and cur/ of the root and of every folder but
// .Trash, without messages flagged T, written to tmp/ and renamed over
// maildirsize) when it is missing and a quota is configured, when it is
// 5120 bytes or longer, when its totals are negative, and before refusing
// a delivery unless it has exactly one delta line and is less than 15
// minutes old. Deliveries into a folder are counted in the root's file.
//
// # Security and NFS
//
// Nothing is rewritten in place and no lock is taken: each delivery owns a
// tmp/ name no other process or machine can choose, the message appears in
// new/ through one atomic link(2), and fsync and a checked close (where NFS
// reports write errors) come first. A file is never renamed over another:
// on file systems without hard links, the rename fallback checks that the
// name is free. Deliveries work relative to the Maildir's open directory
// handle ([os.Root]), so a symbolic link cannot take them outside it (one
// that stays inside it is followed: refusing it would cost a system call
// per message).
// Every failure removes the delivery's tmp/ file. With [Deliverer.Unnamed]
// (Linux) the message is written as an unnamed file in tmp/ (O_TMPFILE)
// and the same single link puts it into new/: a crash leaves nothing in
// tmp/, and concurrent deliveries into one Maildir do not wait for tmp/'s
// directory lock. A delivery is abandoned
// after 24 hours ([DeliveryTimeout]); [Dir.Clean] removes tmp/ files
// unaccessed for 36 hours ([CleanAge]), which can only be such leftovers.
//
// A Maildir belongs to its user, and whoever reads it may hold more rights
// than that user (a POP3 server for virtual mailboxes reads them all as one
// account), so nothing inside a Maildir is trusted. The path a caller gives
// is followed as given: ~/Maildir may be a symbolic link to
// /var/mail/joe, as in many qmail setups. Everything inside it is reached
// relative to the Maildir's open directory, never through a symbolic link
// and never by a path resolved a second time. [Open] refuses a tmp/, new/
// or cur/ that is a symbolic link; [Ensure] refuses one in the place of the
// Maildir itself too, and makes nothing when it does; [Dir.List], [Dir.Scan],
// [Dir.OpenMessage], [Dir.Move], [Dir.SetFlags], [Dir.Remove],
// [Dir.Clean] and the quota count open them with O_NOFOLLOW and
// O_DIRECTORY and fail when one is a link (a folder that is a link is not
// counted), stat message files with fstatat, and rename and unlink them
// with renameat and unlinkat on those directory handles, so that a link
// swapped in meanwhile redirects nothing. A message is opened with
// O_NOFOLLOW and O_NONBLOCK and must be a regular file: [Dir.OpenMessage]
// refuses a symbolic link, FIFO, socket, device or directory named like a
// message at once, and the listings skip them. Deliveries open the Maildir,
// its directories and maildirsize so that none of them can block either: a
// FIFO in their place makes the delivery fail at once. What this cannot
// protect is the path itself: a reader with more rights than the owner of
// a directory on that path (a user's home) must take the owner's uid
// before reading, as qmail-pop3d runs only after checkpassword has switched
// to the user.
//
// Uniqueness within a process does not rest on a package-level counter:
// two Deliverer values each count from Q1, and the 64 random bits of R keep
// their names apart. Across processes the pid, across machines the host
// name, and across time the seconds and microseconds do the same.
//
// # Compatibility
//
// Maildirs written here are read by qmail-pop3d, Courier, Dovecot, mutt and
// every Maildir reader; Maildirs written by them are read here. Differences
// from qmail-local: the modern unique names (qmail's are [NamingQmail]);
// new/ is fsynced after the link (qmail relied on BSD's synchronous
// directory updates); a file system without hard links gets a checked
// rename instead of a failure; the Maildir++ quota, which qmail ignores,
// is enforced when maildirsize exists or [Deliverer.Quota] is set. Like
// qmail-local a delivery makes 3 attempts, 2 seconds apart, when its tmp/
// name exists, and any link error, EEXIST included, is a temporary failure
// (a retry may deliver twice, never lose a message). All delivery errors
// are temporary except a quota refusal made permanent with
// [Deliverer.QuotaPermanent].
package maildir
