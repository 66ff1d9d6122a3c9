package queue

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/qmailkit/qmailkit/internal/uring"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("golden %s: %v (run go test -update)", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s mismatch:\ngot  %q\nwant %q", name, got, want)
	}
}

func fixedNow(sec int64) func() time.Time { return func() time.Time { return time.Unix(sec, 0) } }

// openRingTest is openTest with Options.Fsync running the fsyncs through
// an io_uring where the kernel allows one, as examples/mta does (never in
// a synctest bubble: its goroutines cannot wait in the poller).
func openRingTest(t *testing.T, opts Options) *Queue {
	t.Helper()
	opts.Fsync = ringFsync(t)
	return openTest(t, opts)
}

// ringFsync returns an Options.Fsync through a new io_uring, closed when
// the test ends; without io_uring it is fsync(2).
func ringFsync(tb testing.TB) func(fd int) error {
	r, err := uring.New(64)
	if err != nil {
		tb.Logf("no io_uring here (%v): fsync(2)", err)
	} else {
		tb.Cleanup(func() { r.Close() })
	}
	return func(fd int) error { return uring.Fsync(r, fd) }
}

func openTest(t *testing.T, opts Options) *Queue {
	t.Helper()
	if opts.Origin == (Origin{}) {
		opts.Origin = Origin{PID: 4242, UID: 1000}
	}
	if opts.Now == nil {
		opts.Now = fixedNow(838640135)
	}
	q, err := Open(filepath.Join(t.TempDir(), "queue"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestLayout(t *testing.T) {
	for _, split := range []int{0, 7} {
		t.Run(fmt.Sprint("split", split), func(t *testing.T) {
			q := openTest(t, Options{Split: split})
			want := split
			if want == 0 {
				want = DefaultSplit
			}
			if q.Split() != want {
				t.Fatalf("split = %d, want %d", q.Split(), want)
			}
			for _, d := range dirModes {
				fi, err := os.Stat(filepath.Join(q.Dir(), d.name))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != d.mode {
					t.Errorf("%s mode %v, want %v", d.name, fi.Mode().Perm(), d.mode)
				}
				ents, _ := os.ReadDir(filepath.Join(q.Dir(), d.name))
				if d.split {
					if len(ents) != want {
						t.Errorf("%s has %d subdirectories, want %d", d.name, len(ents), want)
					}
					fi, err := os.Stat(filepath.Join(q.Dir(), d.name, fmt.Sprint(want-1)))
					if err != nil || fi.Mode().Perm() != d.mode {
						t.Errorf("%s/%d: %v %v", d.name, want-1, fi, err)
					}
				}
			}
			for _, f := range []struct {
				name string
				mode fs.FileMode
				size int64
			}{{"sendmutex", 0o600, 0}, {"tcpto", 0o644, 1024}, {"trigger", fs.ModeNamedPipe | 0o622, 0}} {
				fi, err := os.Lstat(filepath.Join(q.Dir(), "lock", f.name))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode() != f.mode || fi.Size() != f.size {
					t.Errorf("lock/%s: mode %v size %d, want %v %d", f.name, fi.Mode(), fi.Size(), f.mode, f.size)
				}
			}
			// Reopening detects the split; a different explicit split is refused.
			q2, err := Open(q.Dir(), Options{})
			if err != nil || q2.Split() != want {
				t.Fatalf("reopen: split %v, %v", q2, err)
			}
			if _, err := Open(q.Dir(), Options{Split: want + 1}); err == nil {
				t.Error("reopen with another split succeeded")
			}
		})
	}
}

func TestOpenReadOnlyMissing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "queue")
	if _, err := Open(dir, Options{ReadOnly: true}); err == nil {
		t.Fatal("read-only open of a missing queue succeeded")
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read-only open created %s", dir)
	}
}

// Exact mess and envelope bytes of an injection (the Received line, the
// u and p records, the mess path by inode and split), and of an empty
// envelope.
func TestInjectVector(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  Envelope
		todo string
	}{
		{"v1", Envelope{Sender: "a@b", Recipients: []string{"c@d"}}, "u1000\x00p4242\x00Fa@b\x00Tc@d\x00"},
		{"v2 empty sender no recipients", Envelope{}, "u1000\x00p4242\x00F\x00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openTest(t, Options{})
			id, err := q.Inject(t.Context(), tc.env, strings.NewReader("Subject: x\n\nhi\n"))
			if err != nil {
				t.Fatal(err)
			}
			mess := filepath.Join(q.Dir(), "mess", fmt.Sprint(uint64(id)%23), id.String())
			if got := inode(t, mess); got != uint64(id) {
				t.Errorf("inode %d, id %d", got, id)
			}
			golden(t, "mess-v1.golden", readFile(t, mess))
			if got := string(readFile(t, filepath.Join(q.Dir(), "todo", id.String()))); got != tc.todo {
				t.Errorf("todo = %q, want %q", got, tc.todo)
			}
			if got := string(readFile(t, filepath.Join(q.Dir(), "intd", id.String()))); got != tc.todo {
				t.Errorf("intd = %q, want %q", got, tc.todo)
			}
			if inode(t, filepath.Join(q.Dir(), "todo", id.String())) != inode(t, filepath.Join(q.Dir(), "intd", id.String())) {
				t.Error("todo is not a link of intd")
			}
			ents, _ := os.ReadDir(filepath.Join(q.Dir(), "pid"))
			if len(ents) != 0 {
				t.Errorf("pid/ not empty: %v", ents)
			}
		})
	}
}

