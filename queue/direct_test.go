package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestSchedulerDirect: a one-recipient message is delivered from todo/N
// without info or channel files, a deferred one is then written out as a
// preprocessed message, and one with several recipients is written out
// before its first attempt. In real time, so that a loop waiting on its
// hour-long timer with work to do would fail it.
func TestSchedulerDirect(t *testing.T) {
	q := openTest(t, Options{Now: time.Now})
	type seen struct{ todo, info bool }
	var mu sync.Mutex
	at := map[string]seen{}
	local := LocalFunc(func(ctx context.Context, d Delivery) Result {
		mu.Lock()
		at[d.Recipients[0]] = seen{q.exists("todo", d.ID), q.exists("info", d.ID)}
		mu.Unlock()
		if d.Recipients[0] == "later@example.com" {
			return Result{Report: "try later\n", Err: errors.New("later")}
		}
		return Result{Report: "did 0+0+1\n"}
	})
	s := &Scheduler{Queue: q, Local: local, Routing: Routing{Locals: []string{"example.com"}}, NoTrigger: true}
	var later ID
	runUntil(t, s, func() {
		inject(t, q, "s@example.com", "x\n", "one@example.com")
		later = inject(t, q, "s@example.com", "x\n", "later@example.com")
		inject(t, q, "s@example.com", "x\n", "a@example.com", "b@example.com")
	}, func() (bool, string) {
		mu.Lock()
		n := len(at)
		state := fmt.Sprintf("attempts %v", at)
		mu.Unlock()
		// Only the deferred message is left (a finished message's inode,
		// and so its number, may already be another's: count, not name).
		return n == 4 && !q.exists("todo", later) && q.exists("local", later) && messCount(t, q) == 1,
			fmt.Sprintf("%s, todo/later %v, local/later %v, messages %d", state, q.exists("todo", later), q.exists("local", later), messCount(t, q))
	})
	want := map[string]seen{
		"one@example.com":   {todo: true},
		"later@example.com": {todo: true},
		"a@example.com":     {info: true},
		"b@example.com":     {info: true},
	}
	for rcpt, w := range want {
		if at[rcpt] != w {
			t.Errorf("%s delivered with todo/N %v, info/S/N %v; want %v, %v", rcpt, at[rcpt].todo, at[rcpt].info, w.todo, w.info)
		}
	}
	if got := string(readFile(t, q.path("local", later))); got != "Tlater@example.com\x00" {
		t.Errorf("deferred message's local file %q", got)
	}
	if got := string(readFile(t, q.path("info", later))); got != "Fs@example.com\x00" {
		t.Errorf("deferred message's info file %q", got)
	}
	fi, err := os.Stat(q.path("local", later))
	if err != nil || time.Until(fi.ModTime()) < 0 {
		t.Errorf("deferred message's next attempt (local mtime) %v, want in the future (%v)", fi.ModTime(), err)
	}
}

