package main

import (
	"fmt"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/assign"
	"github.com/qmailkit/qmailkit/internal/mailtest"
	"github.com/qmailkit/qmailkit/maildir"
)

// localUser is a user of the tests with a uid of its own (no passwd
// entry: users/assign and users/poppasswd give its ids and home).
type localUser struct {
	name     string
	uid      int
	dotQmail string
	password string // "" for no POP3 account
}

// addUsers makes each user's home under dir and adds the users to the
// running mta's users/assign (and cdb) and users/poppasswd; it returns
// their homes.
func addUsers(t *testing.T, home, dir string, users ...localUser) map[string]string {
	t.Helper()
	homes := map[string]string{}
	var assignLines, passwd strings.Builder
	for _, u := range users {
		homes[u.name] = userHome(t, dir, u.name, u.uid, u.dotQmail)
		fmt.Fprintf(&assignLines, "=%s:%s:%d:%d:%s:::\n", u.name, u.name, u.uid, u.uid, homes[u.name])
		if u.password != "" {
			fmt.Fprintf(&passwd, "%s:{PLAIN}%s:%d:%d::%s:/bin/false\n", u.name, u.password, u.uid, u.uid, homes[u.name])
		}
	}
	for _, f := range []struct{ name, add string }{{"assign", assignLines.String()}, {"poppasswd", passwd.String()}} {
		p := filepath.Join(home, "users", f.name)
		old, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, append([]byte(f.add), old...), 0o644); err != nil { // keeps the file's mode
			t.Fatal(err)
		}
	}
	if err := assign.CompileFile(filepath.Join(home, "users", "assign"), filepath.Join(home, "users", "cdb")); err != nil {
		t.Fatal(err)
	}
	return homes
}

// pop3Session is a POP3 client for the tests.
type pop3Session struct {
	t *testing.T
	c *textproto.Conn
}

func pop3Login(t *testing.T, addr, user, pass string) (*pop3Session, error) {
	t.Helper()
	c, err := textproto.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := &pop3Session{t, c}
	if _, err := s.cmd(""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cmd("USER " + user); err != nil {
		t.Fatal(err)
	}
	_, err = s.cmd("PASS " + pass)
	return s, err
}

// cmd sends line (none when empty) and reads a one-line reply: an error
// for -ERR.
func (s *pop3Session) cmd(line string) (string, error) {
	s.t.Helper()
	if line != "" {
		if err := s.c.PrintfLine("%s", line); err != nil {
			s.t.Fatal(err)
		}
	}
	r, err := s.c.ReadLine()
	if err != nil {
		s.t.Fatal(err)
	}
	if !strings.HasPrefix(r, "+OK") {
		return r, fmt.Errorf("%s: %s", line, r)
	}
	return r, nil
}

// multi sends line and reads a multi-line reply.
func (s *pop3Session) multi(line string) ([]string, error) {
	s.t.Helper()
	if _, err := s.cmd(line); err != nil {
		return nil, err
	}
	lines, err := s.c.ReadDotLines()
	if err != nil {
		s.t.Fatal(err)
	}
	return lines, nil
}

// tree lists the files under dir with their sizes.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %d", p, fi.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// agentUIDs returns the uids (real, effective, saved, fs) and groups of
// the mailbox agents running under the mta's helper.
func agentUIDs(t *testing.T, p *proc) (ids [][]string, groups []string) {
	t.Helper()
	for _, h := range children(t, p.cmd.Process.Pid) {
		for _, c := range children(t, h) {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c))
			if strings.HasPrefix(string(cmdline), "mta-mailbox\x00") {
				u, g := procIDs(t, c)
				ids = append(ids, u)
				groups = append(groups, g)
			}
		}
	}
	return ids, groups
}

