package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/mailtest"
	"github.com/qmailkit/qmailkit/internal/queueadmin"
	"github.com/qmailkit/qmailkit/smtpserver/smtptest"
)

// mtaQueue runs "mta -home home queue args..." and returns its output and
// exit status.
func mtaQueue(t *testing.T, home string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(build(t), append([]string{"-home", home, "queue"}, args...)...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + filepath.Dir(home)}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// queueList runs "queue list -json" and returns the messages by their
// first recipient.
func queueList(t *testing.T, home string, args ...string) map[string]queueadmin.Message {
	t.Helper()
	out, errs, code := mtaQueue(t, home, append([]string{"list", "-json"}, args...)...)
	if code != 0 {
		t.Fatalf("queue list: exit %d: %s", code, errs)
	}
	ms := map[string]queueadmin.Message{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m queueadmin.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("queue list -json: %v: %q", err, sc.Text())
		}
		if len(m.Recipients) != 1 {
			t.Fatalf("message %s has recipients %+v", m.ID, m.Recipients)
		}
		ms[m.Recipients[0].Address] = m
	}
	return ms
}

// mustQueue runs a queue command that must succeed.
func mustQueue(t *testing.T, home string, args ...string) string {
	t.Helper()
	out, errs, code := mtaQueue(t, home, args...)
	if code != 0 {
		t.Fatalf("queue %v: exit %d: %s", args, code, errs)
	}
	return out
}

// attempts counts the mta's logged delivery attempts of message id.
func attempts(p *proc, id string) int {
	return strings.Count(p.stderr.String(), "msg "+id+" to remote ")
}

