// Package queue is qmail's crash-safe mail queue for Go programs: the
// on-disk queue of qmail-queue and qmail-clean, the listing of qmail-qread
// and qmail-qstat, and (in progress) the delivery scheduler of qmail-send.
//
// A message is injected with [Queue.Inject] (or [Queue.Create], writing,
// then [Writer.Commit], when the envelope is known only after the message,
// as with qmail-queue's descriptors 0 and 1). When Inject returns an ID, the
// message and its envelope are on disk and survive a crash at any instant;
// from then on every step is recorded on disk before it is acted on.
//
// # Layout
//
// The directory given to [Open] is QMAILHOME/queue, laid out as qmail's
// installer lays it out, so qmail's own tools read it and qmail's programs
// can share it:
//
//	pid/       0700  transient files, one per injection, to get a fresh inode
//	mess/S/N   0750  the message: qmail-queue's Received line, then the bytes given
//	intd/N     0700  the envelope being written
//	todo/N     0750  a hard link of intd/N; its appearance commits the injection
//	info/S/N   0700  the envelope sender after preprocessing; its mtime is the message's birth
//	local/S/N  0700  local recipients, T<addr>\0 records, T turned to D when done
//	remote/S/N 0700  remote recipients, likewise
//	bounce/N   0700  permanent-failure reports collected for the bounce
//	lock/      0750  sendmutex (0600), trigger (a FIFO, 0622), tcpto (1024 zero bytes)
//
// N is the message's [ID], the inode number of its mess file; S is N modulo
// the split (23 by default, qmail's conf-split; see [Options].Split).
// The envelope in intd/N and todo/N is u<uid>\0p<pid>\0F<sender>\0 and one
// T<recipient>\0 per recipient. Missing directories and lock files are
// created by Open with these modes.
//
// # Durability
//
// Injection follows qmail-queue's order of operations exactly: create
// pid/<pid>.<time>.<seq>, take its inode number N, link it to mess/S/N,
// unlink the pid file, write the Received line and the message, fsync;
// create intd/N, write the envelope, fsync; link intd/N to todo/N. qmail
// relied on BSD's synchronous directory updates; Linux file systems do not
// promise them, so the directories mess/S and intd are fsynced before the
// todo link and todo after it, and only then does Inject return. Directory
// fsyncs are shared between concurrent injections (group commit): one
// injection fsyncs a directory for every injection that changed it before
// the fsync began, the others wait for it; no goroutine is started for it
// and no injection is acknowledged before the fsync that covers it has
// succeeded.
//
// Leftovers of injections interrupted by a crash (a pid/ file, a mess file
// without todo/N) were never acknowledged; [Open] removes those older than
// 36 hours, as qmail-clean does ([Queue.CleanStale]), since an injector in
// another process may still be writing younger ones.
//
// # Compatibility
//
// File names, file contents, modes, the Received line ("Received: (qmail
// PID invoked by uid UID); 29 Jul 1996 11:35:35 -0000"), the envelope
// format, the 1002-byte address limit and qmail-queue's exit codes
// ([Error].Code, [ExitText]) are qmail's. After an injection the
// lock/trigger FIFO is pulled so that a qmail-send in another process
// notices it at once. Unlike qmail-queue, a failed [Writer.Commit] removes
// what it wrote whatever the failure; the example program
// examples/qmail-queue keeps qmail's exact behaviour.
package queue
