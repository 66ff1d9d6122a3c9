package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The helper bounds what users' deliveries leave running. A delivery's
// qmail-local child runs each program in a process group of its own and
// kills it at its time limit; the helper kills the qmail-local child at
// the delivery's (lspawn.Server.DeliveryTimeout) and when the mta goes
// away. A program whose qmail-local child is gone, or that a program left
// behind (a background job), is then an orphan: the helper is a child
// subreaper (prctl(2) PR_SET_CHILD_SUBREAPER), so orphans become its
// children instead of init's, and it kills them (with their process group
// when they lead one) as soon as it sees them, at every SIGCHLD. Its own
// children (the qmail-local children and the mailbox agents) share its
// process group (it leads a session of its own); an orphan is a child in
// another group. A program that moves itself into the helper's group
// escapes this until the helper exits, when every process left is killed.

// reapOrphans makes the process a child subreaper and kills and reaps the
// orphans adopted until ctx is done; then it kills every child left and
// reaps them, and closes the channel it returned.
func reapOrphans(ctx context.Context, logger *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		logger.Warn("mta lspawn: cannot adopt orphans: programs deliveries leave behind are not killed", "err", err)
		close(done)
		return done
	}
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	go func() {
		defer close(done)
		defer signal.Stop(chld)
		tick := time.NewTicker(10 * time.Second) // in case a signal was merged away
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				// Everything left: the deliveries are over.
				deadline := time.Now().Add(5 * time.Second)
				for killChildren(true, logger) > 0 && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				return
			case <-chld:
			case <-tick.C:
			}
			killChildren(false, logger)
		}
	}()
	return done
}

// killChildren kills and reaps this process's children that are orphans
// (in another process group), or all of them, and returns how many it
// found alive or dead.
func killChildren(all bool, logger *slog.Logger) int {
	self := os.Getpid()
	group := syscall.Getpgrp()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	n := 0
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold anything.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[1] != strconv.Itoa(self) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		pgrp, _ := strconv.Atoi(f[2])
		if !all && pgrp == group {
			continue // a qmail-local child or a mailbox agent
		}
		n++
		if f[0] == "Z" {
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			continue
		}
		if pgrp == pid {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
		syscall.Kill(pid, syscall.SIGKILL)
		logger.Warn("mta lspawn: killed a process a delivery left running", "pid", pid)
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
