package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
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

	"golang.org/x/sys/unix"
)

// handFile makes a queue file by hand: a new file in pid/ whose inode
// number names it where N is taken from it (mess), with mode and, when
// age is set, atime and mtime that long before now (the epoch for
// slotAge).
type handFile struct {
	t   *testing.T
	q   *Queue
	now time.Time
}

const slotAge = -1 * time.Second // times of a slot: the epoch as mtime

func (h handFile) setTimes(p string, age time.Duration) {
	h.t.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(h.now.Add(-age).UnixNano()), unix.NsecToTimespec(h.now.Add(-age).UnixNano())}
	if age == slotAge {
		ts = []unix.Timespec{unix.NsecToTimespec(h.now.UnixNano()), {}}
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		h.t.Fatal(err)
	}
}

// mess makes mess/S/N, N its inode number, and returns N.
func (h handFile) mess(mode uint32, age time.Duration) ID {
	h.t.Helper()
	tmp := filepath.Join(h.q.Dir(), "pid", "hand")
	if err := os.WriteFile(tmp, []byte("Received: x\n\nbody\n"), 0o644); err != nil {
		h.t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(tmp, &st); err != nil {
		h.t.Fatal(err)
	}
	id := ID(st.Ino)
	if err := os.Rename(tmp, h.q.path("mess", id)); err != nil {
		h.t.Fatal(err)
	}
	h.chmod(h.q.path("mess", id), mode)
	h.setTimes(h.q.path("mess", id), age)
	return id
}

func (h handFile) chmod(p string, mode uint32) {
	h.t.Helper()
	if err := unix.Chmod(p, mode); err != nil {
		h.t.Fatal(err)
	}
}

// file makes kind's file of id with content, mode and age.
func (h handFile) file(kind string, id ID, mode uint32, age time.Duration) string {
	h.t.Helper()
	p := h.q.path(kind, id)
	if err := os.WriteFile(p, []byte("u1\x00p2\x00Fa@b\x00"), 0o600); err != nil {
		h.t.Fatal(err)
	}
	h.chmod(p, mode)
	h.setTimes(p, age)
	return p
}

// Each kind of orphan, made by hand, and what is not one: which files
// CleanStale (any process, any time) and a starting Scheduler remove.
func TestCleanOrphans(t *testing.T) {
	now := time.Now()
	const (
		young = time.Minute
		old   = 37 * time.Hour
	)
	type files map[string]bool // queue-relative path -> removed by this cleaner
	for _, tc := range []struct {
		name string
		// make builds the files; it returns, for CleanStale and for a
		// starting Scheduler, the paths each must remove or keep.
		make func(h handFile) (stale, start files)
	}{
		{"marked mess of a dead injector", func(h handFile) (files, files) {
			id := h.mess(markedMode, young)
			m := Path("mess", id, h.q.split)
			return files{m: true}, files{m: true}
		}},
		{"marked mess and intd: died committing", func(h handFile) (files, files) {
			id := h.mess(markedMode, young)
			h.file("intd", id, 0o644, young)
			m, i := Path("mess", id, h.q.split), Path("intd", id, h.q.split)
			return files{m: true, i: true}, files{m: true, i: true}
		}},
		{"marked mess with todo: queued", func(h handFile) (files, files) {
			id := h.mess(markedMode, old)
			h.file("intd", id, 0o644, young)
			os.Link(h.q.path("intd", id), h.q.path("todo", id))
			m, i, d := Path("mess", id, h.q.split), Path("intd", id, h.q.split), Path("todo", id, h.q.split)
			return files{m: false, i: false, d: false}, files{m: false, i: false, d: false}
		}},
		{"marked mess with info: preprocessed", func(h handFile) (files, files) {
			id := h.mess(markedMode, old)
			h.file("info", id, 0o600, young)
			h.file("remote", id, 0o600, young)
			m, i, r := Path("mess", id, h.q.split), Path("info", id, h.q.split), Path("remote", id, h.q.split)
			return files{m: false, i: false, r: false}, files{m: false, i: false, r: false}
		}},
		{"unmarked young mess: maybe qmail-queue at work", func(h handFile) (files, files) {
			id := h.mess(0o644, young)
			h.file("intd", id, 0o644, young)
			m, i := Path("mess", id, h.q.split), Path("intd", id, h.q.split)
			return files{m: false, i: false}, files{m: false, i: false}
		}},
		{"unmarked mess 37 hours old", func(h handFile) (files, files) {
			id := h.mess(0o644, old)
			m := Path("mess", id, h.q.split)
			return files{m: true}, files{m: true}
		}},
		{"slot left by a crash", func(h handFile) (files, files) {
			id := h.mess(markedMode, slotAge)
			h.file("intd", id, 0o644, young)
			m, i := Path("mess", id, h.q.split), Path("intd", id, h.q.split)
			return files{m: false, i: false}, files{m: true, i: true}
		}},
		{"marked pid file of a dead injector", func(h handFile) (files, files) {
			p := filepath.Join(h.q.Dir(), "pid", "4242.1.1")
			os.WriteFile(p, nil, 0o644)
			h.chmod(p, markedMode)
			return files{"pid/4242.1.1": true}, files{"pid/4242.1.1": true}
		}},
		{"unmarked young pid file", func(h handFile) (files, files) {
			p := filepath.Join(h.q.Dir(), "pid", "4242.1.1")
			os.WriteFile(p, nil, 0o644)
			return files{"pid/4242.1.1": false}, files{"pid/4242.1.1": false}
		}},
		{"unmarked pid file 37 hours old", func(h handFile) (files, files) {
			p := filepath.Join(h.q.Dir(), "pid", "4242.1.1")
			os.WriteFile(p, nil, 0o644)
			h.setTimes(p, old)
			return files{"pid/4242.1.1": true}, files{"pid/4242.1.1": true}
		}},
		{"intd alone", func(h handFile) (files, files) {
			h.file("intd", 77, 0o644, young)
			return files{"intd/77": false}, files{"intd/77": true}
		}},
		{"intd alone 37 hours old", func(h handFile) (files, files) {
			h.file("intd", 77, 0o644, old)
			return files{"intd/77": true}, files{"intd/77": true}
		}},
		{"channel and bounce files without info", func(h handFile) (files, files) {
			h.file("local", 77, 0o600, young)
			h.file("remote", 78, 0o600, young)
			h.file("bounce", 79, 0o600, young)
			l, r := Path("local", 77, h.q.split), Path("remote", 78, h.q.split)
			return files{l: false, r: false, "bounce/79": false}, files{l: true, r: true, "bounce/79": true}
		}},
		{"channel and bounce files with todo: an interrupted pass", func(h handFile) (files, files) {
			id := h.mess(markedMode, young)
			h.file("intd", id, 0o644, young)
			os.Link(h.q.path("intd", id), h.q.path("todo", id))
			h.file("local", id, 0o600, young)
			h.file("bounce", id, 0o600, young)
			l, b := Path("local", id, h.q.split), Path("bounce", id, h.q.split)
			return files{l: false, b: false}, files{l: false, b: false}
		}},
	} {
		for _, start := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/start=%v", tc.name, start), func(t *testing.T) {
				q := openTest(t, Options{Now: func() time.Time { return now }})
				stale, atStart := tc.make(handFile{t, q, now})
				want := stale
				if start {
					want = atStart
				}
				if err := q.cleanStale(now, start); err != nil {
					t.Fatal(err)
				}
				for p, removed := range want {
					_, err := os.Lstat(filepath.Join(q.Dir(), p))
					if gone := errors.Is(err, fs.ErrNotExist); gone != removed {
						t.Errorf("%s: removed=%v, want %v", p, gone, removed)
					}
				}
			})
		}
	}
}

