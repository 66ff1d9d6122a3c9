package maildir

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// 2000-01-02 03:04:05 UTC, a Sunday.
var q5 = time.Date(2000, 1, 2, 3, 4, 5, 0, time.UTC)

func TestWriteMbox(t *testing.T) {
	for _, tc := range []struct {
		name, msg, want string
	}{
		// The From_ line from Return-Path, ">From", and an unfinished last
		// line dropped.
		{"Q5", "Return-Path: <a b@c>\nFrom me\nx", "From a-b@c Sun Jan 02 03:04:05 2000\nReturn-Path: <a b@c>\n>From me\n\n"},
		{"Q5 bounce", "Return-Path: <>\n\nhi\n", "From MAILER-DAEMON Sun Jan 02 03:04:05 2000\nReturn-Path: <>\n\nhi\n\n"},
		{"Q5 no Return-Path", "Subject: s\n\nb\n", "From XXX Sun Jan 02 03:04:05 2000\nSubject: s\n\nb\n\n"},
		{"first line without LF", "Return-Path: <a@b>", "From XXX Sun Jan 02 03:04:05 2000\n\n"},
		{"empty message", "", "From XXX Sun Jan 02 03:04:05 2000\n\n"},
		{"tab", "Return-Path: <a\tb@c>\n", "From a-b@c Sun Jan 02 03:04:05 2000\nReturn-Path: <a\tb@c>\n\n"},
		{"last two bytes cut, whatever they are", "Return-Path: <a@b> \n", "From a@b> Sun Jan 02 03:04:05 2000\nReturn-Path: <a@b> \n\n"},
		{"CRLF: the '>' stays", "Return-Path: <a@b>\r\n", "From a@b> Sun Jan 02 03:04:05 2000\nReturn-Path: <a@b>\r\n\n"},
		{"short Return-Path", "Return-Path: <\n", "From  Sun Jan 02 03:04:05 2000\nReturn-Path: <\n\n"},
		{">From quoting", "a\nFrom x\n>From y\n>>From z\nFrom\n>From\nFromage\n From x\n", "From XXX Sun Jan 02 03:04:05 2000\na\n>From x\n>>From y\n>>>From z\nFrom\n>From\nFromage\n From x\n\n"},
		{"first line From ", "From x\n", "From XXX Sun Jan 02 03:04:05 2000\n>From x\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := WriteMbox(&out, strings.NewReader(tc.msg), q5); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("got  %q\nwant %q", out.String(), tc.want)
			}
		})
	}
}

func TestMboxFromLineDate(t *testing.T) {
	d := time.Date(2026, 12, 7, 21, 0, 9, 0, time.FixedZone("X", 3600))
	if got := string(MboxFromLine(nil, d)); got != "From XXX Mon Dec 07 20:00:09 2026\n" {
		t.Errorf("%q", got)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

func TestWriteMboxErrors(t *testing.T) {
	for n := range 4 {
		if err := WriteMbox(&failWriter{n: n}, strings.NewReader("a\nb\n"), q5); err == nil || err.Error() != "disk full" {
			t.Errorf("write error after %d writes: %v", n, err)
		}
	}
	r := io.MultiReader(strings.NewReader("a\n"), iotest.ErrReader(errors.New("eio")))
	if err := WriteMbox(io.Discard, r, q5); err == nil || err.Error() != "eio" {
		t.Errorf("read error: %v", err)
	}
}

// FuzzWriteMbox compares WriteMbox with qmail's maildir2mbox loop
// transcribed (getln, gfrom).
func FuzzWriteMbox(f *testing.F) {
	for _, s := range []string{"Return-Path: <a b@c>\nFrom me\nx", "Return-Path: <>\n", "", ">>From \n", "Return-Path: <\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var got bytes.Buffer
		if err := WriteMbox(&got, bytes.NewReader(msg), q5); err != nil {
			t.Fatal(err)
		}
		if want := qmailMbox(msg); !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%q: got %q, qmail %q", msg, got.Bytes(), want)
		}
	})
}

// qmailMbox is maildir2mbox.c's conversion of one message.
func qmailMbox(msg []byte) []byte {
	getln := func() (line []byte, match bool) {
		i := bytes.IndexByte(msg, '\n')
		if i < 0 {
			line, msg = msg, nil
			return line, false
		}
		line, msg = msg[:i+1], msg[i+1:]
		return line, true
	}
	gfrom := func(s []byte) bool {
		for len(s) > 0 && s[0] == '>' {
			s = s[1:]
		}
		return len(s) >= 5 && string(s[:5]) == "From "
	}
	var out []byte
	line, match := getln()
	uf := []byte("From XXX ")
	if match && bytes.HasPrefix(line, []byte("Return-Path: <")) {
		if line[14] == '>' {
			uf = []byte("From MAILER-DAEMON ")
		} else {
			uf = []byte("From ")
			for i := 14; i < len(line)-2; i++ {
				if line[i] == ' ' || line[i] == '\t' {
					uf = append(uf, '-')
				} else {
					uf = append(uf, line[i])
				}
			}
			uf = append(uf, ' ')
		}
	}
	out = append(out, uf...)
	out = append(out, "Sun Jan 02 03:04:05 2000\n"...)
	for match && len(line) > 0 {
		if gfrom(line) {
			out = append(out, '>')
		}
		out = append(out, line...)
		line, match = getln()
	}
	return append(out, '\n')
}
