package smtptest

import (
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Python's smtplib: EHLO, STARTTLS (verifying the certificate), AUTH LOGIN,
// a pipelined send.
func TestInteropPythonSmtplib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	srv := NewServer(t, TLS(), Users(map[string]string{"joe": "s3cret"}))
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate.Raw}), 0o644)
	host, port, _ := strings.Cut(srv.Addr, ":")
	script := `
import smtplib, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
with smtplib.SMTP(host, port, local_hostname="py.example", timeout=10) as s:
    s.ehlo()
    assert s.has_extn("starttls")
    s.starttls(context=ctx)
    s.ehlo()
    s.login("joe", "s3cret")
    msg = "Subject: from python\r\n\r\n.line with dot\r\n" + "x" * 5000 + "\r\n"
    refused = s.sendmail("py@example.com", ["a@example.org", "b@example.net"], msg)
    assert not refused, refused
    try:
        s.login("joe", "again")
    except smtplib.SMTPException as e:
        print("second login refused:", e)
print("ok")
`
	cmd := exec.CommandContext(t.Context(), py, "-c", script, host, port, ca)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("python: %v\n%s", err, out)
	}
	m := srv.WaitMessages(1, 5*time.Second)[0]
	if m.User != "joe" || !m.TLS || m.Helo != "py.example" || strings.Join(m.To, " ") != "a@example.org b@example.net" {
		t.Fatalf("message %+v", m)
	}
	if want := ".line with dot\n" + strings.Repeat("x", 5000) + "\n"; string(m.Body()) != want {
		t.Fatalf("body %q", m.Body())
	}
}

// swaks: STARTTLS and AUTH PLAIN, then a plain session with pipelining.
func TestInteropSwaks(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		t.Skip("swaks not installed")
	}
	srv := NewServer(t, TLS(), Users(map[string]string{"joe": "s3cret"}))
	out, err := exec.CommandContext(t.Context(), swaks, "--server", srv.Addr, "--helo", "swaks.example",
		"--from", "s@example.com", "--to", "r@example.org", "--tls", "--auth", "PLAIN",
		"--auth-user", "joe", "--auth-password", "s3cret", "--header", "Subject: swaks test", "--body", "hello from swaks").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	out2, err := exec.CommandContext(t.Context(), swaks, "--server", srv.Addr, "--pipeline",
		"--from", "s2@example.com", "--to", "r2@example.org", "--body", "pipelined").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks --pipeline: %v\n%s", err, out2)
	}
	msgs := srv.WaitMessages(2, 5*time.Second)
	h, _ := msgs[0].Header()
	if msgs[0].User != "joe" || !msgs[0].TLS || h.Get("Subject") != "swaks test" || !strings.Contains(string(msgs[0].Body()), "hello from swaks") {
		t.Fatalf("first message %+v", msgs[0])
	}
	if msgs[1].From != "s2@example.com" || !strings.Contains(string(msgs[1].Body()), "pipelined") {
		t.Fatalf("second message %+v", msgs[1])
	}
	if !strings.Contains(string(out), "250 2.0.0 ok") {
		t.Errorf("swaks transcript lacks the final 250:\n%s", out)
	}
}