func TestReceivedLine(t *testing.T) {
	for _, tc := range []struct {
		o    Origin
		t    int64
		want string
	}{
		{Origin{PID: 4242, UID: 1000}, 838640135, "Received: (qmail 4242 invoked by uid 1000); 29 Jul 1996 11:35:35 -0000\n"},
		{Origin{PID: 1, UID: 7, Who: "by alias"}, 0, "Received: (qmail 1 invoked by alias); 1 Jan 1970 00:00:00 -0000\n"},
		{Origin{PID: 2, UID: 8, Who: "from network"}, 951782400, "Received: (qmail 2 invoked from network); 29 Feb 2000 00:00:00 -0000\n"},
		{Origin{PID: 3, UID: 9, Who: "for bounce"}, 1700000000, "Received: (qmail 3 invoked for bounce); 14 Nov 2023 22:13:20 -0000\n"},
	} {
		if got := ReceivedLine(tc.o, time.Unix(tc.t, 0)); got != tc.want {
			t.Errorf("ReceivedLine(%v, %d) = %q, want %q", tc.o, tc.t, got, tc.want)
		}
	}
}

func TestPath(t *testing.T) {
	for _, tc := range []struct {
		kind string
		id   ID
		want string
	}{
		{"mess", 457, "mess/20/457"}, {"todo", 457, "todo/457"}, {"info", 26902, "info/15/26902"},
		{"local", 23, "local/0/23"}, {"remote", 26902, "remote/15/26902"}, {"intd", 5, "intd/5"}, {"bounce", 5, "bounce/5"},
	} {
		if got := Path(tc.kind, tc.id, 23); got != tc.want {
			t.Errorf("Path(%s, %d) = %s, want %s", tc.kind, tc.id, got, tc.want)
		}
	}
	if got := Path("mess", 26902, 7); got != "mess/1/26902" {
		t.Errorf("split 7: %s", got)
	}
}

func TestAddressLength(t *testing.T) {
	ok, long := strings.Repeat("a", MaxAddressLen), strings.Repeat("a", MaxAddressLen+1)
	for _, tc := range []struct {
		name string
		env  Envelope
		code int
	}{
		{"sender 1002", Envelope{Sender: ok, Recipients: []string{"r@x"}}, 0},
		{"sender 1003", Envelope{Sender: long, Recipients: []string{"r@x"}}, 11},
		{"recipient 1002", Envelope{Sender: "s", Recipients: []string{ok}}, 0},
		{"recipient 1003", Envelope{Sender: "s", Recipients: []string{"r@x", long}}, 11},
		{"NUL", Envelope{Sender: "s\x00t"}, 91},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openTest(t, Options{})
			_, err := q.Inject(t.Context(), tc.env, strings.NewReader("x\n"))
			checkCode(t, err, tc.code)
			if tc.code == 11 {
				var perm interface{ Permanent() bool }
				if !errors.As(err, &perm) || !perm.Permanent() || !errors.Is(err, ErrAddressTooLong) {
					t.Errorf("%v: not permanent ErrAddressTooLong", err)
				}
			}
			// The envelope as bytes gives the same verdict.
			var b bytes.Buffer
			b.WriteString("F" + tc.env.Sender + "\x00")
			for _, r := range tc.env.Recipients {
				b.WriteString("T" + r + "\x00")
			}
			b.WriteByte(0)
			env, err := ReadEnvelope(&b)
			if tc.code == 91 {
				return // a NUL cannot be inside an address on the wire
			}
			checkCode(t, err, tc.code)
			if err == nil && (env.Sender != tc.env.Sender || len(env.Recipients) != len(tc.env.Recipients)) {
				t.Errorf("round trip: %+v", env)
			}
		})
	}
}

