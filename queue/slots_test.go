package queue

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sys/unix"
)

// A delivered direct message's files become the next message's: same
// number, no stale byte of the longer message before it, and the slots
// are given back to the pool once idle and removed when the Scheduler
// stops.
func TestSlotsRecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{}
		stop := startRun(t, f.scheduler(q, &syncBuffer{}))

		var ids []ID
		var bodies []string
		// More messages than a fill prepares, so that later ones take
		// the recycled slots of earlier ones.
		for i := range slotBatch + 4 {
			body := fmt.Sprintf("%s\nmessage %d\n", strings.Repeat("x", 3000-140*i), i)
			ids = append(ids, inject(t, q, "me@domain", body, "you@domain"))
			bodies = append(bodies, body)
			synctest.Wait()
			if i == 0 {
				// Kept as a slot, with its todo/N gone.
				for _, kind := range []string{"mess", "intd"} {
					if !q.exists(kind, ids[0]) {
						t.Errorf("%s/%s gone after delivery", kind, ids[0])
					}
				}
				if q.exists("todo", ids[0]) {
					t.Error("todo entry left")
				}
				if fi, err := os.Stat(q.path("mess", ids[0])); err != nil || !isSlotMark(fi) {
					t.Errorf("recycled mess file not marked: %v", err)
				}
			}
		}
		local, _ := f.snapshot()
		if len(local) != len(bodies) {
			t.Fatalf("%d deliveries, want %d", len(local), len(bodies))
		}
		for i, d := range local {
			if d.id != ids[i] || !strings.HasSuffix(d.body, "\n"+bodies[i]) || strings.Count(d.body, "message ") != 1 {
				t.Errorf("delivery %d: id %s (want %s), body ends %q", i, d.id, ids[i], d.body[max(0, len(d.body)-40):])
			}
		}
		if st, err := q.Stat(); err != nil || st.Messages != 0 || st.Unprocessed != 0 {
			t.Errorf("Stat with only slots left = %+v, %v; want no messages", st, err)
		}
		reused := map[ID]bool{}
		for _, id := range ids {
			reused[id] = true
		}
		if len(reused) == len(ids) {
			t.Errorf("no message number was reused: %v", ids)
		}

		time.Sleep(2 * slotIdle)
		synctest.Wait()
		for _, p := range queueFiles(t, q) {
			if !strings.HasPrefix(p, "pid/") {
				t.Errorf("idle slot left %s", p)
			}
		}

		inject(t, q, "me@domain", "one more\n", "you@domain")
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		emptyQueue(t, q)
	})
}

// A message that bounced, or one taken after a crash left files of it,
// gives its files back to the pool instead: bounce/N (or the leftovers)
// must be durably gone before N can name another message.
func TestSlotsNotRecycled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{answer: func(string, int) Result {
			return Result{Report: "Sorry, no mailbox here by that name. (#5.1.1)\n", Err: &PermanentError{"no mailbox"}}
		}}
		stop := startRun(t, f.scheduler(q, &syncBuffer{}))
		id := inject(t, q, "me@domain", "body\n", "nobody@domain")
		synctest.Wait()
		q.slots.mu.Lock()
		recycled := slices.Contains(q.slots.recycled, id)
		q.slots.mu.Unlock()
		if recycled {
			t.Errorf("bounced message %s kept as a slot", id)
		}
		if q.exists("mess", id) || q.exists("intd", id) {
			t.Errorf("bounced message %s left files", id)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		emptyQueue(t, q)
	})
}

