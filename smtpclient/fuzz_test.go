package smtpclient

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// FuzzReadReply: the reply parser never panics, keeps at most 5000 bytes,
// and a code it returns is in 200–599.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"250 ok\r\n", "250-a\r\n250-b\r\n250 c\r\n", "554-first line\n554 second line\n",
		"220-x\r\n220", "abc\r\n", "650 x\r\n", "25\r\n", "250 a\x00b\rc\r\n", "",
		"550 5.1.1 no\r\n", "250-" + strings.Repeat("x", 6000) + "\r\n250 y\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := readReply(bufio.NewReaderSize(bytes.NewReader(b), 16))
		if r == nil {
			t.Fatal("nil reply")
		}
		if err == nil && (r.Code < 200 || r.Code > 599) {
			t.Fatalf("code %d without error", r.Code)
		}
		n := 0
		for _, l := range r.Lines {
			n += len(l)
			if strings.ContainsAny(l, "\r\x00\n") {
				t.Fatalf("line %q not cleaned", l)
			}
		}
		if n > maxReplyText {
			t.Fatalf("%d bytes kept", n)
		}
		r.Enhanced()
	})
}

// FuzzParseRoutes: the smtproutes parser never panics; a parsed table
// looks up every key it was given.
func FuzzParseRoutes(f *testing.F) {
	for _, s := range []string{
		"inside.example:firewall.example:26\n.example.org:\n:smarthost.example\nexample.net:[192.0.2.7]\n",
		"# c\n\nx\nA.B:r:1\n", "v6:[IPv6:::1]:25\n", "x:y:99999\n", ":\n", "::::\n", "[:]\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseRoutes(strings.NewReader(s))
		if err != nil {
			return
		}
		for key, rt := range rs.m {
			got, ok := rs.Lookup(key)
			if ok != (rt.Relay != "") || got != rt && ok {
				t.Fatalf("Lookup(%q) = %+v %v, table has %+v", key, got, ok, rt)
			}
			if rt.Port < 0 || rt.Port > 65535 {
				t.Fatalf("port %d", rt.Port)
			}
		}
	})
}

// FuzzDataEncoding: whatever the stored message, the DATA stream has only
// CRLF line ends, every line starting with '.' is stuffed, and removing the
// stuffing gives the message with normalized line ends.
func FuzzDataEncoding(f *testing.F) {
	for _, s := range []string{"", ".\n", "a\r.\nb", "x\r\n.\r\n", "..\r\r\n\n.", "\xff\x00.\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var out bytes.Buffer
		bw := bufio.NewWriterSize(&out, 16)
		if readErr, writeErr := copyData(bw, bytes.NewReader(b), false, make([]byte, 7)); readErr != nil || writeErr != nil {
			t.Fatal(readErr, writeErr)
		}
		s := out.String()
		if !strings.HasSuffix(s, ".\r\n") {
			t.Fatalf("no terminator: %q", s)
		}
		body := s[:len(s)-3]
		if body != "" && !strings.HasSuffix(body, "\r\n") {
			t.Fatalf("last line open: %q", s)
		}
		lines := strings.Split(body, "\r\n")
		lines = lines[:len(lines)-1]
		var plain []string
		for _, l := range lines {
			if strings.ContainsAny(l, "\r\n") {
				t.Fatalf("bare CR or LF in %q", s)
			}
			if strings.HasPrefix(l, ".") {
				if !strings.HasPrefix(l, "..") {
					t.Fatalf("unstuffed line %q", l)
				}
				l = l[1:]
			}
			plain = append(plain, l)
		}
		norm := strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", "\n"), "\r", "\n")
		if norm != "" && !strings.HasSuffix(norm, "\n") {
			norm += "\n"
		}
		if got := strings.Join(plain, "\n") + strings.Repeat("\n", min(1, len(plain))); got != norm {
			t.Fatalf("round trip %q, want %q", got, norm)
		}
	})
}
