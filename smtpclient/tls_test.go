package smtpclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// selfSigned makes a certificate for names, and a pool that trusts it.
func selfSigned(t testing.TB, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: names[0]},
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

func tlsFake(t *testing.T, cert tls.Certificate) *fakeServer {
	f := newFake(t)
	f.SetExt([]string{"PIPELINING", "STARTTLS", "AUTH PLAIN LOGIN"})
	f.SetTLS(&tls.Config{Certificates: []tls.Certificate{cert}})
	return f
}

func routeTo(f *fakeServer, rt Route) *Routes {
	rt.Relay, rt.Port = "127.0.0.1", f.Port
	rs := &Routes{}
	rs.Set("", rt)
	return rs
}

func TestTLSOpportunistic(t *testing.T) {
	cert, pool := selfSigned(t, "mx.test")
	f := tlsFake(t, cert)
	c := fakeClient(t, f)
	res := deliverTo(t, c, []string{"r@example.net"}, testMsg)
	if res.Err != nil || !res.TLS || res.TLSVerified {
		t.Errorf("opportunistic, untrusted: err %v tls %v verified %v", res.Err, res.TLS, res.TLSVerified)
	}
	f.Settle()
	want := []string{"EHLO helo.example.org", "STARTTLS", "TLS OK", "EHLO helo.example.org", "MAIL FROM:<snd@example.org>"}
	if got := f.Log(); !slices.Equal(got[:len(want)], want) {
		t.Errorf("dialogue %q", got)
	}
	// Trusted and matching the relay's name: verified, still opportunistic.
	c.TLSConfig = &tls.Config{RootCAs: pool}
	c.Routes = routeTo(f, Route{ServerName: "mx.test"})
	res = deliverTo(t, c, []string{"r@example.net"}, testMsg)
	if res.Err != nil || !res.TLS || !res.TLSVerified {
		t.Errorf("opportunistic, trusted: err %v tls %v verified %v", res.Err, res.TLS, res.TLSVerified)
	}
	// TLSNone never starts TLS.
	c.Routes = routeTo(f, Route{TLS: TLSNone})
	res = deliverTo(t, c, []string{"r@example.net"}, testMsg)
	if res.Err != nil || res.TLS {
		t.Errorf("TLSNone: %v %v", res.Err, res.TLS)
	}
}

// TLS offered and failing: opportunistic reconnects once without TLS; a
// policy that requires TLS fails temporarily.
func TestTLSHandshakeFailure(t *testing.T) {
	f := newFake(t)
	f.SetExt([]string{"STARTTLS"})
	f.SetTLS(&tls.Config{}) // no certificate: every handshake fails
	c := fakeClient(t, f)
	res := deliverTo(t, c, []string{"r@example.net"}, testMsg)
	f.Settle()
	if res.Err != nil || res.TLS {
		t.Fatalf("fallback to plaintext: %v", res.Err)
	}
	log := f.Log()
	if f.Conns() != 2 || !slices.Contains(log, "TLS FAILED") || countOf(log, "STARTTLS") != 1 {
		t.Errorf("%d connections, dialogue %q", f.Conns(), log)
	}
	for _, p := range []TLSPolicy{TLSRequire, TLSVerify} {
		c.Routes = routeTo(f, Route{TLS: p, ServerName: "mx.test"})
		res = deliverTo(t, c, []string{"r@example.net"}, testMsg)
		if !errors.Is(res.Err, ErrTLSRequired) || IsPermanent(res.Err) {
			t.Errorf("%v: %v", p, res.Err)
		}
	}
}

func TestTLSPolicies(t *testing.T) {
	cert, pool := selfSigned(t, "mx.test")
	for _, tc := range []struct {
		name   string
		ext    []string
		reply  func(string, int, string) string
		route  Route
		roots  bool
		ok     bool
		verify bool
	}{
		{name: "require, not offered", ext: []string{}, route: Route{TLS: TLSRequire}},
		{name: "require, refused", ext: []string{"STARTTLS"}, reply: step1("STARTTLS", "454 not now"), route: Route{TLS: TLSRequire}},
		{name: "opportunistic, refused", ext: []string{"STARTTLS"}, reply: step1("STARTTLS", "454 not now"), ok: true},
		{name: "require, untrusted", ext: []string{"STARTTLS"}, route: Route{TLS: TLSRequire}, ok: true},
		{name: "verify, untrusted", ext: []string{"STARTTLS"}, route: Route{TLS: TLSVerify, ServerName: "mx.test"}},
		{name: "verify, wrong name", ext: []string{"STARTTLS"}, route: Route{TLS: TLSVerify, ServerName: "other.test"}, roots: true},
		{name: "verify, no name", ext: []string{"STARTTLS"}, route: Route{TLS: TLSVerify}, roots: true},
		{name: "verify, good", ext: []string{"STARTTLS"}, route: Route{TLS: TLSVerify, ServerName: "mx.test"}, roots: true, ok: true, verify: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tlsFake(t, cert)
			f.SetExt(tc.ext)
			f.SetReply(tc.reply)
			c := fakeClient(t, f)
			c.Routes = routeTo(f, tc.route)
			if tc.roots {
				c.TLSConfig = &tls.Config{RootCAs: pool}
			}
			res := deliverTo(t, c, []string{"r@example.net"}, testMsg)
			if tc.ok {
				if res.Err != nil || res.TLSVerified != tc.verify {
					t.Errorf("err %v verified %v", res.Err, res.TLSVerified)
				}
				return
			}
			if !errors.Is(res.Err, ErrTLSRequired) || IsPermanent(res.Err) {
				t.Errorf("err %v", res.Err)
			}
			f.Settle()
			if slices.ContainsFunc(f.Log(), func(s string) bool { return strings.HasPrefix(s, "MAIL") }) {
				t.Errorf("MAIL sent: %q", f.Log())
			}
		})
	}
}