func checkCode(t *testing.T, err error, code int) {
	t.Helper()
	if code == 0 {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	var qe *Error
	if !errors.As(err, &qe) || qe.Code != code {
		t.Fatalf("err = %v, want exit code %d", err, code)
	}
}

// The envelope grammar of qmail-queue(8): refused envelopes exit 91, a
// truncated one 54.
func TestReadEnvelope(t *testing.T) {
	for _, tc := range []struct {
		in   string
		code int
		want Envelope
	}{
		{"Fjoe@a.example\x00Tbob@b.example\x00Tcarol@c.example\x00\x00", 0, Envelope{Sender: "joe@a.example", Recipients: []string{"bob@b.example", "carol@c.example"}}},
		{"F\x00\x00", 0, Envelope{}},
		{"Fa@b\x00Tc@d\x00\x00trailing", 0, Envelope{Sender: "a@b", Recipients: []string{"c@d"}}},
		{"Xa@b\x00\x00", 91, Envelope{}},
		{"Fa@b\x00Zc@d\x00\x00", 91, Envelope{}},
		{"Fa@b\x00Tc@d\x00", 54, Envelope{}},
		{"Fa@b", 54, Envelope{}},
		{"", 54, Envelope{}},
	} {
		env, err := ReadEnvelope(strings.NewReader(tc.in))
		if tc.code != 0 {
			var qe *Error
			if !errors.As(err, &qe) || qe.Code != tc.code {
				t.Errorf("ReadEnvelope(%q) err = %v, want code %d", tc.in, err, tc.code)
			}
			continue
		}
		if err != nil || env.Sender != tc.want.Sender || fmt.Sprint(env.Recipients) != fmt.Sprint(tc.want.Recipients) {
			t.Errorf("ReadEnvelope(%q) = %+v, %v; want %+v", tc.in, env, err, tc.want)
		}
	}
}

// The client's mapping of qmail-queue's exit codes (qmail's qmail_close).
func TestExitText(t *testing.T) {
	for _, tc := range []struct {
		code   int
		custom string
		want   string
	}{
		{0, "", ""},
		{53, "", "Zqq write error or disk full (#4.3.0)"},
		{11, "", "Denvelope address too long for qq (#5.1.3)"},
		{115, "", "Denvelope address too long for qq (#5.1.3)"},
		{31, "", "Dmail server permanently rejected message (#5.3.0)"},
		{35, "", "Dqq permanent problem (#5.3.0)"},
		{99, "", "Zqq temporary problem (#4.3.0)"},
		{82, "Dno thanks", "Dno thanks"},
		{82, "D", "Zqq temporary problem (#4.3.0)"},
		{64, "", "Zqq trouble creating files in queue (#4.3.0)"},
		{91, "", "Zqq internal bug (#4.3.0)"},
		{72, "", "Zconnection to mail server timed out (#4.4.1)"},
		{120, "", "Zunable to exec qq (#4.3.0)"},
		{-1, "", "Zqq crashed (#4.3.0)"},
		{82, strings.Repeat("D", 300), strings.Repeat("D", 255)},
	} {
		if got := ExitText(tc.code, []byte(tc.custom)); got != tc.want {
			t.Errorf("ExitText(%d, %q) = %q, want %q", tc.code, tc.custom, got, tc.want)
		}
	}
}

type failReader struct{ n int }

func (f *failReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("boom")
	}
	f.n--
	return copy(p, "data\n"), nil
}

func queueFiles(t *testing.T, q *Queue) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(q.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.Contains(p, "/lock/") {
			rel, _ := filepath.Rel(q.Dir(), p)
			files = append(files, rel)
		}
		return nil
	})
	return files
}

