package smtpclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Interop with a real SMTP server from Debian that offers STARTTLS:
// aiosmtpd (package python3-aiosmtpd) through its own command-line server,
// with the recording handler in testdata/aiosmtpd_recorder.py (and, for
// AUTH, testdata/aiosmtpd_auth.py). Postfix's smtp-sink (sink_test.go)
// covers plaintext but has no STARTTLS.

// interopName is the name in the server's certificate.
const interopName = "mx.interop.test"

// interopStored is the stored message delivered in every interop test:
// LF line ends, a bare CR before a dot (each line end, a bare CR included,
// is sent as CRLF and every line is dot-stuffed), lines starting
// with dots, 8-bit text, and a last line without LF.
const interopStored = "Subject: interop\n\n.leading dot\nx\r.\n..two\ncaf\xc3\xa9\nlast line"

// interopReceived is what the server must store for interopStored: every
// line end one CRLF, the dots unstuffed again, the last line terminated.
const interopReceived = "Subject: interop\r\n\r\n.leading dot\r\nx\r\n.\r\n..two\r\ncaf\xc3\xa9\r\nlast line\r\n"

// aiosmtpdPython finds a python3 that can import aiosmtpd: $AIOSMTPD_PYTHON,
// python3 on PATH, or /usr/bin/python3 (Debian's, where python3-aiosmtpd
// installs, when PATH has another first, as pyenv's shim).
func aiosmtpdPython(t testing.TB) string {
	t.Helper()
	var cands []string
	if p := os.Getenv("AIOSMTPD_PYTHON"); p != "" {
		cands = append(cands, p)
	}
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	cands = append(cands, "/usr/bin/python3")
	for _, p := range cands {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := exec.CommandContext(ctx, p, "-c", "import aiosmtpd.main").Run()
		cancel()
		if err == nil {
			return p
		}
	}
	t.Skip("no python3 with aiosmtpd: install Debian's python3-aiosmtpd (or set AIOSMTPD_PYTHON)")
	return ""
}

// interopCert is a CA and a server certificate for interopName it signed,
// written as PEM files for the server.
type interopCert struct {
	certFile, keyFile string
	roots             *x509.CertPool // trusts the CA
}

func newInteropCert(t *testing.T) interopCert {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smtpclient interop test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: interopName},
		DNSNames:     []string{interopName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ic := interopCert{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), roots: x509.NewCertPool()}
	ic.roots.AddCert(ca)
	if err := os.WriteFile(ic.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ic.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	return ic
}

// aiosmtpd is a running aiosmtpd server.
type aiosmtpd struct {
	port int
	dir  string // where the recorder writes transactions
}

// startAiosmtpd runs aiosmtpd's command-line server on a free loopback
// port, with STARTTLS when cert is not nil (aiosmtpd then refuses MAIL
// before STARTTLS: its require_starttls default) and SIZE 1048576.
func startAiosmtpd(t *testing.T, cert *interopCert) *aiosmtpd {
	t.Helper()
	return startPython(t, func(port int, dir string) []string {
		args := []string{"-m", "aiosmtpd", "-n", "-l", "127.0.0.1:" + strconv.Itoa(port), "-s", "1048576", "-c", "aiosmtpd_recorder.Recorder"}
		if cert != nil {
			args = append(args, "--tlscert", cert.certFile, "--tlskey", cert.keyFile)
		}
		return append(args, dir)
	})
}

// startAiosmtpdAuth runs testdata/aiosmtpd_auth.py: aiosmtpd requiring
// STARTTLS, then AUTH with one of mechs ("PLAIN,LOGIN") for user and
// password, before MAIL.
func startAiosmtpdAuth(t *testing.T, cert *interopCert, user, password, mechs string) *aiosmtpd {
	t.Helper()
	return startPython(t, func(port int, dir string) []string {
		return []string{filepath.Join("testdata", "aiosmtpd_auth.py"), "127.0.0.1", strconv.Itoa(port),
			cert.certFile, cert.keyFile, user, password, mechs, dir}
	})
}

