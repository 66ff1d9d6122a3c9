package systemd

import (
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/queue"
)

// TestUnitsVerify: systemd-analyze verify finds nothing to say about the
// units here and those of examples/mta (their programs replaced by
// /bin/true, which exists on every machine).
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze (Debian's systemd)")
	}
	dir := t.TempDir()
	var units []string
	for _, pattern := range []string{"*.service", "*.socket", "../mta/*.service", "../mta/*.socket"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b = regexp.MustCompile(`(/var/qmail/bin/[a-z0-9-]+|/usr/local/bin/mta)`).ReplaceAll(b, []byte("/bin/true"))
			p := filepath.Join(dir, filepath.Base(f))
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			units = append(units, p)
		}
	}
	if len(units) < 10 {
		t.Fatalf("only %d units found", len(units))
	}
	out, err := exec.Command(analyze, append([]string{"verify"}, units...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestAcceptYes: qmail-smtpd under tcp-env with the connection as its
// standard input and output, one process per connection, as
// qmail-smtpd@.service runs it (here under systemd-socket-activate
// --accept --inetd, which starts a program per connection as systemd's
// Accept=yes does), queues a message.
func TestAcceptYes(t *testing.T) {
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("no systemd-socket-activate (Debian's systemd)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if out, err := exec.Command("go", "build", "-o", bin+"/", "../tcp-env", "../qmail-smtpd", "../qmail-queue").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	home := filepath.Join(dir, "qmail")
	for name, text := range map[string]string{"control/me": "accept.test\n", "control/rcpthosts": "accept.test\n"} {
		p := filepath.Join(home, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(home, "bin"), 0o755)
	if err := os.Symlink(filepath.Join(bin, "qmail-queue"), filepath.Join(home, "bin", "qmail-queue")); err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(filepath.Join(home, "queue"), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	// The ExecStart line of qmail-smtpd@.service, with this test's paths.
	unit, err := os.ReadFile("qmail-smtpd@.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindSubmatch(unit)
	if m == nil {
		t.Fatal("qmail-smtpd@.service has no ExecStart")
	}
	argv := strings.Fields(strings.ReplaceAll(string(m[1]), "/var/qmail/bin", bin))
	cmd := exec.Command(activate, append([]string{"--accept", "--inetd", "-l", addr, "-E", "QMAILHOME=" + home, "-E", "PATH=/usr/bin:/bin"}, argv...)...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	var serr error
	for range 100 {
		if serr = smtp.SendMail(addr, nil, "joe@client.test", []string{"bob@accept.test"}, []byte("Subject: accepted\r\n\r\nhello\r\n")); serr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if serr != nil {
		t.Fatalf("SMTP: %v\n%s", serr, out.String())
	}
	// A second connection gets a process of its own.
	if err := smtp.SendMail(addr, nil, "joe@client.test", []string{"bob@accept.test"}, []byte("Subject: again\r\n\r\nhello\r\n")); err != nil {
		t.Fatalf("second SMTP: %v\n%s", err, out.String())
	}
	q, err = queue.Open(filepath.Join(home, "queue"), queue.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if st, err := q.Stat(); err != nil || st.Messages != 2 {
		t.Fatalf("queue: %+v %v, want 2 messages", st, err)
	}
	var received int
	filepath.Walk(filepath.Join(home, "queue", "mess"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			if strings.Contains(string(b), "(127.0.0.1)") {
				received++
			}
		}
		return nil
	})
	if received != 2 {
		t.Errorf("%d messages with a Received line naming 127.0.0.1 (from tcp-env), want 2", received)
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
