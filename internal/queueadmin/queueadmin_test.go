package queueadmin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/queue"
)

var _ Backend = (*queue.Scheduler)(nil)

// fake is a Backend over a set of IDs.
type fake struct {
	mu      sync.Mutex
	ids     map[queue.ID]bool
	held    map[queue.ID]bool
	flushed int
	block   chan struct{} // when set, Delete waits for it or ctx
	entered chan struct{} // when set, Delete sends on it before it waits
	// notRunning: List fails with queue.ErrNotRunning this many times.
	notRunning int
}

func (f *fake) errs(ids []queue.ID, fn func(queue.ID)) []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	errs := make([]error, len(ids))
	for i, id := range ids {
		if !f.ids[id] {
			errs[i] = fmt.Errorf("%w: %s", queue.ErrNoMessage, id)
			continue
		}
		fn(id)
	}
	return errs
}

func (f *fake) entry(id queue.ID) queue.Entry {
	return queue.Entry{Message: queue.Message{ID: id, Birth: time.Unix(1e9, 0), Size: 10, Sender: "s@x",
		Recipients: []queue.Recipient{{Addr: "a@y", Remote: true}, {Addr: "b@z", Done: true}}}, Held: f.held[id]}
}

func (f *fake) List(ctx context.Context) ([]queue.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.notRunning > 0 {
		f.notRunning--
		return nil, queue.ErrNotRunning
	}
	var es []queue.Entry
	for id := range f.ids {
		es = append(es, f.entry(id))
	}
	slices.SortFunc(es, func(a, b queue.Entry) int { return int(a.ID) - int(b.ID) })
	return es, nil
}

func (f *fake) Show(ctx context.Context, ids []queue.ID) ([]queue.Entry, []error, error) {
	es := make([]queue.Entry, len(ids))
	errs := f.errs(ids, func(queue.ID) {})
	for i, id := range ids {
		if errs[i] == nil {
			es[i] = f.entry(id)
		}
	}
	return es, errs, nil
}

func (f *fake) Hold(ctx context.Context, ids []queue.ID) ([]error, error) {
	return f.errs(ids, func(id queue.ID) { f.held[id] = true }), nil
}

func (f *fake) Release(ctx context.Context, ids []queue.ID) ([]error, error) {
	return f.errs(ids, func(id queue.ID) { delete(f.held, id) }), nil
}

func (f *fake) Delete(ctx context.Context, ids []queue.ID) ([]error, error) {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return f.errs(ids, func(id queue.ID) { delete(f.ids, id) }), nil
}

func (f *fake) FlushMessages(ctx context.Context, ids []queue.ID) ([]error, error) {
	return f.errs(ids, func(queue.ID) { f.flushed++ }), nil
}

func (f *fake) Requeue(ctx context.Context, ids []queue.ID) ([]error, error) {
	return f.errs(ids, func(queue.ID) {}), nil
}

func (f *fake) Flush() {
	f.mu.Lock()
	f.flushed += 1000
	f.mu.Unlock()
}

// serve starts a Server on a socket in a fresh directory.
func serve(t *testing.T, srv *Server) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "queueadmin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "queue-admin.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return path
}

func newFake() *fake {
	return &fake{ids: map[queue.ID]bool{1: true, 2: true, 3: true}, held: map[queue.ID]bool{}}
}

