package inject

import (
	"io"
	"strings"
	"testing"
	"time"
)

// BenchmarkPrepare prepares and reads a message with a typical header and
// a 1 MiB body: the cost per message of qmail-inject's logic, no process.
func BenchmarkPrepare(b *testing.B) {
	in := &Injector{DefaultHost: "ex.com", DefaultDomain: "ex.com", PlusDomain: "ex.com", IDHost: "mail.ex.com",
		User: "joe", SenderUser: "joe", Now: func() time.Time { return time.Unix(1700000000, 0) }, PID: 1}
	header := "From: \"Joe Q\" <joe@ex.com>\nTo: " + strings.Repeat("someone@example.org, ", 20) + "last\n" +
		"Cc: a, b, c\nSubject: benchmark\nMessage-ID: <x@y>\nDate: now\n\n"
	msg := header + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", 16<<10)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		m, err := in.Prepare(strings.NewReader(msg), Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHeader is the header work alone: 24 recipients, no body.
func BenchmarkHeader(b *testing.B) {
	in := &Injector{DefaultHost: "ex.com", DefaultDomain: "ex.com", PlusDomain: "ex.com", IDHost: "mail.ex.com",
		User: "joe", SenderUser: "joe", Now: func() time.Time { return time.Unix(1700000000, 0) }, PID: 1}
	msg := "From: \"Joe Q\" <joe@ex.com>\nTo: " + strings.Repeat("someone@example.org, ", 20) + "last\n" +
		"Cc: a, b, c\nSubject: benchmark\n\n"
	for b.Loop() {
		if _, err := in.Prepare(strings.NewReader(msg), Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
