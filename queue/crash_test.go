package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/durable"
	"github.com/qmailkit/qmailkit/maildir"
)

// The crash test (the acceptance test): a child process (this test
// binary, re-executed) injects messages and delivers them, to Maildirs
// (the maildir package) and to a scripted remote that fails some recipients, while the parent
// SIGKILLs it at random moments and restarts it. At the end every
// acknowledged message must have been delivered to each recipient or
// bounced to its sender; duplicates are counted and reported.
//
// QMAILKIT_CRASH_N sets the number of kills (default 200, 30 with -short);
// QMAILKIT_CRASH_KEEP=1 keeps the test's directory for a post-mortem.

const crashEnv = "QMAILKIT_CRASH_CHILD"

// Recipients of the crash test and their fate.
var crashRcpts = []string{
	"alice@example.com",  // local, delivered
	"bob@example.com",    // local, delivered
	"nobody@example.com", // local, permanent failure
	"carol@far.example",  // remote, delivered
	"dave@far.example",   // remote, delivered (same transaction as carol)
	"bad@far.example",    // remote, permanent failure
	"flaky@far.example",  // remote, temporary failures while not draining
}

const crashSender = "sender@example.com"

// crashBody is the body of every message of the crash test.
var crashBody = strings.Repeat("body line\n", 50)

func TestCrash(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("in the child")
	}
	n := 200
	if testing.Short() {
		n = 30
	}
	if s := os.Getenv("QMAILKIT_CRASH_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("QMAILKIT_CRASH_N=%q", s)
		}
		n = v
	}
	home := t.TempDir()
	if os.Getenv("QMAILKIT_CRASH_KEEP") != "" {
		// For debugging a failure: the queue, mailboxes and child.log stay.
		var err error
		if home, err = os.MkdirTemp("", "crash"); err != nil {
			t.Fatal(err)
		}
		t.Logf("QMAILKIT_CRASH_KEEP: home %s is kept", home)
	}
	// The local mailboxes are real Maildirs, made before the first kill.
	for _, addr := range append([]string{crashSender}, crashRcpts...) {
		if strings.HasSuffix(addr, "@example.com") {
			if err := os.MkdirAll(filepath.Join(home, "mail"), 0o700); err != nil {
				t.Fatal(err)
			}
			if _, err := maildir.Create(filepath.Join(home, "mail", addr)); err != nil {
				t.Fatal(err)
			}
		}
	}
	logf, err := os.Create(filepath.Join(home, "child.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	child := func(round int, mode string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+mode, "QMAILKIT_CRASH_HOME="+home, "QMAILKIT_CRASH_ROUND="+strconv.Itoa(round))
		cmd.Stdout, cmd.Stderr = logf, logf
		return cmd
	}
	// Without QMAILKIT_CRASH_N the kills stop after a time budget, so that
	// a slow or loaded machine (CI) stays within about a minute.
	budget := 20 * time.Second
	if os.Getenv("QMAILKIT_CRASH_N") != "" {
		budget = time.Duration(1<<63 - 1)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	start := time.Now()
	for round := range n {
		if time.Since(start) > budget {
			t.Logf("time budget of %v spent after %d of %d kills", budget, round, n)
			n = round
			break
		}
		cmd := child(round, "run")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The kill comes a random time after the child has opened the
		// queue, not after it was started: a loaded machine may take
		// longer than a random delay to start a -race binary, and then
		// no child would ever get to work. Up to 60 ms: each child
		// then injects a dozen messages on average, which the drain
		// delivers well within its minute.
		ready := filepath.Join(home, "ready."+strconv.Itoa(round))
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if _, err := os.Lstat(ready); err == nil {
				break
			}
		}
		os.Remove(ready)
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	killed := time.Since(start)
	drainStart := time.Now()
	defer func() { t.Logf("drain took %v", time.Since(drainStart).Round(time.Millisecond)) }()
	cmd := child(n, "drain")
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(home, "child.log"))
			t.Fatalf("drain: %v\n%s", err, tail(string(log), 3000))
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		log, _ := os.ReadFile(filepath.Join(home, "child.log"))
		t.Fatalf("drain did not finish\n%s", tail(string(log), 3000))
	}
	checkCrash(t, home, n, killed)
}