// TestPOP3SymlinkedMaildir (finding 1): a POP3 user whose Maildir/cur is
// a symbolic link to the home's users/ and new/ to its control/ (or
// whose new/, or whole Maildir, is a link to another user's) gets
// nothing of them: the session is refused or its maildrop is empty, no
// file there is listed (LIST, UIDL), read (RETR, TOP) or removed (DELE),
// whether the Maildir is read by an agent under the user's uid or, for
// the demo mailbox of the mta's own account, in-process. A user's normal
// Maildir is read and emptied.
func TestPOP3SymlinkedMaildir(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: POP3 users with uids of their own")
	}
	acct := testAccount(t)
	dir := scratch(t)
	home := filepath.Join(dir, "home")
	p := startMTAAs(t, home, false, "-user", acct.name)
	homes := addUsers(t, home, dir,
		localUser{name: "mallory", uid: 1611, password: "mallorypw"},
		localUser{name: "mallet", uid: 1613, password: "malletpw"},
		localUser{name: "trudy", uid: 1614, password: "trudypw"},
		localUser{name: "ursula", uid: 1612, password: "ursulapw"})
	// Mail for the demo mailbox, the other user whose files the links aim at.
	if err := mailtest.Send(p.smtp, "bob@example.org", []string{p.user + "@localhost"}, "Subject: for demo\r\n\r\nsecret for demo\r\n"); err != nil {
		t.Fatal(err)
	}
	waitCount(t, p.maildir, 1, p)
	demoHome := filepath.Dir(p.maildir)

	// link makes sub (a directory of a Maildir, or the Maildir itself) a
	// symbolic link to target, owned by uid.
	link := func(md, sub, target string, uid int) {
		t.Helper()
		path := filepath.Join(md, sub)
		if err := os.RemoveAll(path); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(path, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	// open opens a user's home and Maildir to all, so that a reader
	// running as the mta's account (whose group reads users/poppasswd and
	// the key) could lock the Maildir and follow the links.
	open := func(uhome string) {
		t.Helper()
		for d, mode := range map[string]os.FileMode{uhome: 0o755, filepath.Join(uhome, "Maildir"): 0o777} {
			if err := os.Chmod(d, mode); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
	}
	demoMD := p.maildir
	tests := []struct {
		name, user, pass string
		setup            func()
	}{
		{"cur to users, new to control", "mallory", "mallorypw", func() {
			md := filepath.Join(homes["mallory"], "Maildir")
			open(homes["mallory"])
			link(md, "cur", filepath.Join(home, "users"), 1611)
			link(md, "new", filepath.Join(home, "control"), 1611)
		}},
		{"new to another user's new", "mallet", "malletpw", func() {
			open(homes["mallet"])
			link(filepath.Join(homes["mallet"], "Maildir"), "new", filepath.Join(demoMD, "new"), 1613)
		}},
		{"Maildir to another user's", "trudy", "trudypw", func() {
			open(homes["trudy"])
			link(homes["trudy"], "Maildir", demoMD, 1614)
		}},
		{"in-process: the account's own mailbox, cur to users, new to control", p.user, p.password, func() {
			// Done last: it moves the demo mailbox's messages away.
			if err := os.Rename(filepath.Join(demoMD, "new"), filepath.Join(demoHome, "new.saved")); err != nil {
				t.Fatal(err)
			}
			link(demoMD, "cur", filepath.Join(home, "users"), acct.uid)
			link(demoMD, "new", filepath.Join(home, "control"), acct.uid)
		}},
	}
	snapshot := func() []string {
		var out []string
		for _, d := range []string{filepath.Join(home, "users"), filepath.Join(home, "control"), filepath.Join(demoHome, "Maildir", "new"), filepath.Join(demoHome, "new.saved")} {
			if _, err := os.Lstat(d); err == nil {
				fi, _ := os.Lstat(d)
				if fi.Mode()&os.ModeSymlink == 0 {
					out = append(out, tree(t, d)...)
				}
			}
		}
		return out
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup()
			before := snapshot()
			time.Sleep(1100 * time.Millisecond) // POP3 lists files older than the session's second
			s, err := pop3Login(t, p.pop3, tt.user, tt.pass)
			if err != nil {
				t.Logf("session refused: %v", err)
			} else {
				if list, err := s.multi("LIST"); err != nil || len(list) != 0 {
					t.Errorf("LIST: %q %v, want an empty maildrop", list, err)
				}
				if list, err := s.multi("UIDL"); err != nil || len(list) != 0 {
					t.Errorf("UIDL: %q %v, want an empty maildrop", list, err)
				}
				if r, err := s.cmd("STAT"); err != nil || !strings.HasPrefix(r, "+OK 0 0") {
					t.Errorf("STAT: %q %v, want +OK 0 0", r, err)
				}
				for _, cmd := range []string{"RETR 1", "TOP 1 10", "DELE 1", "LIST 1", "UIDL 1"} {
					if r, err := s.cmd(cmd); err == nil {
						t.Errorf("%s: %q, want -ERR", cmd, r)
						if strings.HasPrefix(cmd, "RETR") || strings.HasPrefix(cmd, "TOP") {
							s.c.ReadDotLines()
						}
					}
				}
				if _, err := s.cmd("QUIT"); err != nil {
					t.Errorf("QUIT: %v", err)
				}
			}
			if after := snapshot(); !slices.Equal(before, after) {
				t.Errorf("files changed:\nbefore %q\nafter  %q", before, after)
			}
		})
	}

	// A normal Maildir: delivered, read and emptied, as its owner.
	if err := mailtest.Send(p.smtp, "bob@example.org", []string{"ursula@localhost"}, "Subject: for ursula\r\n\r\nhello ursula\r\n"); err != nil {
		t.Fatal(err)
	}
	umd := filepath.Join(homes["ursula"], "Maildir")
	waitCount(t, umd, 1, p)
	time.Sleep(1100 * time.Millisecond)
	s, err := pop3Login(t, p.pop3, "ursula", "ursulapw")
	if err != nil {
		t.Fatalf("ursula: %v\n%s", err, p.stderr)
	}
	if ids, _ := agentUIDs(t, p); len(ids) != 1 || strings.Join(ids[0], " ") != "1612 1612 1612 1612" {
		t.Errorf("mailbox agents' uids %q, want one under 1612", ids)
	}
	lines, err := s.multi("RETR 1")
	if err != nil || !strings.Contains(strings.Join(lines, "\n"), "hello ursula") {
		t.Fatalf("RETR 1: %q %v", lines, err)
	}
	if _, err := s.cmd("DELE 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cmd("QUIT"); err != nil {
		t.Fatal(err)
	}
	if n := countMaildir(t, umd); n != 0 {
		t.Errorf("%d messages left after DELE and QUIT", n)
	}
	p.stop(t)
}

