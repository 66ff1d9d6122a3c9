package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/assign"
	"github.com/qmailkit/qmailkit/internal/mailtest"
	"github.com/qmailkit/qmailkit/maildir"
)

// procIDs returns a process's real, effective, saved and file-system uids
// and its supplementary groups, from /proc.
func procIDs(t *testing.T, pid int) (uids []string, groups string) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		f := strings.Fields(line)
		switch {
		case len(f) == 5 && f[0] == "Uid:":
			uids = f[1:]
		case len(f) >= 1 && f[0] == "Groups:":
			groups = strings.Join(f[1:], " ")
		}
	}
	return uids, groups
}

// children returns the pids whose parent is pid.
func children(t *testing.T, pid int) []int {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // ended meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			out = append(out, n)
		}
	}
	return out
}

// userHome makes a home directory with a Maildir, and the .qmail file when
// dotQmail is not empty, all owned by uid.
func userHome(t *testing.T, dir, name string, uid int, dotQmail string) string {
	t.Helper()
	home := filepath.Join(dir, name)
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := maildir.Create(filepath.Join(home, "Maildir")); err != nil {
		t.Fatal(err)
	}
	if dotQmail != "" {
		if err := os.WriteFile(filepath.Join(home, ".qmail"), []byte(dotQmail), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	chownTree(t, home, uid, uid)
	return home
}

// TestRootDeliversUnderUserUIDs: started as root, the mta runs as the
// account with a root helper beside it; each user's mail is delivered
// under the user's uid, a user mapped to uid 0 is never delivered to
// (qmail-lspawn's "Not allowed to perform deliveries as root."), a
// forward from a delivery under a user's uid reaches the queue through
// the qmail-queue socket, and the helper exits with the mta.
func TestRootDeliversUnderUserUIDs(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: deliveries under users' uids")
	}
	acct := testAccount(t)
	dir := scratch(t)
	home := filepath.Join(dir, "home")
	p := startMTAAs(t, home, false, "-user", acct.name)

	// The main process is the account's; its helper is root's.
	if uids, groups := procIDs(t, p.cmd.Process.Pid); strings.Join(uids, " ") != strings.Repeat(strconv.Itoa(acct.uid)+" ", 3)+strconv.Itoa(acct.uid) || groups != "" {
		t.Errorf("mta runs with uids %q, groups %q", uids, groups)
	}
	var helper int
	for _, c := range children(t, p.cmd.Process.Pid) {
		if uids, _ := procIDs(t, c); len(uids) == 4 && uids[0] == "0" {
			helper = c
		}
	}
	if helper == 0 {
		t.Fatalf("no root helper among the mta's children %v\n%s", children(t, p.cmd.Process.Pid), p.stderr)
	}

	// Init, as root, gives users/ to root: the helper believes users/cdb.
	for _, f := range []struct {
		name     string
		uid, gid uint32
		mode     os.FileMode
	}{
		{"users", 0, 0, 0o755 | os.ModeDir},
		{"users/assign", 0, 0, 0o644},
		{"users/cdb", 0, 0, 0o644},
		{"users/poppasswd", 0, uint32(acct.gid), 0o640},
	} {
		fi, err := os.Lstat(filepath.Join(home, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != f.uid || st.Gid != f.gid || fi.Mode() != f.mode {
			t.Errorf("%s: uid %d gid %d mode %v, want %d %d %v", f.name, st.Uid, st.Gid, fi.Mode(), f.uid, f.gid, f.mode)
		}
	}

	users := []struct {
		name     string
		uid      int
		dotQmail string
	}{
		{"alice", 1501, ""},
		{"bob", 1502, ""},
		{"carol", 1503, "&bob@localhost\n"},
		{"rootie", 0, ""},
	}
	homes := map[string]string{}
	var entries strings.Builder
	for _, u := range users {
		homes[u.name] = userHome(t, dir, u.name, u.uid, u.dotQmail)
		fmt.Fprintf(&entries, "=%s:%s:%d:%d:%s:::\n", u.name, u.name, u.uid, u.uid, homes[u.name])
	}
	assignPath := filepath.Join(home, "users", "assign")
	old, err := os.ReadFile(assignPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(assignPath, append([]byte(entries.String()), old...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := assign.CompileFile(assignPath, filepath.Join(home, "users", "cdb")); err != nil {
		t.Fatal(err)
	}

	for _, u := range users {
		if err := mailtest.Send(p.smtp, "bob@example.org", []string{u.name + "@localhost"}, "Subject: for "+u.name+"\r\n\r\nhello "+u.name+"\r\n"); err != nil {
			t.Fatalf("%s: %v", u.name, err)
		}
	}
	md := func(name string) string { return filepath.Join(homes[name], "Maildir") }
	waitCount(t, md("alice"), 1, p)
	waitCount(t, md("bob"), 2, p) // bob's own and carol's forward
	for _, u := range []struct {
		name string
		uid  uint32
	}{{"alice", 1501}, {"bob", 1502}} {
		msgs, err := maildir.Dir(md(u.name)).List()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			st, err := os.Stat(filepath.Join(md(u.name), m.Path()))
			if err != nil {
				t.Fatal(err)
			}
			if owner := st.Sys().(*syscall.Stat_t).Uid; owner != u.uid {
				t.Errorf("%s's %s is owned by uid %d, want %d", u.name, m.Path(), owner, u.uid)
			}
		}
	}
	var forwarded bool
	msgs, _ := maildir.Dir(md("bob")).List()
	for _, m := range msgs {
		b, err := os.ReadFile(filepath.Join(md("bob"), m.Path()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "hello carol") {
			forwarded = true
			for _, want := range []string{"Delivered-To: bob@localhost\n", "Delivered-To: carol@localhost\n", " invoked by uid 1503); "} {
				if !strings.Contains(string(b), want) {
					t.Errorf("forwarded message lacks %q:\n%s", want, b)
				}
			}
		}
	}
	if !forwarded {
		t.Errorf("carol's forward not in bob's Maildir")
	}

	// uid 0: deferred with qmail-lspawn's report, never delivered.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.stderr.String(), "deferral: Not_allowed_to_perform_deliveries_as_root./") {
		if time.Now().After(deadline) {
			t.Fatalf("no deferral for the uid-0 user:\n%s", p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := countMaildir(t, md("rootie")); n != 0 {
		t.Errorf("%d messages delivered to the uid-0 user", n)
	}
	if strings.Contains(p.stderr.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", p.stderr)
	}

	// users/cdb given to the account, which could then write it: mail to
	// other uids is deferred, with a report naming the file, neither
	// delivered nor bounced.
	cdbPath := filepath.Join(home, "users", "cdb")
	if err := os.Chown(cdbPath, acct.uid, acct.gid); err != nil {
		t.Fatal(err)
	}
	if err := mailtest.Send(p.smtp, "bob@example.org", []string{"alice@localhost"}, "Subject: refused cdb\r\n\r\nwhile users/cdb is nobody's\r\n"); err != nil {
		t.Fatal(err)
	}
	refusal := "deferral: Refusing_" + cdbPath + ":_owned_by_uid_" + strconv.Itoa(acct.uid) + ",_not_root"
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(p.stderr.String(), refusal) {
		if time.Now().After(deadline) {
			t.Fatalf("no deferral naming %s:\n%s", cdbPath, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := countMaildir(t, md("alice")); n != 1 {
		t.Errorf("alice has %d messages while users/cdb is not root's, want 1", n)
	}
	if strings.Contains(p.stderr.String(), "failure: Refusing") {
		t.Errorf("the refused delivery bounced:\n%s", p.stderr)
	}

	// The helper ends with the mta, even one killed outright. First let
	// every delivery in progress be recorded: the files appear in the
	// Maildirs before their qmail-local children have exited and been
	// reported (seconds under the race detector), and a delivery killed
	// before its report is made again at the next start, as it must be.
	waitIdle(t, p)
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
	deadline = time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", helper)); err != nil {
			break
		}
		// A zombie has exited: init reaps it.
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", helper)); err == nil && strings.Contains(string(b[strings.LastIndexByte(string(b), ')')+1:]), " Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the helper (pid %d) outlives the mta", helper)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Started on a home whose users/cdb is not root's, the mta says so,
	// with the fix.
	p = startMTAAs(t, home, false, "-user", acct.name)
	for _, want := range []string{"level=ERROR", "refusing " + cdbPath + ": owned by uid " + strconv.Itoa(acct.uid) + ", not root", "chown -R root:root " + filepath.Join(home, "users")} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("start log lacks %q:\n%s", want, p.stderr)
		}
	}
	p.stop(t)

	// Fixed, the deferred message is delivered at its next attempt, made
	// due now: the channel files' mtime is the time of the next attempt.
	if err := os.Chown(cdbPath, 0, 0); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Minute)
	err = filepath.Walk(filepath.Join(home, "queue", "local"), func(path string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			err = os.Chtimes(path, past, past)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	p = startMTAAs(t, home, false, "-user", acct.name)
	waitCount(t, md("alice"), 2, p)
	if strings.Contains(p.stderr.String(), "Refusing") || strings.Contains(p.stderr.String(), "refusing") {
		t.Errorf("users/cdb refused after the fix:\n%s", p.stderr)
	}
	p.stop(t)
}

// TestRootHelperDies: without its root helper the mta cannot deliver
// locally, nor start another helper: it stops with exit 1.
func TestRootHelperDies(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: the delivery helper")
	}
	p := startMTAAs(t, filepath.Join(scratch(t), "home"), false, "-user", testAccount(t).name)
	var helper int
	for _, c := range children(t, p.cmd.Process.Pid) {
		if uids, _ := procIDs(t, c); len(uids) == 4 && uids[0] == "0" {
			helper = c
		}
	}
	if helper == 0 {
		t.Fatalf("no root helper\n%s", p.stderr)
	}
	if err := syscall.Kill(helper, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := p.wait(t)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want status 1", err)
	}
	if !strings.Contains(p.stderr.String(), "the delivery helper is gone; stopping") {
		t.Errorf("log:\n%s", p.stderr)
	}
}

// waitIdle waits until the mta's last status line says no local delivery
// is in progress.
func waitIdle(t *testing.T, p *proc) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		log := p.stderr.String()
		i := strings.LastIndex(log, "status: local ")
		if i >= 0 && strings.HasPrefix(log[i:], "status: local 0/") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("local deliveries still in progress after 60 s:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