func TestInjectFailuresCleanUp(t *testing.T) {
	q := openTest(t, Options{})
	_, err := q.Inject(t.Context(), Envelope{Sender: "a@b"}, &failReader{n: 3})
	checkCode(t, err, 54)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := q.Inject(ctx, Envelope{Sender: "a@b"}, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	w, err := q.Create(t.Context(), Origin{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "hello\n")
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if files := queueFiles(t, q); len(files) != 0 {
		t.Errorf("left behind: %v", files)
	}
	q.Close()
	if _, err := q.Inject(t.Context(), Envelope{}, strings.NewReader("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	ro, err := Open(q.Dir(), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Inject(t.Context(), Envelope{}, strings.NewReader("x")); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only: %v", err)
	}
}

// A large message is streamed: the Writer's buffer is all it holds.
func TestInjectLarge(t *testing.T) {
	q := openRingTest(t, Options{})
	const size = 8 << 20
	id, err := q.Inject(t.Context(), Envelope{Sender: "a@b", Recipients: []string{"c@d"}}, io.LimitReader(zeros{}, size))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(q.path("mess", id))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(size + len(ReceivedLine(q.origin, q.now()))); fi.Size() != want {
		t.Errorf("size %d, want %d", fi.Size(), want)
	}
}

// The message is copied byte for byte whatever the reads' sizes, across
// the Writer's buffer boundaries (Writer.ReadFrom reads into its buffer).
func TestInjectExactBytes(t *testing.T) {
	q := openRingTest(t, Options{})
	data := make([]byte, 100<<10+7)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	for _, tc := range []struct {
		name string
		r    func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"one byte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"data with EOF", iotest.DataErrReader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := q.Inject(t.Context(), Envelope{Sender: "a@b", Recipients: []string{"c@d"}}, tc.r(bytes.NewReader(data)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(q.path("mess", id))
			if err != nil {
				t.Fatal(err)
			}
			_, body, ok := bytes.Cut(got, []byte("\n"))
			if !ok || !bytes.Equal(body, data) {
				t.Errorf("mess holds %d bytes after the Received line, want the %d sent", len(body), len(data))
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'z'
	}
	return len(p), nil
}

func TestInjectConcurrent(t *testing.T) {
	q := openRingTest(t, Options{})
	const workers, each = 16, 8
	var wg sync.WaitGroup
	ids := make(chan ID, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id, err := q.Inject(t.Context(), Envelope{Sender: "s@x", Recipients: []string{fmt.Sprintf("r%d.%d@y", w, i)}}, strings.NewReader("hi\n"))
				if err != nil {
					t.Error(err)
					return
				}
				ids <- id
			}
		})
	}
	wg.Wait()
	close(ids)
	seen := map[ID]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("id %d twice", id)
		}
		seen[id] = true
		if !q.exists("todo", id) || !q.exists("mess", id) {
			t.Errorf("%d not queued", id)
		}
	}
	if len(seen) != workers*each {
		t.Errorf("%d messages, want %d", len(seen), workers*each)
	}
	if n := q.todoSync.count(); n > workers*each {
		t.Errorf("%d todo fsyncs for %d injections", n, workers*each)
	}
	t.Logf("todo fsyncs: %d for %d injections", q.todoSync.count(), workers*each)
}

// qmail-clean's 36-hour rule (a mess file with no info or todo, not
// accessed for 36 hours, goes with its intd) and pid/ cleanup.
func TestCleanStale(t *testing.T) {
	now := time.Unix(2_000_000_000, 0)
	for _, tc := range []struct {
		name    string
		age     time.Duration
		todo    bool
		info    bool
		removed bool
	}{
		{"37h", 37 * time.Hour, false, false, true},
		{"35h", 35 * time.Hour, false, false, false},
		{"37h with todo", 37 * time.Hour, true, false, false},
		{"37h with info", 37 * time.Hour, false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := openTest(t, Options{Now: func() time.Time { return now }})
			id := ID(49)
			mess, intd := q.path("mess", id), q.path("intd", id)
			os.WriteFile(mess, []byte("x"), 0o644)
			os.WriteFile(intd, []byte("u1\x00"), 0o644)
			if tc.todo {
				os.Link(intd, q.path("todo", id))
			}
			if tc.info {
				os.WriteFile(q.path("info", id), []byte("F\x00"), 0o600)
			}
			pidf := filepath.Join(q.Dir(), "pid", "1.2.3")
			os.WriteFile(pidf, nil, 0o644)
			old := now.Add(-tc.age)
			for _, p := range []string{mess, intd, pidf} {
				os.Chtimes(p, old, old)
			}
			if err := q.CleanStale(now); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{mess, intd, pidf} {
				_, err := os.Stat(p)
				if gone := errors.Is(err, fs.ErrNotExist); gone != tc.removed && (p != pidf || tc.age < Ossified) {
					t.Errorf("%s: removed=%v, want %v", p, gone, tc.removed)
				}
			}
		})
	}
}