// TestNoUserCodeAsTheAccount (the acceptance): with the mta
// started as root, a user's delivery and POP3 session run under the
// user's uid only: the program line's `id`, the files it and the
// deliveries make (an mbox, the Maildir), the POP3 agent process and the
// files the session makes (pop3.lock, pop3sizes) all have the user's
// uid, and the program cannot read the home's private key.
func TestNoUserCodeAsTheAccount(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: a user with a uid of its own")
	}
	const uid = 1621
	acct := testAccount(t)
	dir := scratch(t)
	home := filepath.Join(dir, "home")
	p := startMTAAs(t, home, false, "-user", acct.name)
	key := filepath.Join(home, "control", "servercert.pem")
	dot := "|/usr/bin/id -u > ids; /usr/bin/id -g >> ids; /usr/bin/id -G >> ids; /bin/cat " + key + " > key 2>/dev/null || echo denied > keyresult\n./mbox\n./Maildir/\n"
	homes := addUsers(t, home, dir, localUser{name: "una", uid: uid, dotQmail: dot, password: "unapw"})
	uh := homes["una"]
	mbox := filepath.Join(uh, "mbox")
	if err := os.WriteFile(mbox, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(mbox, uid, uid)
	if err := mailtest.Send(p.smtp, "bob@example.org", []string{"una@localhost"}, "Subject: for una\r\n\r\nhello una\r\n"); err != nil {
		t.Fatal(err)
	}
	umd := filepath.Join(uh, "Maildir")
	waitCount(t, umd, 1, p)
	want := fmt.Sprintf("%d\n%d\n%d\n", uid, uid, uid)
	if b, err := os.ReadFile(filepath.Join(uh, "ids")); err != nil || string(b) != want {
		t.Errorf("the program ran as %q (%v), want %q", b, err, want)
	}
	if b, _ := os.ReadFile(filepath.Join(uh, "key")); strings.Contains(string(b), "PRIVATE KEY") {
		t.Errorf("the program read the key")
	}
	if b, err := os.ReadFile(filepath.Join(uh, "keyresult")); err != nil || string(b) != "denied\n" {
		t.Errorf("keyresult %q %v", b, err)
	}
	owned := func(path string) {
		t.Helper()
		fi, err := os.Lstat(path)
		if err != nil {
			t.Error(err)
			return
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != uid {
			t.Errorf("%s: uid %d gid %d, want %d", path, st.Uid, st.Gid, uid)
		}
	}
	for _, f := range []string{"ids", "key", "keyresult", "mbox"} {
		owned(filepath.Join(uh, f))
	}
	if b, _ := os.ReadFile(mbox); !strings.Contains(string(b), "hello una") {
		t.Errorf("mbox: %q", b)
	}
	msgs, _ := maildir.Dir(umd).List()
	for _, m := range msgs {
		owned(filepath.Join(umd, m.Path()))
	}

	time.Sleep(1100 * time.Millisecond)
	s, err := pop3Login(t, p.pop3, "una", "unapw")
	if err != nil {
		t.Fatalf("una: %v\n%s", err, p.stderr)
	}
	ids, groups := agentUIDs(t, p)
	if len(ids) != 1 || strings.Join(ids[0], " ") != "1621 1621 1621 1621" || groups[0] != "" {
		t.Errorf("mailbox agents' uids %q groups %q, want one under %d with no groups", ids, groups, uid)
	}
	if _, err := s.multi("LIST"); err != nil {
		t.Fatal(err)
	}
	if lines, err := s.multi("RETR 1"); err != nil || !strings.Contains(strings.Join(lines, "\n"), "hello una") {
		t.Fatalf("RETR 1: %q %v", lines, err)
	}
	owned(filepath.Join(umd, "pop3.lock"))
	owned(filepath.Join(umd, "pop3sizes"))
	s.cmd("DELE 1")
	if _, err := s.cmd("QUIT"); err != nil {
		t.Fatal(err)
	}
	if n := countMaildir(t, umd); n != 0 {
		t.Errorf("%d messages left after DELE and QUIT", n)
	}
	p.stop(t)
}

// pidsOf returns the processes running under uid.
func pidsOf(uid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/status")
	var out []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) == 5 && f[0] == "Uid:" && f[1] == strconv.Itoa(uid) {
				if st, err := os.ReadFile(filepath.Join(filepath.Dir(p), "stat")); err == nil && strings.Contains(string(st[strings.LastIndexByte(string(st), ')')+1:]), " Z ") {
					continue // a zombie has ended
				}
				n, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				out = append(out, n)
			}
		}
	}
	return out
}

