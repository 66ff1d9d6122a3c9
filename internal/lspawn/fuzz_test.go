package lspawn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/pop3"
)

// The fuzz targets below drive one side of each protocol of the package
// with records from the fuzzer (the input split at NUL bytes, empty
// records dropped, at most maxFuzzRecords) sent by a hostile peer over a
// real socketpair, and check that the side under test neither panics nor
// hangs, and does nothing its rules do not allow: what it does for the
// records before the first malformed one, and nothing after.

const maxFuzzRecords = 64

func fuzzRecords(data []byte) [][]byte {
	var recs [][]byte
	for r := range bytes.SplitSeq(data, []byte{0}) {
		if len(r) > 0 && len(recs) < maxFuzzRecords {
			recs = append(recs, r)
		}
	}
	return recs
}

// drain reads records from c until it fails, closing any descriptor.
func drain(c *net.UnixConn) {
	buf := make([]byte, maxRecord)
	oob := make([]byte, oobSpace)
	for {
		n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			fds, _ := rights(oob[:oobn], flags, -1)
			closeAll(fds)
		}
		if err != nil || n == 0 {
			return
		}
	}
}

// feed runs serve, which serves end, while recs are written to peer (each
// with the descriptor fd gives, when fd is set and gives one) and what
// comes back to peer is drained; serve must return within 5 s of the
// last record. end is closed, and feed returns once both sides are done.
func feed(t *testing.T, peer, end *net.UnixConn, recs [][]byte, fd func(rec []byte) (int, error), serve func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- serve() }()
	var wg sync.WaitGroup
	wg.Go(func() { drain(peer) })
	wg.Go(func() {
		for _, r := range recs {
			var oob []byte
			if fd != nil {
				n, err := fd(r)
				if err != nil {
					return
				}
				if n >= 0 {
					defer syscall.Close(n)
					oob = syscall.UnixRights(n)
				}
			}
			peer.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := peer.WriteMsgUnix(r, oob, nil); err != nil {
				return
			}
		}
		peer.CloseWrite()
	})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("the server did not return after %q", recs)
	}
	end.Close()
	wg.Wait()
}

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// checkFDs fails if the process has more descriptors than before, once
// the runtime has had a moment to close what goroutines dropped.
func checkFDs(t *testing.T, before int) {
	t.Helper()
	for range 50 {
		if openFDs(t) <= before {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Errorf("%d descriptors open, %d before", openFDs(t), before)
}

// logMailbox is a pop3.Mailbox of three messages that logs the calls an
// agent makes: "M" Messages, "O<i>" Open, "C<flags>" Commit (one byte a
// message: d deleted, r retrieved, 0), "X" Close.
type logMailbox struct {
	file string
	mu   sync.Mutex
	log  []string
}

func (m *logMailbox) add(s string) {
	m.mu.Lock()
	m.log = append(m.log, s)
	m.mu.Unlock()
}

func (m *logMailbox) calls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.log)
}

func (m *logMailbox) Messages(context.Context) ([]pop3.Message, error) {
	m.add("M")
	return []pop3.Message{{UID: "a", Size: 6, WireSize: 7}, {UID: "b", Size: 6, WireSize: 7}, {UID: "c", Size: 6, WireSize: -1}}, nil
}

func (m *logMailbox) Open(_ context.Context, i int) (io.ReadCloser, error) {
	m.add("O" + strconv.Itoa(i))
	if i >= 3 {
		return nil, errors.New("no such message")
	}
	return os.Open(m.file)
}

func (m *logMailbox) Commit(_ context.Context, u pop3.Update) error {
	flags := make([]byte, len(u.Deleted))
	for i := range flags {
		switch {
		case u.Deleted[i]:
			flags[i] = 'd'
		case u.Retrieved[i]:
			flags[i] = 'r'
		default:
			flags[i] = '0'
		}
	}
	m.add("C" + string(flags))
	if len(flags) > 3 {
		return fmt.Errorf("an update of %d messages for 3", len(flags))
	}
	return nil
}

func (m *logMailbox) Close() error { m.add("X"); return nil }

