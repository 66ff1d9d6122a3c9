package pop3

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveTLS starts a modern server with STLS on 127.0.0.1:0 over the
// Maildir dir; it returns the address and the CA file clients trust.
func serveTLS(t *testing.T, dir string) (addr, caFile string) {
	t.Helper()
	cert, _ := testCert(t)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := &Server{Auth: testAuth(dir), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	})
	return ln.Addr().String(), caFile
}

const poplibScript = `
import poplib, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
p = poplib.POP3(host, port, timeout=10)
caps = p.capa()
assert 'STLS' in caps, caps
p.stls(context=ssl.create_default_context(cafile=ca))
caps = p.capa()
assert 'STLS' not in caps and 'USER' in caps and 'SASL' in caps, caps
p.user('joe')
p.pass_('good')
n, size = p.stat()
print('STAT', n, size)
print('UIDL', [x.decode() for x in p.uidl()[1]])
for i in range(1, n + 1):
    resp, lines, octets = p.retr(i)
    print('RETR', i, octets, repr(b'\n'.join(lines).decode()))
    p.dele(i)
p.quit()
`

// Python's poplib retrieves and deletes the recorded session's messages
// after STLS.
func TestInteropPoplib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	dir := vectorMaildir(t)
	addr, ca := serveTLS(t, dir)
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.CommandContext(t.Context(), py, "-c", poplibScript, host, port, ca).CombinedOutput()
	if err != nil {
		t.Fatalf("poplib: %v\n%s", err, out)
	}
	want := `STAT 3 106
UIDL ['1 999.2.host', '2 1000.1.host', '3 1001.3.host']
RETR 1 29 'Subject: two\nX: y\n\nbody2'
RETR 2 40 'Subject: one\n\nline1\n.dotline\nline3'
RETR 3 37 'Subject: three\n\nno newline at end'
`
	if string(out) != want {
		t.Fatalf("poplib said:\n%s\nwant:\n%s", out, want)
	}
	waitGone(t, dir)
}

// waitGone waits for the session's QUIT update to empty the Maildir.
func waitGone(t *testing.T, dir string) {
	t.Helper()
	for range 100 {
		left := 0
		for _, sub := range []string{"new", "cur"} {
			ents, _ := os.ReadDir(filepath.Join(dir, sub))
			left += len(ents)
		}
		if left == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("messages not deleted")
}

// mpop, a real POP3 client, fetches with STLS and deletes.
func TestInteropMpop(t *testing.T) {
	mpop, err := exec.LookPath("mpop")
	if err != nil {
		t.Skip("mpop not installed (Debian package mpop)")
	}
	dir := vectorMaildir(t)
	addr, ca := serveTLS(t, dir)
	host, port, _ := net.SplitHostPort(addr)
	out := filepath.Join(t.TempDir(), "out")
	for _, sub := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(out, sub), 0o700)
	}
	home := t.TempDir()
	cmd := exec.CommandContext(t.Context(), mpop, "--host="+host, "--port="+port,
		"--tls=on", "--tls-starttls=on", "--tls-trust-file="+ca,
		"--auth=user", "--user=joe", "--passwordeval=echo good",
		"--delivery=maildir,"+out, "--keep=off", "--received-header=off",
		"--uidls-file="+filepath.Join(home, "uidls"))
	cmd.Env = append(os.Environ(), "HOME="+home)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mpop: %v\n%s", err, b)
	}
	waitGone(t, dir)
	got, _ := os.ReadDir(filepath.Join(out, "new"))
	if len(got) != 3 {
		t.Fatalf("mpop delivered %d messages, want 3", len(got))
	}
	var bodies []string
	for _, e := range got {
		b, _ := os.ReadFile(filepath.Join(out, "new", e.Name()))
		bodies = append(bodies, string(b))
	}
	all := strings.Join(bodies, "|")
	for _, want := range []string{"Subject: two\nX: y\n\nbody2\n", "line1\n.dotline\nline3\n", "no newline at end\n"} {
		if !strings.Contains(all, want) {
			t.Errorf("delivered messages lack %q:\n%s", want, all)
		}
	}
}
