package lspawn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// MailboxUser is the account a mailbox agent runs as, and its maildrop.
type MailboxUser struct {
	Name     string
	UID, GID int
	Maildir  string
}

// Agents is a [MailboxOpener] that runs each mailbox agent as a process
// under the mailbox owner's uid and gid, with no supplementary groups, in
// a session of its own (so that nothing the agent's user runs can join
// the process group of the root process running Agents),
// with its end of a socketpair as descriptor 3 and
// only the environment Command gives it. Lookup says who the owner is:
// the root process running Agents decides, never its Client. At most Max
// agents run at once, each for at most Lifetime, after which it is
// killed; an agent also ends when its socket closes (ServeMailbox
// returns).
type Agents struct {
	// Lookup finds the user a Client names; it must be set. An error
	// refuses the request; so does uid 0.
	Lookup func(name string) (MailboxUser, error)
	// Command returns the agent's command for u (program, arguments,
	// environment); Agents sets its credentials, descriptors and
	// directory ("/"). It must be set.
	Command func(u MailboxUser, seen bool) *exec.Cmd
	// Max bounds the agents running at once; 0 means [DefaultMaxAgents].
	Max int
	// Lifetime bounds an agent's life; 0 means [DefaultAgentLifetime].
	Lifetime time.Duration
	// Logger receives the agents' ends; nil discards them.
	Logger *slog.Logger

	mu      sync.Mutex
	running int
	pids    map[int]bool // the agents started and not yet waited for
	wg      sync.WaitGroup
}

// DefaultMaxAgents is Agents.Max's default.
const DefaultMaxAgents = 256

// DefaultAgentLifetime is Agents.Lifetime's default: a POP3 session
// longer than this is cut.
const DefaultAgentLifetime = 2 * time.Hour

// ErrTooManyAgents refuses a mailbox when Max agents are running.
var ErrTooManyAgents = errors.New("lspawn: too many mailbox agents")

// OpenMailbox starts the agent for user name and returns the Client's end
// of its socket.
func (a *Agents) OpenMailbox(ctx context.Context, name string, seen bool) (*os.File, error) {
	u, err := a.Lookup(name)
	if err != nil {
		return nil, err
	}
	if u.UID == 0 {
		return nil, fmt.Errorf("lspawn: user %q has uid 0: no mailbox agent runs as root", name)
	}
	max := a.Max
	if max <= 0 {
		max = DefaultMaxAgents
	}
	a.mu.Lock()
	if a.running >= max {
		a.mu.Unlock()
		return nil, ErrTooManyAgents
	}
	a.running++
	a.mu.Unlock()
	started := false
	defer func() {
		if !started {
			a.mu.Lock()
			a.running--
			a.mu.Unlock()
		}
	}()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("lspawn: socketpair: %w", err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "mailbox"), os.NewFile(uintptr(fds[1]), "mailbox")
	defer theirs.Close()
	cmd := a.Command(u, seen)
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}},
		Pdeathsig:  syscall.SIGKILL,
		Setsid:     true,
	}
	// Started and recorded under mu: Pids, asked after a look at the
	// process's children, knows every agent among them.
	a.mu.Lock()
	if err := cmd.Start(); err != nil {
		a.mu.Unlock()
		mine.Close()
		return nil, fmt.Errorf("lspawn: start a mailbox agent: %w", err)
	}
	pid := cmd.Process.Pid
	if a.pids == nil {
		a.pids = map[int]bool{}
	}
	a.pids[pid] = true
	a.mu.Unlock()
	started = true
	life := a.Lifetime
	if life <= 0 {
		life = DefaultAgentLifetime
	}
	a.wg.Go(func() {
		defer func() {
			a.mu.Lock()
			a.running--
			delete(a.pids, pid)
			a.mu.Unlock()
		}()
		t := time.AfterFunc(life, func() { cmd.Process.Kill() })
		err := cmd.Wait()
		if !t.Stop() {
			a.logger().Warn("lspawn: mailbox agent killed at the end of its lifetime", "user", u.Name, "lifetime", life)
		} else if err != nil {
			a.logger().Warn("lspawn: mailbox agent failed", "user", u.Name, "err", err)
		}
	})
	return mine, nil
}

// Running reports the number of agents running.
func (a *Agents) Running() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.running
}

// Started reports whether pid is an agent started and not yet waited
// for: a process of the caller's that Agents reaps itself (a child
// reaper must leave it alone).
func (a *Agents) Started(pid int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pids[pid]
}

// Wait waits for every agent started to have exited.
func (a *Agents) Wait() { a.wg.Wait() }

func (a *Agents) logger() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}