// agentCalls is what an agent must do for recs, sent by the mta to a
// maildrop of three messages: the mailbox calls of the records before the
// first malformed one, or Q.
func agentCalls(recs [][]byte) []string {
	var calls []string
	n, update := -1, []byte(nil)
	for _, rec := range recs {
		kind, f, err := parseRecord(rec, -1)
		if err != nil {
			return calls
		}
		switch {
		case kind == 'L' && len(f) == 0:
			calls = append(calls, "M")
			n = 3
		case kind == 'G' && len(f) == 1:
			i, err := strconv.Atoi(f[0])
			if err != nil || i < 0 || strconv.Itoa(i) != f[0] {
				return calls
			}
			calls = append(calls, "O"+f[0])
		case kind == 'U' && len(f) == 1:
			if len(update)+len(f[0]) > max(n, 0) {
				return calls
			}
			update = append(update, f[0]...)
		case kind == 'C' && len(f) == 0:
			for i, c := range update {
				if c != 'd' && c != 'r' {
					update[i] = '0'
				}
			}
			calls = append(calls, "C"+string(update))
			update = nil
		case kind == 'Q' && len(f) == 0:
			return calls
		default:
			return calls
		}
	}
	return calls
}

// FuzzServeMailbox: a mailbox agent given any records by its mta makes
// exactly the mailbox calls of the well-formed records before the first
// malformed one (or Q), closes the maildrop, returns, and leaks no
// descriptor.
func FuzzServeMailbox(f *testing.F) {
	file := fuzzSetup(f,
		"L\x00G1:0,\x00G1:2,\x00U3:dr0,\x00C\x00Q",
		"L\x00U2:d0,\x00U1:r,\x00C\x00G1:7,\x00Q",
		"U1:d,\x00C\x00L",
		"G2:01,\x00L",
		"L\x00X\x00L\x00G1:0,",
		"L\x00U4:dddd,\x00C",
		"L\x00C\x00C\x00L\x00Q\x00L",
		"L1:x,\x00G\x00G1:-1,",
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzPair(t, data, func(recs [][]byte, mta, agent *net.UnixConn) {
			mb := &logMailbox{file: file}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			feed(t, mta, agent, recs, nil, func() error {
				return ServeMailbox(ctx, agent, func() (pop3.Mailbox, error) { return mb, nil })
			})
			calls := mb.calls()
			if len(calls) == 0 || calls[len(calls)-1] != "X" {
				t.Fatalf("calls %q: the maildrop was not closed last", calls)
			}
			for len(calls) > 0 && calls[len(calls)-1] == "X" {
				calls = calls[:len(calls)-1]
			}
			if want := agentCalls(recs); !slices.Equal(calls, want) {
				t.Fatalf("records %q: calls %q, want %q", recs, calls, want)
			}
		})
	})
}

// FuzzRemoteMailbox: whatever an agent sends (with a regular file, a pipe
// or nothing as the descriptor of a g record), the mta's RemoteMailbox
// returns from every call within its timeouts, lists only what a
// well-formed list says, gives only regular files, and leaks no
// descriptor.
func FuzzRemoteMailbox(f *testing.F) {
	file := fuzzSetup(f,
		"O\x00l1:a,1:6,1:7,1:b,1:0,2:-1,\x00.1:2,\x00g\x00c\x00q",
		"O\x00.1:0,\x00g1\x00c5:oops,\x00q",
		"O\x00E0:,4:gone,",
		"E5:inuse,4:busy,",
		"O\x00l1:a,2:-1,1:7,\x00.1:1,",
		"O\x00g\x00g\x00.1:0,",
		"x\x00O",
		"O\x00l1:a,1:6,\x00.1:0,",
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzPair(t, data, func(recs [][]byte, mta, agent *net.UnixConn) {
			var wg sync.WaitGroup
			defer wg.Wait()
			defer agent.Close() // before the Wait: drain(agent) ends
			wg.Go(func() {
				for _, r := range recs {
					var oob []byte
					if r[0] == 'g' {
						var fd int
						if len(r)%2 == 0 {
							fd, _ = syscall.Open(file, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
						} else {
							var p [2]int
							syscall.Pipe2(p[:], syscall.O_CLOEXEC)
							syscall.Close(p[1])
							fd = p[0]
						}
						if len(r) != 3 {
							oob = syscall.UnixRights(fd)
						}
						defer syscall.Close(fd)
					}
					agent.SetWriteDeadline(time.Now().Add(5 * time.Second))
					if _, _, err := agent.WriteMsgUnix(r, oob, nil); err != nil {
						return
					}
				}
				drain(agent)
			})
			start := time.Now()
			ctx := context.Background()
			octx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			m, err := NewRemoteMailbox(octx, mta)
			cancel()
			if err != nil {
				return
			}
			m.Timeout = 50 * time.Millisecond
			msgs, err := m.Messages(ctx)
			if err == nil {
				for _, msg := range msgs {
					if msg.Size < 0 {
						t.Errorf("listed %+v", msg)
					}
				}
			}
			if r, err := m.Open(ctx, 0); err == nil {
				fi, err := r.(*os.File).Stat()
				if err != nil || !fi.Mode().IsRegular() {
					t.Errorf("Open gave %v %v, not a regular file", fi, err)
				}
				r.Close()
			}
			m.Commit(ctx, pop3.Update{Deleted: []bool{true, false}, Retrieved: []bool{false, true}})
			m.Close()
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("the calls took %v", took)
			}
		})
	})
}

