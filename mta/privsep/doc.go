// Package privsep keeps root's privileges apart from the rest of a mail
// system, as qmail does with qmail-lspawn: a program that embeds package
// mta and starts as root binds its ports, starts a delivery helper that
// stays root, drops root for an account of its own, and hands the helper
// every local delivery and every POP3 maildrop of another uid. The helper
// runs each delivery as qmail-local under the recipient's uid and gid,
// and each maildrop in a mailbox agent under its owner's, so that the
// kernel checks the user's rights on every file; nothing is ever
// delivered or read as root.
//
// The helper, its qmail-local children and the mailbox agents are copies
// of the program itself, started with a role: every program that uses
// [Start] must call [ChildMain] first thing in main, before it opens a
// file or starts a goroutine of its own:
//
//	func main() {
//		if privsep.IsChild() {
//			os.Exit(privsep.ChildMain())
//		}
//		... // flags, listeners (ports below 1024 need root)
//		h, err := privsep.Start(privsep.Options{Home: home, Logger: logger})
//		...
//		err = privsep.Drop(uid, gid) // the account's; never root, never nobody
//		...
//		cfg.LocalDeliverer = h                 // mta.Options
//		srv.POP3.OpenMailbox = h.OpenMailbox(srv.POP3)
//	}
//
// The program must be executable by every user who receives mail (its
// qmail-local children run it under their uids): [OthersCanRun] says
// whether it is. [Helper.Done] is closed when the helper is gone; the
// program can no longer start another (it is not root), so it should
// stop and let its supervisor restart it.
//
// # Security
//
// The helper trusts its parent as qmail-lspawn trusts qmail-send: they
// share a socketpair, which nothing else can reach, and the helper is
// killed (Pdeathsig) when its parent dies, or exits when the socket
// closes. It believes the home's users/cdb and users/poppasswd (which say
// under which uid each address is delivered and each maildrop read) only
// while they and users/ belong to root and only root may write them
// ([CheckUsers], checked at every lookup, so that a chown counts at once):
// otherwise deliveries to other uids are deferred with a report naming
// the file, and maildrops of other uids refused. [CheckControl] and
// [CheckHome] say at start whether the account could rewrite control/
// (who may relay, the TLS key) or replace control/ and users/ in the
// home; [UsersFix], [ControlFix] and [HomeFix] are the commands that give
// them to root. A recipient or mailbox owner with uid 0 is refused.
//
// Each delivery has a time limit ([Options.DeliveryTimeout]) after which
// its processes are killed and it is deferred. Whatever a delivery leaves
// running is killed: the helper is a child subreaper (prctl(2)
// PR_SET_CHILD_SUBREAPER), so that orphans of the users' programs become
// its children, and it kills them (with their process group) as soon as
// it sees them. Every qmail-local child and mailbox agent leads a session
// of its own, so that no program of a user can join the helper's process
// group; the qmail-local role refuses to run unless the helper started
// it. Descriptors the program was started with never reach the users'
// programs: every role marks them close-on-exec first.
//
// Drop sets the process's groups, gid and uid for all its threads, with
// no supplementary groups, and checks that root cannot be regained.
package privsep