// TestSchedulerStaleAtStart: what an interrupted pass left beside todo/N
// (channel, info and bounce files) is removed when the message is taken
// from todo/N again, and plays no part in its delivery.
func TestSchedulerStaleAtStart(t *testing.T) {
	q := openTest(t, Options{Now: time.Now})
	id := inject(t, q, "s@example.com", "x\n", "one@example.com")
	for k, content := range map[string]string{
		"local":  "Tbogus@example.com\x00",
		"info":   "Fother@example.com\x00",
		"bounce": "<one@example.com>:\nold failure\n\x00",
	} {
		if err := os.WriteFile(q.path(k, id), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var got []string
	s := &Scheduler{Queue: q, Routing: Routing{Locals: []string{"example.com"}}, NoTrigger: true,
		Local: LocalFunc(func(ctx context.Context, d Delivery) Result {
			mu.Lock()
			got = append(got, d.Sender+" "+d.Recipients[0])
			mu.Unlock()
			return Result{Report: "did 0+0+1\n"}
		})}
	runUntil(t, s, func() {}, func() (bool, string) {
		return !q.exists("mess", id), "message still queued"
	})
	if !slices.Equal(got, []string{"s@example.com one@example.com"}) {
		t.Errorf("deliveries %q", got)
	}
	emptyQueue(t, q)
}

// TestSchedulerStopDirect: at a stop, a direct delivery in flight finishes
// and its message is done; a direct message not yet attempted stays in
// todo/ untouched and is delivered, once, by the next run.
func TestSchedulerStopDirect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{hold: make(chan struct{})}
		s := f.scheduler(q, &logs)
		s.ConcurrencyLocal = 1
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { errc <- s.Run(ctx) }()
		synctest.Wait()
		first := inject(t, q, "s@x", "x\n", "a@example.com")
		synctest.Wait()
		second := inject(t, q, "s@x", "y\n", "b@example.com")
		synctest.Wait()
		cancel()
		synctest.Wait()
		f.hold <- struct{}{} // the one in flight finishes
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if q.exists("todo", first) || q.exists("mess", first) {
			t.Error("the delivered message is still queued")
		}
		if !q.exists("todo", second) || q.exists("info", second) || q.exists("local", second) {
			t.Errorf("the waiting message: todo %v, info %v, local %v; want only todo",
				q.exists("todo", second), q.exists("info", second), q.exists("local", second))
		}
		f.hold = nil
		stop := startRun(t, f.scheduler(q, &logs))
		stop()
		local, _ := f.snapshot()
		if len(local) != 2 || local[0].rcpts[0] != "a@example.com" || local[1].rcpts[0] != "b@example.com" {
			t.Errorf("deliveries %+v\n%s", local, logs.String())
		}
		emptyQueue(t, q)
	})
}

// messCount counts the messages in mess/.
func messCount(t *testing.T, q *Queue) int {
	t.Helper()
	n := 0
	for s := 0; s < q.split; s++ {
		names, err := readNames(filepath.Join(q.dir, "mess", strconv.Itoa(s)))
		if err != nil {
			t.Fatal(err)
		}
		n += len(names)
	}
	return n
}

// runUntil runs s in real time, calls start once it runs, waits until done
// reports true (failing the test after 10 s with done's description of the
// state), lets a moment pass for anything done should not have allowed,
// and stops s.
func runUntil(t *testing.T, s *Scheduler, start func(), done func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, state := done()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-errc
			t.Fatalf("after 10 s: %s", state)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// A todo entry that a scan listed but that is gone when its turn comes (the
// run handled the message meanwhile, and its ID may come back later) is
// skipped without a warning; one that cannot be read is a warning.
func TestReadTodoGone(t *testing.T) {
	q, err := Open(filepath.Join(t.TempDir(), "queue"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	r := newTestRun(q)
	for _, tt := range []struct {
		name  string
		setup func(id ID)
		warn  string
	}{
		{"gone", func(ID) {}, ""},
		{"unreadable", func(id ID) {
			if err := os.Mkdir(q.path("todo", id), 0o700); err != nil { // read gives EISDIR
				t.Fatal(err)
			}
		}, "unable to open todo/"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := ID(4000000000 + len(tt.name))
			tt.setup(id)
			var logs logBuf
			if m, ok := r.readTodo(freshMsg{id: id}, &logs); ok || m != nil {
				t.Fatalf("readTodo = %v, %v; want nothing", m, ok)
			}
			var warns []string
			for _, l := range logs {
				if l.warn {
					warns = append(warns, l.line)
				}
			}
			switch {
			case tt.warn == "" && len(warns) != 0:
				t.Errorf("warnings %q for a todo entry that is gone", warns)
			case tt.warn != "" && (len(warns) != 1 || !strings.HasPrefix(warns[0], tt.warn)):
				t.Errorf("warnings %q, want one starting %q", warns, tt.warn)
			}
		})
	}
}