// A marked file whose lock is held, here by another descriptor of this
// process, is never touched, however old; nor is a symbolic link
// followed, nor a FIFO opened so that the cleaner blocks.
func TestCleanSparesLockedAndStrangeFiles(t *testing.T) {
	now := time.Now()
	q := openTest(t, Options{Now: func() time.Time { return now }})
	h := handFile{t, q, now}
	locked := h.mess(markedMode, 40*time.Hour)
	h.file("intd", locked, 0o644, 40*time.Hour)
	f, err := os.Open(q.path("mess", locked))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	// A symbolic link to a file outside the queue, and a FIFO with no
	// writer, both young and as mess files without todo.
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("x"), 0o644)
	os.Chmod(outside, markedMode)
	link := q.path("mess", 1)
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	fifo := q.path("mess", 2)
	if err := unix.Mkfifo(fifo, 0o644|unix.S_ISVTX); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- q.cleanStale(now, true) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cleaner blocked")
	}
	for _, p := range []string{q.path("mess", locked), q.path("intd", locked), link, fifo, outside} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	// Released, the locked one goes; the others stay until they are 36
	// hours old.
	f.Close()
	if err := q.cleanStale(now, true); err != nil {
		t.Fatal(err)
	}
	if q.exists("mess", locked) || q.exists("intd", locked) {
		t.Error("files of a dead injector kept once its lock was free")
	}
}

