package vmail

import (
	"io"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/dotqmail"
)

// deliveredToSimple is deliveredTo written plainly: the oracle of the fuzz
// target.
func deliveredToSimple(msg string) map[string]bool {
	seen := map[string]bool{}
	for len(msg) > 0 {
		line, rest, found := strings.Cut(msg, "\n")
		msg = rest
		if found && len(line)+1 > 4096 || !found && len(line) >= 4096 {
			continue // longer than the reader's buffer
		}
		s := strings.TrimRight(line, "\r")
		if s == "" {
			break
		}
		if len(s) > 13 && strings.EqualFold(s[:13], "delivered-to:") {
			seen[strings.ToLower(strings.TrimSpace(s[13:]))] = true
		}
	}
	return seen
}

func FuzzDeliveredTo(f *testing.F) {
	f.Add("Delivered-To: joe@example.com\nSubject: x\n\nDelivered-To: no@example.com\n")
	f.Add("delivered-to:JOE@EXAMPLE.COM\r\n\r\n")
	f.Add("Received: x\n" + strings.Repeat("y", 5000) + "\nDelivered-To: a@b\n")
	f.Add("Delivered-To: a@b")
	f.Add("\x00Delivered-To: \x00\n")
	f.Fuzz(func(t *testing.T, msg string) {
		got, err := deliveredTo(io.NewSectionReader(strings.NewReader(msg), 0, int64(len(msg))))
		if err != nil {
			t.Fatal(err)
		}
		want := deliveredToSimple(msg)
		if len(got) != len(want) {
			t.Fatalf("%q: got %v, want %v", msg, got, want)
		}
		for k := range want {
			if !got[k] {
				t.Fatalf("%q: got %v, want %v", msg, got, want)
			}
		}
	})
}

func TestUserMaildir(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		arg, want string
		ok        bool
	}{
		{"./Maildir/", dir + "/Maildir", false}, // missing: an error naming it
		{"../x/", "", false},
		{"/etc/", "", false},
		{"./", "", false}, // USERDIR itself is no Maildir line of ours
	}
	for _, tt := range tests {
		got, err := userMaildir(dir, tt.arg)
		if (err == nil) != tt.ok || tt.ok && got != tt.want {
			t.Errorf("userMaildir(%q) = %q, %v", tt.arg, got, err)
		}
	}
}

func FuzzParseUserDotQmail(f *testing.F) {
	f.Add([]byte("# delete\n"))
	f.Add([]byte("&bob@example.com\ncarol@example.org\n./Maildir/\n| /usr/bin/autorespond 86400 3 x y\n"))
	f.Add([]byte("./Mailbox\n\n\n/abs/Maildir/\r\n"))
	f.Add([]byte("&a\x00b\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		lines, found, err := parseUserDotQmail("/u/.qmail", b)
		if err != nil {
			if lines != nil || found {
				t.Fatalf("an error with lines %v, found %v", lines, found)
			}
			return
		}
		if len(lines) > 0 && !found {
			t.Fatal("lines but not found")
		}
		for _, l := range lines {
			if strings.ContainsAny(l.arg, "\n\x00") || len(l.arg) > maxDotQmailLine || l.n < 1 {
				t.Fatalf("line %+v", l)
			}
			switch l.kind {
			case dotqmail.Forward, dotqmail.Program, dotqmail.Mbox, dotqmail.Maildir:
			default:
				t.Fatalf("kind %v", l.kind)
			}
		}
	})
}
