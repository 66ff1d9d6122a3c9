package queue

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func later(string) Result { return Result{Report: "try later\n", Err: errors.New("later")} }

// checkIDs fails the test unless errs (one per ID) are all nil and err is.
func checkIDs(t *testing.T, what string, errs []error, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("%s: ID %d: %v", what, i, e)
		}
	}
}

func tries(f *fakes, rcpt string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tries[rcpt]
}

// A held message is not attempted, not by a flush, not at its retry time,
// not after a restart, and does not expire while held; released, it is
// attempted at once and the queue lifetime applies again (a temporary
// failure of a message older than the lifetime bounces), and its hold
// file goes with it.
func TestAdminHoldRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{answer: func(rcpt string, n int) Result {
			if rcpt == "s@example.com" { // the bounce
				return Result{Report: "ok\n"}
			}
			return later(rcpt)
		}}
		sched := func() *Scheduler {
			s := f.scheduler(q, &logs)
			s.Lifetime = time.Hour
			return s
		}
		s := sched()
		stop := startRun(t, s)
		id := inject(t, q, "s@example.com", "x\n", "r@remote.test")
		synctest.Wait()
		if n := tries(f, "r@remote.test"); n != 1 {
			t.Fatalf("%d attempts before the hold, want 1", n)
		}
		errs, err := s.Hold(t.Context(), []ID{id})
		checkIDs(t, "hold", errs, err)
		if !q.exists("hold", id) {
			t.Fatal("no hold file")
		}
		s.Flush()
		synctest.Wait()
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		if n := tries(f, "r@remote.test"); n != 1 {
			t.Fatalf("%d attempts while held, want 1\n%s", n, logs.String())
		}
		es, err := s.List(t.Context())
		if err != nil || len(es) != 1 || !es[0].Held || !es[0].Next.IsZero() || es[0].ID != id {
			t.Fatalf("list while held: %+v, %v", es, err)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}

		s = sched()
		stop = startRun(t, s)
		s.Flush()
		synctest.Wait()
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		if n := tries(f, "r@remote.test"); n != 1 {
			t.Fatalf("%d attempts while held after a restart, want 1", n)
		}
		if local, _ := f.snapshot(); len(local) != 0 {
			t.Fatalf("a held message bounced: %+v", local)
		}
		errs, err = s.Release(t.Context(), []ID{id})
		checkIDs(t, "release", errs, err)
		synctest.Wait()
		if n := tries(f, "r@remote.test"); n != 2 {
			t.Fatalf("%d attempts after the release, want 2", n)
		}
		// Older than the lifetime: the failure bounces to the sender.
		local, _ := f.snapshot()
		if len(local) != 1 || local[0].rcpts[0] != "s@example.com" {
			t.Fatalf("deliveries after the release: %+v\n%s", local, logs.String())
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		emptyQueue(t, q)
	})
}

// A message held before the scheduler reads it from todo/ is held when it
// does; List shows it as queued first; hold and delete of an unknown ID
// are ErrNoMessage.
func TestAdminHoldQueued(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{}
		s := f.scheduler(q, &logs)
		stop := startRun(t, s)
		// Injected through another Queue: the scheduler sees it at a scan.
		other, err := Open(q.Dir(), Options{NoClean: true, Now: time.Now})
		if err != nil {
			t.Fatal(err)
		}
		id := inject(t, other, "s@example.com", "x\n", "a@example.com", "r@remote.test")
		es, err := s.List(t.Context())
		if err != nil || len(es) != 1 || !es[0].Queued || es[0].Sender != "s@example.com" || len(es[0].Recipients) != 2 {
			t.Fatalf("list: %+v, %v", es, err)
		}
		errs, err := s.Hold(t.Context(), []ID{id, id + 1000})
		if err != nil || errs[0] != nil || !errors.Is(errs[1], ErrNoMessage) {
			t.Fatalf("hold: %v %v", errs, err)
		}
		errs, err = s.Delete(t.Context(), []ID{id + 1000})
		if err != nil || !errors.Is(errs[0], ErrNoMessage) {
			t.Fatalf("delete of an unknown ID: %v %v", errs, err)
		}
		time.Sleep(RescanInterval + time.Second)
		synctest.Wait()
		if local, remote := f.snapshot(); len(local)+len(remote) != 0 {
			t.Fatalf("a held message was attempted: %+v %+v", local, remote)
		}
		if !q.exists("info", id) || q.exists("todo", id) {
			t.Fatal("the held message was not preprocessed")
		}
		es, _, err = s.Show(t.Context(), []ID{id})
		if err != nil || es[0].Queued || !es[0].Held || len(es[0].Recipients) != 2 {
			t.Fatalf("show: %+v %v", es, err)
		}
		errs, err = s.Delete(t.Context(), []ID{id})
		checkIDs(t, "delete", errs, err)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if local, remote := f.snapshot(); len(local)+len(remote) != 0 {
			t.Fatalf("a deleted message was attempted: %+v %+v", local, remote)
		}
		emptyQueue(t, q)
	})
}