func waitFor(t *testing.T, p *proc, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %s\nstderr:\n%s", what, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// setRoute points remote.test at addr and has the mta reread smtproutes.
func setRoute(t *testing.T, p *proc, home, addr string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(home, "control", "smtproutes"), []byte("remote.test:"+addr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := strings.Count(p.stderr.String(), "mta: reloaded control files")
	p.signal(t, syscall.SIGHUP)
	waitFor(t, p, "no reload", func() bool { return strings.Count(p.stderr.String(), "mta: reloaded control files") > n })
}

// TestQueueCommand: the queue command on a running mta whose remote
// destination is down lists, holds, flushes (the held message is not
// attempted), releases, shows and deletes; without the mta it holds under
// lock/sendmutex, and the hold survives the restart; once the destination
// is up, a flush delivers every message not deleted exactly once, and the
// deleted one never.
func TestQueueCommand(t *testing.T) {
	home := filepath.Join(scratch(t), "home")
	p := startMTA(t, home)
	// A closed loopback port: remote.test is down.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	setRoute(t, p, home, down)
	rcpts := []string{"a@remote.test", "b@remote.test", "c@remote.test", "d@remote.test"}
	for _, r := range rcpts {
		if err := mailtest.Send(p.smtp, "bob@example.org", []string{r}, "Subject: to "+r+"\r\n\r\nbody for "+r+"\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	var ms map[string]queueadmin.Message
	waitFor(t, p, "the messages not all deferred", func() bool {
		ms = queueList(t, home)
		for _, r := range rcpts {
			if m, ok := ms[r]; !ok || m.Queued || m.NextAttempt == nil || attempts(p, m.ID) == 0 {
				return false
			}
		}
		return true
	})
	a, b, c := ms["a@remote.test"], ms["b@remote.test"], ms["c@remote.test"]
	if fi, err := os.Stat(queueadmin.SocketPath(home)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the queue administration socket: %v %v", fi, err)
	}
	if a.Sender != "bob@example.org" || a.Size == 0 || a.Held || a.Recipients[0].Channel != "remote" || a.Recipients[0].State != "pending" || time.Since(a.Arrival) > time.Minute {
		t.Errorf("entry %+v", a)
	}

	// Usage errors.
	for _, args := range [][]string{{}, {"bogus"}, {"hold"}, {"hold", "x1"}, {"delete", "0"}, {"list", "-nope"}, {"list", "12"}} {
		if _, errs, code := mtaQueue(t, home, args...); code != 2 {
			t.Errorf("queue %q: exit %d, want 2: %s", args, code, errs)
		}
	}

	// Hold a; a flush attempts the others, not a.
	mustQueue(t, home, "hold", a.ID)
	if held := queueList(t, home, "-held"); len(held) != 1 || !held["a@remote.test"].Held || held["a@remote.test"].NextAttempt != nil {
		t.Fatalf("list -held: %+v", held)
	}
	na, nb := attempts(p, a.ID), attempts(p, b.ID)
	mustQueue(t, home, "flush")
	waitFor(t, p, "b not attempted again after the flush", func() bool { return attempts(p, b.ID) > nb })
	time.Sleep(500 * time.Millisecond)
	if attempts(p, a.ID) != na {
		t.Fatalf("the held message was attempted:\n%s", p.stderr)
	}
	// Released: attempted at once.
	mustQueue(t, home, "release", a.ID)
	waitFor(t, p, "a not attempted after its release", func() bool { return attempts(p, a.ID) > na })

	// show: the envelope, then the message as stored.
	out := mustQueue(t, home, "show", "#"+a.ID)
	for _, want := range []string{"id: " + a.ID + "\n", "sender: <bob@example.org>\n", "recipient: pending remote a@remote.test\n", "\n\nReceived: ", "body for a@remote.test"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if text := mustQueue(t, home, "list", "-recipient", "C@REMOTE", "-sender", "bob@"); !strings.Contains(text, c.ID) || strings.Contains(text, a.ID) ||
		!strings.Contains(text, "<bob@example.org>") || !strings.Contains(text, "pending remote c@remote.test") {
		t.Errorf("list -recipient: %q", text)
	}
	if text := mustQueue(t, home, "list", "-older", "1h"); text != "" {
		t.Errorf("list -older 1h: %q", text)
	}

	// Delete b; again: it is not found.
	mustQueue(t, home, "delete", b.ID)
	if _, errs, code := mtaQueue(t, home, "delete", b.ID, c.ID+"0"); code != 1 || !strings.Contains(errs, b.ID+": queue: no such message") {
		t.Errorf("delete of deleted and unknown IDs: exit %d: %s", code, errs)
	}
	if _, ok := queueList(t, home)["b@remote.test"]; ok {
		t.Fatal("b listed after its deletion")
	}

	// Without the mta: c is held under lock/sendmutex, and stays held
	// after the restart.
	p.stop(t)
	mustQueue(t, home, "hold", c.ID)
	if off := queueList(t, home); len(off) != 3 || !off["c@remote.test"].Held || off["a@remote.test"].Held {
		t.Fatalf("list without the mta: %+v", off)
	}
	p = startMTA(t, home)
	relay := smtptest.NewServer(t)
	setRoute(t, p, home, relay.Addr)
	mustQueue(t, home, "flush")
	got := relay.WaitMessages(2, 60*time.Second)
	time.Sleep(time.Second)
	if got = relay.Messages(); len(got) != 2 {
		t.Fatalf("relay got %d messages with c held, want 2\nstderr:\n%s", len(got), p.stderr)
	}
	if ms := queueList(t, home); len(ms) != 1 || !ms["c@remote.test"].Held {
		t.Fatalf("queue after the flush: %+v", ms)
	}
	mustQueue(t, home, "release", c.ID)
	relay.WaitMessages(3, 60*time.Second)
	time.Sleep(time.Second)
	counts := map[string]int{}
	for _, m := range relay.Messages() {
		for _, to := range m.To {
			counts[to]++
		}
	}
	if fmt.Sprint(counts) != "map[a@remote.test:1 c@remote.test:1 d@remote.test:1]" {
		t.Errorf("relay got %v, want a, c and d once each", counts)
	}
	if ms := queueList(t, home); len(ms) != 0 {
		t.Errorf("queue not empty: %+v", ms)
	}
	p.stop(t)
}
