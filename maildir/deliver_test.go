package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

// newDir makes a Maildir in a test directory.
func newDir(t *testing.T) Dir {
	t.Helper()
	d, err := Create(filepath.Join(t.TempDir(), "Maildir"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// files returns the names and contents of the files in dir/sub.
func files(t *testing.T, d Dir, sub string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(string(d), sub))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(string(d), sub, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

// wantFiles checks that dir/sub holds exactly want (name -> content).
func wantFiles(t *testing.T, d Dir, sub string, want map[string]string) {
	t.Helper()
	got := files(t, d, sub)
	if len(got) != len(want) {
		t.Errorf("%s/ holds %d files %q, want %d", sub, len(got), keys(got), len(want))
	}
	for name, content := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s/%s missing; have %q", sub, name, keys(got))
		case g != content:
			t.Errorf("%s/%s = %q, want %q", sub, name, g, content)
		}
	}
}

func keys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}

func stepOf(err error) string {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.Step
	}
	return ""
}

func isPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// unnamed selects the delivery protocol of a test: tmp/ names, or
// Deliverer.Unnamed.
type unnamed bool

// modes are both protocols, for tests that must hold for each.
var modes = []unnamed{false, true}

func (u unnamed) name(s string) string {
	if u {
		return s + "/unnamed"
	}
	return s
}

// moded is a table test case with a protocol.
type moded[T any] struct {
	v    T
	mode unnamed
}

// forEachMode pairs every test case with each protocol.
func forEachMode[T any](tests []T) []moded[T] {
	var out []moded[T]
	for _, m := range modes {
		for _, tt := range tests {
			out = append(out, moded[T]{tt, m})
		}
	}
	return out
}

// One delivery: new/ holds the message, tmp/ is empty, the name has no
// ':'; by both protocols.
func TestDeliver(t *testing.T) {
	for _, u := range modes {
		t.Run(u.name("deliver"), func(t *testing.T) { testDeliver(t, bool(u)) })
	}
}

// Deliverer.Fsync runs both fsyncs, the file's and new/'s; its error
// fails the delivery at step "sync" and leaves nothing in tmp/.
func TestDeliverFsyncHook(t *testing.T) {
	for _, u := range modes {
		t.Run(u.name("hook"), func(t *testing.T) {
			d := newDir(t)
			var kinds []string
			dl := &Deliverer{Unnamed: bool(u), Fsync: func(fd int) error {
				var st syscall.Stat_t
				if err := syscall.Fstat(fd, &st); err != nil {
					return err
				}
				kinds = append(kinds, map[bool]string{true: "dir", false: "file"}[st.Mode&syscall.S_IFMT == syscall.S_IFDIR])
				return syscall.Fsync(fd)
			}}
			name, err := dl.Deliver(t.Context(), d, stringsReader("x\n"))
			if err != nil {
				t.Fatal(err)
			}
			wantFiles(t, d, "new", map[string]string{name: "x\n"})
			if strings.Join(kinds, " ") != "file dir" {
				t.Errorf("Fsync called for %q, want the file then new/", kinds)
			}
			dl.Fsync = func(int) error { return syscall.EIO }
			_, err = dl.Deliver(t.Context(), d, stringsReader("y\n"))
			var de *DeliveryError
			if !errors.As(err, &de) || de.Step != "sync" || !errors.Is(err, syscall.EIO) {
				t.Errorf("with a failing Fsync: %v", err)
			}
			wantFiles(t, d, "tmp", nil)
		})
	}
}

