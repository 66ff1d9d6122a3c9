package daemontools

import (
	"bufio"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/internal/account"
	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/queue"
	"github.com/qmailkit/qmailkit/tcprules"
)

// The accounts of a qmail installation, in a passwd and group of the
// test's own (account.Command), and joe, who receives mail.
const (
	qmaild, qmaill, joe = 7791, 7792, 7799
	nofiles, qmailGID   = 2107, 2108
)

func passwd(dir string) string {
	return fmt.Sprintf("root:x:0:0::/root:/bin/sh\n"+
		"alias:x:7790:%[1]d::%[2]s/qmail/alias:/bin/true\n"+
		"qmaild:x:%[3]d:%[1]d::%[2]s/qmail:/bin/true\n"+
		"qmaill:x:%[4]d:%[1]d::%[2]s/qmail:/bin/true\n"+
		"qmailp:x:7793:%[1]d::%[2]s/qmail:/bin/true\n"+
		"qmailq:x:7794:%[5]d::%[2]s/qmail:/bin/true\n"+
		"qmailr:x:7795:%[5]d::%[2]s/qmail:/bin/true\n"+
		"qmails:x:7796:%[5]d::%[2]s/qmail:/bin/true\n"+
		"joe:x:%[6]d:%[6]d::%[2]s/joe:/bin/sh\n",
		nofiles, dir, qmaild, qmaill, qmailGID, joe)
}

func group() string {
	return fmt.Sprintf("root:x:0:\nnofiles:x:%d:\nqmail:x:%d:\njoe:x:%d:\n", nofiles, qmailGID, joe)
}

