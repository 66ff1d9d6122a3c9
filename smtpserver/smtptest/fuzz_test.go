package smtptest

import (
	"bytes"
	"testing"
)

// FuzzRawMessage: for any message a client can send (no bare LF), the
// queued form (Received line, CRLF turned into LF, as smtpserver stores
// it) turns back into the message exactly, even when it starts with a
// space (which the field's continuation rule alone would take).
func FuzzRawMessage(f *testing.F) {
	for _, s := range []string{"", "Subject: x\r\n\r\nbody\r\n", "a\r\r\nb\rc", "Received: x\r\n y\r\n\r\n", "\r\n\r\n", "\x00\xff\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// What a client may send: every LF is part of a CRLF.
		msg := bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\n"), nil), []byte("|"), []byte("\r\n"))
		for _, rec := range []string{
			"Received: from unknown (HELO c) (127.0.0.1)\n  by 127.0.0.1 with SMTP; 8 Dec 2026 00:00:00 -0000\n",
			"Received: from x\n\tby y; now\n",
		} {
			queued := append([]byte(rec), bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))...)
			if got := rawMessage(queued, len(rec)); !bytes.Equal(got, msg) {
				t.Fatalf("rawMessage(%q) = %q, want %q", queued, got, msg)
			}
		}
	})
}
