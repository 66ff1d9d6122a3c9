package dotqmail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// User is a recipient's account as qmail-lspawn resolves it (from
// users/cdb, else through qmail-getpw): who receives the mail, under which
// ids, and which .qmail file decides (Home + "/.qmail" + Dash + Ext).
type User struct {
	Name     string // the account name, qmail-local's user operand
	UID, GID int
	Home     string // the home directory, an absolute path
	Dash     string // "" (the user's own address) or "-"
	Ext      string // the extension, original case
}

// Users resolves the local part of a recipient (original case) to the user
// who receives it: users/cdb first, then the password database, as
// qmail-lspawn and qmail-getpw do. The assign package's Users provides
// this with a small adapter (see [UsersFunc]).
//
// An error is temporary. When it has an ExitCode() int method, the code is
// one of qmail-lspawn's own exit codes (112 to 121) and chooses its report
// text (see [SpawnReport]); otherwise the report is "Temporary failure in
// qmail-lspawn.".
type Users interface {
	Lookup(ctx context.Context, local string) (User, error)
}

// UsersFunc adapts a function to [Users]. With the assign package:
//
//	users := dotqmail.UsersFunc(func(ctx context.Context, local string) (dotqmail.User, error) {
//		u, err := a.Lookup(ctx, local) // a is an *assign.Users
//		if err != nil {
//			return dotqmail.User{}, &dotqmail.LookupError{Code: assign.ExitCode(err), Err: err}
//		}
//		return dotqmail.User{Name: u.Name, UID: u.UID, GID: u.GID, Home: u.Home, Dash: u.Dash, Ext: u.Ext}, nil
//	})
type UsersFunc func(ctx context.Context, local string) (User, error)

// Lookup calls f.
func (f UsersFunc) Lookup(ctx context.Context, local string) (User, error) { return f(ctx, local) }

// LookupError is a failed user lookup with qmail-lspawn's exit code.
type LookupError struct {
	Code int // 112 to 121, as qmail-lspawn exits
	Err  error
}

func (e *LookupError) Error() string {
	if e.Err != nil {
		return "dotqmail: user lookup: " + e.Err.Error()
	}
	return "dotqmail: user lookup: " + strings.TrimSuffix(spawnTexts[e.Code], "\n")
}

func (e *LookupError) Unwrap() error { return e.Err }

// ExitCode returns the code.
func (e *LookupError) ExitCode() int { return e.Code }

// spawnTexts are qmail-lspawn's reports for its own exit codes.
var spawnTexts = map[int]string{
	112: "Internal qmail-lspawn bug.\n",
	113: "Not allowed to perform deliveries as root.\n",
	115: "NFS failure in qmail-local.\n",
	116: "Unable to find alias user!\n",
	117: "Trouble reading users/cdb in qmail-lspawn.\n",
	118: "Temporary failure in qmail-lspawn.\n",
	119: "Out of memory in qmail-lspawn.\n",
	120: "Unable to run qmail-local.\n",
	121: "Unable to run qmail-getpw.\n",
	126: "Unable to run qmail-local.\n",
}

// tooLong is qmail-lspawn's note on a report cut short.
const tooLong = "\nError report too long, sorry.\n"

// SpawnReport is qmail-lspawn's report for a qmail-local child, as
// qmail-lspawn maps its exit status: a status letter, K (success), Z
// (temporary) or D (permanent), and the text. code is the child's exit
// status (-1: killed by a signal) and output what it printed (stdout and
// stderr joined). The output counts up to its first NUL, and one longer
// than 3000 bytes is cut to its first 2966 and "\nError report too long,
// sorry.\n" added.
func SpawnReport(code int, output []byte) string {
	if i := bytes.IndexByte(output, 0); i >= 0 {
		output = output[:i]
	}
	out := string(output)
	if len(out) > 3000 {
		out = out[:3000-len(tooLong)-3] + tooLong
	}
	switch code {
	case 0:
		return "K" + out
	case 111, 71, 74, 75:
		return "Z" + out
	case 112, 113, 115, 116, 117, 118, 119, 120, 121:
		return "Z" + spawnTexts[code]
	case 126:
		return "D" + spawnTexts[code]
	case -1:
		return "Zqmail-local crashed.\n"
	}
	return "D" + out
}