// fillPool gives the pool n new files, as if n finished files had been
// retired.
func fillPool(t *testing.T, q *Queue, n int) {
	t.Helper()
	for i := range n {
		p := filepath.Join(q.dir, "pid", fmt.Sprintf("old.%d", i))
		if err := os.WriteFile(p, []byte("stale"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := q.pool.retire(p); err != nil {
			t.Fatal(err)
		}
	}
}

// Slots prepared from the pool come from one bucket, so that a fill
// fsyncs one mess/S directory; an empty pool prepares none.
func TestSlotsFill(t *testing.T) {
	q := openTest(t, Options{})
	q.pool.enable(true)
	defer q.pool.enable(false)
	if sls := q.fillSlots(slotBatch); len(sls) != 0 {
		t.Fatalf("%d slots from an empty pool", len(sls))
	}
	fillPool(t, q, 100)
	before := uint64(0)
	for _, d := range q.messSync {
		before += d.count()
	}
	sls := q.fillSlots(slotBatch)
	if len(sls) == 0 {
		t.Fatal("no slot prepared")
	}
	bucket := uint64(sls[0]) % uint64(q.split)
	syncs := uint64(0)
	for i, sl := range sls {
		if fi, err := os.Stat(q.path("mess", sl)); err != nil || !isSlotMark(fi) {
			t.Errorf("slot %d: mess file not marked (%v)", i, err)
		}
		if uint64(sl)%uint64(q.split) != bucket {
			t.Errorf("slot %d in bucket %d, the first in %d", i, uint64(sl)%uint64(q.split), bucket)
		}
		for _, kind := range []string{"mess", "intd"} {
			fi, err := os.Stat(q.path(kind, sl))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("%s/%s: mode %v", kind, sl, fi.Mode())
			}
		}
	}
	for _, d := range q.messSync {
		syncs += d.count()
	}
	if syncs-before != 1 {
		t.Errorf("%d mess directory fsyncs for one fill", syncs-before)
	}
	q.trimSlots(time.Time{}, true) // none is free: the fill's were taken
	q.slots.free = sls
	q.trimSlots(time.Time{}, true)
	for _, p := range queueFiles(t, q) {
		if !strings.HasPrefix(p, "pid/"+poolPrefix) {
			t.Errorf("trimmed slots left %s", p)
		}
	}
}

// Slots a crash left (their files on disk, the process that held them
// gone) are removed when a Scheduler starts; the files of an injection
// under way in another process, already written, are not.
func TestSlotsCrashLeftovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := openTest(t, Options{Now: time.Now})
		q.pool.enable(true)
		fillPool(t, q, 100)
		left := q.fillSlots(slotBatch)
		if len(left) == 0 {
			t.Fatal("no slot prepared")
		}
		q.pool.enable(false) // the crash: q forgets its slots and pool
		// Another process's injection, between its intd/N and todo/N.
		w, err := q.Create(t.Context(), Origin{})
		if err != nil {
			t.Fatal(err)
		}
		if w.slot {
			t.Fatal("a slot taken with no Scheduler running")
		}
		w.Write([]byte("being injected\n"))
		w.bw.Flush()
		live := w.ID()
		if err := os.WriteFile(q.path("intd", live), []byte("u1\x00p2\x00"), 0o644); err != nil {
			t.Fatal(err)
		}

		stop := startRun(t, (&fakes{}).scheduler(q, &syncBuffer{}))
		for _, sl := range left {
			if q.exists("mess", sl) || q.exists("intd", sl) {
				t.Errorf("slot %s left after a restart", sl)
			}
		}
		if !q.exists("mess", live) || !q.exists("intd", live) {
			t.Error("a live injection's files removed")
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		w.Abort()
	})
}

// A free slot whose files a starting Scheduler's cleaner removed, and
// whose number, its inode freed and reused, now names another message's
// files: dropping the slot must leave that message alone.
func TestSlotsDropOnlySlots(t *testing.T) {
	q := openTest(t, Options{Now: time.Now})
	q.pool.enable(true)
	defer q.pool.enable(false)
	fillPool(t, q, 40)
	sls := q.fillSlots(slotBatch)
	if len(sls) < 2 {
		t.Fatalf("%d slots prepared", len(sls))
	}
	gone, kept := sls[0], sls[1]
	for _, kind := range []string{"intd", "mess"} {
		if err := os.Remove(q.path(kind, gone)); err != nil {
			t.Fatal(err)
		}
		// Another message numbered gone: its files bear no slot mark.
		if err := os.WriteFile(q.path(kind, gone), []byte("another message\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	q.slots.free = []ID{gone, kept}
	q.trimSlots(time.Time{}, true)
	for _, kind := range []string{"intd", "mess"} {
		if b, err := os.ReadFile(q.path(kind, gone)); err != nil || string(b) != "another message\n" {
			t.Errorf("%s of the message numbered like a dropped slot: %v %q", kind, err, b)
		}
		if q.exists(kind, kept) {
			t.Errorf("slot %s: %s left", kept, kind)
		}
	}
}

// A recycled slot stays locked, through the descriptor the Scheduler took
// at its message's end, until the next injection takes it and writes
// through that descriptor: a cleaner finds the files alive meanwhile, and
// when the slot is dropped (the Scheduler stops) nothing stays open.
func TestSlotsRecycledStayLocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := openTest(t, Options{Now: time.Now})
		f := &fakes{}
		stop := startRun(t, f.scheduler(q, &syncBuffer{}))
		first := inject(t, q, "me@domain", "first\n", "you@domain")
		synctest.Wait()
		q.slots.mu.Lock()
		_, held := q.slots.held[first]
		q.slots.mu.Unlock()
		if !held {
			t.Fatalf("slot %s kept without its descriptor", first)
		}
		alive, err := probe(q.path("mess", first), func(*unix.Stat_t) bool { return true }, func() error {
			t.Error("a cleaner removed a recycled slot's files")
			return nil
		})
		if err != nil || !alive {
			t.Errorf("probe of a recycled slot = %v, %v; want alive", alive, err)
		}
		// The next injections take the recycled slot (after a fill of
		// others, maybe) and write through its descriptor.
		var ids []ID
		for i := range slotBatch + 2 {
			ids = append(ids, inject(t, q, "me@domain", fmt.Sprintf("next %d\n", i), "you@domain"))
			synctest.Wait()
		}
		if !slices.Contains(ids, first) {
			t.Errorf("number %s not reused by %v", first, ids)
		}
		local, _ := f.snapshot()
		for _, d := range local[1:] {
			if !strings.Contains(d.body, "next ") || strings.Contains(d.body, "first") {
				t.Errorf("delivery of %s: %q", d.id, d.body)
			}
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		q.slots.mu.Lock()
		n := len(q.slots.held)
		q.slots.mu.Unlock()
		if n != 0 {
			t.Errorf("%d slot descriptors open after the Scheduler stopped", n)
		}
		emptyQueue(t, q)
	})
}