// queueOrphans returns the files under the queue's mess, intd, todo, info,
// local, remote, bounce and pid directories that belong to no message
// (pid/pool.N entries aside): a message N is mess/S/N with todo/N or
// info/S/N; its files are those named N in these directories. It is read
// after the last scheduler has stopped, when nothing moves.
func queueOrphans(t *testing.T, dir string) []string {
	t.Helper()
	split, err := existingSplit(filepath.Join(dir, "mess"))
	if err != nil || split == 0 {
		t.Fatalf("queue split: %d, %v", split, err)
	}
	has := func(p string) bool { _, err := os.Lstat(filepath.Join(dir, p)); return err == nil }
	var orphans []string
	check := func(kind, sub string) {
		d := filepath.Join(kind, sub)
		names, err := readNames(filepath.Join(dir, d))
		if err != nil {
			t.Errorf("read %s: %v", d, err)
			return
		}
		for _, n := range names {
			if kind == "pid" && strings.HasPrefix(n, poolPrefix) {
				continue
			}
			id, ok := parseNum(n)
			if !ok || kind == "pid" {
				orphans = append(orphans, filepath.Join(d, n))
				continue
			}
			if !has(Path("mess", id, split)) || !has(Path("todo", id, split)) && !has(Path("info", id, split)) {
				orphans = append(orphans, filepath.Join(d, n))
			}
		}
	}
	for _, kind := range []string{"intd", "todo", "bounce", "dsn", "pid"} {
		check(kind, "")
	}
	for _, kind := range []string{"mess", "info", "local", "remote"} {
		for s := range split {
			check(kind, strconv.Itoa(s))
		}
	}
	return orphans
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// checkCrash verifies the outcome from the acknowledgement log and the
// mailboxes.
func checkCrash(t *testing.T, home string, kills int, killed time.Duration) {
	orphans := queueOrphans(t, filepath.Join(home, "queue"))
	byDir := map[string]int{}
	for i, o := range orphans {
		if i < 20 {
			t.Errorf("orphan after the last restart: %s", o)
		}
		dir, _, _ := strings.Cut(o, "/")
		byDir[dir]++
	}
	if len(orphans) > 0 {
		t.Logf("orphans by directory: %v", byDir)
	}
	acks := map[string][]string{} // token -> recipients
	f, err := os.Open(filepath.Join(home, "acks"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			break // a partial last line was never acknowledged
		}
		tok, rcpts, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		acks[tok] = strings.Split(rcpts, ",")
	}
	// deliveries[token][rcpt] counts copies; bounced[token][rcpt] likewise.
	delivered := map[string]map[string]int{}
	bounced := map[string]map[string]int{}
	count := func(m map[string]map[string]int, tok, rcpt string) {
		if m[tok] == nil {
			m[tok] = map[string]int{}
		}
		m[tok][rcpt]++
	}
	// A partial copy is one whose message does not end as it was injected
	// (a delivery or a bounce of a truncated or stale mess file).
	partial := 0
	whole := func(tok string) string { return "\nX-Token: " + tok + "\n\n" + crashBody }
	for _, rcpt := range crashRcpts {
		for _, body := range mailbox(t, home, rcpt) {
			if tok := token(body); tok != "" {
				count(delivered, tok, rcpt)
				if !strings.HasSuffix(body, whole(tok)) {
					partial++
				}
			}
		}
	}
	for _, body := range mailbox(t, home, crashSender) {
		tok := token(body)
		if tok == "" || !strings.Contains(body, "Subject: failure notice") {
			continue
		}
		if !strings.Contains(body, whole(tok)) {
			partial++
		}
		for _, rcpt := range crashRcpts {
			if strings.Contains(body, "\n<"+rcpt+">:\n") {
				count(bounced, tok, rcpt)
			}
		}
	}
	var lost, dups, bounces, deliveries int
	for tok, rcpts := range acks {
		for _, rcpt := range rcpts {
			d, b := delivered[tok][rcpt], bounced[tok][rcpt]
			deliveries += d
			bounces += b
			if d+b == 0 {
				lost++
				if lost <= 10 {
					t.Errorf("lost: message %s to %s", tok, rcpt)
				}
			}
			if d+b > 1 {
				dups += d + b - 1
			}
		}
	}
	if len(acks) == 0 {
		t.Fatal("no message was acknowledged: the kills came too early")
	}
	if partial > 0 {
		t.Errorf("%d partial copies delivered or bounced", partial)
	}
	t.Logf("%d kills in %v; %d messages acknowledged; %d deliveries, %d bounced recipients; %d lost; %d partial; %d duplicates; %d orphans",
		kills, killed.Round(time.Millisecond), len(acks), deliveries, bounces, lost, partial, dups, len(orphans))
}

func token(body string) string {
	_, rest, ok := strings.Cut(body, "\nX-Token: ")
	if !ok {
		return ""
	}
	tok, _, _ := strings.Cut(rest, "\n")
	return tok
}

// mailbox returns the bodies of the messages in a test Maildir.
func mailbox(t *testing.T, home, addr string) []string {
	var out []string
	for _, base := range []string{"mail", "remote"} {
		dir := filepath.Join(home, base, addr, "new")
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, string(b))
		}
	}
	return out
}

// maildirDeliver stores a message in dir as a Maildir delivery does: write
// tmp/NAME, fsync, rename to new/NAME, fsync new/.
func maildirDeliver(dir string, r io.Reader, seq *atomic.Uint64) error {
	for _, d := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return err
		}
	}
	name := fmt.Sprintf("%d.P%dQ%d.test", time.Now().Unix(), os.Getpid(), seq.Add(1))
	tmp := filepath.Join(dir, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := durable.SyncClose(f); err != nil {
		return err
	}
	return durable.Rename(tmp, filepath.Join(dir, "new", name))
}

