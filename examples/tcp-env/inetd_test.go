package main

import (
	"context"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/maildir"
	"github.com/qmailkit/qmailkit/queue"
)

// TestUnderInetd: Debian's openbsd-inetd runs qmail-smtpd under tcp-env
// on a loopback port, as the inetd.conf line qmail's documentation gives
// ("smtp stream tcp nowait qmaild /var/qmail/bin/tcp-env tcp-env
// /var/qmail/bin/qmail-smtpd"), and a message sent to it is queued, its
// Received line naming the client as tcp-env set it.
func TestUnderInetd(t *testing.T) {
	inetd := findInetd(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if out, err := exec.Command("go", "build", "-o", bin+"/", ".", "../qmail-smtpd", "../qmail-queue").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	home := filepath.Join(dir, "qmail")
	for name, text := range map[string]string{"me": "inetd.test\n", "rcpthosts": "inetd.test\n"} {
		p := filepath.Join(home, "control", name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	q, err := queue.Open(filepath.Join(home, "queue"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	os.MkdirAll(filepath.Join(home, "bin"), 0o755)
	if err := os.Symlink(filepath.Join(bin, "qmail-queue"), filepath.Join(home, "bin", "qmail-queue")); err != nil {
		t.Fatal(err)
	}

	// env(1) puts QMAILHOME in the environment inetd gives (as a qmail
	// installation would have it in /var/qmail, the default).
	addr, out := startInetd(t, inetd, dir, fmt.Sprintf("/usr/bin/env env QMAILHOME=%s %s/tcp-env -R %s/qmail-smtpd", home, bin, bin))
	// That probe was a connection too: qmail-smtpd ran for it and saw it
	// go. Now a message.
	if err := smtp.SendMail(addr, nil, "joe@client.test", []string{"bob@inetd.test"}, []byte("Subject: via inetd\r\n\r\nhello\r\n")); err != nil {
		t.Fatalf("SMTP through inetd: %v\n%s", err, out.String())
	}
	q, err = queue.Open(filepath.Join(home, "queue"), queue.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	st, err := q.Stat()
	if err != nil || st.Messages != 1 {
		t.Fatalf("queue: %+v %v, want 1 message", st, err)
	}
	// tcp-env's names for 127.0.0.1 (what the system's resolver says),
	// which qmail-smtpd puts in the Received line.
	host := "unknown"
	if names, err := net.DefaultResolver.LookupAddr(context.Background(), "127.0.0.1"); err == nil && len(names) > 0 {
		host = strings.ToLower(strings.TrimSuffix(names[0], "."))
	}
	var found bool
	filepath.Walk(filepath.Join(home, "queue", "mess"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			by := host
			if host == "unknown" {
				by = "127.0.0.1" // qmail-smtpd: TCPLOCALHOST, else TCPLOCALIP
			}
			found = strings.Contains(string(b), "Received: from "+host+" ") && strings.Contains(string(b), "(127.0.0.1)\n  by "+by+" with SMTP")
			if !found {
				t.Errorf("queued message:\n%s", b)
			}
		}
		return nil
	})
	if !found {
		t.Error("no queued message with the Received line tcp-env's variables give")
	}
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// findInetd returns Debian's inetd, or skips the test.
func findInetd(t *testing.T) string {
	t.Helper()
	inetd, err := exec.LookPath("inetd")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/inetd"); err2 != nil {
			t.Skip("no inetd (Debian's openbsd-inetd; .ci/run installs it)")
		}
		inetd = "/usr/sbin/inetd"
	}
	if os.Geteuid() != 0 {
		t.Skip("inetd needs root")
	}
	return inetd
}

// startInetd runs inetd in the foreground with one service, as root, on a
// free loopback port: server is the program and its arguments (argv[0]
// included, as inetd.conf has them); it returns the address once inetd
// listens there, and inetd's output.
func startInetd(t *testing.T, inetd, dir, server string) (string, *syncBuffer) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	f := strings.Fields(server)
	line := fmt.Sprintf("%s stream tcp nowait root %s %s\n", addr, f[0], strings.Join(f[1:], " "))
	conf := filepath.Join(dir, "inetd.conf")
	if err := os.WriteFile(conf, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(inetd, "-d", conf) // -d: in the foreground
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr, out
		}
		if time.Now().After(deadline) {
			t.Fatalf("inetd does not listen on %s:\n%s", addr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPOP3UnderInetd: qmail-popup, checkpassword and qmail-pop3d under
// tcp-env under Debian's openbsd-inetd, as the inetd.conf line in this
// program's documentation has them: a user logs in, becomes its own uid
// and reads its Maildir; a wrong password is refused.
func TestPOP3UnderInetd(t *testing.T) {
	inetd := findInetd(t)
	dir, err := os.MkdirTemp("", "tcp-env-pop3-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "bin")
	if out, err := exec.Command("go", "build", "-o", bin+"/", ".", "../qmail-popup", "../qmail-pop3d", "../checkpassword").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	home := filepath.Join(dir, "qmail")
	joe := filepath.Join(dir, "joe")
	const uid = 65534 // nobody: checkpassword becomes it
	for name, text := range map[string]string{
		"control/me":      "pop.test\n",
		"users/poppasswd": fmt.Sprintf("joe:{PLAIN}secret:%d:%d::%s:/bin/sh\n", uid, uid, joe),
	} {
		p := filepath.Join(home, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	md, err := maildir.Ensure(filepath.Join(joe, "Maildir"))
	if err != nil {
		t.Fatal(err)
	}
	msg := filepath.Join(string(md), "new", "1.2.pop.test")
	if err := os.WriteFile(msg, []byte("Subject: through inetd\n\nhello joe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Minute) // listed: older than the session's second
	os.Chtimes(msg, old, old)
	filepath.Walk(joe, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			os.Lchown(p, uid, uid)
		}
		return err
	})
	addr, out := startInetd(t, inetd, dir, fmt.Sprintf("/usr/bin/env env QMAILHOME=%s %s/tcp-env -R %s/qmail-popup pop.test %s/checkpassword %s/qmail-pop3d Maildir", home, bin, bin, bin, bin))
	session := func(pass string) []string {
		c, err := textproto.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var replies []string
		for _, cmd := range []string{"", "USER joe", "PASS " + pass, "RETR 1", "QUIT"} {
			if cmd != "" {
				c.PrintfLine("%s", cmd)
			}
			l, err := c.ReadLine()
			if err != nil {
				replies = append(replies, "error: "+err.Error())
				return replies
			}
			replies = append(replies, l)
			if strings.HasPrefix(cmd, "RETR") && strings.HasPrefix(l, "+OK") {
				lines, _ := c.ReadDotLines()
				replies = append(replies, strings.Join(lines, "\n"))
			}
			if strings.HasPrefix(l, "-ERR") {
				return replies
			}
		}
		return replies
	}
	got := session("secret")
	if len(got) < 5 || !strings.Contains(got[4], "hello joe") || !strings.HasPrefix(got[len(got)-1], "+OK") {
		t.Errorf("POP3 through inetd: %q\n%s", got, out.String())
	}
	if got := session("wrong"); len(got) != 3 || !strings.HasPrefix(got[2], "-ERR") {
		t.Errorf("a wrong password: %q", got)
	}
}