// startPython runs a python3 that has aiosmtpd with the arguments args
// gives for a free loopback port and the recording directory. It waits
// for the 220 greeting and kills the server (by its pid) when the test
// ends.
func startPython(t *testing.T, args func(port int, dir string) []string) *aiosmtpd {
	t.Helper()
	python := aiosmtpdPython(t)
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	srv := &aiosmtpd{dir: t.TempDir()}
	for try := 0; try < 5; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv.port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		cmd := exec.Command(python, args(srv.port, srv.dir)...)
		cmd.Env = append(os.Environ(), "PYTHONPATH="+testdata, "PYTHONDONTWRITEBYTECODE=1")
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		stop := func() {
			cmd.Process.Kill()
			<-done
		}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			// aiosmtpd's greeting, from our process: not another
			// server that took the port.
			if greeted(srv.port) && alive(done) {
				t.Cleanup(func() {
					stop()
					if t.Failed() && stderr.Len() > 0 {
						t.Logf("server output:\n%s", stderr.Bytes())
					}
				})
				return srv
			}
			select {
			case <-done:
				deadline = time.Time{} // exited (the port was taken?): try another
			case <-time.After(20 * time.Millisecond):
			}
		}
		stop()
		t.Logf("server on port %d did not start:\n%s", srv.port, stderr.Bytes())
	}
	t.Fatal("aiosmtpd did not start")
	return nil
}

func alive(done <-chan struct{}) bool {
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// greeted reports whether aiosmtpd greets with 220 on port.
func greeted(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "220 ") || !strings.Contains(line, " Python SMTP ") {
		return false
	}
	c.Write([]byte("QUIT\r\n"))
	return true
}

// aiosmtpdRecord is one transaction the recorder wrote.
type aiosmtpdRecord struct {
	Helo        string   `json:"helo"`
	ESMTP       bool     `json:"esmtp"`
	Peer        []any    `json:"peer"`
	MailFrom    string   `json:"mail_from"`
	MailOptions []string `json:"mail_options"`
	RcptTos     []string `json:"rcpt_tos"`
	TLS         *struct {
		Version string `json:"version"`
		Cipher  string `json:"cipher"`
	} `json:"tls"`
	Auth *struct {
		Mechanism string `json:"mechanism"`
		Login     string `json:"login"`
	} `json:"auth"`
	Content string `json:"-"`
}

// records returns the transactions recorded so far, in order. The
// recorder writes them before its 250, so a delivery's are there when
// Deliver returns.
func (s *aiosmtpd) records(t *testing.T) []aiosmtpdRecord {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(s.dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	var out []aiosmtpdRecord
	for _, name := range names {
		var r aiosmtpdRecord
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		content, err := os.ReadFile(strings.TrimSuffix(name, ".json") + ".eml")
		if err != nil {
			t.Fatal(err)
		}
		r.Content = string(content)
		out = append(out, r)
	}
	return out
}

// interopClient is a client routing example.net to the server with rt's
// policy and name.
func interopClient(s *aiosmtpd, rt Route, cfg *tls.Config) *Client {
	rt.Relay, rt.Port = "127.0.0.1", s.port
	rs := &Routes{}
	rs.Set("example.net", rt)
	return &Client{
		Hostname:  "client.example",
		Routes:    rs,
		TLSConfig: cfg,
		Timeouts:  Timeouts{Connect: 5 * time.Second, Remote: 5 * time.Second, Quit: time.Second},
	}
}

func interopDeliver(t *testing.T, c *Client, rcpts []string) (*Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return c.Deliver(ctx, "example.net", "s@example.org", rcpts, strings.NewReader(interopStored))
}

// checkRecord checks one delivered transaction: envelope, ESMTP
// parameters, the exact bytes, and TLS as the server saw it.
func checkRecord(t *testing.T, r aiosmtpdRecord, rcpts []string, wantTLS bool) {
	t.Helper()
	if r.Helo != "client.example" || !r.ESMTP {
		t.Errorf("greeted as %q (ESMTP %v), want EHLO client.example", r.Helo, r.ESMTP)
	}
	if r.MailFrom != "s@example.org" || !slices.Equal(r.RcptTos, rcpts) {
		t.Errorf("envelope %q -> %q, want s@example.org -> %q", r.MailFrom, r.RcptTos, rcpts)
	}
	// RFC 1870's SIZE counts the message as sent, CRLF line ends included,
	// without the dot-stuffing.
	wantOpts := []string{"SIZE=" + strconv.Itoa(len(interopReceived)), "BODY=8BITMIME"}
	if !slices.Equal(r.MailOptions, wantOpts) {
		t.Errorf("MAIL parameters %q, want %q", r.MailOptions, wantOpts)
	}
	if r.Content != interopReceived {
		t.Errorf("server received\n%q\nwant\n%q", r.Content, interopReceived)
	}
	switch {
	case wantTLS && r.TLS == nil:
		t.Errorf("server saw the transaction in plaintext, want TLS")
	case wantTLS && !strings.HasPrefix(r.TLS.Version, "TLSv1."):
		t.Errorf("server saw TLS version %q", r.TLS.Version)
	case !wantTLS && r.TLS != nil:
		t.Errorf("server saw TLS %+v, want plaintext", *r.TLS)
	}
}

func checkAccepted(t *testing.T, res *Result, err error, rcpts []string, wantTLS, wantVerified bool) {
	t.Helper()
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if res.TLS != wantTLS || res.TLSVerified != wantVerified {
		t.Errorf("TLS %v verified %v, want %v %v", res.TLS, res.TLSVerified, wantTLS, wantVerified)
	}
	if !strings.HasPrefix(res.Text, "127.0.0.1 accepted message.\nRemote host said: 250 2.0.0 Ok: recorded ") {
		t.Errorf("text %q", res.Text)
	}
	if len(res.Recipients) != len(rcpts) {
		t.Fatalf("%d recipient results, want %d", len(res.Recipients), len(rcpts))
	}
	for _, r := range res.Recipients {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Address, r.Err)
		}
	}
}