// Local is qmail-lspawn for a Go program: it resolves a recipient to a user
// and delivers to it with qmail-local's semantics, never as root and never
// under another uid than the user's. A process running as root runs
// Program (examples/qmail-local) for each delivery, under the user's uid
// and gid with no supplementary groups, because Go cannot give goroutines
// different uids. A process running as an ordinary user cannot switch ids:
// it delivers (in-process with Deliverer, or in a child when Spawn is set)
// only to users whose uid and gid are its own, and defers the others'
// mail ("Unable to switch to uid 1001 gid 1001: not running as root (uid
// 999 gid 999). (#4.3.0)") before anything of theirs is read or run, since
// it would otherwise run their programs and open the files their .qmail
// lines name with its own rights.
type Local struct {
	// Users resolves local parts; it must be set.
	Users Users
	// Deliverer runs in-process deliveries; nil means a zero Deliverer
	// (whose forwards fail until it has a Forwarder).
	Deliverer *Deliverer
	// DefaultDelivery is qmail-start's argument, used for users without
	// a .qmail file; empty means "./Maildir/".
	DefaultDelivery string
	// Program is the qmail-local program run in a child process; empty
	// means $QMAILHOME/bin/qmail-local (QMAILHOME from Env, default
	// /var/qmail). It should give the user's programs no descriptor
	// but their stdin, stdout and stderr, since it inherits any this
	// process left open without close-on-exec: [QmailLocal] (as in
	// examples/qmail-local) marks them close-on-exec first.
	Program string
	// Env is what the child's environment is taken from (it should carry
	// QMAILHOME or QMAILQUEUE for forwards); nil means the process's
	// environment. Only what [AllowedEnv] keeps of it reaches the child:
	// the child runs as the user, who may read its environment.
	Env []string
	// Spawn runs every delivery in a child process even when the process
	// is not root (then without changing ids). Deliveries as root always
	// use a child.
	Spawn bool
	// TempDir holds a copy of a message that is not a regular file, for
	// a child's stdin; empty means os.TempDir(). The copy has no name
	// once written, and the child gets it, as it gets a caller's regular
	// file, only through a descriptor open for reading: a write by the
	// user's program fails (EBADF) instead of growing a file of this
	// process's owner.
	TempDir string
	// Timeout bounds each delivery, in-process or in a child. When it
	// passes, an in-process delivery kills its running program's process
	// group (see [Deliverer.Timeout]); a child gets SIGTERM, upon which
	// qmail-local ([QmailLocal]) kills its program's process group and
	// exits, and SIGKILL 5 seconds later if it has not. The message is
	// deferred: "Timeout on delivery. (#4.3.0)". Cancelling the context
	// of Deliver does the same. Zero means DefaultTimeout (1000 seconds);
	// negative means no limit.
	Timeout time.Duration
}

// Deliver delivers msg from sender to one local recipient, an address
// split at its last '@' into the local part and the domain. A recipient
// with an empty local part ("@domain", how qmail discards double bounces)
// succeeds at once. The Result's Report is qmail-lspawn's report text
// without its status letter; an error is permanent (D) or temporary (Z).
func (l *Local) Deliver(ctx context.Context, sender, recipient string, msg io.Reader) (Result, error) {
	local, domain := recipient, ""
	if i := strings.LastIndexByte(recipient, '@'); i >= 0 {
		local, domain = recipient[:i], recipient[i+1:]
	}
	if local == "" {
		return Result{}, nil
	}
	u, err := l.Users.Lookup(ctx, local)
	if err != nil {
		code := 118
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		return spawnResult(SpawnReport(code, nil), err)
	}
	if u.UID == 0 {
		return spawnResult(SpawnReport(113, nil), nil)
	}
	root := os.Geteuid() == 0
	if euid, egid := os.Geteuid(), os.Getegid(); !root && (u.UID != euid || u.GID != egid) {
		text := fmt.Sprintf("Unable to switch to uid %d gid %d: not running as root (uid %d gid %d). (#4.3.0)",
			u.UID, u.GID, euid, egid)
		return spawnResult("Z"+text+"\n", &IDError{User: u.Name, UID: u.UID, GID: u.GID, EUID: euid, EGID: egid})
	}
	if lim := limit(l.Timeout); lim > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, lim)
		defer cancel()
	}
	t := Target{User: u.Name, Home: u.Home, Local: local, Dash: u.Dash, Ext: u.Ext, Domain: domain,
		Sender: sender, DefaultDelivery: l.DefaultDelivery}
	if t.DefaultDelivery == "" {
		t.DefaultDelivery = "./Maildir/"
	}
	if !root && !l.Spawn {
		d := l.Deliverer
		if d == nil {
			d = &Deliverer{}
		}
		res, err := d.Deliver(ctx, t, msg)
		code := ExitCode(err)
		rep := SpawnReport(code, []byte(res.Report))
		res.Report = rep[1:]
		return res, err
	}
	return l.spawn(ctx, t, u, msg, root)
}