// logServer is a Server's Local and Mailboxes that log their calls:
// "D<sender> <recipient> <message>" and "M<name> <seen>".
type logServer struct {
	mu  sync.Mutex
	log []string
}

func (l *logServer) add(s string) {
	l.mu.Lock()
	l.log = append(l.log, s)
	l.mu.Unlock()
}

func (l *logServer) Deliver(_ context.Context, sender, recipient string, msg io.Reader) (dotqmail.Result, error) {
	b, _ := io.ReadAll(msg)
	l.add("D" + sender + " " + recipient + " " + string(b))
	return dotqmail.Result{Report: "did 1+0+0\n"}, nil
}

func (l *logServer) OpenMailbox(_ context.Context, name string, seen bool) (*os.File, error) {
	l.add(fmt.Sprintf("M%s %v", name, seen))
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	syscall.Close(fds[1])
	return os.NewFile(uintptr(fds[0]), "mailbox"), nil
}

// serverCalls is what a Server must do for recs (each D with a message
// file of body "hello\n"): the deliveries and mailboxes of the records
// before the first malformed one. A D that reuses an id is refused only
// while the first delivery runs: the calls before the first such D are
// sure, the others possible.
func serverCalls(recs [][]byte) (sure, possible []string) {
	used := map[string]bool{}
	dup := false
	for _, rec := range recs {
		kind, f, err := parseRecord(rec, -1)
		if err != nil {
			break
		}
		if len(f) > 0 {
			if _, err := parseID(f[0]); err != nil {
				break
			}
		}
		call := ""
		switch {
		case kind == 'C' && len(f) == 1:
			continue
		case kind == 'M' && len(f) == 3:
			if f[1] == "" || (f[2] != "0" && f[2] != "1") {
				return sure, possible
			}
			call = fmt.Sprintf("M%s %v", f[1], f[2] == "1")
		case kind == 'D' && len(f) == 4:
			size, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil || size < 0 {
				return sure, possible
			}
			call = "D" + f[1] + " " + f[2] + " " + "hello\n"[:min(size, 6)]
			dup = dup || used[f[0]]
			used[f[0]] = true
		default:
			return sure, possible
		}
		possible = append(possible, call)
		if !dup {
			sure = append(sure, call)
		}
	}
	return sure, possible
}

// within reports whether the multiset a is contained in b.
func within(a, b []string) bool {
	n := map[string]int{}
	for _, s := range b {
		n[s]++
	}
	for _, s := range a {
		if n[s]--; n[s] < 0 {
			return false
		}
	}
	return true
}

// FuzzServeConn: a delivery helper given any records by its Client
// delivers and opens mailboxes for exactly the well-formed requests
// before the first malformed one, then ends, and leaks no descriptor.
func FuzzServeConn(f *testing.F) {
	file := fuzzSetup(f,
		"D1:1,3:a@b,3:c@d,1:6,\x00M1:2,5:alice,1:0,\x00C1:1,",
		"D1:1,0:,3:c@d,1:3,\x00D1:2,3:x@y,3:c@d,1:0,\x00X",
		"M1:1,0:,1:0,\x00D1:2,3:a@b,3:c@d,1:6,",
		"C2:01,\x00D1:1,3:a@b,3:c@d,1:6,",
		"D1:1,3:a@b,3:c@d,2:-1,",
		"M1:1,3:bob,1:2,",
		"D1:1,3:a@b,3:c@d,1:6,\x00D1:1,3:a@b,3:c@d,1:6,",
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzPair(t, data, func(recs [][]byte, client, helper *net.UnixConn) {
			ls := &logServer{}
			srv := &Server{Local: ls, Mailboxes: ls, DeliveryTimeout: 5 * time.Second}
			// A delivery request carries the message file.
			message := func(r []byte) (int, error) {
				if r[0] != 'D' {
					return -1, nil
				}
				return syscall.Open(file, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			}
			feed(t, client, helper, recs, message, func() error { return srv.ServeConn(context.Background(), helper) })
			ls.mu.Lock()
			got := slices.Clone(ls.log)
			ls.mu.Unlock()
			sure, possible := serverCalls(recs)
			if !within(sure, got) || !within(got, possible) {
				t.Fatalf("records %q: calls %q, want %q and at most %q", recs, got, sure, possible)
			}
		})
	})
}