// Delivery over STARTTLS to aiosmtpd, which refuses MAIL before STARTTLS:
// under each policy that uses TLS the message arrives exact and the server
// saw it encrypted; the Result says whether the certificate was verified.
// Verification failures and TLS off are refused without a transaction.
func TestInteropAiosmtpdSTARTTLS(t *testing.T) {
	cert := newInteropCert(t)
	srv := startAiosmtpd(t, &cert)
	trusted := &tls.Config{RootCAs: cert.roots}
	rcpts := []string{"a@example.net", "b@example.net"}
	n := 0 // transactions recorded so far
	for _, tc := range []struct {
		name     string
		rt       Route
		cfg      *tls.Config
		verified bool
	}{
		{name: "opportunistic, untrusted CA", rt: Route{TLS: TLSOpportunistic, ServerName: interopName}},
		{name: "opportunistic, trusted CA, IP relay and no name", rt: Route{TLS: TLSOpportunistic}, cfg: trusted},
		{name: "opportunistic, trusted CA", rt: Route{TLS: TLSOpportunistic, ServerName: interopName}, cfg: trusted, verified: true},
		{name: "opportunistic, trusted CA, wrong name", rt: Route{TLS: TLSOpportunistic, ServerName: "other.interop.test"}, cfg: trusted},
		{name: "require", rt: Route{TLS: TLSRequire, ServerName: interopName}},
		{name: "verify", rt: Route{TLS: TLSVerify, ServerName: interopName}, cfg: trusted, verified: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := interopDeliver(t, interopClient(srv, tc.rt, tc.cfg), rcpts)
			checkAccepted(t, res, err, rcpts, true, tc.verified)
			recs := srv.records(t)
			if len(recs) != n+1 {
				t.Fatalf("%d transactions recorded, want %d", len(recs), n+1)
			}
			n++
			checkRecord(t, recs[n-1], rcpts, true)
		})
	}

	// Refusals: nothing reaches the server's DATA.
	for _, tc := range []struct {
		name      string
		rt        Route
		cfg       *tls.Config
		permanent bool
		text      string
		is        error
	}{
		// The handshake fails in the client: temporary, ErrTLSRequired.
		{name: "verify, untrusted CA", rt: Route{TLS: TLSVerify, ServerName: interopName},
			text: "TLS handshake with 127.0.0.1 failed: ", is: ErrTLSRequired},
		{name: "verify, wrong name", rt: Route{TLS: TLSVerify, ServerName: "other.interop.test"}, cfg: trusted,
			text: "TLS handshake with 127.0.0.1 failed: ", is: ErrTLSRequired},
		// TLS off: no STARTTLS although offered, so aiosmtpd refuses MAIL
		// with its 530, a permanent failure.
		{name: "TLS off", rt: Route{TLS: TLSNone}, permanent: true, text: "530 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := interopDeliver(t, interopClient(srv, tc.rt, tc.cfg), rcpts)
			if err == nil {
				t.Fatalf("delivered: %+v", res)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v, want *Error", err, err)
			}
			if e.Permanent() != tc.permanent {
				t.Errorf("permanent %v, want %v: %v", e.Permanent(), tc.permanent, err)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q lacks %q", err, tc.text)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if res.TLS || res.TLSVerified {
				t.Errorf("TLS %v verified %v after a failure", res.TLS, res.TLSVerified)
			}
			if recs := srv.records(t); len(recs) != n {
				t.Errorf("%d transactions recorded, want %d", len(recs), n)
			}
		})
	}
}

