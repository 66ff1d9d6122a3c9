package smtpserver

import (
	"crypto/tls"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func strp(s string) *string { return &s }

// TestReceivedGolden checks every form of the Received line against
// testdata/received.golden (regenerate with -update and review the diff).
func TestReceivedGolden(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	cs := &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
	cases := []struct {
		name string
		ri   receivedInfo
	}{
		{"qmail plain", receivedInfo{remoteHost: "client.example", remoteIP: "192.0.2.9", local: "mx.example.org", protocol: "SMTP"}},
		{"helo and info", receivedInfo{remoteHost: "client.example", remoteIP: "192.0.2.9", local: "mx.example.org", protocol: "SMTP",
			helo: strp("other.example"), remoteInfo: "jo e", hasInfo: true}},
		{"empty helo", receivedInfo{remoteHost: "unknown", remoteIP: "unknown", local: "unknown", protocol: "SMTP", helo: strp("")}},
		{"unsafe bytes", receivedInfo{remoteHost: "a b(c)<d>\"e\\f", remoteIP: "::1", local: "mx_1.example", protocol: "SMTP",
			helo: strp("[192.0.2.1] x;y\xff"), remoteInfo: "", hasInfo: true}},
		{"tls", receivedInfo{remoteHost: "c", remoteIP: "192.0.2.9", local: "mx", protocol: protocolWord(false, true, false, false), tlsComment: tlsComment(cs)}},
		{"tls auth", receivedInfo{remoteHost: "c", remoteIP: "192.0.2.9", local: "mx", protocol: protocolWord(false, true, true, false), tlsComment: tlsComment(cs)}},
		{"auth", receivedInfo{remoteHost: "c", remoteIP: "192.0.2.9", local: "mx", protocol: protocolWord(false, false, true, false)}},
		{"utf8 tls auth", receivedInfo{remoteHost: "c", remoteIP: "192.0.2.9", local: "mx", protocol: protocolWord(false, true, true, true), tlsComment: tlsComment(cs)}},
		{"lmtp", receivedInfo{remoteHost: "c", remoteIP: "192.0.2.9", local: "mx", protocol: protocolWord(true, false, false, false)}},
	}
	var b strings.Builder
	for _, c := range cases {
		b.WriteString("# " + c.name + "\n")
		b.WriteString(received(c.ri, now))
	}
	const golden = "testdata/received.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("Received lines differ from %s:\n%s", golden, b.String())
	}
}

func TestDate822(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Unix(838640135, 0), "29 Jul 1996 11:35:35 -0000"},
		{time.Unix(1795300075, 0), "21 Nov 2026 22:27:55 -0000"},
		{time.Date(2027, 1, 1, 0, 30, 0, 0, time.FixedZone("E", 3600)), "31 Dec 2026 23:30:00 -0000"},
	}
	for _, tt := range tests {
		if got := date822(tt.t); got != tt.want {
			t.Errorf("date822(%v) = %q, want %q", tt.t, got, tt.want)
		}
	}
}