// stubborn is a .qmail program line that says it started, ignores
// SIGTERM and never ends, in a background child too.
const stubborn = "|touch started; trap '' TERM; (trap '' TERM; while :; do sleep 1; done) & while :; do sleep 1; done\n"

// TestStopWithStubbornDelivery (finding 3): a user's program that never
// ends and ignores SIGTERM does not keep the mta from stopping within its
// grace period, and is killed with everything it started.
func TestStopWithStubbornDelivery(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: a user with a uid of its own")
	}
	const uid = 1631
	acct := testAccount(t)
	dir := scratch(t)
	home := filepath.Join(dir, "home")
	const grace = 2 * time.Second
	p := startMTAAs(t, home, false, "-user", acct.name, "-grace", grace.String())
	homes := addUsers(t, home, dir, localUser{name: "stella", uid: uid, dotQmail: stubborn})
	if err := mailtest.Send(p.smtp, "bob@example.org", []string{"stella@localhost"}, "Subject: x\r\n\r\nhello\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(homes["stella"], "started"), p)
	start := time.Now()
	p.signal(t, syscall.SIGTERM)
	if err := p.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.stderr)
	}
	// The grace period, then a few seconds for the helper to kill and
	// reap (a qmail-local child's output is waited for 5 s at most).
	if took := time.Since(start); took > grace+10*time.Second {
		t.Errorf("the mta took %v to stop, grace %v", took, grace)
	}
	waitNoProcesses(t, uid, p)
}