func testDeliver(t *testing.T, unnamed bool) {
	d := newDir(t)
	dl := &Deliverer{Unnamed: unnamed}
	name, err := dl.Deliver(t.Context(), d, stringsReader("x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(name, ":/") || name[0] == '.' {
		t.Errorf("bad unique name %q", name)
	}
	wantFiles(t, d, "new", map[string]string{name: "x\n"})
	wantFiles(t, d, "tmp", nil)
	wantFiles(t, d, "cur", nil)
	fi, err := os.Stat(filepath.Join(string(d), "new", name))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	host, _ := os.Hostname()
	if !strings.HasSuffix(name, "."+escapeHost(host)) {
		t.Errorf("name %q does not end in the host name %q", name, host)
	}
}

// Message bytes are kept exactly: no From_ line, no final newline added.
func TestDeliverExactBytes(t *testing.T) {
	d := newDir(t)
	var dl Deliverer
	for _, msg := range []string{"", "no newline", "From me\n>From x\r\n\x00\xff", strings.Repeat("0123456789", 10000)} {
		name, err := dl.Deliver(t.Context(), d, stringsReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(string(d), "new", name))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != msg {
			t.Errorf("content of %d bytes differs from the %d-byte message", len(b), len(msg))
		}
	}
}

// The first 3 names exist in tmp/; 2 s waits between tries
// (in a synctest bubble, so no real sleeping).
func TestDeliverNameCollision(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDir(t)
		at := time.Unix(1700000000, 0)
		dl := &Deliverer{Now: func() time.Time { return at }, Pid: 1, Host: "h", Rand: repeatReader{0}}
		taken := map[string]string{}
		for _, n := range []string{
			"1700000000.M0P1Q1R0000000000000000.h",
			"1700000000.M0P1Q2R0000000000000000.h",
			"1700000000.M0P1Q3R0000000000000000.h",
		} {
			taken[n] = "someone else's " + n
			if err := os.WriteFile(filepath.Join(string(d), "tmp", n), []byte(taken[n]), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		_, err := dl.Deliver(t.Context(), d, stringsReader("x\n"))
		if err == nil {
			t.Fatal("delivery succeeded with every name taken")
		}
		if !errors.Is(err, os.ErrExist) || stepOf(err) != "create" || isPermanent(err) {
			t.Errorf("err = %v (step %q), want a temporary create error wrapping ErrExist", err, stepOf(err))
		}
		if waited := time.Since(start); waited != 2*retryWait {
			t.Errorf("waited %v, want %v", waited, 2*retryWait)
		}
		wantFiles(t, d, "tmp", taken)
		wantFiles(t, d, "new", nil)

		// The next delivery's first name (Q4) is free: no wait.
		start = time.Now()
		name, err := dl.Deliver(t.Context(), d, stringsReader("y\n"))
		if err != nil {
			t.Fatal(err)
		}
		if name != "1700000000.M0P1Q4R0000000000000000.h" || time.Since(start) != 0 {
			t.Errorf("name = %q after %v", name, time.Since(start))
		}
	})
}

// One name taken, the next free: the delivery succeeds after one wait, with
// a name made from the new time.
func TestDeliverRetryUsesNewTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDir(t)
		dl := &Deliverer{Pid: 1, Host: "h", Rand: repeatReader{0}} // time.Now is the bubble's clock
		first := uniqueName(time.Now(), 1, 1, [8]byte{}, "h")
		if err := os.WriteFile(filepath.Join(string(d), "tmp", first), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		name, err := dl.Deliver(t.Context(), d, stringsReader("x\n"))
		if err != nil {
			t.Fatal(err)
		}
		if want := uniqueName(time.Now(), 1, 2, [8]byte{}, "h"); name != want || !strings.HasPrefix(name, "946684802.") {
			t.Errorf("name = %q, want %q (2 s later)", name, want)
		}
	})
}