// Several messages over one reused STARTTLS connection (RSET between
// them): every one arrives over TLS from the same client port.
func TestInteropAiosmtpdSTARTTLSReuse(t *testing.T) {
	cert := newInteropCert(t)
	srv := startAiosmtpd(t, &cert)
	c := interopClient(srv, Route{TLS: TLSVerify, ServerName: interopName}, &tls.Config{RootCAs: cert.roots})
	c.Pool = &Pool{}
	defer c.Pool.Close()
	rcpts := []string{"a@example.net"}
	for range 3 {
		res, err := interopDeliver(t, c, rcpts)
		checkAccepted(t, res, err, rcpts, true, true)
	}
	if c.Pool.Idle() != 1 {
		t.Errorf("%d idle connections, want 1", c.Pool.Idle())
	}
	recs := srv.records(t)
	if len(recs) != 3 {
		t.Fatalf("%d transactions recorded, want 3", len(recs))
	}
	for i, r := range recs {
		checkRecord(t, r, rcpts, true)
		if !slices.Equal(r.Peer, recs[0].Peer) {
			t.Errorf("transaction %d from %v, the first from %v: not one connection", i, r.Peer, recs[0].Peer)
		}
	}
}

// Delivery to aiosmtpd without STARTTLS: plaintext under TLS off and
// opportunistic TLS; a policy requiring TLS refuses to send.
func TestInteropAiosmtpdPlain(t *testing.T) {
	srv := startAiosmtpd(t, nil)
	rcpts := []string{"a@example.net", "b@example.net", "c@example.net"}
	n := 0
	for _, tc := range []struct {
		name string
		rt   Route
	}{
		{name: "TLS off", rt: Route{TLS: TLSNone}},
		{name: "opportunistic", rt: Route{TLS: TLSOpportunistic}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := interopDeliver(t, interopClient(srv, tc.rt, nil), rcpts)
			checkAccepted(t, res, err, rcpts, false, false)
			recs := srv.records(t)
			if len(recs) != n+1 {
				t.Fatalf("%d transactions recorded, want %d", len(recs), n+1)
			}
			n++
			checkRecord(t, recs[n-1], rcpts, false)
		})
	}
	for _, p := range []TLSPolicy{TLSRequire, TLSVerify} {
		t.Run(p.String(), func(t *testing.T) {
			res, err := interopDeliver(t, interopClient(srv, Route{TLS: p, ServerName: interopName}, nil), rcpts)
			if !errors.Is(err, ErrTLSRequired) {
				t.Fatalf("error %v, want ErrTLSRequired", err)
			}
			var e *Error
			if !errors.As(err, &e) || e.Permanent() {
				t.Errorf("error %v: want a temporary *Error", err)
			}
			if !strings.Contains(err.Error(), "does not offer STARTTLS") {
				t.Errorf("error %q", err)
			}
			if res.TLS {
				t.Error("Result says TLS")
			}
			if recs := srv.records(t); len(recs) != n {
				t.Errorf("%d transactions recorded, want %d", len(recs), n)
			}
		})
	}
}

// AUTH to a smarthost over verified STARTTLS, with aiosmtpd's PLAIN and
// LOGIN: the server requires both TLS and authentication before MAIL and
// records who authenticated with which mechanism. Non-ASCII credentials
// check the encoding; a wrong password is a temporary ErrAuth.
func TestInteropAiosmtpdAuth(t *testing.T) {
	const user, password = "user@example.org", "p\xc3\xa4ss w:rd"
	cert := newInteropCert(t)
	rcpts := []string{"a@example.net"}
	for _, tc := range []struct {
		name, mechs, want string
	}{
		{name: "PLAIN preferred", mechs: "PLAIN,LOGIN", want: "PLAIN"},
		{name: "LOGIN only", mechs: "LOGIN", want: "LOGIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startAiosmtpdAuth(t, &cert, user, password, tc.mechs)
			rt := Route{TLS: TLSVerify, ServerName: interopName, Username: user, Password: password}
			res, err := interopDeliver(t, interopClient(srv, rt, &tls.Config{RootCAs: cert.roots}), rcpts)
			checkAccepted(t, res, err, rcpts, true, true)
			recs := srv.records(t)
			if len(recs) != 1 {
				t.Fatalf("%d transactions recorded, want 1", len(recs))
			}
			checkRecord(t, recs[0], rcpts, true)
			if a := recs[0].Auth; a == nil || a.Mechanism != tc.want || a.Login != user {
				t.Errorf("authenticated as %+v, want %s with %s", a, tc.want, user)
			}

			// The same server with a wrong password.
			rt.Password = "wrong"
			_, err = interopDeliver(t, interopClient(srv, rt, &tls.Config{RootCAs: cert.roots}), rcpts)
			if !errors.Is(err, ErrAuth) || IsPermanent(err) {
				t.Fatalf("wrong password: %v, want a temporary ErrAuth", err)
			}
			if !strings.Contains(err.Error(), "535 5.7.8") {
				t.Errorf("error %q lacks the server's 535", err)
			}
			if recs := srv.records(t); len(recs) != 1 {
				t.Errorf("%d transactions recorded, want 1", len(recs))
			}
		})
	}
}
