package queue

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPoolReuse: a finished message's files come back as the files of the
// next ones, with exactly their new bytes, and only through pid/pool.N.
func TestPoolReuse(t *testing.T) {
	q := openTest(t, Options{})
	ctx := context.Background()
	env := Envelope{Sender: "a@b", Recipients: []string{"c@d", "e@f"}}

	// Queued before a scheduler runs: new files, and no slots.
	big := strings.Repeat("stale bytes of an earlier message\n", 3000)
	id1, err := q.Inject(ctx, env, strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	q.pool.enable(true)
	// The scheduler's end of a message: todo/N goes at preprocessing, the
	// rest when it is done.
	if err := q.cleanTodo(id1); err != nil {
		t.Fatal(err)
	}
	if err := q.cleanMess(id1); err != nil {
		t.Fatal(err)
	}
	pooled := poolEntries(t, q)
	if len(pooled) != 2 { // the mess file and the envelope's inode
		t.Fatalf("pool entries %v, want 2", pooled)
	}
	if q.exists("mess", id1) || q.exists("intd", id1) || q.exists("todo", id1) {
		t.Fatal("message 1 not removed")
	}

	id2, err := q.Inject(ctx, Envelope{Sender: "x@y", Recipients: []string{"z@w"}}, strings.NewReader("short\n"))
	if err != nil {
		t.Fatal(err)
	}
	if left := poolEntries(t, q); len(left) != 0 {
		t.Fatalf("pool entries left after reuse: %v", left)
	}
	if !slices.Contains(pooled, poolPrefix+id2.String()) {
		t.Errorf("message 2 is %s, not one of the recycled inodes %v", id2, pooled)
	}
	mess := readFile(t, q.path("mess", id2))
	if !bytes.HasSuffix(mess, []byte("\nshort\n")) || bytes.Contains(mess, []byte("stale")) {
		t.Errorf("recycled mess file holds %q", mess)
	}
	if got, want := string(readFile(t, q.path("todo", id2))), "u1000\x00p4242\x00Fx@y\x00Tz@w\x00"; got != want {
		t.Errorf("recycled envelope %q, want %q", got, want)
	}
	if fi, err := os.Stat(q.path("mess", id2)); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mess mode %v %v", fi.Mode(), err)
	}
}

// TestPoolRefuses: files with a second link, and files retired while no
// scheduler runs, are removed, not pooled; enable removes what a crash left.
func TestPoolRefuses(t *testing.T) {
	q := openTest(t, Options{})
	dir := t.TempDir()
	write := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := write("off")
	if err := q.pool.retire(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) || len(poolEntries(t, q)) != 0 {
		t.Fatalf("retired while off: %v, pool %v", err, poolEntries(t, q))
	}

	q.pool.enable(true)
	p = write("linked")
	if err := os.Link(p, filepath.Join(dir, "other")); err != nil {
		t.Fatal(err)
	}
	if err := q.pool.retire(p); err != nil {
		t.Fatal(err)
	}
	if len(poolEntries(t, q)) != 0 {
		t.Fatalf("a file with two links was pooled: %v", poolEntries(t, q))
	}
	if err := q.pool.retire(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("missing file: %v", err)
	}

	// Not reusable before the directory it left is synced: take flushes.
	if err := q.pool.retire(write("one")); err != nil {
		t.Fatal(err)
	}
	if n := q.pool.nready; n != 0 {
		t.Fatalf("%d ready before a flush", n)
	}
	pf, ok := q.pool.take()
	if !ok || len(q.pool.pending) != 0 {
		t.Fatalf("take: %v, pending %d", ok, len(q.pool.pending))
	}
	q.pool.giveBack(pf)

	// A crash leaves pool entries, some as second links of live files.
	live := filepath.Join(q.dir, "pid", "live")
	if err := os.WriteFile(live, []byte("live"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(live, filepath.Join(q.dir, "pid", poolPrefix+"12345")); err != nil {
		t.Fatal(err)
	}
	q.pool.enable(true)
	if e := poolEntries(t, q); len(e) != 0 {
		t.Errorf("enable left %v", e)
	}
	if string(readFile(t, live)) != "live" {
		t.Error("enable harmed a live file")
	}
	if _, ok := q.pool.take(); ok {
		t.Error("take after enable returned a forgotten inode")
	}
}

func poolEntries(t *testing.T, q *Queue) []string {
	t.Helper()
	names, err := readNames(filepath.Join(q.dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, poolPrefix) {
			out = append(out, n)
		}
	}
	return out
}
