// Package queue is qmail's crash-safe mail queue for Go programs: the
// on-disk queue of qmail-queue and qmail-clean, the delivery scheduler of
// qmail-send, and the listings of qmail-qread and qmail-qstat.
//
// A message is injected with [Queue.Inject] (or [Queue.Create], writing,
// then [Writer.Commit] when the envelope is known only after the message,
// as with qmail-queue's descriptors 0 and 1). When Inject returns an ID the
// message and its envelope are on disk and survive a crash at any instant.
// A [Scheduler] delivers what is queued through a [LocalDeliverer] and a
// [RemoteDeliverer], which the application provides (qmailkit's dotqmail
// and smtpclient packages, or its own), and from the moment a message is
// queued until it leaves the queue every step is recorded on disk before it
// is acted on: each recipient is delivered at least once or bounced.
//
// # Layout
//
// The directory given to [Open] is QMAILHOME/queue, laid out as qmail's
// installer lays it out, so qmail's own tools read it and qmail's programs
// can share it:
//
//	pid/       0700  transient files, one per injection, to get a fresh inode;
//	                 pool.N: inodes of finished files kept for reuse (below)
//	mess/S/N   0750  the message: qmail-queue's Received line, then the bytes given
//	                 (mode 01644: qmail-queue's 0644 and the mark of "Orphans")
//	intd/N     0700  the envelope being written
//	todo/N     0750  a hard link of intd/N; its appearance commits the injection
//	info/S/N   0700  the envelope sender after preprocessing; its mtime is the message's birth
//	local/S/N  0700  local recipients, T<addr>\0 records, T turned to D when done
//	remote/S/N 0700  remote recipients, likewise
//	bounce/N   0700  permanent-failure reports collected for the bounce
//	dsn/N      0700  DSN parameters (RFC 3461) of a message that came with them (not qmail's)
//	lock/      0750  sendmutex (0600), trigger (a FIFO, 0622), tcpto (1024 zero bytes)
//	hold/S/N   0700  an empty file while message N is held (see Administration);
//	                 not qmail's, and ignored by its programs
//
// N is the message's [ID], the inode number of its mess file; S is N modulo
// the split (23 by default, qmail's conf-split; see [Options].Split).
// The envelope in intd/N and todo/N is u<uid>\0p<pid>\0F<sender>\0 and one
// T<recipient>\0 per recipient. Missing directories and lock files are
// created by Open with these modes.
//
// # Durability
//
// Injection follows qmail-queue's order of operations: create
// pid/<pid>.<time>.<seq>, take its inode number N, link it to mess/S/N,
// unlink the pid file (where the file system allows, the file is created
// unnamed in pid/ instead, O_TMPFILE, and linked to mess/S/N through
// /proc/self/fd), write the Received line and the message; create
// intd/N and write the envelope; link intd/N to todo/N. qmail fsynced the
// two files and relied on BSD's synchronous directory updates; Linux file
// systems do not promise them, so before the todo link the two files and
// the directories mess/S and intd are fsynced (the four fsyncs are issued
// together, and the journal commits them as one), and todo is fsynced after
// it; only then does Inject return. Directory fsyncs are shared between
// concurrent injections (group commit, without a goroutine of its own): one
// injection fsyncs a directory for every injection that changed it before
// the fsync began, the others wait for it, and none is acknowledged before
// the fsync that covers it has succeeded.
//
// The scheduler preprocesses todo/N into info/S/N and the channel files,
// fsyncs them and their directories, and only then removes todo/N (and
// fsyncs todo/). A message with one recipient is first delivered straight
// from todo/N, and written out so only if that attempt leaves it deferred:
// a crash before todo/N is removed repeats the attempt, never loses it
// (direct delivery, see direct.go). A permanent failure is appended to bounce/N and fsynced
// before the recipient's record is marked done; a mark is one byte written
// in place, as in qmail, not fsynced: a mark lost in a crash means one more
// delivery, never a lost one. A bounce is injected, durably, before
// bounce/N is removed.
//
// # Recycled inodes
//
// While a scheduler runs, the files of finished messages are not unlinked
// but renamed to pid/pool.N (N their inode number) and renamed back out as
// the files of later messages: a message in steady state then allocates
// and frees no inode. Allocation plus free costs more than two renames on
// any file system, and far more on ext4 without a journal (common on
// virtual machines), whose allocator steps, one by one and under the
// directory lock, over every inode freed in the last minute or more. A
// pooled inode is handed out only after every directory that held a name
// of it has been fsynced (so no old entry can reappear after a crash and
// name a file that now holds another message), and a reused file is
// truncated to what was written before it is fsynced. A message that reuses
// an inode still gets its number as ID, which is then unique in the queue as
// qmail's IDs are. The scheduler removes the pool entries when it starts
// and when it stops. Injectors in other processes (examples/qmail-queue)
// create fresh files, as qmail-queue does.
//
// # Slots
//
// An injection through a Queue on which a scheduler runs takes a slot: a
// number N whose mess/S/N and intd/N already exist, durably, so that it
// writes and fsyncs the two files and needs no directory fsync before its
// todo link (todo/'s after it remains). Slots come from two places. A
// message delivered straight from todo/N (direct delivery) with no bounce
// leaves its mess and intd files where they are when todo/N is removed:
// they are the next message's slot, once todo/ has been fsynced (one fsync,
// shared with injections, for all the slots recycled since the last), so
// that no crash can bring back the old todo/N over the new files. When none
// is recycled, up to 16 are prepared from the pool at once, their mess files
// from one S, so that the fill costs one fsync of mess/S and one of intd/;
// with the pool empty too, the injection makes its files as above. A
// slot is what qmail calls state S3 (an injection under way) with stale
// bytes that no one reads, since intd/N is read only through todo/N. So
// while mail flows, qmail-qstat counts up to 256 slots as messages in the
// queue ([Queue.Stat] does not); the scheduler gives slots unused for 2 s
// back to the pool, and removes them when it stops. A slot's mess file has
// the epoch as mtime until an injection writes it, so a scheduler that
// starts after a crash removes the slots the crash left (and the files of
// injections interrupted before their first write), which the 36-hour rule
// would otherwise keep for a day and a half; other cleaners leave slots
// alone, since the scheduler that owns them may hand them out at any time.
//
// # Orphans
//
// A crash leaves files that belong to no message: the files of an
// injection that never committed (a pid/ file; mess/S/N, with or without
// intd/N, and no todo/N), which was never acknowledged, and files of a
// message that was leaving the queue (channel or bounce files without
// info/S/N, a mess/S/N whose info/S/N was just removed). qmail removes the
// former after 36 hours, because a live qmail-queue in another process may
// be writing them and it cannot tell, and the latter never.
//
// Here an injector proves that it is alive. From before its message file
// has a name in the queue until Commit has linked todo/N (or Abort has
// removed the files), the Writer holds flock(LOCK_EX) on the file, which
// the kernel drops when the process dies, and the file bears a mark: mode
// 01644, the sticky bit, which means nothing on a regular file and which
// qmail's programs ignore, set only while the lock is held. A cleaner
// takes the same lock without waiting before it decides, and holds it
// while it removes the files: a file whose lock is held is never touched,
// whatever its age; a marked file whose lock is free, with neither todo/N
// nor info/S/N, belongs to an injector that has ended, and is removed at
// once with intd/N ([Queue.CleanStale], run by [Open], by the scheduler
// when it starts and every 76431 s). So is a marked pid/ file whose lock
// is free.
//
// A Scheduler that starts holds lock/sendmutex: no other scheduler runs,
// so it also removes at once the slots a crash left, each intd/N with
// neither mess/S/N nor todo/N (an injector writes intd/N only while it
// holds mess/S/N), and each local/S/N, remote/S/N, bounce/N and hold/S/N
// with neither info/S/N nor todo/N. After a kill -9 and a restart, no file is
// left that belongs to no message.
//
// What bears no mark cannot be proven dead: a file of qmail's own
// qmail-queue (which takes no lock, and may inject into this queue), of an
// older version of this package, or a pid/ file whose injector was killed
// between creating and marking it (only where O_TMPFILE is missing). Those
// are removed by qmail's 36-hour rule, as qmail-clean and qmail-send do:
// pid/ files and mess/S/N without info/S/N or todo/N whose atime is more
// than 36 hours old, longer than qmail-queue's 24-hour suicide alarm.
//
// # Scheduling
//
// [Scheduler.Run] is qmail-send. It takes new messages from todo/ at once:
// an injection through the same [Queue] hands it the committed message
// (number, envelope and size, so it neither lists todo/ nor reads todo/N
// back), and it watches lock/trigger, which qmail-queue (ours or qmail's)
// pulls after each injection, to list todo/; todo/ is also rescanned every
// 1500 s. Each recipient is
// routed ([Routing]): an address without "@" gets "@" + EnvNoAtHost; the
// percent hack rewrites u%d@relay for the domains listed in PercentHack; a
// domain listed in Locals is local; else the first virtualdomains key found
// among the address, the domain, its dot-suffixes (longest first) and the
// empty key makes it local with its prepend and "-" in front (an empty
// prepend keeps it remote); everything else is remote. Comparisons ignore
// ASCII case; the last occurrence of a key wins.
//
// Deliveries run at most ConcurrencyLocal (10) local and ConcurrencyRemote
// (20) remote at once, each capped at 120. Beyond qmail, recipients at one
// domain share one remote transaction (RemoteBatch) and ConcurrencyDomain
// limits the transactions to one domain. A temporary failure is retried at
// birth + n² seconds, n growing by 10 (local) or 20 (remote) per attempt
// ([NextRetry]); after the queue lifetime (7 days) one last attempt is made
// and a temporary failure then bounces ([Dying]). Permanent failures are
// reported in one bounce per message, sent when no recipient is left: in
// qmail's QSBMF format, or as an RFC 3464 delivery status notification
// ([Bounce].DSN, and always for a message with DSN parameters). A bounce that fails goes to the postmaster as a double
// bounce; a double bounce that fails is dropped. On stop the scheduler
// starts nothing new, waits for the deliveries in progress, records their
// outcome and saves each message's next attempt in its channel files'
// mtime, which the next start reads.
//
// # Delivery Status Notifications
//
// A message may carry the DSN parameters of RFC 3461 ([Envelope].DSN,
// [Queue.EnqueueDSN] for an SMTP server). They are kept in dsn/N, written
// and fsynced with the envelope before todo/N is linked, so they survive
// a restart; a message without them has no dsn/N, and qmail's files,
// qmail-qread and qmail-qstat see nothing new. dsn/N is removed (and dsn/
// fsynced) before the message's last name goes, with the files of a dead
// injection, and by a scheduler that starts when it has no message.
// The scheduler gives the parameters to the deliverers ([Delivery].DSN)
// and honours them: a recipient whose NOTIFY is NEVER, or lacks FAILURE,
// is not reported when it fails; the report of a message with parameters
// is RFC 3464's, with Original-Envelope-Id (ENVID) and Original-Recipient
// (ORCPT), and only the header of the message with RET=HDRS. A recipient
// with NOTIFY=SUCCESS gets a "delivered" report after a local delivery,
// and a "relayed" one after a remote delivery the deliverer could not pass
// the request on ([Result].DSNPassed); one with NOTIFY=DELAY gets one
// "delayed" report once it has been deferred for [Scheduler].DelayNotice
// (recorded in dsn/N, so not repeated after a restart). These reports go to
// the sender, with the header of the message; a message with a null
// sender (a bounce) never causes one.
//
// # Administration
//
// [Scheduler.Hold], [Scheduler.Release], [Scheduler.Delete],
// [Scheduler.FlushMessages], [Scheduler.Requeue] and [Scheduler.List] are
// Postfix's postqueue and postsuper for this queue: list the messages,
// hold and release them, delete them without a bounce, make them due now
// (flush), and route their pending recipients again (requeue). Each
// operation exists twice: as a Scheduler method, which the running
// scheduler carries out in its own loop between two of its steps, and as
// a Queue method for when no scheduler runs, which takes lock/sendmutex for
// its duration so that none starts meanwhile (ErrRunning when one holds
// it).
//
// Hold. A held message keeps its files; none of its deliveries starts
// until it is released (deliveries already in progress end and are
// recorded as usual). The hold is the file hold/S/N (S the split), created
// and fsynced, with its directory, before the operation reports success,
// so that it survives a crash and a restart; qmail's programs ignore it. A
// held message does not expire while it is held, as in Postfix: it is not
// attempted, so it neither bounces nor reaches its last attempt. Release
// makes it due at once, and from then on the queue lifetime applies as to
// any message, counted from its arrival: a message older than the lifetime
// gets one last attempt, and a temporary failure of it bounces. A message
// held while still in todo/ is held when it is preprocessed. hold/S/N is
// removed, and hold/S fsynced, before the message's last name (info/S/N or
// todo/N) when the message leaves the queue, so that no hold outlives its
// message and applies to a later one numbered N; one that a crash leaves
// without its message is removed when a Scheduler starts.
//
// Delete. The message's last name goes first: info/S/N (and todo/N, after
// any info/S/N, when it is still in todo/), with its directory fsynced
// before success is reported, so that a deleted message never comes back;
// then its channel, bounce, hold and dsn files, intd/N and mess/S/N,
// holding the lock of mess/S/N throughout, as a completion does (see
// Orphans). This is a completion's order except that the name comes
// first: a crash at any point leaves either the whole message or files
// with neither todo/N nor info/S/N, which Open (mess/S/N with intd/N and
// dsn/N: see CleanStale) and a starting Scheduler (channel, bounce and
// hold files) remove. The scheduler logs "delete msg N", then "end msg N". A message whose deliveries are in progress is deleted once they
// have ended and their outcome is recorded; no new one starts meanwhile.
// No bounce is sent, and a bounce already collected (bounce/N) is dropped.
//
// Requeue. The pending remote recipients of a preprocessed message are
// routed again with the current routing (locals, virtualdomains, percent
// hack): one that is now local moves to the local channel (its record is
// appended to local/S/N, fsynced, before the remote record is marked done,
// so that a crash between the two can repeat a delivery, never lose one);
// local recipients stay as they are (local delivery reads users/assign and
// the .qmail files at each attempt). Done recipients are never touched, so
// never delivered again. The message is then due now. A message still in
// todo/ is routed when it is preprocessed, with the routing of then.
//
// # Logging
//
// The Scheduler logs qmail-send's lines ("new msg N", "info msg N: bytes B
// from <s> qp P uid U", "starting delivery D: msg N to local a",
// "delivery D: success: text", "status: local 1/10 remote 0/20",
// "bounce msg N qp P", "end msg N", ...) as slog record messages, with the
// same facts as attributes; [LogHandler] writes the lines alone, with
// splogger's timestamp if asked, so that qmailanalog keeps working.
//
// # Compatibility
//
// File names, file contents, modes, the Received line ("Received: (qmail
// PID invoked by uid UID); 29 Jul 1996 11:35:35 -0000"), the envelope
// format, the 1002-byte address limit, qmail-queue's exit codes
// ([Error].Code, [ExitText]), routing, the retry schedule, the bounce
// records, QSBMF's structure and the log lines are qmail's (notqmail's).
// Where qmailkit differs, it is safer or it is an option: directories are
// fsynced; bounce records are fsynced; message files bear the sticky bit
// while their injectors hold a lock, and what crashes leave is removed at
// once where qmail waits 36 hours ("Orphans"); the bounce's introduction is our
// own wording after qmail's first line; a failed [Writer.Commit] removes
// what it wrote (examples/qmail-queue leaves the message behind on an
// envelope error, exits 11 and 91, as qmail-queue does); remote recipients are batched per domain (RemoteBatch
// 1 gives qmail's one recipient per delivery); [Bounce].MaxBytes and
// [Bounce].DSN are extensions, as are DSN parameters (dsn/N). The scheduler holds lock/sendmutex, so it
// never runs beside qmail-send on the same queue.
package queue
