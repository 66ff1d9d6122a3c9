package lspawn

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/smtpserver"
	"golang.org/x/sys/unix"
)

// listenQueue opens a new queue, closed at the test's end, and a
// listener for it at path, both in a temporary directory.
func listenQueue(t *testing.T) (q *queue.Queue, l *net.UnixListener, path string) {
	t.Helper()
	dir := t.TempDir()
	q, err := queue.Open(filepath.Join(dir, "queue"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	path = filepath.Join(dir, "qq.sock")
	l, err = net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	return q, l, path
}

// queueServer serves a new queue on a socket in a temporary directory
// with qs's settings.
func queueServer(t *testing.T, qs QueueServer) (*queue.Queue, string) {
	t.Helper()
	q, l, path := listenQueue(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	qs.Queue = q
	go func() { done <- qs.Serve(ctx, l) }()
	t.Cleanup(func() { // before listenQueue's q.Close
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return q, path
}

// queued returns the messages in todo/: envelope and message.
func queued(t *testing.T, q *queue.Queue) (envs, msgs []string) {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(q.Dir(), "todo", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		n, err := strconv.ParseUint(filepath.Base(name), 10, 64)
		if err != nil {
			continue
		}
		env, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := os.ReadFile(filepath.Join(q.Dir(), queue.Path("mess", queue.ID(n), q.Split())))
		if err != nil {
			t.Fatal(err)
		}
		envs, msgs = append(envs, string(env)), append(msgs, string(msg))
	}
	return envs, msgs
}

// pipeWith returns the read end of a pipe that yields data and then end of
// file (or, with hold, nothing more until the test ends). The pipe is a
// blocking one, as a qmail program's descriptors are (os.Pipe's are
// non-blocking): the server must stop reading it all the same.
func pipeWith(t *testing.T, data string, hold bool) *os.File {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	r, w := os.NewFile(uintptr(p[0]), "r"), os.NewFile(uintptr(p[1]), "w")
	done := make(chan struct{})
	t.Cleanup(func() { w.Close(); <-done; r.Close() })
	go func() {
		defer close(done)
		w.Write([]byte(data))
		if !hold {
			w.Close()
		}
	}()
	return r
}

// statusFlags returns f's file status flags (O_NONBLOCK among them).
func statusFlags(t *testing.T, f *os.File) int {
	t.Helper()
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl
}

// TestEnqueue is qmail-queue through the socket: exit codes as
// qmail-queue's, and the Received line names the caller's uid.
func TestEnqueue(t *testing.T) {
	for _, tt := range []struct {
		name, msg, env string
		code           int
		queued         bool
	}{
		{"queued", "Subject: x\n\nhi\n", "Fa@b\x00Tc@d\x00Te@f\x00\x00", 0, true},
		{"no recipients", "x\n", "F\x00\x00", 0, true},
		{"bad envelope", "x\n", "Xa@b\x00\x00", 91, false},
		{"envelope cut", "x\n", "Fa@b\x00Tc@", 54, false},
		{"address too long", "x\n", "F" + strings.Repeat("a", 1003) + "\x00\x00", 11, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q, path := queueServer(t, QueueServer{})
			code := Enqueue(path, pipeWith(t, tt.msg, false), pipeWith(t, tt.env, false))
			if code != tt.code {
				t.Fatalf("exit %d, want %d", code, tt.code)
			}
			envs, msgs := queued(t, q)
			if !tt.queued {
				if len(envs) != 0 {
					t.Fatalf("queued %q", envs)
				}
				return
			}
			if len(envs) != 1 {
				t.Fatalf("%d messages queued", len(envs))
			}
			wantEnv := "u" + strconv.Itoa(os.Getuid()) + "\x00p" + strconv.Itoa(os.Getpid()) + "\x00" + strings.TrimSuffix(tt.env, "\x00")
			if envs[0] != wantEnv {
				t.Errorf("envelope %q, want %q", envs[0], wantEnv)
			}
			who := "(qmail " + strconv.Itoa(os.Getpid()) + " invoked by uid " + strconv.Itoa(os.Getuid()) + ");"
			if !strings.HasPrefix(msgs[0], "Received: "+who) || !strings.HasSuffix(msgs[0], "\n"+tt.msg) {
				t.Errorf("message %q", msgs[0])
			}
		})
	}
}

// TestEnqueueFiles: the message may be a regular file, as qmail-local's
// is when it forwards.
func TestEnqueueFiles(t *testing.T) {
	q, path := queueServer(t, QueueServer{})
	p := filepath.Join(t.TempDir(), "msg")
	os.WriteFile(p, []byte("from a file\n"), 0o600)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if code := Enqueue(path, f, pipeWith(t, "Fa@b\x00Tc@d\x00\x00", false)); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if _, msgs := queued(t, q); len(msgs) != 1 || !strings.HasSuffix(msgs[0], "\nfrom a file\n") {
		t.Errorf("queued %q", msgs)
	}
}

// TestEnqueueTimeout: a message that never ends is given up after
// Timeout with qmail-queue's read error, and nothing is queued.
func TestEnqueueTimeout(t *testing.T) {
	q, path := queueServer(t, QueueServer{Timeout: 200 * time.Millisecond})
	code := Enqueue(path, pipeWith(t, "never ends", true), pipeWith(t, "", true))
	if code != 54 {
		t.Errorf("exit %d, want 54", code)
	}
	if envs, _ := queued(t, q); len(envs) != 0 {
		t.Errorf("queued %q", envs)
	}
}

// TestEnqueueShutdown: Serve's ctx ends an injection in progress.
func TestEnqueueShutdown(t *testing.T) {
	q, l, path := listenQueue(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- (&QueueServer{Queue: q}).Serve(ctx, l) }()
	codes := make(chan int, 1)
	go func() { codes <- Enqueue(path, pipeWith(t, "never ends", true), pipeWith(t, "", true)) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve goes on after its ctx ended")
	}
	if code := <-codes; code != 54 {
		t.Errorf("exit %d, want 54", code)
	}
	if code := Enqueue(path, pipeWith(t, "x", false), pipeWith(t, "F\x00\x00", false)); code != 56 {
		t.Errorf("after Serve: exit %d, want 56", code)
	}
}

// TestQueueServerMalformed: requests that break the protocol get no reply
// and an error; the server goes on.
func TestQueueServerMalformed(t *testing.T) {
	q, path := queueServer(t, QueueServer{})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, tt := range []struct {
		name string
		rec  string
		fds  []int
	}{
		{"no descriptors", "Q", nil},
		{"one descriptor", "Q", []int{int(r.Fd())}},
		{"three descriptors", "Q", []int{int(r.Fd()), int(r.Fd()), int(r.Fd())}},
		{"wrong kind", "D", []int{int(r.Fd()), int(r.Fd())}},
		{"fields", "Q1:1,", []int{int(r.Fd()), int(r.Fd())}},
		{"long", strings.Repeat("Q", 1000), []int{int(r.Fd()), int(r.Fd())}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var oob []byte
			if tt.fds != nil {
				oob = syscall.UnixRights(tt.fds...)
			}
			if _, _, err := conn.WriteMsgUnix([]byte(tt.rec), oob, nil); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 64)
			if n, err := conn.Read(buf); err == nil {
				t.Errorf("reply %q", buf[:n])
			} else if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Error("connection not closed")
			}
		})
	}
	// The server still serves.
	if code := Enqueue(path, pipeWith(t, "x\n", false), pipeWith(t, "F\x00Ta@b\x00\x00", false)); code != 0 {
		t.Errorf("exit %d", code)
	}
	if envs, _ := queued(t, q); len(envs) != 1 {
		t.Errorf("queued %q", envs)
	}
	// Enqueue's own failures.
	if code := Enqueue(filepath.Join(t.TempDir(), "none"), r, r); code != 56 {
		t.Errorf("no server: exit %d", code)
	}
}

// TestEnqueueBadReply: a server that answers nonsense gives exit 74.
func TestEnqueueBadReply(t *testing.T) {
	for _, reply := range []string{"", "X3:999,", "K", "X1:x,"} {
		path := filepath.Join(t.TempDir(), "s")
		l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			buf, oob := make([]byte, 64), make([]byte, oobSpace)
			_, oobn, flags, _, _ := c.ReadMsgUnix(buf, oob)
			fds, _ := rights(oob[:oobn], flags, 2)
			closeAll(fds)
			if reply != "" {
				c.Write([]byte(reply))
			}
			c.Close()
		}()
		if code := Enqueue(path, pipeWith(t, "x", false), pipeWith(t, "F\x00\x00", false)); code != 74 {
			t.Errorf("reply %q: exit %d, want 74", reply, code)
		}
		l.Close()
	}
}

