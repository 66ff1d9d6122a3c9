package autorespond

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestReadHeader(t *testing.T) {
	long := strings.Repeat("x", 2000)
	tests := []struct {
		name   string
		in     string
		compat bool
		want   Header
		rest   string
	}{
		{"modern", "Subject: Hi\nTo: a@b\n\nbody\n", false,
			Header{{"Subject", "Hi"}, {"To", "a@b"}}, "body\n"},
		{"modern crlf", "Subject: Hi\r\nTo:  a@b \r\n\r\nbody\r\n", false,
			Header{{"Subject", "Hi"}, {"To", "a@b"}}, "body\r\n"},
		{"modern folded", "Subject: Hi\n\tthere\n  all\nX: y\n\n", false,
			Header{{"Subject", "Hi\tthere  all"}, {"X", "y"}}, ""},
		{"modern no space", "Subject:Hi\n\n", false, Header{{"Subject", "Hi"}}, ""},
		{"modern not a field", "From bob Tue\nbad name: x\nSubject: s\n\n", false, Header{{"Subject", "s"}}, ""},
		{"modern continuation first", " x\nA: b\n\n", false, Header{{"A", "b"}}, ""},
		{"modern long line", "A: " + long + "\n\n", false, Header{{"A", long}}, ""},
		{"modern no body", "A: b\n", false, Header{{"A", "b"}}, ""},
		{"modern empty", "", false, nil, ""},
		{"compat", "Subject: Hi\nTo: a@b\n\nbody\n", true,
			Header{{"Subject", " Hi\n"}, {"To", " a@b\n"}}, "body\n"},
		{"compat crlf does not end", "Subject: Hi\r\n\r\nX: y\n\nbody", true,
			Header{{"Subject", " Hi\r\n"}, {"\r", ""}, {"X", " y\n"}}, "body"},
		{"compat folded", "Subject: Hi\n\tthere\nX: y\n\n", true,
			Header{{"Subject", " Hi\n\tthere\n"}, {"X", " y\n"}}, ""},
		{"compat no space", "Subject:Hi\n\n", true, Header{{"Subject:Hi", ""}}, ""},
		{"compat tab", "Subject:\tHi\n\n", true, Header{{"Subject", "\tHi\n"}}, ""},
		{"compat two colons", "A:: b\n\n", true, Header{{"A:", " b\n"}}, ""},
		{"compat long line", "A: " + long + "\n\n", true,
			// fgets(1024): 1023 bytes, then the rest as a new line.
			Header{{"A", " " + long[:1020]}, {long[1020:], ""}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.in))
			h, err := ReadHeader(br, 1<<16, tt.compat)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(h, tt.want) {
				t.Errorf("got  %q\nwant %q", h, tt.want)
			}
			if rest, _ := io.ReadAll(br); string(rest) != tt.rest {
				t.Errorf("rest %q, want %q", rest, tt.rest)
			}
		})
	}
}

// TestReadHeaderLimit: exactly max bytes are allowed, one more is not.
func TestReadHeaderLimit(t *testing.T) {
	in := "Subject: 0123456789\n\n" // 21 bytes
	for _, compat := range []bool{false, true} {
		for _, tt := range []struct {
			max  int
			fail bool
		}{{21, false}, {20, true}, {5, true}} {
			_, err := ReadHeader(bufio.NewReader(strings.NewReader(in)), tt.max, compat)
			if errors.Is(err, ErrHeaderTooLarge) != tt.fail {
				t.Errorf("compat %v max %d: %v", compat, tt.max, err)
			}
		}
	}
}

func TestHeaderGet(t *testing.T) {
	h := Header{{"Subject", "a"}, {"subject", "b"}}
	if v, ok := h.Get("SUBJECT"); !ok || v != "a" {
		t.Errorf("%q %v", v, ok)
	}
	if _, ok := h.Get("To"); ok {
		t.Error("To found")
	}
	if vs := h.Values("Subject"); len(vs) != 2 {
		t.Error(vs)
	}
}

// FuzzReadHeader: any input, either mode: no panic, the limit holds, the
// header and the rest account for the input, and a modern header's
// fields are one line each.
func FuzzReadHeader(f *testing.F) {
	for _, s := range []string{
		"Subject: Hi\n\nbody\n",
		"Subject: Hi\r\n\tmore\r\n\r\nbody",
		"A:: b\n c\n\n",
		" lead\nX\n\n",
		"Subject: a\x00b\n\n",
		strings.Repeat("y", 3000) + "\n\n",
		"Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nhi\n--b--\n",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, in string, compat bool) {
		const max = 4096
		br := bufio.NewReaderSize(strings.NewReader(in), 16)
		h, err := ReadHeader(br, max, compat)
		if err != nil && !errors.Is(err, ErrHeaderTooLarge) {
			t.Fatal(err)
		}
		rest, _ := io.ReadAll(br)
		consumed := len(in) - len(rest)
		if consumed > max+1 && err == nil || !strings.HasSuffix(in, string(rest)) {
			t.Fatalf("consumed %d of %d, err %v", consumed, len(in), err)
		}
		for _, fl := range h {
			if !compat && (strings.ContainsAny(fl.Name, ": \t\n") || strings.Contains(fl.Value, "\n") || fl.Name == "") {
				t.Fatalf("modern field %q", fl)
			}
		}
		r := &Responder{Compat: compat, Addressed: true}
		r.Check(h, Envelope{Sender: "a@b.example", Recipient: "c@d.example"}, epoch)
		if !compat {
			r.Body = "x"
			reply, err := r.modernReply(h, Envelope{Sender: "a@b.example", Recipient: "c@d.example"}, epoch)
			if err != nil {
				t.Fatal(err)
			}
			// No field of the original can add a line of its own to the
			// reply's header.
			head, _, _ := strings.Cut(string(reply), "\n\n")
			known := "From: To: Subject: Date: Message-ID: In-Reply-To: References: Auto-Submitted: MIME-Version: Content-Type: Content-Transfer-Encoding: "
			for line := range strings.SplitSeq(head, "\n") {
				name, _, ok := strings.Cut(line, " ")
				if line[0] != ' ' && (!ok || !strings.Contains(known, name+" ")) || strings.ContainsAny(line, "\r\x00") || len(line) > 998 {
					t.Fatalf("reply header line %q", line)
				}
			}
		}
	})
}
