package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestVchkpwUnderInetd: Debian's openbsd-inetd runs qmail-popup under
// tcp-env with vchkpw as its checkpassword, as an inetd.conf line would
// ("pop3 stream tcp nowait root /var/qmail/bin/tcp-env tcp-env
// /var/qmail/bin/qmail-popup HOST /usr/local/bin/vchkpw
// /var/qmail/bin/qmail-pop3d Maildir"): a virtual mailbox logs in by its
// address over a real socket, becomes the account and reads its Maildir;
// a wrong password is refused.
func TestVchkpwUnderInetd(t *testing.T) {
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
	f := newFixture(t)
	bin := binaries(t)
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "tcp-env"), "../tcp-env").CombinedOutput(); err != nil {
		t.Fatalf("go build tcp-env: %v\n%s", err, out)
	}
	msg := filepath.Join(f.dirs["joe"], "Maildir", "new", "1000.1.host")
	if err := os.WriteFile(msg, []byte("Subject: inetd\n\nhello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(msg, old, old)
	os.Chown(msg, 65534, 65534)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	line := fmt.Sprintf("%s stream tcp nowait root %s tcp-env -R %s pop.example.com %s -home %s -delay 0 %s Maildir\n",
		addr, filepath.Join(bin, "tcp-env"), filepath.Join(bin, "qmail-popup"), filepath.Join(bin, "vchkpw"), f.home, filepath.Join(bin, "qmail-pop3d"))
	conf := filepath.Join(dir, "inetd.conf")
	if err := os.WriteFile(conf, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(inetd, "-d", conf) // -d: in the foreground
	var mu sync.Mutex
	var out strings.Builder
	cmd.Stdout = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	session := func(user, pass string) string {
		var c net.Conn
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err = net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("inetd does not listen on %s:\n%s", addr, out.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		greeting, _ := br.ReadString('\n')
		if !strings.HasPrefix(greeting, "+OK <") {
			t.Fatalf("greeting %q", greeting)
		}
		var got string
		for _, cmd := range []string{"USER " + user, "PASS " + pass, "STAT", "RETR 1", "QUIT"} {
			fmt.Fprintf(c, "%s\r\n", cmd)
			for {
				l, err := br.ReadString('\n')
				got += l
				if err != nil || !strings.HasPrefix(cmd, "RETR") || l == ".\r\n" || strings.HasPrefix(l, "-ERR") {
					break
				}
			}
			if strings.Contains(got, "-ERR") {
				break
			}
		}
		return got
	}
	if got, want := session("joe@example.com", "password-1"), "+OK \r\n+OK \r\n+OK 1 22\r\n+OK \r\nSubject: inetd\r\n\r\nhello\r\n\r\n.\r\n+OK \r\n"; got != want {
		t.Fatalf("session %q, want %q", got, want)
	}
	if got, want := session("joe@example.com", "password-2"), "+OK \r\n-ERR authorization failed\r\n"; got != want {
		t.Fatalf("session with a wrong password %q, want %q", got, want)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