// Delete waits for the delivery in progress, then deletes: the recipient
// being delivered is delivered once, the one whose delivery had not
// started never, and no bounce is sent. With a deadline that passes first,
// the message stays and is delivered whole.
func TestAdminDeleteWhileDelivering(t *testing.T) {
	for _, cut := range []bool{false, true} {
		t.Run(fmt.Sprint("cut=", cut), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var logs syncBuffer
				q := openTest(t, Options{Now: time.Now})
				f := &fakes{hold: make(chan struct{})}
				s := f.scheduler(q, &logs)
				s.ConcurrencyLocal = 1
				stop := startRun(t, s)
				id := inject(t, q, "s@example.com", "x\n", "a@example.com", "b@example.com")
				synctest.Wait() // a's delivery runs, b's waits
				ctx := t.Context()
				if cut {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, time.Minute)
					defer cancel()
				}
				type result struct {
					errs []error
					err  error
				}
				done := make(chan result, 1)
				go func() {
					errs, err := s.Delete(ctx, []ID{id})
					done <- result{errs, err}
				}()
				synctest.Wait()
				if cut {
					time.Sleep(2 * time.Minute)
					synctest.Wait()
				}
				select {
				case r := <-done:
					if !cut {
						t.Fatalf("Delete returned while a delivery ran: %v %v", r.errs, r.err)
					}
					if r.err != nil || !errors.Is(r.errs[0], context.DeadlineExceeded) {
						t.Fatalf("Delete cut by its deadline: %v %v", r.errs, r.err)
					}
				default:
					if cut {
						t.Fatal("Delete did not return at its deadline")
					}
				}
				if !q.exists("info", id) {
					t.Fatal("the message is gone while its delivery runs")
				}
				f.hold <- struct{}{} // a is delivered
				synctest.Wait()
				if cut {
					f.hold <- struct{}{} // b, now
					synctest.Wait()
				} else {
					r := <-done
					checkIDs(t, "delete", r.errs, r.err)
				}
				time.Sleep(24 * time.Hour)
				synctest.Wait()
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				local, _ := f.snapshot()
				var got []string
				for _, d := range local {
					got = append(got, d.rcpts...)
				}
				want := []string{"a@example.com"}
				if cut {
					want = append(want, "b@example.com")
				}
				if !slices.Equal(got, want) {
					t.Errorf("deliveries %q, want %q\n%s", got, want, logs.String())
				}
				emptyQueue(t, q)
			})
		})
	}
}

// Requeue routes pending remote recipients with the current routing: one
// whose domain became local is delivered locally, once; one that stays
// remote is attempted again at once; one already delivered never again.
func TestAdminRequeue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{answer: func(rcpt string, n int) Result {
			if rcpt == "done@remote.test" || rcpt == "moved@moved.test" && n > 1 {
				return Result{Report: "ok\n"}
			}
			return later(rcpt)
		}}
		s := f.scheduler(q, &logs)
		stop := startRun(t, s)
		id := inject(t, q, "s@example.com", "x\n", "done@remote.test", "moved@moved.test", "stay@remote2.test")
		synctest.Wait()
		if got := string(readFile(t, q.path("remote", id))); got != "Ddone@remote.test\x00Tmoved@moved.test\x00Tstay@remote2.test\x00" {
			t.Fatalf("remote file after the first pass: %q", got)
		}
		rt := s.Routing
		rt.Locals = append(slices.Clone(rt.Locals), "moved.test")
		s.Reload(rt)
		errs, err := s.Requeue(t.Context(), []ID{id, id + 1})
		if err != nil || errs[0] != nil || !errors.Is(errs[1], ErrNoMessage) {
			t.Fatalf("requeue: %v %v", errs, err)
		}
		synctest.Wait()
		for rcpt, want := range map[string]int{"done@remote.test": 1, "moved@moved.test": 2, "stay@remote2.test": 2} {
			if n := tries(f, rcpt); n != want {
				t.Errorf("%s: %d attempts, want %d\n%s", rcpt, n, want, logs.String())
			}
		}
		local, _ := f.snapshot()
		if len(local) != 1 || local[0].rcpts[0] != "moved@moved.test" {
			t.Errorf("local deliveries %+v", local)
		}
		if got := string(readFile(t, q.path("remote", id))); got != "Ddone@remote.test\x00Dmoved@moved.test\x00Tstay@remote2.test\x00" {
			t.Errorf("remote file after the requeue: %q", got)
		}
		if q.exists("local", id) {
			t.Error("local file left after its delivery")
		}
		// A requeue with nothing to move makes the message due.
		errs, err = s.Requeue(t.Context(), []ID{id})
		checkIDs(t, "requeue", errs, err)
		synctest.Wait()
		if n := tries(f, "stay@remote2.test"); n != 3 {
			t.Errorf("stay: %d attempts, want 3", n)
		}
		if n := tries(f, "done@remote.test"); n != 1 {
			t.Errorf("done: %d attempts, want 1", n)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// FlushMessages makes only the messages named due.
func TestAdminFlushMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{answer: func(rcpt string, n int) Result { return later(rcpt) }}
		s := f.scheduler(q, &logs)
		stop := startRun(t, s)
		a := inject(t, q, "s@example.com", "x\n", "a@remote.test")
		inject(t, q, "s@example.com", "x\n", "b@remote.test")
		synctest.Wait()
		errs, err := s.FlushMessages(t.Context(), []ID{a})
		checkIDs(t, "flush", errs, err)
		synctest.Wait()
		if na, nb := tries(f, "a@remote.test"), tries(f, "b@remote.test"); na != 2 || nb != 1 {
			t.Errorf("attempts a %d b %d, want 2 and 1", na, nb)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Hold(t.Context(), []ID{a}); !errors.Is(err, ErrNotRunning) {
			t.Errorf("Hold on a stopped scheduler: %v", err)
		}
	})
}

