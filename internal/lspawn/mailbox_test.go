package lspawn

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/pop3"
)

var _ MailboxOpener = (*Agents)(nil)

// testMaildir makes a Maildir holding the messages bodies, old enough to
// be listed.
func testMaildir(t *testing.T, bodies ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Maildir")
	if _, err := maildir.Create(path); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	for i, b := range bodies {
		p := filepath.Join(path, "new", "100"+string(rune('0'+i))+".M1P1.test")
		if err := os.WriteFile(p, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, old.Add(time.Duration(i)*time.Second), old.Add(time.Duration(i)*time.Second))
	}
	return path
}

// agentOpener is a MailboxOpener serving path in a goroutine (the agent).
type agentOpener struct {
	t    *testing.T
	path string
}

func (a agentOpener) OpenMailbox(ctx context.Context, name string, seen bool) (*os.File, error) {
	if name != "alice" {
		return nil, errors.New("no such user")
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fds[1]), "agent")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	go ServeMailbox(context.Background(), c.(*net.UnixConn), func() (pop3.Mailbox, error) {
		return pop3.OpenMaildir(a.path, pop3.MaildirOptions{Lock: true, WireSizes: true, Seen: seen, MissingOK: true})
	})
	return os.NewFile(uintptr(fds[0]), "mta"), nil
}

// TestOpenMailbox: a maildrop opened through the Server by an agent is
// listed, read from the descriptor the agent passes, updated at Commit
// and released at Close; a maildrop another session holds is ErrInUse; an
// unknown user is refused.
func TestOpenMailbox(t *testing.T) {
	path := testMaildir(t, "first\n", "second message\n")
	a, b := socketpair(t)
	srv := &Server{Local: newFake(), Mailboxes: agentOpener{t, path}}
	done := make(chan error, 1)
	go func() { done <- srv.ServeConn(t.Context(), b) }()
	c := NewClient(a)
	defer func() {
		c.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeConn: %v", err)
		}
	}()
	ctx := t.Context()
	mb, err := c.OpenMailbox(ctx, "alice", false)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := mb.Messages(ctx)
	if err != nil || len(msgs) != 2 || msgs[0].Size != 6 || msgs[1].WireSize != 16 || msgs[0].UID != "1000.M1P1.test" {
		t.Fatalf("Messages: %+v %v", msgs, err)
	}
	r, err := mb.Open(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.(*os.File); !ok {
		t.Errorf("Open gave a %T, not the message's file", r)
	}
	body, _ := io.ReadAll(r)
	r.Close()
	if string(body) != "second message\n" {
		t.Errorf("message 2: %q", body)
	}
	if _, err := mb.Open(ctx, 5); err == nil {
		t.Error("Open of message 6 succeeded")
	}
	// A second session meanwhile: the maildrop is locked.
	if _, err := c.OpenMailbox(ctx, "alice", false); !errors.Is(err, pop3.ErrInUse) {
		t.Errorf("second session: %v, want ErrInUse", err)
	}
	if _, err := c.OpenMailbox(ctx, "bob", false); err == nil {
		t.Error("unknown user opened")
	}
	if err := mb.Commit(ctx, pop3.Update{Deleted: []bool{true, false}}); err != nil {
		t.Fatal(err)
	}
	if err := mb.Close(); err != nil {
		t.Fatal(err)
	}
	left, _ := maildir.Dir(path).List()
	if len(left) != 1 || left[0].Subdir != "cur" {
		t.Errorf("after Commit: %+v", left)
	}
	// Released at Close: the next session opens it.
	mb, err = c.OpenMailbox(ctx, "alice", false)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	mb.Close()
}