func TestRoundTrip(t *testing.T) {
	f := newFake()
	c := &Client{Path: serve(t, &Server{Backend: f})}
	ctx := t.Context()
	errs, err := c.Do(ctx, OpHold, []queue.ID{2, 9})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], queue.ErrNoMessage) {
		t.Fatalf("hold: %v %v", errs, err)
	}
	ms, err := c.List(ctx)
	if err != nil || len(ms) != 3 || ms[1].ID != "2" || !ms[1].Held || ms[0].Held {
		t.Fatalf("list: %+v %v", ms, err)
	}
	want := []Recipient{{Address: "a@y", Channel: "remote", State: "pending"}, {Address: "b@z", Channel: "local", State: "done"}}
	if !slices.Equal(ms[0].Recipients, want) || !ms[0].Arrival.Equal(time.Unix(1e9, 0)) || ms[0].NextAttempt != nil {
		t.Errorf("entry %+v", ms[0])
	}
	shown, errs, err := c.Show(ctx, []queue.ID{9, 3})
	if err != nil || !errors.Is(errs[0], queue.ErrNoMessage) || errs[1] != nil || shown[1].ID != "3" {
		t.Fatalf("show: %+v %v %v", shown, errs, err)
	}
	for _, op := range []string{OpRelease, OpRequeue, OpFlush, OpDelete} {
		errs, err := c.Do(ctx, op, []queue.ID{1})
		if err != nil || errs[0] != nil {
			t.Errorf("%s: %v %v", op, errs, err)
		}
	}
	errs, err = c.Do(ctx, OpFlush, nil)
	f.mu.Lock()
	flushed := f.flushed
	f.mu.Unlock()
	if err != nil || len(errs) != 0 || flushed != 1001 {
		t.Errorf("flush all: %v %v, flushed %d", errs, err, flushed)
	}
	if _, err := c.Do(ctx, OpDelete, nil); err == nil {
		t.Error("delete without IDs accepted")
	}
}

// raw sends b on a fresh connection and returns the reply's lines.
func raw(t *testing.T, path string, b []byte) []string {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		c.Write(b)
		c.(*net.UnixConn).CloseWrite()
	}()
	var lines []string
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// Abuse: every malformed request gets one final line with an error, and
// the server goes on.
func TestAbuse(t *testing.T) {
	f := newFake()
	path := serve(t, &Server{Backend: f})
	many := make([]string, MaxIDs+1)
	for i := range many {
		many[i] = `"1"`
	}
	for _, tc := range []struct{ name, req, want string }{
		{"huge", `{"v":1,"op":"list","ids":["` + strings.Repeat("1", 2*MaxRequest) + "\"]}\n", "longer than"},
		{"no newline", `{"v":1,"op":"list"}`, "reading the request"},
		{"unknown verb", `{"v":1,"op":"destroy"}` + "\n", "unknown operation"},
		{"version", `{"v":2,"op":"list"}` + "\n", "unsupported version"},
		{"too many IDs", `{"v":1,"op":"hold","ids":[` + strings.Join(many, ",") + "]}\n", "too many IDs"},
		{"NUL", "{\"v\":1,\"op\":\"hold\",\"ids\":[\"1\\u0000\"]}\n", "bad message ID"},
		{"zero", `{"v":1,"op":"hold","ids":["0"]}` + "\n", "bad message ID"},
		{"overflow", `{"v":1,"op":"hold","ids":["99999999999999999999"]}` + "\n", "bad message ID"},
		{"unknown field", `{"v":1,"op":"list","all":true}` + "\n", "unknown field"},
		{"two objects", `{"v":1,"op":"list"}{"v":1,"op":"list"}` + "\n", "after the object"},
		{"not JSON", "\x00\xff\n", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines := raw(t, path, []byte(tc.req))
			if len(lines) != 1 || !strings.Contains(lines[0], `"done":true`) || !strings.Contains(lines[0], tc.want) {
				t.Errorf("reply %q, want one final line with %q", lines, tc.want)
			}
		})
	}
	if lines := raw(t, path, []byte(`{"v":1,"op":"list"}`+"\n")); len(lines) != 4 {
		t.Errorf("list after the abuse: %q", lines)
	}
}