// The link fails (new/X exists): temporary failure, tmp/X
// removed, new/X untouched.
func TestDeliverLinkFails(t *testing.T) {
	d := newDir(t)
	dl := &Deliverer{Now: func() time.Time { return time.Unix(1700000000, 0) }, Pid: 1, Host: "h", Rand: repeatReader{0}}
	const x = "1700000000.M0P1Q1R0000000000000000.h"
	if err := os.WriteFile(filepath.Join(string(d), "new", x), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := dl.Deliver(t.Context(), d, stringsReader("x\n"))
	if err == nil || stepOf(err) != "link" || isPermanent(err) {
		t.Fatalf("err = %v, want a temporary link error", err)
	}
	wantFiles(t, d, "tmp", nil)
	wantFiles(t, d, "new", map[string]string{x: "old"})
}

// Where link(2) is not supported, the delivery renames, but never over an
// existing file.
func TestDeliverRenameFallback(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EPERM, syscall.ENOTSUP} {
		t.Run(errno.Error(), func(t *testing.T) {
			d := newDir(t)
			dl := &Deliverer{Now: func() time.Time { return time.Unix(1700000000, 0) }, Pid: 1, Host: "h", Rand: repeatReader{0}}
			dl.link = func(_ *os.Root, o, n string) error { return &os.LinkError{Op: "link", Old: o, New: n, Err: errno} }
			name, err := dl.Deliver(t.Context(), d, stringsReader("x\n"))
			if err != nil {
				t.Fatal(err)
			}
			wantFiles(t, d, "new", map[string]string{name: "x\n"})
			wantFiles(t, d, "tmp", nil)

			// Q2's name is taken in new/: no rename over it.
			const x = "1700000000.M0P1Q2R0000000000000000.h"
			if err := os.WriteFile(filepath.Join(string(d), "new", x), []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = dl.Deliver(t.Context(), d, stringsReader("y\n"))
			if err == nil || stepOf(err) != "link" {
				t.Fatalf("err = %v, want a link error", err)
			}
			wantFiles(t, d, "new", map[string]string{name: "x\n", x: "old"})
			wantFiles(t, d, "tmp", nil)
		})
	}
}

type failReader struct{ after int }

func (r *failReader) Read(p []byte) (int, error) {
	if r.after <= 0 {
		return 0, errors.New("disk on fire")
	}
	n := min(len(p), r.after)
	for i := range p[:n] {
		p[i] = 'a'
	}
	r.after -= n
	return n, nil
}

// Every error path leaves nothing behind in tmp/ or new/.
func TestDeliverErrorsLeaveNothing(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, d Dir)
		r     io.Reader
		step  string
	}{
		{"missing new", func(t *testing.T, d Dir) { os.Remove(filepath.Join(string(d), "new")) }, stringsReader("x\n"), "link"},
		{"tmp is a file", func(t *testing.T, d Dir) {
			os.Remove(filepath.Join(string(d), "tmp"))
			os.WriteFile(filepath.Join(string(d), "tmp"), nil, 0o600)
		}, stringsReader("x\n"), "create"},
		{"missing maildir", func(t *testing.T, d Dir) { os.RemoveAll(string(d)) }, stringsReader("x\n"), "open"},
		{"reader fails at once", nil, &failReader{}, "read"},
		{"reader fails after 100000 bytes", nil, &failReader{after: 100000}, "read"},
		{"new is a file", func(t *testing.T, d Dir) {
			os.Remove(filepath.Join(string(d), "new"))
			os.WriteFile(filepath.Join(string(d), "new"), nil, 0o600)
		}, stringsReader("x\n"), "link"},
	}
	for _, tt := range forEachMode(tests) {
		t.Run(tt.mode.name(tt.v.name), func(t *testing.T) {
			tt, dl := tt.v, &Deliverer{Unnamed: bool(tt.mode)}
			d := newDir(t)
			if tt.setup != nil {
				tt.setup(t, d)
			}
			_, err := dl.Deliver(t.Context(), d, tt.r)
			if err == nil {
				t.Fatal("delivery succeeded")
			}
			if stepOf(err) != tt.step || isPermanent(err) {
				t.Errorf("err = %v (step %q), want a temporary error in step %q", err, stepOf(err), tt.step)
			}
			if !strings.HasPrefix(err.Error(), "maildir: deliver: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			for _, sub := range []string{"tmp", "new", "cur"} {
				if fi, err := os.Stat(filepath.Join(string(d), sub)); err == nil && fi.IsDir() {
					wantFiles(t, d, sub, nil)
				}
			}
		})
	}
}

