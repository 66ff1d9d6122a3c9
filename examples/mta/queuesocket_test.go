package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/mailtest"
	"github.com/qmailkit/qmailkit/mta"
)

// TestQueueSocketDataBytes: the queue socket takes control/databytes as
// its size limit: a forward (through the socket, from a delivery under a
// user's uid) of a message that grew past it on the way (its Received and
// Delivered-To lines) is refused with exit 31, and nothing is queued for
// its target.
func TestQueueSocketDataBytes(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: a user with a uid of its own")
	}
	const uid = 1671
	acct := testAccount(t)
	dir := scratch(t)
	home := filepath.Join(dir, "home")
	demo, _, err := mta.Init(home, mta.InitOptions{UID: acct.uid, GID: acct.gid})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "control", "databytes"), []byte("1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startMTAAs(t, home, false, "-user", acct.name)
	addUsers(t, home, dir, localUser{name: "fred", uid: uid, dotQmail: "&" + demo.Address() + "\n"})
	body := strings.Repeat("x", 900)
	if err := mailtest.Send(p.smtp, "bob@example.org", []string{"fred@localhost"}, "Subject: x\r\n\r\n"+body+"\r\n"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.stderr.String(), "message too big") && countMaildir(t, demo.Maildir) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal of the forward:\n%s", p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(p.stderr.String(), "message too big") {
		t.Errorf("the forward was not refused:\n%s", p.stderr)
	}
	// The forward is not delivered (a double bounce, from <>, may be:
	// the bounce to example.org fails).
	time.Sleep(500 * time.Millisecond)
	files, _ := filepath.Glob(filepath.Join(demo.Maildir, "*", "*"))
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && strings.HasPrefix(string(b), "Return-Path: <bob@example.org>") {
			t.Errorf("the forward was delivered: %s", f)
		}
	}
	p.stop(t)
}