// TestRemoteMailboxHostileAgent: an agent passing something else than a
// regular file for a message, or breaking the protocol, gets an error,
// and the mailbox is then unusable: nothing more is sent to the agent
// (not even Q), and every call fails.
func TestRemoteMailboxHostileAgent(t *testing.T) {
	pipe := func() int {
		var p [2]int
		if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		syscall.Close(p[1])
		return p[0]
	}
	for _, tt := range []struct {
		name  string
		open  bool // the call is Open(0), else Messages
		reply []byte
		fd    bool // a pipe's descriptor with the reply
	}{
		{name: "a pipe for a message", open: true, reply: []byte("g"), fd: true},
		{name: "no descriptor for a message", open: true, reply: []byte("g")},
		{name: "a list for a message", open: true, reply: appendRecord(nil, '.', "0")},
		{name: "a negative size", reply: appendRecord(nil, 'l', "a", "-1", "2")},
		{name: "a bad count", reply: appendRecord(nil, '.', "3")},
		{name: "a message for a list", reply: []byte("g"), fd: true},
		{name: "garbage", reply: []byte("l1:a,1:1")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mta, agent := socketpair(t)
			got := make(chan []string, 1)
			go func() {
				var recs []string
				defer func() { got <- recs }()
				buf := make([]byte, 1024)
				agent.Write([]byte("O"))
				n, err := agent.Read(buf)
				if err != nil {
					return
				}
				recs = append(recs, string(buf[:n]))
				var oob []byte
				if tt.fd {
					fd := pipe()
					defer syscall.Close(fd)
					oob = syscall.UnixRights(fd)
				}
				agent.WriteMsgUnix(tt.reply, oob, nil)
				for {
					n, err := agent.Read(buf)
					if err != nil || n == 0 {
						return
					}
					recs = append(recs, string(buf[:n]))
				}
			}()
			mb, err := NewRemoteMailbox(t.Context(), mta)
			if err != nil {
				t.Fatal(err)
			}
			if tt.open {
				_, err = mb.Open(t.Context(), 0)
			} else {
				_, err = mb.Messages(t.Context())
			}
			if !errors.Is(err, ErrAgent) {
				t.Errorf("err %v, want ErrAgent", err)
			}
			if _, err := mb.Messages(t.Context()); !errors.Is(err, ErrAgent) {
				t.Errorf("Messages after the failure: %v", err)
			}
			if err := mb.Commit(t.Context(), pop3.Update{Deleted: []bool{true}}); !errors.Is(err, ErrAgent) {
				t.Errorf("Commit after the failure: %v", err)
			}
			mb.Close()
			if recs := <-got; len(recs) != 1 {
				t.Errorf("the agent got %q, want only the first request", recs)
			}
		})
	}
}

// TestAgentRefusesAfterGarbage: once its mta sends a record that breaks
// the protocol, a mailbox agent serves nothing more: it answers none of
// the well-formed requests that follow, touches the maildrop no more
// (no list, no message, no update) but to close it, and returns an error
// wrapping ErrFormat.
func TestAgentRefusesAfterGarbage(t *testing.T) {
	file := filepath.Join(t.TempDir(), "message")
	if err := os.WriteFile(file, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, garbage := range []string{
		"Z",                // unknown kind
		"L1:x,",            // a field too many
		"G",                // a field too few
		"G2:01,",           // a number with a leading zero
		"G2:-1,",           // a negative number
		"U4:dddd,",         // an update longer than the list
		"C1:x",             // a cut netstring
		"Q9999999:x,",      // a length past the record
		"\x00\x01\x02\x03", // binary
	} {
		t.Run(strconv.Quote(garbage), func(t *testing.T) {
			mta, agent := socketpair(t)
			mb := &logMailbox{file: file}
			done := make(chan error, 1)
			go func() {
				done <- ServeMailbox(t.Context(), agent, func() (pop3.Mailbox, error) { return mb, nil })
				agent.Close()
			}()
			buf := make([]byte, maxRecord)
			read := func() string {
				t.Helper()
				mta.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, _, _, _, err := mta.ReadMsgUnix(buf, nil)
				if err != nil {
					return "error: " + err.Error()
				}
				return string(buf[:n])
			}
			if r := read(); r != "O" {
				t.Fatalf("first record %q", r)
			}
			mta.Write([]byte("L"))
			if r := read(); r[0] != 'l' {
				t.Fatalf("list: %q", r)
			}
			if r := read(); r != ".1:3," {
				t.Fatalf("end of list: %q", r)
			}
			mta.Write([]byte(garbage))
			for _, rec := range []string{"L", "G1:0,", "U1:d,", "C", "Q"} {
				mta.Write([]byte(rec)) // may fail once the agent is gone
			}
			select {
			case err := <-done:
				if !errors.Is(err, ErrFormat) {
					t.Errorf("ServeMailbox: %v, want ErrFormat", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("ServeMailbox did not return")
			}
			if r := read(); r != "" && !strings.HasPrefix(r, "error: ") {
				t.Errorf("the agent answered %q after the garbage", r)
			}
			if calls := mb.calls(); !slices.Equal(calls, []string{"M", "X"}) {
				t.Errorf("maildrop calls %q, want a list and the close", calls)
			}
		})
	}
}