// slowReader sleeps before each read: in a synctest bubble, fake time.
type slowReader struct {
	every time.Duration
	n     int
}

func (r *slowReader) Read(p []byte) (int, error) {
	time.Sleep(r.every)
	if r.n == 0 {
		return 0, io.EOF
	}
	r.n--
	p[0] = 'z'
	return 1, nil
}

// The 24-hour timer: a delivery still reading after 24 hours is abandoned
// and its tmp/ file removed.
func TestDeliverTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDir(t)
		start := time.Now()
		_, err := d.Deliver(t.Context(), &slowReader{every: time.Hour, n: 100})
		if !errors.Is(err, context.DeadlineExceeded) || stepOf(err) != "read" || isPermanent(err) {
			t.Fatalf("err = %v, want a temporary timeout while reading", err)
		}
		// Deadline checks happen between reads, one fake hour apart.
		if took := time.Since(start); took < 24*time.Hour || took > 25*time.Hour {
			t.Errorf("gave up after %v, want 24h (before the next read)", took)
		}
		wantFiles(t, d, "tmp", nil)
		wantFiles(t, d, "new", nil)

		// Within the timer it succeeds.
		name, err := d.Deliver(t.Context(), &slowReader{every: time.Hour, n: 22})
		if err != nil {
			t.Fatal(err)
		}
		wantFiles(t, d, "new", map[string]string{name: strings.Repeat("z", 22)})

		// A shorter Timeout.
		dl := &Deliverer{Timeout: time.Minute}
		if _, err := dl.Deliver(t.Context(), d, &slowReader{every: time.Second, n: 61}); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want DeadlineExceeded", err)
		}
		wantFiles(t, d, "tmp", nil)
	})
}

func TestDeliverCanceled(t *testing.T) {
	d := newDir(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := d.Deliver(ctx, stringsReader("x\n"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	wantFiles(t, d, "tmp", nil)
	wantFiles(t, d, "new", nil)
}

type errRand struct{}

func (errRand) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestDeliverRandFails(t *testing.T) {
	d := newDir(t)
	dl := &Deliverer{Rand: errRand{}}
	if _, err := dl.Deliver(t.Context(), d, stringsReader("x\n")); err == nil || stepOf(err) != "create" {
		t.Fatalf("err = %v, want a create error", err)
	}
	wantFiles(t, d, "tmp", nil)
}

// A delivery never leaves the Maildir: tmp/ or new/ as a symbolic link to
// a directory outside fails the delivery and writes nothing there.
func TestDeliverSymlinkEscape(t *testing.T) {
	for _, tt := range forEachMode([]string{"tmp", "new"}) {
		t.Run(tt.mode.name(tt.v), func(t *testing.T) {
			sub, dl := tt.v, &Deliverer{Unnamed: bool(tt.mode)}
			d := newDir(t)
			outside := t.TempDir()
			p := filepath.Join(string(d), sub)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, p); err != nil {
				t.Fatal(err)
			}
			if _, err := dl.Deliver(t.Context(), d, stringsReader("x\n")); err == nil {
				t.Fatal("delivery through a symbolic link out of the maildir succeeded")
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("files written outside the maildir: %v", ents)
			}
			for _, s := range []string{"tmp", "new"} {
				if s != sub {
					wantFiles(t, d, s, nil)
				}
			}
		})
	}
}

// qmail-local's names repeat within a second in one process: the second
// delivery waits 2 seconds for a fresh name instead of failing its link.
func TestDeliverQmailNamingSameSecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDir(t)
		dl := &Deliverer{Naming: NamingQmail, Pid: 77, Host: "mx1"}
		start := time.Now()
		n1, err := dl.Deliver(t.Context(), d, stringsReader("one\n"))
		if err != nil {
			t.Fatal(err)
		}
		n2, err := dl.Deliver(t.Context(), d, stringsReader("two\n"))
		if err != nil {
			t.Fatal(err)
		}
		if n1 != "946684800.77.mx1" || n2 != "946684802.77.mx1" || time.Since(start) != retryWait {
			t.Errorf("names %q, %q after %v", n1, n2, time.Since(start))
		}
		wantFiles(t, d, "new", map[string]string{n1: "one\n", n2: "two\n"})
		wantFiles(t, d, "tmp", nil)
	})
}

