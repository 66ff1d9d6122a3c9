package smtpclient

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// smtpSink finds Postfix's smtp-sink: $SMTP_SINK, $PFTOOLS/smtp-sink (the
// wrapper the benchmark scripts beside the repository write), or smtp-sink on PATH
// or in /usr/sbin.
func smtpSink(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SMTP_SINK"); p != "" {
		return p
	}
	if d := os.Getenv("PFTOOLS"); d != "" {
		if p := filepath.Join(d, "smtp-sink"); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("smtp-sink"); err == nil {
		return p
	}
	if fileExists("/usr/sbin/smtp-sink") {
		return "/usr/sbin/smtp-sink"
	}
	t.Skip("smtp-sink not found: set SMTP_SINK or PFTOOLS (../shared/bench/extract-pftools.sh DIR), or install postfix")
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// startSink runs smtp-sink on a free loopback port with extra flags,
// dumping each transaction into the returned directory. It is stopped
// (by its pid) when the test ends.
func startSink(t testing.TB, flags ...string) (port int, dump string) {
	t.Helper()
	return startSinkFlags(t, true, flags...)
}

func startSinkFlags(t testing.TB, dumping bool, flags ...string) (port int, dump string) {
	t.Helper()
	bin := smtpSink(t)
	// smtp-sink writes as nobody when started as root: the directory (and
	// its parent) must be open to it, which t.TempDir's is not.
	dump, err := os.MkdirTemp("", "smtp-sink")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dump) })
	os.Chmod(dump, 0o777)
	for try := 0; try < 5; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		args := append([]string{}, flags...)
		if os.Geteuid() == 0 {
			args = append(args, "-u", "nobody")
		}
		if dumping {
			args = append(args, "-d", dump+"/%H%M%S.")
		}
		args = append(args, "127.0.0.1:"+strconv.Itoa(port), "256")
		cmd := exec.Command(bin, args...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		for i := 0; i < 100; i++ {
			if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
				c.Close()
				t.Cleanup(func() {
					cmd.Process.Kill()
					<-done
				})
				return port, dump
			}
			select {
			case <-done:
				i = 100 // exited: the port was taken; try another
			case <-time.After(20 * time.Millisecond):
			}
		}
		cmd.Process.Kill()
		<-done
	}
	t.Fatal("smtp-sink did not start")
	return 0, ""
}

// sinkDumps returns the transactions smtp-sink dumped, waiting until n are
// complete.
func sinkDumps(t *testing.T, dir string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		entries, _ := os.ReadDir(dir)
		if len(entries) >= n || time.Now().After(deadline) {
			var out []string
			for _, e := range entries {
				b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
				out = append(out, string(b))
			}
			if len(out) >= n {
				return out
			}
			t.Fatalf("%d transactions dumped, want %d", len(out), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestInteropSmtpSink(t *testing.T) {
	const stored = "Subject: interop\n\n.leading dot\nx\r.\n..two\ncaf\xc3\xa9\nlast line"
	for _, tc := range []struct {
		name   string
		flags  []string
		compat bool
		proto  string
		mail   string
	}{
		{name: "ESMTP with PIPELINING", proto: "ESMTP", mail: "<s@example.org> BODY=8BITMIME"},
		{name: "no PIPELINING", flags: []string{"-p"}, proto: "ESMTP", mail: "<s@example.org> BODY=8BITMIME"},
		{name: "no ESMTP: HELO fallback", flags: []string{"-e"}, proto: "SMTP", mail: "<s@example.org>"},
		{name: "qmail compat", compat: true, proto: "SMTP", mail: "<s@example.org>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, dump := startSink(t, tc.flags...)
			c := &Client{Hostname: "client.example", QmailCompat: tc.compat, Routes: mustRoutes(t, ":127.0.0.1:"+strconv.Itoa(port))}
			msg := stored
			if tc.compat {
				msg += "\n" // qmail refuses a partial final line
			}
			rcpts := []string{"a@example.net", "b@example.net"}
			res, err := c.Deliver(t.Context(), "example.net", "s@example.org", rcpts, strings.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(res.Text, "127.0.0.1 accepted message.\nRemote host said: 250 2.0.0 Ok") {
				t.Errorf("text %q", res.Text)
			}
			d := sinkDumps(t, dump, 1)[0]
			for _, want := range []string{"X-Client-Proto: " + tc.proto + "\n", "X-Helo-Args: client.example\n", "X-Mail-Args: " + tc.mail + "\n",
				"X-Rcpt-Args: <a@example.net>\nX-Rcpt-Args: <b@example.net>\n",
				"Subject: interop\n\n.leading dot\nx\n.\n..two\ncaf\xc3\xa9\nlast line\n"} {
				if !strings.Contains(d, want) {
					t.Errorf("dump lacks %q:\n%s", want, d)
				}
			}
		})
	}
}

// Many recipients (several transactions) and connection reuse.
func TestInteropSmtpSinkReuse(t *testing.T) {
	port, dump := startSink(t)
	c := &Client{Hostname: "client.example", Routes: mustRoutes(t, ":127.0.0.1:"+strconv.Itoa(port)), Pool: &Pool{}}
	defer c.Pool.Close()
	var rcpts []string
	for i := range 150 {
		rcpts = append(rcpts, "r"+strconv.Itoa(i)+"@example.net")
	}
	for range 3 {
		res, err := c.Deliver(t.Context(), "example.net", "s@example.org", rcpts, strings.NewReader(testMsg))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Recipients {
			if r.Err != nil {
				t.Fatalf("%s: %v", r.Address, r.Err)
			}
		}
	}
	if c.Pool.Idle() != 1 {
		t.Errorf("%d idle connections, want 1", c.Pool.Idle())
	}
	dumps := sinkDumps(t, dump, 6)
	total := 0
	for _, d := range dumps {
		total += strings.Count(d, "X-Rcpt-Args:")
	}
	if len(dumps) != 6 || total != 450 {
		t.Errorf("%d transactions, %d recipients; want 6 and 450", len(dumps), total)
	}
}
