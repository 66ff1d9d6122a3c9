package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/aliases/command"
	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/inject"
	"github.com/qmailkit/qmailkit/internal/lspawn"
	"github.com/qmailkit/qmailkit/internal/qmailqueue"
	"github.com/qmailkit/qmailkit/queue"
)

// queueProgram is the qmail-queue of home's deliveries and of sendmail and
// qmail-inject run with QMAILHOME=home: home/bin/qmail-queue, which
// linkPrograms makes a link to this program.
func queueProgram(home string) string { return filepath.Join(home, "bin", "qmail-queue") }

// linkPrograms makes home/bin/qmail-queue, qmail-inject, sendmail and
// fastforward
// symbolic links to program (this one), replacing links left by an
// earlier start, so that what runs QMAILHOME/bin/qmail-queue (qmail-inject,
// sendmail, forward, a user's program) reaches the running mta, and a
// user has sendmail and qmail-inject at hand. bin/ is made mode 755 when
// missing (root's when the mta starts as root, before it drops root). A
// program there that is not a symbolic link (one an administrator
// installed) is left alone: kept names it.
func linkPrograms(home, program string) (kept []string, err error) {
	bin := filepath.Join(home, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	fi, err := os.Lstat(bin)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", bin)
	}
	// As root, what users' forwards run must be root's alone to change.
	if st, ok := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && (!ok || st.Uid != 0 || fi.Mode().Perm()&0o022 != 0) {
		return nil, fmt.Errorf("%s: not root's, or writable by others: users' forwards run programs from it; as root run: chown root:root %s && chmod 755 %s", bin, bin, bin)
	}
	if err := os.Chmod(bin, 0o755); err != nil { // whatever the umask
		return nil, err
	}
	// This program runs as each by its name (argv0).
	for _, name := range []string{"qmail-queue", "qmail-inject", "sendmail", "fastforward"} {
		link := filepath.Join(bin, name)
		if fi, err := os.Lstat(link); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
			kept = append(kept, link)
			continue
		}
		tmp := filepath.Join(bin, fmt.Sprintf(".%s.%d", name, os.Getpid()))
		os.Remove(tmp)
		if err := os.Symlink(program, tmp); err != nil {
			return kept, err
		}
		if err := os.Rename(tmp, link); err != nil {
			os.Remove(tmp)
			return kept, err
		}
	}
	return kept, nil
}

// queueMain is qmail-queue, run as home/bin/qmail-queue (argv0): the
// message on descriptor 0, the envelope on 1, the exit code qmail-queue's.
// It hands both descriptors to the mta over lspawn.QueueSocket(home),
// which queues them whatever this process's uid (the Received line says
// "invoked by uid N"); when no mta answers there and this uid owns the
// queue (an ordinary user's mta that is stopped), it queues the message
// itself, to be delivered at the next start. The home is $QMAILHOME, else
// the directory above argv0's bin/.
func queueMain(argv0, home string, msg, env *os.File) int {
	// qmail-queue's 24-hour alarm: exit 52 ("timeout").
	time.AfterFunc(24*time.Hour, func() { os.Exit(52) })
	if home == "" {
		home = homeOf(argv0)
	}
	if home == "" {
		return 61 // "qq trouble in home directory"
	}
	code := lspawn.Enqueue(lspawn.QueueSocket(home), msg, env)
	if code != 56 {
		return code
	}
	// No connection. Only the queue's owner may write it.
	dir := filepath.Join(home, "queue")
	fi, err := os.Stat(dir)
	if err != nil {
		return code
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
		return code
	}
	q, err := queue.Open(dir, queue.Options{
		NoClean:  true,
		NoCreate: true,
		Origin:   queue.Origin{PID: os.Getpid(), UID: os.Getuid()},
	})
	if err != nil {
		return 62
	}
	defer q.Close()
	return qmailqueue.Run(context.Background(), q, queue.Origin{}, msg, env)
}

// homeOf is the home of a program run as HOME/bin/NAME: "" unless argv0
// names a file in a directory called bin.
func homeOf(argv0 string) string {
	if !strings.Contains(argv0, "/") {
		return ""
	}
	abs, err := filepath.Abs(argv0)
	if err != nil || filepath.Base(filepath.Dir(abs)) != "bin" {
		return ""
	}
	return filepath.Dir(filepath.Dir(abs))
}

// injectMain is qmail-inject (argv0 "qmail-inject") or sendmail (any other
// name), run as home/bin/qmail-inject or home/bin/sendmail: those of
// package internal/inject, with $QMAILHOME, else the directory above
// argv0's bin/, so that they queue through home/bin/qmail-queue.
func injectMain(argv []string, env []string) int {
	if os.Getenv("QMAILHOME") == "" {
		if home := homeOf(argv[0]); home != "" {
			env = append(env, "QMAILHOME="+home)
		}
	}
	if filepath.Base(argv[0]) == "qmail-inject" {
		signal.Ignore(syscall.SIGPIPE) // as qmail-inject: a vanished reader is a write error
		return inject.Main(argv, env, os.Stdin, os.Stdout, os.Stderr)
	}
	return inject.SendmailMain(argv, env, os.Stderr, syscall.Exec)
}

// fastforwardMain is fastforward (package aliases), run as
// home/bin/fastforward from the alias user's .qmail-default; its forwards
// go through $QMAILQUEUE, which the deliveries get.
func fastforwardMain(argv, env []string) int {
	return command.Fastforward(context.Background(), argv, command.IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Env: env,
		Forwarder: &dotqmail.QueueProgram{Env: env, Stderr: os.Stderr},
	})
}

// aliasDefault makes home/alias/.qmail-default run fastforward -d on the
// database db, unless something is there already (an administrator's
// file, or an earlier start's: one that differs is reported). It runs
// after root is dropped: alias/ and what is in it are the account's, and
// a FIFO or a link there is reported, never opened.
func aliasDefault(home, db string, logger *slog.Logger) error {
	path := filepath.Join(home, "alias", ".qmail-default")
	want := "|" + filepath.Join(home, "bin", "fastforward") + " -d " + db + "\n"
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// O_EXCL: a link made meanwhile is not followed.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.WriteString(want); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case err != nil:
		return err
	}
	same := false
	if fi.Mode().IsRegular() && fi.Size() == int64(len(want)) {
		b, err := readRegular(path, len(want))
		same = err == nil && string(b) == want
	}
	if !same {
		logger.Warn("mta: -aliases: alias/.qmail-default exists and does not run fastforward on the database; left as it is", "path", path, "want", strings.TrimSpace(want))
	}
	return nil
}

// readRegular reads at most max bytes of the regular file path, neither
// following a link nor waiting on a FIFO put there meanwhile.
func readRegular(path string, max int) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	return io.ReadAll(io.LimitReader(f, int64(max)))
}