// qmail-clean's requests: "todo/N" gets '+', anything else 'x'.
func TestCleanRequest(t *testing.T) {
	q := openTest(t, Options{})
	id, err := q.Inject(t.Context(), Envelope{Sender: "a@b"}, strings.NewReader("x\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req  string
		want byte
	}{
		{"todo/457", '+'}, {"foo/1", 'x'}, {"todo/", 'x'}, {"todo/12a", 'x'}, {"foop/" + strings.Repeat("1", 95), 'x'},
		{"todo/" + id.String(), '+'}, {"foop/" + id.String(), '+'},
	} {
		if got := q.CleanRequest(tc.req); got != tc.want {
			t.Errorf("CleanRequest(%q) = %c, want %c", tc.req, got, tc.want)
		}
	}
	if files := queueFiles(t, q); len(files) != 0 {
		t.Errorf("left: %v", files)
	}
}

func TestTriggerPulled(t *testing.T) {
	q := openTest(t, Options{})
	fd, err := syscall.Open(filepath.Join(q.Dir(), "lock", "trigger"), syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if _, err := q.Inject(t.Context(), Envelope{}, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	n, err := syscall.Read(fd, buf)
	if err != nil || n != 1 || buf[0] != 0 {
		t.Errorf("trigger read %d %v %q", n, err, buf[:max(n, 0)])
	}
	select {
	case <-q.notify:
	default:
		t.Error("in-process notification not sent")
	}
}

// Enqueue and Forward are Inject under the names smtpserver.Enqueuer and
// dotqmail.Forwarder use; Enqueue's Received line says "from network".
func TestEnqueueForward(t *testing.T) {
	q := openTest(t, Options{})
	var _ interface {
		Enqueue(context.Context, string, []string, io.Reader) (string, error)
		Forward(context.Context, string, []string, io.Reader) (string, error)
	} = q
	id, err := q.Enqueue(t.Context(), "a@b", []string{"c@d"}, strings.NewReader("x\n"))
	if err != nil {
		t.Fatal(err)
	}
	var n ID
	fmt.Sscan(id, &n)
	if got := string(readFile(t, q.path("mess", n))); got != "Received: (qmail 4242 invoked from network); 29 Jul 1996 11:35:35 -0000\nx\n" {
		t.Errorf("mess %q", got)
	}
	id, err = q.Forward(t.Context(), "a@b", []string{"e@f"}, strings.NewReader("y\n"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Sscan(id, &n)
	if got := string(readFile(t, q.path("todo", n))); got != "u1000\x00p4242\x00Fa@b\x00Te@f\x00" {
		t.Errorf("todo %q", got)
	}
	_, err = q.Enqueue(t.Context(), strings.Repeat("a", 1003), nil, strings.NewReader("x"))
	var qe *Error
	if !errors.As(err, &qe) || qe.Text() != "envelope address too long for qq (#5.1.3)" || !qe.Permanent() {
		t.Errorf("too long: %v", err)
	}
}

// Options.Fsync runs every fsync of an injection: the mess and intd
// files and the mess/S, intd and todo directories. Its error fails the
// injection with qmail-queue's code and queues nothing.
func TestFsyncHook(t *testing.T) {
	var mu sync.Mutex
	var files, dirs int
	var fail error
	q := openTest(t, Options{Fsync: func(fd int) error {
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			dirs++
		} else {
			files++
		}
		if fail != nil {
			return fail
		}
		return syscall.Fsync(fd)
	}})
	inject(t, q, "a@example.com", "x\n", "b@example.com")
	if files != 2 || dirs != 3 {
		t.Errorf("Fsync ran for %d files and %d directories, want 2 and 3", files, dirs)
	}
	before := queueFiles(t, q)
	fail = syscall.EIO
	_, err := q.Inject(t.Context(), Envelope{Sender: "a@example.com", Recipients: []string{"b@example.com"}}, strings.NewReader("y\n"))
	checkCode(t, err, 53)
	if after := queueFiles(t, q); !slices.Equal(after, before) {
		t.Errorf("a failed fsync left %v, want only the first message's %v", after, before)
	}
}