// TestDeliveryTimeLimit (finding 3): a delivery whose program never ends
// is killed at -deliverytimeout, with everything it started, and
// deferred.
func TestDeliveryTimeLimit(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: a user with a uid of its own")
	}
	const uid = 1632
	acct := testAccount(t)
	dir := scratch(t)
	home := filepath.Join(dir, "home")
	p := startMTAAs(t, home, false, "-user", acct.name, "-deliverytimeout", "2s")
	homes := addUsers(t, home, dir, localUser{name: "tess", uid: uid, dotQmail: stubborn})
	if err := mailtest.Send(p.smtp, "bob@example.org", []string{"tess@localhost"}, "Subject: x\r\n\r\nhello\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(homes["tess"], "started"), p)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.stderr.String(), "deferral: ") {
		if time.Now().After(deadline) {
			t.Fatalf("no deferral:\n%s", p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitNoProcesses(t, uid, p)
	p.stop(t)
}

func waitFile(t *testing.T, path string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 30 s:\n%s", path, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitNoProcesses fails unless every process of uid is gone within 10 s
// (and kills them then).
func waitNoProcesses(t *testing.T, uid int, p *proc) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := pidsOf(uid)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("processes of uid %d still running: %v\n%s", uid, pids, p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStopWithStubbornInProcessDelivery (finding 3): a delivery the mta
// makes in-process (to its own user, here the demo mailbox of an mta
// started as an ordinary user) whose program never ends and ignores
// SIGTERM does not keep the mta from stopping within its grace period:
// the program's process group is killed, the message stays queued and is
// delivered, once, at the next start.
func TestStopWithStubbornInProcessDelivery(t *testing.T) {
	home := filepath.Join(scratch(t), "home")
	const grace = 2 * time.Second
	p := startMTA(t, home, "-grace", grace.String())
	uhome := filepath.Dir(p.maildir)
	dot := filepath.Join(uhome, ".qmail")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(dot, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if os.Getuid() == 0 {
			os.Chown(dot, 65534, 65534) // the mta runs as nobody
		}
	}
	write("|echo $$ > pid; trap '' TERM; (trap '' TERM; while :; do sleep 1; done) & while :; do sleep 1; done\n")
	if err := mailtest.Send(p.smtp, "bob@example.org", []string{p.user + "@localhost"}, "Subject: stuck\r\n\r\nhello\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(uhome, "pid"), p)
	var pgid int
	for range 100 {
		b, _ := os.ReadFile(filepath.Join(uhome, "pid"))
		if pgid, _ = strconv.Atoi(strings.TrimSpace(string(b))); pgid > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pgid <= 0 {
		t.Fatal("no pid written")
	}
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	start := time.Now()
	p.signal(t, syscall.SIGTERM)
	if err := p.wait(t); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.stderr)
	}
	if took := time.Since(start); took > grace+5*time.Second {
		t.Errorf("the mta took %v to stop, grace %v", took, grace)
	}
	if len(mailtest.GroupMembers(pgid)) > 0 {
		t.Errorf("the program's process group %d is still running", pgid)
	}
	if n := strings.Count(p.stderr.String(), "grace period over"); n != 1 {
		t.Errorf("%d log lines for the end of the grace period, want 1:\n%s", n, p.stderr)
	}
	cut := 0
	for line := range strings.Lines(p.stderr.String()) {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "local delivery cut at the end of the grace period") && strings.Contains(line, "recipient="+p.user+"@localhost") {
			cut++
		}
	}
	if cut != 1 {
		t.Errorf("%d log lines for the delivery cut, want 1 with its recipient:\n%s", cut, p.stderr)
	}
	// Still queued: its local channel file, whose mtime is the next
	// attempt's time, made due now.
	local, _ := filepath.Glob(filepath.Join(home, "queue", "local", "*", "*"))
	if len(local) != 1 {
		t.Fatalf("local channel files after the stop: %q, want the message's\n%s", local, p.stderr)
	}
	past := time.Now().Add(-time.Hour)
	if err := os.Chtimes(local[0], past, past); err != nil {
		t.Fatal(err)
	}
	if n := countMaildir(t, p.maildir); n != 0 {
		t.Fatalf("%d messages delivered before the restart", n)
	}

	write("./Maildir/\n")
	md := p.maildir
	p = startMTA(t, home, "-grace", grace.String())
	waitCount(t, md, 1, p)
	time.Sleep(time.Second)
	p.stop(t)
	if n := countMaildir(t, md); n != 1 {
		t.Errorf("%d messages delivered, want 1", n)
	}
}