// TestCrashChild is the child of TestCrash.
func TestCrashChild(t *testing.T) {
	mode := os.Getenv(crashEnv)
	if mode == "" {
		t.Skip("only run by TestCrash")
	}
	home := os.Getenv("QMAILKIT_CRASH_HOME")
	round := os.Getenv("QMAILKIT_CRASH_ROUND")
	draining := mode == "drain"
	q, err := Open(filepath.Join(home, "queue"), Options{Fsync: ringFsync(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !draining {
		if err := os.WriteFile(filepath.Join(home, "ready."+round), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var seq atomic.Uint64
	var rngMu sync.Mutex
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	flaky := func() bool {
		rngMu.Lock()
		defer rngMu.Unlock()
		return !draining && rng.IntN(2) == 0
	}
	// Every other child writes its Maildir files unnamed (O_TMPFILE),
	// so that kills hit both of maildir's protocols.
	rn, _ := strconv.Atoi(round)
	md := &maildir.Deliverer{Unnamed: rn%2 == 1}
	local := LocalFunc(func(ctx context.Context, d Delivery) Result {
		rcpt := d.Recipients[0]
		if rcpt == "nobody@example.com" {
			return Result{Report: "Sorry, no mailbox here by that name. (#5.1.1)\n", Err: &PermanentError{"no mailbox"}}
		}
		if _, err := md.Deliver(ctx, maildir.Dir(filepath.Join(home, "mail", rcpt)), d.Message); err != nil {
			return Result{Report: "Unable to write maildir. (#4.3.0)\n", Err: err}
		}
		return Result{Report: "did 0+0+1\n"}
	})
	remote := RemoteFunc(func(ctx context.Context, d Delivery) []Result {
		res := make([]Result, len(d.Recipients))
		for i, rcpt := range d.Recipients {
			switch {
			case rcpt == "bad@far.example":
				res[i] = Result{Report: "Remote host said: 550 no such user (#5.1.1)\n", Err: &PermanentError{"550"}}
			case rcpt == "flaky@far.example" && flaky():
				res[i] = Result{Report: "Remote host said: 451 try later\n", Err: errors.New("451")}
			default:
				d.Message.Seek(0, io.SeekStart)
				if err := maildirDeliver(filepath.Join(home, "remote", rcpt), d.Message, &seq); err != nil {
					res[i] = Result{Report: "write failed\n", Err: err}
					continue
				}
				res[i] = Result{Report: "accepted\n"}
			}
		}
		return res
	})
	s := &Scheduler{
		Queue:   q,
		Local:   local,
		Remote:  remote,
		Routing: Routing{Locals: []string{"example.com"}, EnvNoAtHost: "example.com"},
		Bounce:  Bounce{Host: "example.com", DoubleHost: "example.com"},
		Logger:  slogTo(os.Stdout),
	}
	if draining {
		// crashDrained reads directories one after another while the
		// scheduler moves files between them, so it can say "drained"
		// when a bounce just went from todo/ to info/. It is checked
		// again once the scheduler has stopped and nothing moves.
		deadline := time.Now().Add(50 * time.Second)
		for {
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- s.Run(ctx) }()
			for !crashDrained(t, q) {
				if time.Now().After(deadline) {
					cancel()
					t.Fatal("queue not drained")
				}
				s.Flush()
				time.Sleep(50 * time.Millisecond)
			}
			cancel()
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if crashDrained(t, q) {
				return
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	acks, err := os.OpenFile(filepath.Join(home, "acks"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ackMu sync.Mutex
	for w := range 4 {
		wg.Go(func() {
			for i := 0; i < 12; i++ {
				rngMu.Lock()
				k := 1 + rng.IntN(3)
				perm := rng.Perm(len(crashRcpts))[:k]
				rngMu.Unlock()
				var rcpts []string
				for _, p := range perm {
					rcpts = append(rcpts, crashRcpts[p])
				}
				tok := fmt.Sprintf("%s.%d.%d", round, w, i)
				msg := "Subject: crash test\nX-Token: " + tok + "\n\n" + crashBody
				env := Envelope{Sender: crashSender, Recipients: rcpts}
				if i%2 == 1 {
					// DSN parameters that change no outcome (dsn/N must
					// not outlive its message either).
					env.DSN = &DSN{EnvID: tok, Recipients: []RecipientDSN{{ORcpt: "rfc822;" + rcpts[0]}}}
				}
				if _, err := q.Inject(ctx, env, strings.NewReader(msg)); err != nil {
					continue
				}
				ackMu.Lock()
				acks.WriteString(tok + " " + strings.Join(rcpts, ",") + "\n")
				acks.Sync()
				ackMu.Unlock()
			}
		})
	}
	wg.Wait()
	<-errc // run until killed
}

func crashDrained(t *testing.T, q *Queue) bool {
	if names, _ := readNames(filepath.Join(q.Dir(), "todo")); len(names) > 0 {
		return false
	}
	for s := 0; s < q.Split(); s++ {
		if names, _ := readNames(filepath.Join(q.Dir(), "info", strconv.Itoa(s))); len(names) > 0 {
			return false
		}
	}
	return true
}