// TestDeliverSharedSync: concurrent deliveries through one Deliverer into
// two Maildirs all land, share their new/ fsyncs per Maildir, and leave no
// group-commit state behind.
func TestDeliverSharedSync(t *testing.T) {
	for _, u := range modes {
		t.Run(u.name("shared"), func(t *testing.T) { testDeliverSharedSync(t, bool(u)) })
	}
}

func testDeliverSharedSync(t *testing.T, unnamed bool) {
	a, b := newDir(t), newDir(t)
	dl := Deliverer{Unnamed: unnamed}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		d := a
		if i%2 == 1 {
			d = b
		}
		wg.Go(func() {
			_, err := dl.Deliver(t.Context(), d, stringsReader(fmt.Sprintf("message %d\n", i)))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []Dir{a, b} {
		if names, err := os.ReadDir(filepath.Join(string(d), "new")); err != nil || len(names) != 20 {
			t.Errorf("%s/new: %d messages, %v", d, len(names), err)
		}
	}
	if len(dl.syncs) != 0 {
		t.Errorf("%d group-commit entries left", len(dl.syncs))
	}
}

// tmpWatcher is a message reader that records, at each read, the files in
// its Maildir's tmp/.
type tmpWatcher struct {
	t    *testing.T
	d    Dir
	r    io.Reader
	seen []string
}

func (w *tmpWatcher) Read(p []byte) (int, error) {
	ents, err := os.ReadDir(filepath.Join(string(w.d), "tmp"))
	if err != nil {
		w.t.Error(err)
	}
	for _, e := range ents {
		w.seen = append(w.seen, e.Name())
	}
	return w.r.Read(p)
}

// An unnamed delivery never names a file in tmp/: while the message is
// being written tmp/ stays empty (by the tmp/ protocol it holds the file),
// and the message appears in new/ complete, with mode 0600 and the size
// tag when asked.
func TestDeliverUnnamedNoTmpName(t *testing.T) {
	for _, u := range modes {
		t.Run(u.name("watch"), func(t *testing.T) {
			d := newDir(t)
			w := &tmpWatcher{t: t, d: d, r: stringsReader("Subject: x\n\nbody\n")}
			dl := &Deliverer{Unnamed: bool(u), SizeTag: true}
			name, err := dl.Deliver(t.Context(), d, w)
			if err != nil {
				t.Fatal(err)
			}
			if u && len(w.seen) != 0 {
				t.Errorf("tmp/ held %q during an unnamed delivery", w.seen)
			}
			if !u && len(w.seen) == 0 {
				t.Error("tmp/ was empty during a tmp/-protocol delivery: the watcher sees nothing")
			}
			if !strings.HasSuffix(name, ",S=17") {
				t.Errorf("name %q lacks the size tag ,S=17", name)
			}
			wantFiles(t, d, "new", map[string]string{name: "Subject: x\n\nbody\n"})
			wantFiles(t, d, "tmp", nil)
			fi, err := os.Stat(filepath.Join(string(d), "new", name))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("new/%s: %v, %v; want mode 0600", name, fi, err)
			}
			if dl.noUnnamed.Load() {
				t.Error("this kernel and file system fell back to tmp/ names")
			}
		})
	}
}