// service copies the run scripts of name into dir, with the variables
// the set map names replaced.
func service(t *testing.T, dir, name string, set map[string]string) {
	t.Helper()
	for _, f := range []string{"run", "log/run"} {
		b, err := os.ReadFile(filepath.Join(name, f))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, line := range strings.Split(string(b), "\n") {
			if k, _, ok := strings.Cut(line, "="); ok && !strings.ContainsAny(k, " \t$`") {
				if v, ok := set[k]; ok {
					line = k + "=" + v
				}
			}
			out = append(out, line)
		}
		p := filepath.Join(dir, name, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(strings.Join(out, "\n")), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// TestUnderSvscan: qmail-send, qmail-smtpd and qmail-pop3d start under a
// real svscan from the scripts here, log through multilog, take a message
// by SMTP into joe's Maildir and serve it by POP3; svc -h reloads
// qmail-send and svc -d stops it, and mail sent around a stop and a start
// arrives once each.
func TestUnderSvscan(t *testing.T) {
	for _, p := range []string{"svscan", "svc", "multilog", "setuidgid", "softlimit", "tcpserver", "tcprules"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("no %s (Debian's daemontools and ucspi-tcp; .ci/run installs them)", p)
		}
	}
	if why := account.CanIsolate(); why != "" {
		t.Skip(why)
	}
	dir, err := os.MkdirTemp("", "daemontools-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	home := filepath.Join(dir, "qmail")
	bin := filepath.Join(home, "bin")
	os.MkdirAll(bin, 0o755)
	if out, err := exec.Command("go", "build", "-o", bin+"/", "../qmail-start", "../qmail-send", "../qmail-local",
		"../qmail-queue", "../qmail-smtpd", "../qmail-popup", "../qmail-pop3d", "../checkpassword", "../qmail-newu").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	files := map[string]string{
		"control/me":              "dt.test\n",
		"control/locals":          "dt.test\n",
		"control/rcpthosts":       "dt.test\n",
		"users/assign":            fmt.Sprintf("=joe:joe:%[1]d:%[1]d:%[2]s/joe:::\n.\n", joe, dir),
		"users/poppasswd":         fmt.Sprintf("joe:{PLAIN}secret:%[1]d:%[1]d::%[2]s/joe:/bin/sh\n", joe, dir),
		"alias/.qmail-postmaster": "joe\n",
	}
	for name, text := range files {
		p := filepath.Join(home, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(home, "users", "poppasswd"), 0o600)
	newu := exec.Command(filepath.Join(bin, "qmail-newu"))
	newu.Env = []string{"QMAILHOME=" + home}
	if out, err := newu.CombinedOutput(); err != nil {
		t.Fatalf("qmail-newu: %v\n%s", err, out)
	}
	rules := filepath.Join(home, "control", "tcp.smtp.cdb")
	if err := tcprules.CompileFile(rules, rules+".tmp", strings.NewReader("127.:allow,RELAYCLIENT=\"\"\n:allow\n")); err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(filepath.Join(home, "queue"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	md := filepath.Join(dir, "joe", "Maildir")
	os.MkdirAll(filepath.Join(dir, "joe"), 0o755)
	if _, err := maildir.Create(md); err != nil {
		t.Fatal(err)
	}
	if err := chownR(filepath.Join(dir, "joe"), joe, joe); err != nil {
		t.Fatal(err)
	}
	logs := filepath.Join(dir, "log")
	for _, d := range []string{logs, filepath.Join(logs, "smtpd"), filepath.Join(logs, "pop3d")} {
		os.MkdirAll(d, 0o755)
		os.Chown(d, qmaill, nofiles)
	}
	smtpPort, popPort := freePort(t), freePort(t)
	svc := filepath.Join(dir, "service")
	service(t, svc, "qmail-send", map[string]string{"QMAIL": home, "LOGDIR": logs})
	service(t, svc, "qmail-smtpd", map[string]string{"QMAIL": home, "LISTEN": "127.0.0.1", "PORT": smtpPort, "RULES": rules, "LOGDIR": filepath.Join(logs, "smtpd")})
	service(t, svc, "qmail-pop3d", map[string]string{"QMAIL": home, "LISTEN": "127.0.0.1", "PORT": popPort, "CHECKPASSWORD": filepath.Join(bin, "checkpassword"), "LOGDIR": filepath.Join(logs, "pop3d")})
	pw, gr := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	os.WriteFile(pw, []byte(passwd(dir)), 0o644)
	os.WriteFile(gr, []byte(group()), 0o644)

	scan := account.Command(pw, gr, "svscan", svc)
	scan.Env = []string{"PATH=/usr/bin:/bin"}
	scan.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var scanOut strings.Builder
	scan.Stdout, scan.Stderr = &scanOut, &scanOut
	if err := scan.Start(); err != nil {
		t.Fatal(err)
	}
	svcCmd := func(args ...string) {
		t.Helper()
		cmd := account.Command(pw, gr, "svc", args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("svc %q: %v\n%s", args, err, out)
		}
	}
	defer func() {
		// Down every service and its log, then svscan itself.
		for _, s := range []string{"qmail-send", "qmail-smtpd", "qmail-pop3d"} {
			exec.Command("svc", "-dx", filepath.Join(svc, s), filepath.Join(svc, s, "log")).Run()
		}
		time.Sleep(500 * time.Millisecond)
		syscall.Kill(-scan.Process.Pid, syscall.SIGTERM)
		scan.Wait()
		if t.Failed() {
			for _, f := range []string{"current", "smtpd/current", "pop3d/current"} {
				b, _ := os.ReadFile(filepath.Join(logs, f))
				t.Logf("log/%s:\n%s", f, b)
			}
			t.Logf("svscan:\n%s", scanOut.String())

		}
	}()

	smtpAddr, popAddr := "127.0.0.1:"+smtpPort, "127.0.0.1:"+popPort
	waitPort(t, smtpAddr)
	waitPort(t, popAddr)
	send := func(subject string) {
		t.Helper()
		var err error
		for try := 0; try < 100; try++ { // qmail-send may still be starting
			if err = smtp.SendMail(smtpAddr, nil, "ann@example.org", []string{"joe@dt.test"}, []byte("Subject: "+subject+"\r\n\r\nhello\r\n")); err == nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("SMTP: %v", err)
	}
	send("one")
	waitMaildir(t, md, 1)
	time.Sleep(1100 * time.Millisecond) // qmail-pop3d lists messages older than its session's second
	if got := pop3Retr(t, popAddr, "joe", "secret"); !strings.Contains(got, "Subject: one") {
		t.Errorf("POP3 RETR 1:\n%s", got)
	}

	// The logs went through multilog (a TAI64N stamp on each line).
	stamp := regexp.MustCompile(`(?m)^@4[0-9a-f]{23} `)
	for f, want := range map[string]string{"current": "delivery 1: success", "smtpd/current": "tcpserver: ok", "pop3d/current": "tcpserver: ok"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			b, _ := os.ReadFile(filepath.Join(logs, f))
			if strings.Contains(string(b), want) && stamp.Match(b) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("log/%s has no stamped %q:\n%s", f, want, b)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// svc -h: qmail-send rereads its control files.
	os.WriteFile(filepath.Join(home, "control", "locals"), []byte("dt.test\nother.test\n"), 0o644)
	svcCmd("-h", filepath.Join(svc, "qmail-send"))
	// other.test is local now: joe@other.test is joe's (127.0.0.1 may relay).
	time.Sleep(500 * time.Millisecond)
	if err := smtp.SendMail(smtpAddr, nil, "ann@example.org", []string{"joe@other.test"}, []byte("Subject: reloaded\r\n\r\nhello\r\n")); err != nil {
		t.Fatalf("SMTP: %v", err)
	}
	waitMaildir(t, md, 2)
	// svc -d, then mail while it is down, then svc -u: each message once.
	// While qmail-send is down, qmail-queue has no way into the queue
	// (it is not setuid: it hands messages to qmail-send), so SMTP
	// answers 451 and the client tries again: nothing is acknowledged
	// that is not queued.
	svcCmd("-d", filepath.Join(svc, "qmail-send"))
	time.Sleep(time.Second)
	err = smtp.SendMail(smtpAddr, nil, "ann@example.org", []string{"joe@dt.test"}, []byte("Subject: two\r\n\r\nhello\r\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "451 ") {
		t.Errorf("SMTP while qmail-send is down: %v, want 451", err)
	}
	svcCmd("-u", filepath.Join(svc, "qmail-send"))
	send("two")
	send("three")
	msgs := waitMaildir(t, md, 4)
	for _, s := range []string{"Subject: one", "Subject: reloaded", "Subject: two", "Subject: three"} {
		n := 0
		for _, m := range msgs {
			if strings.Contains(m, s) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%q arrived %d times", s, n)
		}
	}
}

func waitPort(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after 30 s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitMaildir(t *testing.T, md string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		names, _ := maildir.Dir(md).List()
		if len(names) >= n {
			var out []string
			for _, name := range names {
				f, err := maildir.Dir(md).OpenMessage(name)
				if err != nil {
					t.Fatal(err)
				}
				b := new(strings.Builder)
				bufio.NewReader(f).WriteTo(b)
				f.Close()
				out = append(out, b.String())
			}
			if len(out) > n {
				t.Fatalf("%d messages, want %d", len(out), n)
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages in %s after 30 s, want %d", len(names), md, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func pop3Retr(t *testing.T, addr, user, pass string) string {
	t.Helper()
	c, err := textproto.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line := func(cmd string) string {
		if cmd != "" {
			c.PrintfLine("%s", cmd)
		}
		l, err := c.ReadLine()
		if err != nil || !strings.HasPrefix(l, "+OK") {
			t.Fatalf("POP3 %q: %q %v", cmd, l, err)
		}
		return l
	}
	line("")
	line("USER " + user)
	line("PASS " + pass)
	line("RETR 1")
	lines, err := c.ReadDotLines()
	if err != nil {
		t.Fatal(err)
	}
	line("QUIT")
	return strings.Join(lines, "\n")
}

func chownR(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