// spawnResult turns a report into a Result and an error of its class.
func spawnResult(report string, cause error) (Result, error) {
	res := Result{Report: report[1:]}
	switch report[0] {
	case 'K':
		return res, nil
	case 'D':
		return res, &Error{Text: strings.TrimSuffix(report[1:], "\n"), Perm: true, Err: cause}
	}
	return res, &Error{Text: strings.TrimSuffix(report[1:], "\n"), Err: cause}
}

func (l *Local) program() string {
	if l.Program != "" {
		return l.Program
	}
	q := QueueProgram{Env: l.Env}
	return q.home() + "/bin/qmail-local"
}

// spawn runs qmail-local in a child process, as qmail-lspawn does.
func (l *Local) spawn(ctx context.Context, t Target, u User, r io.Reader, root bool) (Result, error) {
	msg, err := newMessage(r, l.TempDir)
	if err != nil {
		return spawnResult("Z"+"Unable to read message: "+errText(err)+". (#4.3.0)\n", err)
	}
	defer msg.close()
	stdin, err := msg.stdin()
	if err != nil {
		return spawnResult("ZUnable to rewind message. (#4.3.0)\n", err)
	}
	cmd := exec.CommandContext(ctx, l.program(), "--", t.User, t.Home, t.Local, t.Dash, t.Ext, t.Domain,
		t.Sender, t.DefaultDelivery)
	cmd.Args[0] = "qmail-local"
	env := l.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = AllowedEnv(env)
	cmd.Stdin = stdin
	var out report
	cmd.Stdout, cmd.Stderr = &out, &out
	// On a timeout or a cancellation qmail-local gets SIGTERM, kills its
	// program's process group and exits (a SIGKILL would leave the
	// program running); SIGKILL comes WaitDelay later.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = programWaitDelay
	if root {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}}}
	}
	if err := cmd.Start(); err != nil {
		if ctx.Err() != nil {
			return spawnResult("ZDelivery cancelled. (#4.3.0)\n", err)
		}
		code := 126
		if isTemp(err) {
			code = 120
		}
		return spawnResult(SpawnReport(code, nil), err)
	}
	err = cmd.Wait()
	if err != nil && ctx.Err() != nil {
		// qmail-local's own report would say its program was killed.
		text := "Delivery cancelled. (#4.3.0)"
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			text = "Timeout on delivery. (#4.3.0)"
		}
		return spawnResult("Z"+text+"\n", ctx.Err())
	}
	code := 0
	if err != nil {
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = -1
			}
		case errors.Is(err, exec.ErrWaitDelay):
		default:
			return spawnResult(SpawnReport(120, nil), err)
		}
	}
	rep := SpawnReport(code, []byte(out.String()))
	res, rerr := spawnResult(rep, nil)
	if rerr != nil {
		var e *Error
		errors.As(rerr, &e)
		e.Err = &ExitError{Command: "qmail-local", Code: code}
	}
	return res, rerr
}

// IDError is the cause of a delivery [Local] deferred because the process
// is not root and the user's uid or gid is not its own: it cannot switch
// to them, and must not deliver with its own rights.
type IDError struct {
	User       string // the user's name
	UID, GID   int    // the user's ids
	EUID, EGID int    // the process's effective ids
}

func (e *IDError) Error() string {
	return fmt.Sprintf("dotqmail: cannot deliver to %s as uid %d gid %d: the process is not root (uid %d gid %d)",
		e.User, e.UID, e.GID, e.EUID, e.EGID)
}