// Beyond MaxConns, a connection is told to try again; a request's
// timeout_ms cuts its operation.
func TestLimits(t *testing.T) {
	f := newFake()
	f.block = make(chan struct{})
	f.entered = make(chan struct{}, 1)
	path := serve(t, &Server{Backend: f, MaxConns: 1})
	first := make(chan error, 1)
	go func() {
		_, err := (&Client{Path: path}).Do(context.Background(), OpDelete, []queue.ID{1})
		first <- err
	}()
	<-f.entered
	_, err := (&Client{Path: path}).List(t.Context())
	var re *RequestError
	if !errors.As(err, &re) || !re.Temporary || !strings.Contains(re.Text, "too many") {
		t.Fatalf("no refusal beyond MaxConns: %v", err)
	}
	close(f.block)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.block = make(chan struct{})
	f.mu.Unlock()
	// The first connection's slot is given back just after its last line.
	for range 500 {
		_, err = (&Client{Path: path, Timeout: 50 * time.Millisecond}).Do(t.Context(), OpDelete, []queue.ID{1})
		if !errors.As(err, &re) || !strings.Contains(re.Text, "too many") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.As(err, &re) || !strings.Contains(re.Text, "deadline") {
		t.Errorf("delete past its timeout: %v", err)
	}
}

func TestRefused(t *testing.T) {
	path := serve(t, &Server{Backend: newFake(), Allow: func(uid int) bool { return uid == 12345 }})
	_, err := (&Client{Path: path}).List(t.Context())
	var re *RequestError
	if !errors.As(err, &re) || re.Text != "permission denied" {
		t.Errorf("a peer not allowed: %v", err)
	}
}

// A peer with another uid (nobody) is refused by the default check; the
// socket is made reachable to it so that the check is what refuses.
func TestRefusedOtherUID(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a child as uid 65534")
	}
	f := newFake()
	path := serve(t, &Server{Backend: f})
	os.Chmod(path, 0o666)
	// The test binary, where nobody may run it.
	bin := filepath.Join(filepath.Dir(path), "child.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestPeerChild$")
	cmd.Env = append(os.Environ(), "QUEUEADMIN_CHILD="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "refused: permission denied") {
		t.Errorf("child: %v\n%s", err, out)
	}
	_, err = (&Client{Path: path}).Do(t.Context(), OpHold, []queue.ID{1})
	f.mu.Lock()
	held := f.held[1]
	f.mu.Unlock()
	if err != nil || !held {
		t.Errorf("root after the refusal: %v", err)
	}
}

func TestPeerChild(t *testing.T) {
	path := os.Getenv("QUEUEADMIN_CHILD")
	if path == "" {
		t.Skip("run by TestRefusedOtherUID")
	}
	_, err := (&Client{Path: path}).Do(t.Context(), OpHold, []queue.ID{1})
	var re *RequestError
	if errors.As(err, &re) {
		fmt.Println("refused: " + re.Text)
		return
	}
	t.Fatalf("not refused: %v", err)
}

func TestNoServer(t *testing.T) {
	_, err := (&Client{Path: filepath.Join(t.TempDir(), "none.sock")}).List(t.Context())
	if !errors.Is(err, ErrNoServer) {
		t.Errorf("no socket: %v", err)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"op":"list"}`,
		`{"v":1,"op":"hold","ids":["1","2"],"timeout_ms":100}`,
		`{"v":1,"op":"flush"}`,
		`{"v":1,"op":"delete","ids":["18446744073709551615"]}`,
		`{"v":1,"op":"show","ids":[]}`,
		"{\"v\":1,\"op\":\"hold\",\"ids\":[\"\\u0000\"]}",
		`[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, ids, err := ParseRequest(b)
		if err != nil {
			return
		}
		if req.V != Version || len(ids) != len(req.IDs) || len(ids) > MaxIDs {
			t.Fatalf("accepted %q: %+v %v", b, req, ids)
		}
		for i, id := range ids {
			if id == 0 || id.String() != strings.TrimLeft(req.IDs[i], "0") {
				t.Fatalf("ID %q parsed as %d", req.IDs[i], id)
			}
		}
	})
}

// A request that comes while the scheduler is about to start waits for it.
func TestSchedulerStarting(t *testing.T) {
	f := newFake()
	f.notRunning = 3
	ms, err := (&Client{Path: serve(t, &Server{Backend: f})}).List(t.Context())
	if err != nil || len(ms) != 3 {
		t.Errorf("list while the scheduler starts: %v %v", ms, err)
	}
	f.mu.Lock()
	f.notRunning = 1000
	f.mu.Unlock()
	_, err = (&Client{Path: serve(t, &Server{Backend: f})}).List(t.Context())
	var re *RequestError
	if !errors.As(err, &re) || !re.Temporary || !strings.Contains(re.Text, "not running") {
		t.Errorf("list while no scheduler runs: %v", err)
	}
}
