package privsep

import (
	"cmp"
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The helper bounds what users' deliveries leave running. A delivery's
// qmail-local child runs each program in a process group of its own and
// kills it at its time limit; the helper kills the qmail-local child at
// the delivery's (lspawn.Server.DeliveryTimeout) and when its parent goes
// away. A program whose qmail-local child is gone, or that a program left
// behind (a background job), is then an orphan: the helper is a child
// subreaper (prctl(2) PR_SET_CHILD_SUBREAPER), so orphans become its
// children instead of init's, and it kills them (with their process group
// when they lead one) as soon as it sees them, at every SIGCHLD and every
// few seconds, and reaps them. Each qmail-local child and each mailbox
// agent starts a session of its own (qmail-local as its first act, see
// qmailLocalMain; the agents by lspawn.Agents), so no program can join the
// helper's process group (setpgid(2) into another session fails with
// EPERM). The helper's own children are then: a child still in the
// helper's group (between fork and its setsid), a mailbox agent
// (lspawn.Agents.Started), or a qmail-local child: this program, run as
// qmail-local, leading its session. The qmail-local role refuses to run
// unless the helper started it (its parent leads the session it was
// started in), so a program cannot pass for one by running this program.
// Every other child is an adopted orphan, killed; and no more qmail-local
// children are spared than local deliveries are in progress (the oldest
// ones; with those started while the children are counted), so that one a program held stopped before its check lives no
// longer than the deliveries under way. A dead child is left to
// the code that started it (os/exec waits at once), unless it is still
// unreaped after zombieGrace: then it was adopted, and is reaped.

// zombieGrace is how long a dead child is left for the code that started
// it to reap (os/exec's Wait does so at once).
const zombieGrace = time.Second

// reapInterval is how often the children are looked at without a SIGCHLD
// (one may have been merged away, and dead ones wait zombieGrace).
const reapInterval = 2 * time.Second

// reaper kills and reaps the helper's adopted children.
type reaper struct {
	self, group int
	exe         os.FileInfo         // this program, which qmail-local children run
	agent       func(pid int) bool  // a mailbox agent's pid
	inflight    func() (int, int64) // the local deliveries in progress, and ever started
	logger      *slog.Logger
	dead        map[int]time.Time // zombies seen, and since when
}

// reapOrphans makes the process a child subreaper and kills and reaps the
// orphans adopted until ctx is done; then it kills every child left and
// reaps them, and closes the channel it returned. agent tells the
// mailbox agents' pids (nil: none); inflight the local deliveries in
// progress (counted before their qmail-local child starts and until it
// has been waited for) and those ever started (counted likewise).
func reapOrphans(ctx context.Context, agent func(pid int) bool, inflight func() (int, int64), logger *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		logger.Warn("mta lspawn: cannot adopt orphans: programs deliveries leave behind are not killed", "err", err)
		close(done)
		return done
	}
	if agent == nil {
		agent = func(int) bool { return false }
	}
	r := &reaper{self: os.Getpid(), group: syscall.Getpgrp(), agent: agent, inflight: inflight, logger: logger, dead: map[int]time.Time{}}
	r.exe, _ = os.Stat("/proc/self/exe")
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	go func() {
		defer close(done)
		defer signal.Stop(chld)
		tick := time.NewTicker(reapInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				// Everything left: the deliveries are over.
				deadline := time.Now().Add(5 * time.Second)
				for r.kill(true, time.Now()) > 0 && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				return
			case <-chld:
			case <-tick.C:
			}
			r.kill(false, time.Now())
		}
	}()
	return done
}

// kill kills and reaps this process's children that are adopted orphans,
// or all of them, and returns how many it found alive or dead.
func (r *reaper) kill(all bool, now time.Time) int {
	// The deliveries that may have a qmail-local child while /proc is
	// read: those in progress before, and those started meanwhile. (The
	// count after the scan alone would miss a child seen alive whose
	// delivery ended meanwhile, and kill the youngest delivery's.)
	inflight, started := r.inflight()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	n := 0
	seen := map[int]bool{}
	type child struct {
		pid   int
		start uint64
	}
	var locals []child
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session ...: comm may hold anything.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 20 || f[1] != strconv.Itoa(r.self) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		pgrp, _ := strconv.Atoi(f[2])
		sid, _ := strconv.Atoi(f[3])
		if f[0] == "Z" {
			// Dead: its starter reaps it at once, else it was adopted.
			seen[pid] = true
			since, ok := r.dead[pid]
			if !ok {
				r.dead[pid] = now
			}
			if all || (ok && now.Sub(since) >= zombieGrace && !r.agent(pid)) {
				var ws syscall.WaitStatus
				syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			}
			n++
			continue
		}
		if !all && (pgrp == r.group || r.agent(pid)) {
			continue // one the helper started
		}
		if !all && r.qmailLocal(pid, pgrp, sid) {
			start, _ := strconv.ParseUint(f[19], 10, 64) // starttime, field 22
			locals = append(locals, child{pid, start})
			continue
		}
		n++
		r.killOne(pid, pgrp)
	}
	// No more qmail-local children than deliveries in progress (each has
	// one, started once the delivery counts): any more pass for one (a
	// program holding this program stopped before its check); the oldest
	// are the deliveries'.
	if len(locals) > 0 {
		_, startedAfter := r.inflight()
		max := inflight + int(startedAfter-started)
		slices.SortFunc(locals, func(a, b child) int { return cmp.Compare(a.start, b.start) })
		for _, c := range locals[min(max, len(locals)):] {
			n++
			r.killOne(c.pid, c.pid)
		}
	}
	for pid := range r.dead {
		if !seen[pid] {
			delete(r.dead, pid)
		}
	}
	if all {
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
	return n
}

// killOne kills pid, with its process group when it leads one (pgrp).
func (r *reaper) killOne(pid, pgrp int) {
	if pgrp == pid {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	r.logger.Warn("mta lspawn: killed a process a delivery left running", "pid", pid)
}

// qmailLocal reports whether the child pid, of process group pgrp and
// session sid, is a qmail-local child the helper started: this program,
// run as qmail-local, leading its own session (which the role makes only
// when the helper started it).
func (r *reaper) qmailLocal(pid, pgrp, sid int) bool {
	if sid != pid || pgrp != pid || r.exe == nil {
		return false
	}
	exe, err := os.Stat("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil || !os.SameFile(exe, r.exe) {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	argv0, _, _ := strings.Cut(string(cmdline), "\x00")
	return argv0 == "qmail-local"
}