// The Queue's operations refuse while a Scheduler runs, and work without.
func TestAdminOffline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{answer: func(rcpt string, n int) Result { return later(rcpt) }}
		s := f.scheduler(q, &logs)
		stop := startRun(t, s)
		a := inject(t, q, "s@example.com", "x\n", "a@remote.test")
		b := inject(t, q, "s@example.com", "x\n", "b@remote.test")
		c := inject(t, q, "s@example.com", "x\n", "c@moved.test")
		synctest.Wait()
		for name, op := range map[string]func([]ID) ([]error, error){"hold": q.Hold, "release": q.Release, "delete": q.Delete, "flush": q.Flush} {
			if _, err := op([]ID{a}); !errors.Is(err, ErrRunning) {
				t.Errorf("%s while a scheduler runs: %v", name, err)
			}
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		errs, err := q.Hold([]ID{a, 999999})
		if err != nil || errs[0] != nil || !errors.Is(errs[1], ErrNoMessage) {
			t.Fatalf("hold: %v %v", errs, err)
		}
		errs, err = q.Delete([]ID{b})
		checkIDs(t, "delete", errs, err)
		rt := s.Routing
		rt.Locals = append(slices.Clone(rt.Locals), "moved.test")
		errs, err = q.Requeue(rt, []ID{c})
		checkIDs(t, "requeue", errs, err)
		errs, err = q.Flush(nil)
		checkIDs(t, "flush", errs, err)
		es, err := q.List(t.Context())
		if err != nil || len(es) != 2 {
			t.Fatalf("list: %+v %v", es, err)
		}
		for _, e := range es {
			if e.ID == a && !e.Held || e.ID == c && (e.Held || e.Next.After(time.Now())) {
				t.Errorf("entry %+v", e)
			}
		}
		s = f.scheduler(q, &logs)
		s.Routing = rt
		stop = startRun(t, s)
		synctest.Wait()
		if na, nb, nc := tries(f, "a@remote.test"), tries(f, "b@remote.test"), tries(f, "c@moved.test"); na != 1 || nb != 1 || nc != 2 {
			t.Errorf("attempts a %d b %d c %d, want 1 1 2", na, nb, nc)
		}
		if local, _ := f.snapshot(); len(local) != 1 || local[0].rcpts[0] != "c@moved.test" {
			t.Errorf("local deliveries %+v", local)
		}
		stop()
		errs, err = q.Release([]ID{a})
		checkIDs(t, "release", errs, err)
		if q.exists("hold", a) {
			t.Error("hold file left after the release")
		}
	})
}