// clientOutcome is what a Client must conclude from replies recs to its
// deliveries 1 and 2 and its mailbox 3: which succeed. Replies after the
// first malformed one, or one of the other kind than its request, count
// for nothing.
func clientOutcome(recs [][]byte) map[uint64]bool {
	ok := map[uint64]bool{}
	pending := map[uint64]bool{1: false, 2: false, 3: true} // id: mailbox
	for _, rec := range recs {
		id, r, err := parseReply(rec)
		if err != nil {
			return ok
		}
		mailbox, waiting := pending[id]
		if !waiting {
			continue
		}
		if mailbox != (rec[0] == 'A') {
			return ok
		}
		delete(pending, id)
		ok[id] = r.status == 'K' || r.status == 'A'
	}
	return ok
}

// FuzzClient: whatever replies a delivery helper sends, the Client's
// deliveries and mailbox succeed exactly when a well-formed reply of
// their own kind says so before anything malformed, every call returns,
// and no descriptor leaks.
func FuzzClient(f *testing.F) {
	for _, s := range []string{
		"R1:1,1:K,10:did 1+0+0\n,0:,\x00R1:2,1:Z,0:,4:oops,\x00A1:3,1:K,0:,",
		"A1:1,1:K,0:,\x00R1:2,1:K,0:,0:,",
		"R1:3,1:K,0:,0:,\x00A1:3,1:K,0:,",
		"R1:9,1:K,0:,0:,\x00R1:1,1:D,0:,4:perm,\x00junk\x00R1:2,1:K,0:,0:,",
		"A1:3,1:Z,4:none,\x00R1:1,1:K,0:,0:,\x00R1:1,1:K,0:,0:,",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzPair(t, data, func(recs [][]byte, client, helper *net.UnixConn) {
			c := NewClient(client)
			c.TempDir = dir
			defer c.Close()
			buf := make([]byte, maxRecord)
			oob := make([]byte, oobSpace)
			results := make(chan [2]any, 3)
			// The three requests, in order, so that their ids are 1, 2, 3.
			for i := range 3 {
				go func() {
					var err error
					if i < 2 {
						_, err = c.Deliver(context.Background(), "a@b", "c@d", bytes.NewReader([]byte("hello\n")))
					} else {
						var m *RemoteMailbox
						if m, err = c.OpenMailbox(context.Background(), "alice", false); err == nil {
							m.Close()
						}
					}
					results <- [2]any{uint64(i + 1), err}
				}()
				_, oobn, flags, _, err := helper.ReadMsgUnix(buf, oob)
				if err != nil {
					t.Fatal(err)
				}
				fds, _ := rights(oob[:oobn], flags, -1)
				closeAll(fds)
			}
			for _, r := range recs {
				var oob []byte
				if r[0] == 'A' {
					fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
					if err != nil {
						t.Fatal(err)
					}
					syscall.Write(fds[1], []byte("O"))
					syscall.Close(fds[1])
					defer syscall.Close(fds[0])
					oob = syscall.UnixRights(fds[0])
				}
				helper.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, _, err := helper.WriteMsgUnix(r, oob, nil); err != nil {
					break
				}
			}
			helper.Close()
			want := clientOutcome(recs)
			for range 3 {
				select {
				case r := <-results:
					id := r[0].(uint64)
					err, _ := r[1].(error)
					if (err == nil) != want[id] {
						t.Errorf("records %q: request %d: %v, want success %v", recs, id, err, want[id])
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("records %q: a request did not return", recs)
				}
			}
		})
	})
}

// fuzzPair runs body with the records of data and the two ends of a new
// socketpair, closes both ends once it returns, and fails the test if a
// descriptor was left open.
func fuzzPair(t *testing.T, data []byte, body func(recs [][]byte, a, b *net.UnixConn)) {
	t.Helper()
	recs := fuzzRecords(data)
	before := openFDs(t)
	func() {
		a, b := socketpair(t)
		defer a.Close()
		defer b.Close()
		body(recs, a, b)
	}()
	checkFDs(t, before)
}

// fuzzSetup adds the seed records and writes the message file the
// targets deliver or serve, returning its path.
func fuzzSetup(f *testing.F, seeds ...string) string {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	file := filepath.Join(f.TempDir(), "message")
	if err := os.WriteFile(file, []byte("hello\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	return file
}