// liveEnv runs TestLiveInjectorChild: an injection in another process.
const liveEnv = "QMAILKIT_LIVE_CHILD"

// TestLiveInjectorChild injects one message into the queue at
// $QMAILKIT_LIVE_QUEUE: it writes the first part, makes its mess file 40
// hours old, says "ready N", and waits for a line on stdin before it writes
// the rest and commits ("committed N"). With QMAILKIT_LIVE_NAMED set it
// makes its file as a pid/ file (no O_TMPFILE); with QMAILKIT_LIVE_INTD
// it writes intd/N (as a commit does) before it says ready.
func TestLiveInjectorChild(t *testing.T) {
	if os.Getenv(liveEnv) == "" {
		t.Skip("only run by TestCleanSparesLiveInjector")
	}
	q, err := Open(os.Getenv("QMAILKIT_LIVE_QUEUE"), Options{NoClean: true})
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("QMAILKIT_LIVE_NAMED") != "" {
		q.noUnnamed.Store(true)
	}
	w, err := q.Create(t.Context(), Origin{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: live\n\nfirst part\n")
	w.bw.Flush()
	old := time.Now().Add(-40 * time.Hour)
	os.Chtimes(q.path("mess", w.ID()), old, old)
	if os.Getenv("QMAILKIT_LIVE_INTD") != "" {
		os.WriteFile(q.path("intd", w.ID()), []byte("u1\x00"), 0o644)
		os.Chtimes(q.path("intd", w.ID()), old, old)
	}
	fmt.Printf("ready %d\n", w.ID())
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("QMAILKIT_LIVE_INTD") != "" {
		// Commit makes it afresh; a commit that died had left this one.
		os.Remove(q.path("intd", w.ID()))
	}
	io.WriteString(w, "second part\n")
	id, err := w.Commit(t.Context(), Envelope{Sender: "a@example.com", Recipients: []string{"b@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("committed %d\n", id)
}

// An injection in another process survives every cleaner, whatever its
// age, and commits afterwards; killed, its files go at the next cleaning.
func TestCleanSparesLiveInjector(t *testing.T) {
	if os.Getenv(liveEnv) != "" {
		t.Skip("in the child")
	}
	for _, tc := range []struct {
		name       string
		named      bool // a pid/ file, not O_TMPFILE
		intd, kill bool
	}{
		{"unnamed", false, false, false},
		{"named pid file", true, false, false},
		{"with intd", false, true, false},
		{"killed", false, true, true},
		{"named, killed", true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openTest(t, Options{Now: time.Now})
			cmd := exec.Command(os.Args[0], "-test.run=^TestLiveInjectorChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), liveEnv+"=1", "QMAILKIT_LIVE_QUEUE="+q.Dir())
			if tc.named {
				cmd.Env = append(cmd.Env, "QMAILKIT_LIVE_NAMED=1")
			}
			if tc.intd {
				cmd.Env = append(cmd.Env, "QMAILKIT_LIVE_INTD=1")
			}
			stdin, _ := cmd.StdinPipe()
			out, _ := cmd.StdoutPipe()
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			br := bufio.NewReader(out)
			line := func(want string) ID {
				t.Helper()
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						t.Fatalf("child: %v (waiting for %q)", err, want)
					}
					if rest, ok := strings.CutPrefix(l, want+" "); ok {
						n, err := strconv.ParseUint(strings.TrimSpace(rest), 10, 64)
						if err != nil {
							t.Fatal(err)
						}
						return ID(n)
					}
				}
			}
			id := line("ready")
			if fi, err := os.Stat(q.path("mess", id)); err != nil || fi.Mode()&fs.ModeSticky == 0 {
				t.Fatalf("child's mess file: %v, %v; want the mark", fi, err)
			}
			if tc.kill {
				cmd.Process.Kill()
				cmd.Wait()
			}
			// Every cleaner: CleanStale of another Queue (another
			// process's Open), a Scheduler's start.
			q2, err := Open(q.Dir(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := q2.CleanStale(time.Now()); err != nil {
				t.Fatal(err)
			}
			runScheduler(t, q, nil)
			kept := q.exists("mess", id)
			if tc.intd && q.exists("intd", id) != kept {
				t.Errorf("intd kept %v, mess kept %v", q.exists("intd", id), kept)
			}
			if tc.kill {
				if kept {
					t.Error("the killed injector's files were kept")
				}
				if files := queueFiles(t, q); len(files) != 0 {
					t.Errorf("left: %v", files)
				}
				return
			}
			if !kept {
				t.Fatal("a live injection's mess file was removed")
			}
			io.WriteString(stdin, "go\n")
			if got := line("committed"); got != id {
				t.Fatalf("committed %d, want %d", got, id)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			var got []string
			runScheduler(t, q, func(d Delivery) {
				b, _ := io.ReadAll(d.Message)
				got = append(got, string(b))
			})
			if len(got) != 1 || !strings.HasSuffix(got[0], "\nSubject: live\n\nfirst part\nsecond part\n") {
				t.Errorf("delivered %q", got)
			}
			if files := queueFiles(t, q); len(files) != 0 {
				t.Errorf("left after delivery: %v", files)
			}
		})
	}
}

// runScheduler runs a Scheduler on q until the queue is empty (or a few
// seconds have passed), delivering local mail to deliver.
func runScheduler(t *testing.T, q *Queue, deliver func(Delivery)) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	s := &Scheduler{
		Queue:     q,
		NoTrigger: true,
		Routing:   Routing{Locals: []string{"example.com"}},
		Local: LocalFunc(func(ctx context.Context, d Delivery) Result {
			if deliver != nil {
				deliver(d)
			}
			return Result{Report: "did 0+0+1\n"}
		}),
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if st, err := q.Stat(); err == nil && st.Messages == 0 && st.Unprocessed == 0 {
			break
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// Injections race with cleaners in other processes (other Queues on the
// same directory) that clean without pause, with and without O_TMPFILE,
// and with a Scheduler running on the injecting Queue (slots, recycled
// inodes): every injection succeeds, and every message is delivered whole
// exactly once.
func TestCleanRacesInjections(t *testing.T) {
	for _, tc := range []struct {
		name      string
		named     bool
		scheduler bool
	}{
		{"unnamed", false, false},
		{"named", true, false},
		{"scheduler", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openTest(t, Options{Now: time.Now})
			if tc.named {
				q.noUnnamed.Store(true)
			}
			var mu sync.Mutex
			delivered := map[string]int{}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var run sync.WaitGroup
			if tc.scheduler {
				s := &Scheduler{
					Queue:     q,
					NoTrigger: true,
					Routing:   Routing{Locals: []string{"example.com"}},
					Local: LocalFunc(func(ctx context.Context, d Delivery) Result {
						b, _ := io.ReadAll(d.Message)
						mu.Lock()
						delivered[d.Recipients[0]+" "+string(b[bytesIndex(b, "\n")+1:])]++
						mu.Unlock()
						return Result{Report: "did 0+0+1\n"}
					}),
				}
				run.Go(func() {
					if err := s.Run(ctx); err != nil {
						t.Error(err)
					}
				})
			}
			var stop atomic.Bool
			var cleaners sync.WaitGroup
			var cleanings atomic.Int64
			for range 2 {
				q2, err := Open(q.Dir(), Options{NoClean: true})
				if err != nil {
					t.Fatal(err)
				}
				cleaners.Go(func() {
					for !stop.Load() {
						// A starting Scheduler's rules apply only
						// where no scheduler runs.
						if err := q2.cleanStale(time.Now(), !tc.scheduler); err != nil {
							t.Error(err)
						}
						cleanings.Add(1)
					}
				})
			}
			const workers, each = 8, 40
			var ids sync.Map
			var injectors sync.WaitGroup
			for w := range workers {
				injectors.Go(func() {
					for i := range each {
						body := fmt.Sprintf("Subject: %d.%d\n\n%s", w, i, strings.Repeat("line\n", 1+i*37%200))
						// Some with two recipients, which the
						// scheduler writes out to info/ before it
						// delivers (todo/N, then info/S/N).
						rcpts := []string{"b@example.com"}
						if i%3 == 0 {
							rcpts = append(rcpts, "c@example.com")
						}
						id, err := q.Inject(t.Context(), Envelope{Sender: "a@example.com", Recipients: rcpts}, strings.NewReader(body))
						if err != nil {
							t.Errorf("inject %d.%d: %v", w, i, err)
							continue
						}
						ids.Store(body, msgRcpts{id, rcpts})
					}
				})
			}
			injectors.Wait()
			stop.Store(true)
			cleaners.Wait()
			t.Logf("%d cleanings during %d injections", cleanings.Load(), workers*each)
			if !tc.scheduler {
				ids.Range(func(k, v any) bool {
					id := v.(msgRcpts).id
					b, err := os.ReadFile(q.path("mess", id))
					if err != nil || !strings.HasSuffix(string(b), "\n"+k.(string)) || !q.exists("todo", id) {
						t.Errorf("message %d: %v, todo %v, %q", id, err, q.exists("todo", id), b)
					}
					return true
				})
				return
			}
			deadline := time.Now().Add(20 * time.Second)
			want := 0
			ids.Range(func(k, v any) bool { want += len(v.(msgRcpts).rcpts); return true })
			for {
				mu.Lock()
				n := len(delivered)
				mu.Unlock()
				if n >= want || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			cancel()
			run.Wait()
			ids.Range(func(k, v any) bool {
				for _, r := range v.(msgRcpts).rcpts {
					if n := delivered[r+" "+k.(string)]; n != 1 {
						id := v.(msgRcpts).id
						t.Errorf("message %d delivered to %s %d times; mess %v, todo %v, info %v, local %v, intd %v",
							id, r, n, q.exists("mess", id), q.exists("todo", id), q.exists("info", id), q.exists("local", id), q.exists("intd", id))
					}
				}
				return true
			})
		})
	}
}

func bytesIndex(b []byte, s string) int { return strings.Index(string(b), s) }

// msgRcpts is an injected message's number and recipients.
type msgRcpts struct {
	id    ID
	rcpts []string
}

// A cleaner that holds the lock while an injector seeks it: the injector
// waits, then sees its file gone and takes another; it never writes into
// a file without a name.
func TestInjectorWaitsForCleaner(t *testing.T) {
	t.Run("slot", func(t *testing.T) {
		q := openTest(t, Options{Now: time.Now})
		h := handFile{t, q, time.Now()}
		id := h.mess(markedMode, slotAge)
		h.file("intd", id, 0o644, time.Minute)
		type res struct {
			ok  bool
			err error
		}
		got := make(chan res, 1)
		alive, err := probe(q.path("mess", id), func(*unix.Stat_t) bool { return true }, func() error {
			go func() {
				f, ok, err := q.openSlot(id)
				if f != nil {
					f.Close()
				}
				got <- res{ok, err}
			}()
			time.Sleep(50 * time.Millisecond) // the injector blocks in flock, or finds nothing
			return q.cleanMess(id)
		})
		if alive || err != nil {
			t.Fatal(alive, err)
		}
		if r := <-got; r.ok || r.err != nil {
			t.Errorf("openSlot of a slot removed under the lock = %v, %v; want false, nil", r.ok, r.err)
		}
	})
	t.Run("pool", func(t *testing.T) {
		q := openTest(t, Options{Now: time.Now})
		q.pool.enable(true)
		defer q.pool.enable(false)
		h := handFile{t, q, time.Now()}
		id := h.mess(markedMode, time.Minute)
		if err := q.pool.retire(q.path("mess", id)); err != nil {
			t.Fatal(err)
		}
		q.pool.mu.Lock()
		q.pool.flush()
		q.pool.mu.Unlock()
		pool := q.pool.name(uint64(id))
		if _, err := os.Lstat(pool); err != nil {
			t.Fatalf("mess file not pooled: %v", err)
		}
		type res struct {
			f   *os.File
			err error
		}
		got := make(chan res, 1)
		probe(pool, func(*unix.Stat_t) bool { return true }, func() error {
			go func() {
				f, _, err := q.reuseMess()
				got <- res{f, err}
			}()
			time.Sleep(50 * time.Millisecond)
			return os.Remove(pool)
		})
		r := <-got
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.f != nil {
			r.f.Close()
			t.Errorf("reuseMess placed %s, a pool entry removed under the lock", r.f.Name())
		}
		if files := queueFiles(t, q); len(files) != 0 {
			t.Errorf("left: %v", files)
		}
	})
	t.Run("stale slot", func(t *testing.T) {
		// A slot number whose files a cleaner removed, and whose inode
		// became a committed message's: the slot is not taken.
		q := openTest(t, Options{Now: time.Now})
		id, err := q.Inject(t.Context(), Envelope{Sender: "a@b"}, strings.NewReader("x\n"))
		if err != nil {
			t.Fatal(err)
		}
		before, _ := os.ReadFile(q.path("mess", id))
		f, ok, err := q.openSlot(id)
		if f != nil {
			f.Close()
		}
		if ok || err != nil {
			t.Errorf("openSlot of a committed message = %v, %v; want false, nil", ok, err)
		}
		if after, _ := os.ReadFile(q.path("mess", id)); string(after) != string(before) || !q.exists("intd", id) || !q.exists("todo", id) {
			t.Errorf("committed message touched: %q, intd %v", after, q.exists("intd", id))
		}
	})
}

// The mark is set on every message file an injection makes, whatever way
// the file comes (unnamed, pid/ file, pool, slot), and it survives writes.
func TestInjectionMark(t *testing.T) {
	for _, named := range []bool{false, true} {
		q := openTest(t, Options{})
		if named {
			q.noUnnamed.Store(true)
		}
		id, err := q.Inject(t.Context(), Envelope{Sender: "a@b"}, strings.NewReader(strings.Repeat("x", 100000)))
		if err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(q.path("mess", id), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&modeBits != markedMode {
			t.Errorf("named=%v: mode %o, want %o", named, st.Mode&modeBits, markedMode)
		}
		if names, _ := readNames(filepath.Join(q.Dir(), "pid")); len(names) != 0 {
			t.Errorf("named=%v: pid/ holds %v", named, names)
		}
	}
}

// A cleaner in another process that runs while the scheduler finishes a
// message, between the removal of its last name (info/S/N, or todo/N of a
// direct message) and the removal of its files by number: the files must
// still be the scheduler's. If the cleaner could remove them, inode N,
// freed, could become a new injection's mess/S/N (ext4 reuses inode
// numbers at once), and the scheduler would then remove that message's
// intd/N, or move its mess/S/N to the pool: an acknowledged message lost.
// The hook plants such a message's files where the cleaner removed the
// finished one's, and they must survive.
func TestCleanWhileSchedulerFinishes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rcpts  []string
		bounce bool
	}{
		{"direct", []string{"b@example.com"}, false},
		{"direct bounced", []string{"b@example.com"}, true},
		{"preprocessed", []string{"b@example.com", "c@example.com"}, false},
		{"preprocessed bounced", []string{"b@example.com", "c@example.com"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openTest(t, Options{Now: time.Now})
			q2, err := Open(q.Dir(), Options{NoClean: true})
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var ended []ID
			planted := map[ID]bool{}
			body := "Subject: x\n\nbody\n"
			s := &Scheduler{
				Queue:     q,
				NoTrigger: true,
				Routing:   Routing{Locals: []string{"example.com"}},
				Local: LocalFunc(func(ctx context.Context, d Delivery) Result {
					if tc.bounce && d.Recipients[0] == "b@example.com" {
						return Result{Err: &PermanentError{Text: "no mailbox here by that name. (#5.1.1)"}}
					}
					return Result{Report: "did 0+0+1\n"}
				}),
				endHook: func(id ID) {
					if err := q2.CleanStale(time.Now()); err != nil {
						t.Error(err)
					}
					mu.Lock()
					defer mu.Unlock()
					ended = append(ended, id)
					if q.exists("mess", id) {
						return
					}
					t.Errorf("a cleaner removed message %d's files while the scheduler finished it", id)
					// A new message numbered N, as if inode N were reused.
					for _, kind := range []string{"mess", "intd"} {
						if err := os.WriteFile(q.path(kind, id), []byte("another message\n"), 0o644); err != nil {
							t.Error(err)
						}
					}
					planted[id] = true
				},
			}
			ctx, cancel := context.WithCancel(t.Context())
			var run sync.WaitGroup
			run.Go(func() {
				if err := s.Run(ctx); err != nil {
					t.Error(err)
				}
			})
			if _, err := q.Inject(t.Context(), Envelope{Sender: "a@example.com", Recipients: tc.rcpts}, strings.NewReader(body)); err != nil {
				t.Fatal(err)
			}
			want := 1
			if tc.bounce {
				want = 2 // and the bounce
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				mu.Lock()
				n := len(ended)
				mu.Unlock()
				if n >= want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d messages finished, want %d", n, want)
				}
			}
			cancel()
			run.Wait()
			for id := range planted {
				for _, kind := range []string{"mess", "intd"} {
					if b, err := os.ReadFile(q.path(kind, id)); err != nil || string(b) != "another message\n" {
						t.Errorf("the scheduler removed %s of the new message %d: %v %q", kind, id, err, b)
					}
				}
			}
		})
	}
}