// A deletion stopped after any one of its removals (a crash) leaves what
// Open and a starting Scheduler finish removing, and nothing of the
// message is delivered or bounced afterwards.
func TestAdminDeleteCrash(t *testing.T) {
	errCrash := errors.New("crash")
	for k := 0; k <= 8; k++ {
		t.Run(fmt.Sprint("after", k), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var logs syncBuffer
				dir := filepath.Join(t.TempDir(), "queue")
				q, err := Open(dir, Options{Now: time.Now})
				if err != nil {
					t.Fatal(err)
				}
				f := &fakes{answer: func(rcpt string, n int) Result {
					if strings.HasPrefix(rcpt, "perm@") {
						return Result{Report: "no\n", Err: &PermanentError{"no"}}
					}
					return later(rcpt)
				}}
				stop := startRun(t, f.scheduler(q, &logs))
				id, err := q.Inject(t.Context(), Envelope{Sender: "s@example.com", Recipients: []string{"perm@example.com", "later@example.com", "r@remote.test"},
					DSN: &DSN{EnvID: "e1"}}, strings.NewReader("x\n"))
				if err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				for _, k := range []string{"info", "local", "remote", "bounce", "dsn", "mess"} {
					if !q.exists(k, id) {
						t.Fatalf("no %s file to delete", k)
					}
				}
				errs, err := q.Hold([]ID{id})
				checkIDs(t, "hold", errs, err)
				var removed []string
				q.deleteHook = func(kind string) error {
					removed = append(removed, kind)
					if len(removed) == k {
						return errCrash
					}
					return nil
				}
				errs, err = q.Delete([]ID{id})
				if err != nil {
					t.Fatal(err)
				}
				// Seven files to remove: info, local, remote, bounce, hold, dsn, mess.
				if k > 0 && k <= 7 && !errors.Is(errs[0], errCrash) || (k == 0 || k > 7) && errs[0] != nil {
					t.Fatalf("delete stopped after %d removals (%v): %v", k, removed, errs[0])
				}
				if errs[0] == nil {
					for _, f := range queueFiles(t, q) {
						if strings.HasSuffix(f, "/"+id.String()) {
							t.Errorf("%s left by the delete", f)
						}
					}
				}
				// The restart.
				q2, err := Open(dir, Options{Now: time.Now})
				if err != nil {
					t.Fatal(err)
				}
				f2 := &fakes{}
				stop = startRun(t, f2.scheduler(q2, &logs))
				time.Sleep(24 * time.Hour)
				synctest.Wait()
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				// Its name went first: whatever the crash left is no message.
				if local, remote := f2.snapshot(); len(local)+len(remote) != 0 {
					t.Errorf("after a crash %v: deliveries %+v %+v", removed, local, remote)
				}
				emptyQueue(t, q2)
			})
		})
	}
}

// A message delivered straight from todo/N (one recipient, in memory)
// held or deleted while its delivery runs: the hold takes effect when the
// delivery is deferred (the message is written out, held), the delete
// once it has ended.
func TestAdminDirectInFlight(t *testing.T) {
	for _, op := range []string{"hold", "delete"} {
		t.Run(op, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var logs syncBuffer
				q := openTest(t, Options{Now: time.Now})
				f := &fakes{hold: make(chan struct{}), answer: func(rcpt string, n int) Result {
					if n > 1 {
						return Result{Report: "ok\n"}
					}
					return later(rcpt)
				}}
				s := f.scheduler(q, &logs)
				stop := startRun(t, s)
				id := inject(t, q, "s@example.com", "x\n", "a@example.com")
				synctest.Wait()
				if !q.exists("todo", id) || q.exists("info", id) {
					t.Fatal("not delivered from todo/N")
				}
				done := make(chan []error, 1)
				go func() {
					var errs []error
					var err error
					if op == "hold" {
						errs, err = s.Hold(t.Context(), []ID{id})
					} else {
						errs, err = s.Delete(t.Context(), []ID{id})
					}
					if err != nil {
						errs = []error{err}
					}
					done <- errs
				}()
				synctest.Wait()
				if op == "hold" {
					checkIDs(t, "hold", <-done, nil)
				}
				f.hold <- struct{}{} // deferred
				synctest.Wait()
				if op == "delete" {
					checkIDs(t, "delete", <-done, nil)
					if q.exists("todo", id) || q.exists("mess", id) || q.exists("info", id) {
						t.Fatal("files left after the delete")
					}
				} else {
					if !q.exists("info", id) || !q.exists("local", id) || q.exists("todo", id) {
						t.Fatal("the held message was not written out")
					}
				}
				f.hold = nil
				s.Flush()
				time.Sleep(24 * time.Hour)
				synctest.Wait()
				if n := tries(f, "a@example.com"); n != 1 {
					t.Fatalf("%d attempts, want 1", n)
				}
				if op == "hold" {
					errs, err := s.Release(t.Context(), []ID{id})
					checkIDs(t, "release", errs, err)
					synctest.Wait()
					if n := tries(f, "a@example.com"); n != 2 {
						t.Fatalf("%d attempts after the release, want 2", n)
					}
				}
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				emptyQueue(t, q)
			})
		})
	}
}