func TestAuth(t *testing.T) {
	cert, pool := selfSigned(t, "smarthost.test")
	plain := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00user\x00secret"))
	for _, tc := range []struct {
		name  string
		ext   []string
		reply func(string, int, string) string
		want  []string // in the dialogue
		err   error
	}{
		{name: "plain", ext: []string{"STARTTLS", "AUTH LOGIN PLAIN"}, want: []string{plain}},
		{name: "login", ext: []string{"STARTTLS", "AUTH LOGIN"},
			want: []string{"AUTH LOGIN", base64.StdEncoding.EncodeToString([]byte("user")), base64.StdEncoding.EncodeToString([]byte("secret"))}},
		{name: "rejected", ext: []string{"STARTTLS", "AUTH PLAIN"}, reply: step1("AUTH", "535 5.7.8 bad credentials"), err: ErrAuth},
		{name: "no mechanism", ext: []string{"STARTTLS", "AUTH CRAM-MD5"}, err: ErrAuth},
		{name: "no TLS", ext: []string{"AUTH PLAIN"}, err: ErrAuth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tlsFake(t, cert)
			f.SetExt(tc.ext)
			f.SetReply(tc.reply)
			c := fakeClient(t, f)
			c.TLSConfig = &tls.Config{RootCAs: pool}
			c.Routes = routeTo(f, Route{TLS: TLSOpportunistic, ServerName: "smarthost.test", Username: "user", Password: "secret"})
			res := deliverTo(t, c, []string{"r@example.net"}, testMsg)
			f.Settle()
			log := f.Log()
			if tc.err != nil {
				if !errors.Is(res.Err, tc.err) || IsPermanent(res.Err) {
					t.Errorf("err %v", res.Err)
				}
				if tc.name != "rejected" && slices.Contains(log, plain) {
					t.Errorf("credentials sent: %q", log)
				}
				return
			}
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			i := slices.Index(log, tc.want[0])
			if i < 0 || !slices.Equal(log[i:i+len(tc.want)], tc.want) || slices.Index(log, "TLS OK") > i {
				t.Errorf("dialogue %q, want %q after TLS", log, tc.want)
			}
		})
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// TestHostTLS: Client.HostTLS overrides the route's policy for the host
// it names, with its own certificate authorities.
func TestHostTLS(t *testing.T) {
	cert, pool := selfSigned(t, "mx.test")
	_, otherPool := selfSigned(t, "mx.test")
	for _, tc := range []struct {
		name   string
		policy TLSPolicy
		roots  *x509.CertPool
		host   string // the name HostTLS answers for
		ok     bool
		tls    bool
		verify bool
	}{
		{name: "verify with the host's roots", policy: TLSVerify, roots: pool, host: "mx.test", ok: true, tls: true, verify: true},
		{name: "verify with other roots", policy: TLSVerify, roots: otherPool, host: "mx.test"},
		{name: "none", policy: TLSNone, host: "mx.test", ok: true},
		{name: "another host: the route's policy", policy: TLSNone, host: "other.test", ok: true, tls: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tlsFake(t, cert)
			c := fakeClient(t, f)
			c.Routes = routeTo(f, Route{ServerName: "MX.test"})
			var asked []string
			c.HostTLS = func(host string) (TLSPolicy, *x509.CertPool, bool) {
				asked = append(asked, host)
				if host != tc.host {
					return 0, nil, false
				}
				return tc.policy, tc.roots, true
			}
			res := deliverTo(t, c, []string{"r@example.net"}, testMsg)
			if !slices.Contains(asked, "mx.test") {
				t.Errorf("HostTLS asked about %q, want mx.test", asked)
			}
			if tc.ok != (res.Err == nil) {
				t.Fatalf("err %v", res.Err)
			}
			if !tc.ok {
				if !errors.Is(res.Err, ErrTLSRequired) || IsPermanent(res.Err) {
					t.Errorf("err %v", res.Err)
				}
				return
			}
			f.Settle()
			sawTLS := slices.Contains(f.Log(), "STARTTLS")
			if sawTLS != tc.tls || res.TLSVerified != tc.verify {
				t.Errorf("STARTTLS %v verified %v; log %q", sawTLS, res.TLSVerified, f.Log())
			}
		})
	}
}
