package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/aliases"
	"github.com/qmailkit/qmailkit/assign"
	"github.com/qmailkit/qmailkit/internal/mailtest"
	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/smtpserver/smtptest"
)

// tools is the directory of the programs build builds beside the mta.
func tools(t *testing.T) string {
	t.Helper()
	return filepath.Dir(build(t))
}

// chownTree gives dir and everything in it to uid, gid.
func chownTree(t *testing.T, dir string, uid, gid int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err == nil {
			err = os.Lchown(p, uid, gid)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitMessage waits until the Maildir md holds a message containing each
// of wants, and fails with the Maildir's messages otherwise.
func waitMessage(t *testing.T, md string, p *proc, wants ...string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var seen []string
	for {
		seen = readMaildir(t, md)
		for _, b := range seen {
			ok := true
			for _, w := range wants {
				ok = ok && strings.Contains(b, w)
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no message with %q after 60 s; messages:\n%s\nstderr:\n%s", md, wants, strings.Join(seen, "\n----\n"), p.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestForwards: the forwards of a user's .qmail files are queued whoever
// runs the delivery: an ordinary user's mta delivering in-process (as
// nobody here), and a root mta delivering in qmail-local children under
// the user's uid, which may not write the queue. &user, &remote@domain,
// |forward and |condredirect (programs that queue through $QMAILQUEUE), a list with an
// owner (VERP) and a forwarding loop each give qmail's result.
func TestForwards(t *testing.T) {
	t.Run("user", func(t *testing.T) { testForwards(t, false) })
	t.Run("root", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("needs root: deliveries under users' uids")
		}
		testForwards(t, true)
	})
}

func testForwards(t *testing.T, root bool) {
	relay := smtptest.NewServer(t)
	forward := filepath.Join(tools(t), "forward")
	dir := scratch(t)
	home := filepath.Join(dir, "home")
	var p *proc
	var local, userDir string
	uid := os.Getuid()
	if root {
		acct := testAccount(t)
		p = startMTAAs(t, home, false, "-user", acct.name)
		// joe: uid 1601, delivered in qmail-local children.
		uid, local = 1601, "joe"
		userDir = filepath.Join(dir, "joe")
		if err := os.Mkdir(userDir, 0o755); err != nil {
			t.Fatal(err)
		}
		assignPath := filepath.Join(home, "users", "assign")
		old, err := os.ReadFile(assignPath)
		if err != nil {
			t.Fatal(err)
		}
		entry := fmt.Sprintf("=joe:joe:1601:1601:%[1]s:::\n+joe-:joe:1601:1601:%[1]s:-::\n", userDir)
		if err := os.WriteFile(assignPath, append([]byte(entry), old...), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := assign.CompileFile(assignPath, filepath.Join(home, "users", "cdb")); err != nil {
			t.Fatal(err)
		}
	} else {
		p = startMTA(t, home) // as nobody when the test is root
		if uid == 0 {
			uid = 65534
		}
		// The demo user: its extensions, in-process.
		local = p.user
		userDir = filepath.Dir(p.maildir)
	}
	dotqmail := map[string]string{
		"user":               "&" + local + "-box\n",
		"remote":             "&bob@remote.test\n",
		"prog":               "|" + forward + " " + local + "-box2@localhost\n",
		"cond":               "|" + filepath.Join(tools(t), "condredirect") + " " + local + "-box3@localhost true\n",
		"box3":               "./box3/\n",
		"list":               "&" + local + "-member@localhost\n",
		"list-owner":         "./owner/\n",
		"list-owner-default": "./owner/\n",
		"loop":               "&" + local + "-loop@localhost\n",
		"box":                "./box/\n",
		"box2":               "./box2/\n",
		"member":             "./member/\n",
		"bounces":            "./bounces/\n",
	}
	for ext, data := range dotqmail {
		if err := os.WriteFile(filepath.Join(userDir, ".qmail-"+ext), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"box", "box2", "box3", "member", "bounces", "owner"} {
		if _, err := maildir.Create(filepath.Join(userDir, d)); err != nil {
			t.Fatal(err)
		}
	}
	if os.Getuid() == 0 {
		chownTree(t, userDir, uid, uid)
	}
	// Remote mail for remote.test goes to the relay; the mta rereads
	// smtproutes at SIGHUP.
	if err := os.WriteFile(filepath.Join(home, "control", "smtproutes"), []byte("remote.test:"+relay.Addr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(t, syscall.SIGHUP)
	sender := local + "-bounces@localhost"
	for _, ext := range []string{"user", "remote", "prog", "cond", "list", "loop"} {
		if err := mailtest.Send(p.smtp, sender, []string{local + "-" + ext + "@localhost"}, "Subject: "+ext+"\r\n\r\nto "+ext+"\r\n"); err != nil {
			t.Fatalf("%s: %v", ext, err)
		}
	}
	md := func(d string) string { return filepath.Join(userDir, d) }
	invoked := " invoked by uid " + strconv.Itoa(uid) + ")"
	// &user: a local forward.
	waitMessage(t, md("box"), p, "Subject: user\n", "Delivered-To: "+local+"-user@localhost\n", "Return-Path: <"+sender+">\n", invoked)
	// |forward, with the delivery's environment (QMAILQUEUE, NEWSENDER).
	waitMessage(t, md("box2"), p, "Subject: prog\n", "Delivered-To: "+local+"-prog@localhost\n", "Return-Path: <"+sender+">\n", invoked)
	// |condredirect, whose program (true) says yes.
	waitMessage(t, md("box3"), p, "Subject: cond\n", "Delivered-To: "+local+"-cond@localhost\n", invoked)
	// A list with an owner: VERP.
	waitMessage(t, md("member"), p, "Subject: list\n", "Return-Path: <"+local+"-list-owner-"+local+"-member=localhost@localhost>\n")
	// The loop bounces to the sender with qmail-local's text.
	waitMessage(t, md("bounces"), p, "<"+local+"-loop@localhost>:\nThis message is looping: it already has my Delivered-To line. (#5.4.6)\n")
	// &bob@remote.test: sent.
	got := relay.WaitMessages(1, 60*time.Second)
	if len(got) != 1 || got[0].From != sender || len(got[0].To) != 1 || got[0].To[0] != "bob@remote.test" ||
		!strings.Contains(string(got[0].Data), "Delivered-To: "+local+"-remote@localhost") {
		t.Fatalf("relay: %+v\nstderr:\n%s", got, p.stderr)
	}
	if strings.Contains(p.stderr.String(), "qq_trouble") {
		t.Errorf("a forward failed:\n%s", p.stderr)
	}
}

// TestCommandLine: sendmail and qmail-inject of examples/, run with
// QMAILHOME, put a message in the demo Maildir through the running mta's
// bin/qmail-queue, as the mta's banner says: as the mta's own user, and as
// any local user for a root mta. "To: demo" is completed to the local
// domain. With an ordinary user's mta stopped, the message is queued
// anyway and delivered at the next start.
func TestCommandLine(t *testing.T) {
	bin := tools(t)
	run := func(t *testing.T, uid int, home, prog string, args []string, stdin string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, prog), args...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "QMAILHOME=" + home}
		cmd.Dir = "/"
		cmd.Stdin = strings.NewReader(stdin)
		if uid != os.Getuid() {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", prog, args, err, out)
		}
	}
	t.Run("user", func(t *testing.T) {
		home := filepath.Join(scratch(t), "home")
		p := startMTA(t, home)
		uid := os.Getuid()
		if uid == 0 {
			uid = 65534
		}
		if !strings.Contains(p.banner, "| "+home+"/bin/qmail-inject\n") || !strings.Contains(p.banner, "| "+home+"/bin/sendmail -t\n") {
			t.Errorf("the banner does not say how to use qmail-inject and sendmail:\n%s", p.banner)
		}
		run(t, uid, home, "qmail-inject", nil, "To: "+p.user+"\nSubject: by qmail-inject\n\nhi\n")
		run(t, uid, home, "sendmail", []string{"-t"}, "To: "+p.user+"\nSubject: by sendmail\n\nhi\n")
		waitMessage(t, p.maildir, p, "Subject: by qmail-inject\n", "Delivered-To: "+p.user+"@localhost.localdomain\n")
		waitMessage(t, p.maildir, p, "Subject: by sendmail\n")
		// The home's own, as the banner says, without QMAILHOME.
		for _, prog := range []string{"qmail-inject", "sendmail"} {
			cmd := exec.Command(filepath.Join(home, "bin", prog), "-t")
			if prog == "qmail-inject" {
				cmd.Args = cmd.Args[:1]
			}
			cmd.Env = []string{"PATH=/usr/bin:/bin"}
			cmd.Stdin = strings.NewReader("To: " + p.user + "\nSubject: home's " + prog + "\n\nhi\n")
			if uid != os.Getuid() {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", cmd.Path, err, out)
			}
			waitMessage(t, p.maildir, p, "Subject: home's "+prog+"\n")
		}
		// Stopped: qmail-inject queues directly, the next start delivers.
		run(t, uid, home, "qmail-inject", nil, "To: "+p.user+"\nSubject: while stopped\n\nhi\n")
		md := p.maildir
		if os.Getuid() == 0 {
			// Another uid may not use an ordinary user's mta (socket mode
			// 600), nor write its queue.
			cmd := exec.Command(filepath.Join(bin, "qmail-inject"))
			cmd.Env = []string{"PATH=/usr/bin:/bin", "QMAILHOME=" + home}
			cmd.Stdin = strings.NewReader("To: " + p.user + "\nSubject: intruder\n\nhi\n")
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1602, Gid: 1602, Groups: []uint32{}}}
			if out, err := cmd.CombinedOutput(); err == nil || cmd.ProcessState.ExitCode() != 111 {
				t.Errorf("qmail-inject by uid 1602 into nobody's mta: %v, %s", err, out)
			}
		}
		p.stop(t)
		waitMessage(t, md, p, "Subject: while stopped\n")
		for _, m := range readMaildir(t, md) {
			if strings.Contains(m, "intruder") {
				t.Errorf("uid 1602's message was delivered")
			}
		}
	})
	t.Run("root", func(t *testing.T) {
		if os.Getuid() != 0 {
			t.Skip("needs root")
		}
		acct := testAccount(t)
		home := filepath.Join(scratch(t), "home")
		p := startMTAAs(t, home, false, "-user", acct.name)
		// Any local user: uid 1602 has nothing to do with the mta.
		run(t, 1602, home, "qmail-inject", nil, "To: "+p.user+"\nSubject: by uid 1602\n\nhi\n")
		run(t, 1602, home, "sendmail", []string{"-t"}, "To: "+p.user+"\nSubject: sendmail by uid 1602\n\nhi\n")
		waitMessage(t, p.maildir, p, "Subject: by uid 1602\n", " invoked by uid 1602)")
		waitMessage(t, p.maildir, p, "Subject: sendmail by uid 1602\n", " invoked by uid 1602)")
	})
}

// readMaildir returns the messages of the Maildir md.
func readMaildir(t *testing.T, md string) []string {
	t.Helper()
	msgs, err := maildir.Dir(md).List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		if b, err := os.ReadFile(filepath.Join(md, m.Path())); err == nil {
			out = append(out, string(b))
		}
	}
	return out
}

// TestAliases: with -aliases, /etc/aliases (compiled by newaliases into
// a fastforward database) serves the alias user: an alias to the demo
// user and to a remote address is delivered and sent, an unknown name is
// refused at RCPT, and alias/.qmail-NAME files still win.
func TestAliases(t *testing.T) {
	relay := smtptest.NewServer(t)
	dir := scratch(t)
	home := filepath.Join(dir, "home")
	db := filepath.Join(dir, "aliases.cdb")
	p := startMTA(t, home, "-aliases", db)
	want := "|" + filepath.Join(home, "bin", "fastforward") + " -d " + db + "\n"
	if b, err := os.ReadFile(filepath.Join(home, "alias", ".qmail-default")); err != nil || string(b) != want {
		t.Fatalf("alias/.qmail-default: %q, %v; want %q", b, err, want)
	}
	if fi, err := os.Lstat(filepath.Join(home, "bin", "fastforward")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("bin/fastforward: %v, %v", fi, err)
	}
	c, err := aliases.LoadControls(home)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "aliases")
	text := "team: " + p.user + ", bob@remote.test\nowner-team: " + p.user + "\npostmaster: nobody@remote.test\n"
	if err := os.WriteFile(src, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := aliases.CompileFile(src, db+".tmp", db, c); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "control", "smtproutes"), []byte("remote.test:"+relay.Addr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(t, syscall.SIGHUP)
	if err := mailtest.Send(p.smtp, "a@example.org", []string{"nosuch@localhost"}, "Subject: x\r\n\r\nx\r\n"); err == nil || !strings.Contains(err.Error(), "550") {
		t.Errorf("unknown name: %v, want 550 at RCPT", err)
	}
	if err := mailtest.Send(p.smtp, "a@example.org", []string{"Team@localhost"}, "Subject: to the team\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := mailtest.Send(p.smtp, "a@example.org", []string{"postmaster@localhost"}, "Subject: to postmaster\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	// fastforward adds the delivery's Delivered-To line; the owner
	// record makes owner-team the sender.
	waitMessage(t, p.maildir, p, "Subject: to the team\n", "Delivered-To: Team@localhost\n",
		"Return-Path: <owner-team@localhost.localdomain>\n")
	// alias/.qmail-postmaster (the home's) wins over the database.
	waitMessage(t, p.maildir, p, "Subject: to postmaster\n")
	got := relay.WaitMessages(1, 60*time.Second)
	if len(got) != 1 || got[0].To[0] != "bob@remote.test" || got[0].From != "owner-team@localhost.localdomain" {
		t.Fatalf("relay: %+v\nstderr:\n%s", got, p.stderr)
	}
	// A new database renamed over the old one (as newaliases does) is
	// read at the next RCPT.
	if err := os.WriteFile(src, []byte(text+"crew: "+p.user+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := aliases.CompileFile(src, db+".tmp", db, c); err != nil {
		t.Fatal(err)
	}
	if err := mailtest.Send(p.smtp, "a@example.org", []string{"crew@localhost"}, "Subject: to the crew\r\n\r\nhi\r\n"); err != nil {
		t.Fatalf("an alias of the new database: %v", err)
	}
	waitMessage(t, p.maildir, p, "Subject: to the crew\n")
}
