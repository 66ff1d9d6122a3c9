package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/tcprules"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// build compiles the program once for all tests.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "qmail-smtpd-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "qmail-smtpd")
		buildOut, buildErr = exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// qmailHome makes a QMAILHOME with control files and a bin/qmail-queue
// that saves descriptors 0 and 1 and exits with code.
func qmailHome(t *testing.T, controls map[string]string, code int) string {
	t.Helper()
	h := t.TempDir()
	os.MkdirAll(filepath.Join(h, "control"), 0o755)
	os.MkdirAll(filepath.Join(h, "bin"), 0o755)
	for k, v := range controls {
		os.WriteFile(filepath.Join(h, "control", k), []byte(v), 0o644)
	}
	q := "#!/bin/sh\ncat > \"$QMAILHOME_OUT/msg\"\ncat 0<&1 > \"$QMAILHOME_OUT/env\"\nexit " + strconv.Itoa(code) + "\n"
	os.WriteFile(filepath.Join(h, "bin", "qmail-queue"), []byte(q), 0o755)
	return h
}

func runBin(t *testing.T, bin, home string, env []string, input string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"QMAILHOME=" + home, "QMAILHOME_OUT=" + home, "PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdin = strings.NewReader(input)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

var vectorEnv = []string{"TCPREMOTEIP=192.0.2.9", "TCPREMOTEHOST=client.example", "TCPLOCALHOST=mx.example.org"}

// An EHLO session through the real program on descriptors 0 and 1 and a
// qmail-queue program.
func TestStdioSession(t *testing.T) {
	bin := build(t)
	home := qmailHome(t, map[string]string{"me": "mx.example.org\n", "rcpthosts": "d.example\n"}, 0)
	in := "EHLO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRCPT TO:<c@relay.example>\r\nDATA\r\n" +
		"Subject: hi\r\n\r\n..dot\r\n.x\r\nbody\rbare cr\r\n.\r\nQUIT\r\n"
	out, code := runBin(t, bin, home, vectorEnv, in)
	lines := strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
	want := []string{"220 mx.example.org ESMTP", "250-mx.example.org", "250-PIPELINING", "250 8BITMIME", "250 ok", "250 ok",
		"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", "354 go ahead", "250 ok * qp *", "221 mx.example.org"}
	if code != 0 || len(lines) != len(want) {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	for i, w := range want {
		if ok, _ := filepath.Match(w, lines[i]); !ok {
			t.Errorf("line %d: %q, want %q", i, lines[i], w)
		}
	}
	msg, _ := os.ReadFile(filepath.Join(home, "msg"))
	env, _ := os.ReadFile(filepath.Join(home, "env"))
	if !strings.HasPrefix(string(msg), "Received: from client.example (192.0.2.9)\n  by mx.example.org with SMTP; ") ||
		!strings.HasSuffix(string(msg), " -0000\nSubject: hi\n\n.dot\nx\nbody\rbare cr\n") {
		t.Errorf("message %q", msg)
	}
	if string(env) != "Fa@b.example\x00Tc@d.example\x00\x00" {
		t.Errorf("envelope %q", env)
	}
}

func TestStdioExitCodes(t *testing.T) {
	bin := build(t)
	home := qmailHome(t, map[string]string{"me": "mx.example.org\n", "smtpgreeting": "greet.example NO UCE\n", "rcpthosts": "d\n"}, 71)
	out, code := runBin(t, bin, home, vectorEnv, "HELO x\r\n")
	if code != 1 || out != "220 greet.example NO UCE ESMTP\r\n250 greet.example NO UCE\r\n" {
		t.Errorf("end of input: exit %d %q", code, out)
	}
	out, code = runBin(t, bin, home, vectorEnv, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\n.\n")
	if code != 1 || !strings.HasSuffix(out, "354 go ahead\r\n451 See https://cr.yp.to/docs/smtplf.html.\r\n") {
		t.Errorf("bare LF: exit %d %q", code, out)
	}
	out, _ = runBin(t, bin, home, vectorEnv, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n")
	if !strings.Contains(out, "\r\n451 mail server temporarily rejected message (#4.3.0)\r\n") {
		t.Errorf("qmail-queue exit 71: %q", out)
	}
	out, code = runBin(t, bin, t.TempDir(), vectorEnv, "QUIT\r\n")
	if code != 1 || out != "421 unable to read controls (#4.3.0)\r\n" {
		t.Errorf("no controls: exit %d %q", code, out)
	}
	out, _ = runBin(t, bin, home, vectorEnv, "EHLO x\r\nQUIT\r\n", "-modern")
	if !strings.Contains(out, "250-ENHANCEDSTATUSCODES\r\n") || !strings.Contains(out, "221 2.0.0 greet.example NO UCE\r\n") {
		t.Errorf("-modern: %q", out)
	}
}

// A real session under Debian's tcpserver.
func TestUnderTcpserver(t *testing.T) {
	tcpserver, err := exec.LookPath("tcpserver")
	if err != nil {
		t.Skip("tcpserver (ucspi-tcp) not installed")
	}
	bin := build(t)
	home := qmailHome(t, map[string]string{"me": "mx.example.org\n", "rcpthosts": "example.org\n"}, 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command(tcpserver, "-HR", "-l", "mx.example.org", "127.0.0.1", port, bin)
	cmd.Env = []string{"QMAILHOME=" + home, "QMAILHOME_OUT=" + home, "PATH=" + os.Getenv("PATH")}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var c net.Conn
	for i := 0; i < 100; i++ {
		if c, err = net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	expect := func(want string) {
		t.Helper()
		l, err := r.ReadString('\n')
		if err != nil || strings.TrimRight(l, "\r\n") != want && !strings.HasPrefix(l, strings.TrimSuffix(want, "*")) {
			t.Fatalf("got %q %v, want %q", l, err, want)
		}
	}
	expect("220 mx.example.org ESMTP")
	c.Write([]byte("HELO me\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n"))
	expect("250 mx.example.org")
	expect("250 ok")
	expect("250 ok")
	expect("354 go ahead")
	c.Write([]byte("hello\r\n.\r\nQUIT\r\n"))
	expect("250 ok *")
	expect("221 mx.example.org")
	msg, _ := os.ReadFile(filepath.Join(home, "msg"))
	if !strings.HasPrefix(string(msg), "Received: from unknown (HELO me) (127.0.0.1)\n  by mx.example.org with SMTP; ") {
		t.Errorf("message %q", msg)
	}
}

// Standalone: -listen with a tcprules cdb giving RELAYCLIENT.
func TestListen(t *testing.T) {
	bin := build(t)
	home := qmailHome(t, map[string]string{"me": "mx.example.org\n", "rcpthosts": "example.org\n"}, 0)
	rules := filepath.Join(home, "rules.cdb")
	if err := tcprules.CompileFile(rules, rules+".tmp", strings.NewReader("127.0.0.1:allow,RELAYCLIENT=\"\",TCPLOCALHOST=\"mx.example.org\"\n:deny\n")); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "-listen", addr, "-x", rules, "-c", "5")
	cmd.Env = []string{"QMAILHOME=" + home, "QMAILHOME_OUT=" + home, "PATH=" + os.Getenv("PATH")}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	var c net.Conn
	for i := 0; i < 200; i++ {
		if c, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	c.Write([]byte("MAIL FROM:<a@b>\r\nRCPT TO:<x@far.example>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n"))
	var got []string
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			break
		}
		got = append(got, strings.TrimRight(l, "\r\n"))
	}
	if len(got) != 6 || got[2] != "250 ok" || !strings.HasPrefix(got[4], "250 ok ") {
		t.Fatalf("session %q", got)
	}
	env, _ := os.ReadFile(filepath.Join(home, "env"))
	if string(env) != "Fa@b\x00Tx@far.example\x00\x00" {
		t.Errorf("envelope %q", env)
	}
}

// STARTTLS from control/servercert.pem and AUTH through a checkpassword
// program given as the AUTH patches take it: hostname checkprogram subprogram.
func TestTLSAndAuth(t *testing.T) {
	bin := build(t)
	home := qmailHome(t, map[string]string{"me": "mx.example.org\n", "rcpthosts": "example.org\n"}, 0)
	writeServerCert(t, filepath.Join(home, "control", "servercert.pem"))
	checkpw := filepath.Join(home, "bin", "checkpw")
	os.WriteFile(checkpw, []byte("#!/bin/sh\ncase \"$(head -c 512 <&3 | tr '\\0' ' ')\" in \"joe s3cret <\"*) exec \"$@\";; esac\nexit 1\n"), 0o755)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "-listen", addr, "mx.example.org", checkpw, "true")
	cmd.Env = []string{"QMAILHOME=" + home, "QMAILHOME_OUT=" + home, "PATH=" + os.Getenv("PATH")}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	var c *smtp.Client
	for i := 0; i < 200; i++ {
		if c, err = smtp.Dial(addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("AUTH"); ok {
		t.Fatal("AUTH offered before TLS")
	}
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	if err := c.Auth(smtp.PlainAuth("", "joe", "wrong", "127.0.0.1")); err == nil {
		t.Fatal("wrong password accepted")
	}
	c.Close()
	c, err = smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	if err := c.Auth(smtp.PlainAuth("", "joe", "s3cret", "127.0.0.1")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := c.Mail("joe@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("far@relay.example"); err != nil {
		t.Fatalf("authenticated relay refused: %v", err)
	}
}

func writeServerCert(t *testing.T, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.example.org"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	pemData := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})...)
	if err := os.WriteFile(path, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
}

// With -home and no $QMAILHOME, qmail-queue must still learn the home: it
// finds the queue through $QMAILHOME.
func TestHomeFlagReachesQueue(t *testing.T) {
	bin := build(t)
	home := qmailHome(t, map[string]string{"me": "mx.example.org\n", "rcpthosts": "d.example\n"}, 0)
	q := "#!/bin/sh\ncat >/dev/null\nprintf %s \"$QMAILHOME\" > \"$PWD/seen-home\"\nexit 0\n"
	if err := os.WriteFile(filepath.Join(home, "bin", "qmail-queue"), []byte(q), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-home", home)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, vectorEnv...)
	cmd.Stdin = strings.NewReader("HELO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "250 ok ") {
		t.Fatalf("session: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(home, "seen-home")); string(got) != home {
		t.Errorf("qmail-queue saw QMAILHOME=%q, want %q", got, home)
	}
}