// TestEnqueueKeepsFlags: the server reads the sender's descriptors without
// setting O_NONBLOCK, a flag of the open file description it shares with
// the sender, for each kind it takes.
func TestEnqueueKeepsFlags(t *testing.T) {
	_, path := queueServer(t, QueueServer{})
	file := func(t *testing.T, data string) *os.File {
		p := filepath.Join(t.TempDir(), "f")
		os.WriteFile(p, []byte(data), 0o600)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	// socket is one end of a blocking stream socketpair carrying data.
	socket := func(t *testing.T, data string) *os.File {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		r, w := os.NewFile(uintptr(fds[0]), "r"), os.NewFile(uintptr(fds[1]), "w")
		t.Cleanup(func() { r.Close() })
		w.Write([]byte(data))
		w.Close()
		return r
	}
	for _, tt := range []struct {
		name string
		open func(t *testing.T, data string) *os.File
	}{
		{"pipes", func(t *testing.T, data string) *os.File { return pipeWith(t, data, false) }},
		{"files", file},
		{"sockets", socket},
	} {
		t.Run(tt.name, func(t *testing.T) {
			msg, env := tt.open(t, "Subject: x\n\nhi\n"), tt.open(t, "Fa@b\x00Tc@d\x00\x00")
			before := []int{statusFlags(t, msg), statusFlags(t, env)}
			if before[0]&unix.O_NONBLOCK != 0 || before[1]&unix.O_NONBLOCK != 0 {
				t.Fatal("the test's descriptors are non-blocking already")
			}
			if code := Enqueue(path, msg, env); code != 0 {
				t.Fatalf("exit %d", code)
			}
			if after := []int{statusFlags(t, msg), statusFlags(t, env)}; after[0] != before[0] || after[1] != before[1] {
				t.Errorf("flags %#o, %#o after the exchange, were %#o, %#o", after[0], after[1], before[0], before[1])
			}
		})
	}
}

// TestEnqueueOtherKinds: a descriptor that is not a regular file, a pipe
// or a socket (a terminal could keep a read waiting) is refused with
// qmail-queue's read error.
func TestEnqueueOtherKinds(t *testing.T) {
	q, path := queueServer(t, QueueServer{})
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if code := Enqueue(path, null, pipeWith(t, "F\x00\x00", false)); code != 54 {
		t.Errorf("message %s: exit %d, want 54", os.DevNull, code)
	}
	if envs, _ := queued(t, q); len(envs) != 0 {
		t.Errorf("queued %q", envs)
	}
}

// TestQueueServerMaxConns: beyond MaxConns, a connection is answered at
// once with a temporary exit code; the slot of a finished one is free
// again.
func TestQueueServerMaxConns(t *testing.T) {
	_, path := queueServer(t, QueueServer{MaxConns: 2})
	// Two injections whose message never ends take both slots.
	holders := make(chan int, 2)
	var ends []*os.File
	for range 2 {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		r, w := os.NewFile(uintptr(p[0]), "r"), os.NewFile(uintptr(p[1]), "w")
		defer r.Close()
		defer w.Close()
		ends = append(ends, w)
		env := pipeWith(t, "Fa@b\x00Tc@d\x00\x00", false)
		go func() {
			for {
				// Refused while a probe below has the slot: again.
				if code := Enqueue(path, r, env); code != busyExit {
					holders <- code
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code := Enqueue(path, pipeWith(t, "x\n", false), pipeWith(t, "F\x00\x00", false))
		if code == busyExit {
			break
		}
		if code != 0 || time.Now().After(deadline) {
			t.Fatalf("third connection: exit %d, want %d once both slots are taken", code, busyExit)
		}
		time.Sleep(10 * time.Millisecond) // the holders have not connected yet
	}
	// One holder's message ends: its slot serves the next connection.
	ends[0].Write([]byte("held\n"))
	ends[0].Close()
	if code := <-holders; code != 0 {
		t.Fatalf("holder: exit %d", code)
	}
	for {
		// The slot is free once the holder's connection is closed, just
		// after its reply.
		code := Enqueue(path, pipeWith(t, "x\n", false), pipeWith(t, "F\x00Ta@b\x00\x00", false))
		if code == 0 {
			break
		}
		if code != busyExit || time.Now().After(deadline) {
			t.Fatalf("after a slot is free: exit %d", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ends[1].Close()
	if code := <-holders; code != 0 {
		t.Errorf("second holder: exit %d", code)
	}
}

// holderEnv makes the test binary, run by TestQueueServerPerUID, the
// holder: it opens injections to the socket it names and never writes
// their message, printing each exit code as it comes.
const holderEnv = "LSPAWN_TEST_HOLDER"

func TestHolderProcess(t *testing.T) {
	path := os.Getenv(holderEnv)
	if path == "" {
		t.Skip("run by TestQueueServerPerUID")
	}
	codes := make(chan int)
	for range 5 {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		r, w := os.NewFile(uintptr(p[0]), "r"), os.NewFile(uintptr(p[1]), "w")
		defer w.Close() // held open: the message never ends
		go func() { codes <- Enqueue(path, r, r) }()
		time.Sleep(50 * time.Millisecond) // in order: the first ones hold
	}
	for range 5 {
		os.Stdout.WriteString(strconv.Itoa(<-codes) + "\n")
	}
}

// TestQueueServerPerUID (finding 8): a local user holding stalled
// injections takes at most MaxPerUID of the socket's slots: another
// uid's injection still goes through, and the stalled ones are cut after
// IdleTimeout.
func TestQueueServerPerUID(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: injections from two uids")
	}
	dir, err := os.MkdirTemp("", "lspawn-peruid-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	q, err := queue.Open(filepath.Join(dir, "queue"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	path := filepath.Join(dir, "qq.sock")
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o666)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	logs := &logBuffer{}
	qs := &QueueServer{Queue: q, MaxConns: 4, MaxPerUID: 2, IdleTimeout: 2 * time.Second, Logger: logs.logger()}
	go func() { done <- qs.Serve(ctx, l) }()
	defer func() { cancel(); <-done }()

	// The holder runs as uid 65534, from a copy of this binary that uid
	// can run.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "lspawn.test")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestHolderProcess$")
	cmd.Env = []string{holderEnv + "=" + path}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if _, err := strconv.Atoi(sc.Text()); err == nil { // not PASS
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	next := func() string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the holder ended early")
			}
			return l
		case <-time.After(20 * time.Second):
			t.Fatal("the holder says nothing")
		}
		return ""
	}
	// The holder's first refusal: it holds all it may.
	if l := next(); l != strconv.Itoa(busyExit) {
		t.Fatalf("holder's first answer %q, want %d", l, busyExit)
	}
	time.Sleep(200 * time.Millisecond) // the later refusals too
	if code := Enqueue(path, pipeWith(t, "Subject: other uid\n\nhello\n", false), pipeWith(t, "Fa@b\x00Tc@d\x00\x00", false)); code != 0 {
		t.Fatalf("another uid's injection: exit %d, want 0", code)
	}
	if _, msgs := queued(t, q); len(msgs) != 1 || !strings.Contains(msgs[0], "hello") {
		t.Fatalf("queued %q", msgs)
	}
	// The stalled injections are cut after IdleTimeout: 54, a read error.
	var got []string
	for range 4 {
		got = append(got, next())
	}
	slices.Sort(got)
	if want := []string{"54", "54", "71", "71"}; !slices.Equal(got, want) {
		t.Errorf("the holder's other exits %q, want %q", got, want)
	}
	// Each refusal and cut is logged once, with the uid.
	time.Sleep(100 * time.Millisecond)
	if n := logs.count("too many connections for the uid", "uid=65534"); n != 3 {
		t.Errorf("%d log lines for the uid's refusals, want 3:\n%s", n, logs)
	}
	if n := logs.count("request cut: no data", "uid=65534"); n != 2 {
		t.Errorf("%d log lines for the cut injections, want 2:\n%s", n, logs)
	}
}

// TestEnqueueMaxBytes is the audit's disk filler: a user injecting
// messages of any size through the socket. A message over MaxBytes fails
// with qmail-queue's exit 31 and nothing is queued; at the limit it is
// queued; the default is the SMTP servers' 35 MiB.
func TestEnqueueMaxBytes(t *testing.T) {
	if DefaultMaxBytes != smtpserver.DefaultMaxMessageBytes {
		t.Errorf("DefaultMaxBytes %d, smtpserver's %d", DefaultMaxBytes, smtpserver.DefaultMaxMessageBytes)
	}
	const env = "Fa@b\x00Tc@d\x00\x00"
	for _, tt := range []struct {
		name   string
		max    int64
		size   int
		code   int
		queued bool
	}{
		{"at the limit", 1000, 1000, 0, true},
		{"one byte over", 1000, 1001, 31, false},
		{"far over", 1000, 1 << 20, 31, false},
		{"default limit", 0, DefaultMaxBytes + 1, 31, false},
		{"no limit", -1, 2 << 20, 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q, path := queueServer(t, QueueServer{MaxBytes: tt.max})
			// A file: a pipe's writer would wait forever once the
			// server stops reading.
			body := strings.Repeat("x", tt.size-1) + "\n"
			mp := filepath.Join(t.TempDir(), "msg")
			if err := os.WriteFile(mp, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(mp)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			code := Enqueue(path, f, pipeWith(t, env, false))
			if code != tt.code {
				t.Fatalf("exit %d, want %d", code, tt.code)
			}
			envs, msgs := queued(t, q)
			if !tt.queued {
				if len(envs) != 0 {
					t.Fatalf("%d messages queued", len(envs))
				}
				left, _ := filepath.Glob(filepath.Join(q.Dir(), "mess", "*", "*"))
				if len(left) != 0 {
					t.Errorf("files left in mess/: %q", left)
				}
				return
			}
			if len(msgs) != 1 || !strings.HasSuffix(msgs[0], "\n"+body) {
				t.Fatalf("%d messages queued", len(msgs))
			}
		})
	}
}

// TestEnqueueNoSpace: while CheckSpace says the queue's file system has
// no room, an injection is refused with exit 53 (temporary), nothing read
// and nothing queued; CheckSpace gets Now's time.
func TestEnqueueNoSpace(t *testing.T) {
	now := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
	var asked atomic.Pointer[time.Time]
	var full atomic.Bool
	full.Store(true)
	q, path := queueServer(t, QueueServer{
		Now: func() time.Time { return now },
		CheckSpace: func(t time.Time) error {
			asked.Store(&t)
			if full.Load() {
				return errors.New("452 insufficient system storage")
			}
			return nil
		},
	})
	const env = "Fa@b\x00Tc@d\x00\x00"
	if code := Enqueue(path, pipeWith(t, "x\n", false), pipeWith(t, env, false)); code != 53 {
		t.Fatalf("exit %d with no space, want 53", code)
	}
	if a := asked.Load(); a == nil || !a.Equal(now) {
		t.Errorf("CheckSpace asked at %v, want %v", a, now)
	}
	if envs, _ := queued(t, q); len(envs) != 0 {
		t.Fatalf("%d messages queued with no space", len(envs))
	}
	full.Store(false)
	if code := Enqueue(path, pipeWith(t, "x\n", false), pipeWith(t, env, false)); code != 0 {
		t.Fatalf("exit %d with space, want 0", code)
	}
	if envs, _ := queued(t, q); len(envs) != 1 {
		t.Fatalf("%d messages queued", len(envs))
	}
}
