package autorespond

import (
	"strings"
	"testing"
	"time"
)

// TestCompatReply: autorespond 2.0.5's bytes after the Date and
// Message-ID lines, for each shape of the original and FLAG.
func TestCompatReply(t *testing.T) {
	const head = "Delivered-To: Autoresponder\nTo: x@y.example\nFrom: joe@example.com\n"
	long := strings.Repeat("z", 300)
	tests := []struct {
		name    string
		message string
		in      string
		quote   bool
		want    string
	}{
		{"qmailadmin vacation", "From: joe@example.com\nSubject: Away\n\nBack Monday.",
			"Subject: Hi\n\nbody\n", false,
			"Subject: Re: Hi\n\nFrom: joe@example.com\nSubject: Away\n\nBack Monday.\n\n\n"},
		{"no subject", "Subject: Away\n\nBack Monday.\n", "To: joe@example.com\n\nbody\n", false,
			"Subject: Re:(null)\nSubject: Away\n\nBack Monday.\n\n\n\n"},
		{"folded subject", "m\n", "Subject: a\n b\n\nbody\n", false,
			"Subject: Re: a\n b\n\nm\n\n\n\n"},
		{"first subject", "m\n", "Subject: one\nSubject: two\n\n", false,
			"Subject: Re: one\n\nm\n\n\n\n"},
		{"quote", "m\n", "Subject: Hi\n\nline 1\n\nline 3\n", true,
			"Subject: Re: Hi\n\nm\n\n-------- Original Message --------\n\n> line 1\n> \n> line 3\n\n\n"},
		{"quote long line", "m\n", "Subject: Hi\n\n" + long + "\n", true,
			"Subject: Re: Hi\n\nm\n\n-------- Original Message --------\n\n> " + long[:255] + "> " + long[255:] + "\n\n\n"},
		{"quote no line end", "m\n", "Subject: Hi\n\nlast", true,
			"Subject: Re: Hi\n\nm\n\n-------- Original Message --------\n\n> last\n\n"},
		{"quote multipart", "m\n",
			"Subject: Hi\nContent-Type: multipart/mixed;\n\tboundary=\"BB\"\n\npreamble\n--BB\nContent-Type: text/html\n\n<p>hi</p>\n" +
				"--BB\nContent-Type: text/plain; charset=us-ascii\n\nhello\nthere\n--BB\nContent-Type: text/plain\n\nsecond\n--BB--\n", true,
			"Subject: Re: Hi\n\nm\n\n-------- Original Message --------\n\n> hello\n> there\n\n\n"},
		{"quote multipart no text", "m\n",
			"Subject: Hi\nContent-Type: multipart/mixed; boundary=\"BB\"\n\n--BB\nContent-Type: image/png\n\nxx\n--BB--\n", true,
			"Subject: Re: Hi\n\nm\n\n-------- Original Message --------\n\n\n\n"},
		{"quote short boundary", "m\n", "Subject: Hi\nContent-Type: multipart/mixed; boundary=\n\nbody\n", true,
			"Subject: Re: Hi\n\nm\n\n-------- Original Message --------\n\n> body\n\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Responder{
				Compat: true, Interval: time.Hour, Max: 5, Dir: t.TempDir(), From: "joe@example.com",
				Message: []byte(tt.message), Quote: tt.quote, Now: func() time.Time { return epoch }, PID: 3,
			}
			res, err := r.Respond(t.Context(), strings.NewReader(tt.in), Envelope{Sender: "x@y.example"})
			if err != nil || res.Reason != Replied {
				t.Fatalf("%+v %v", res, err)
			}
			want := "Date: 8 Dec 2026 09:05:07 -0000\nMessage-ID: <" + unixStr(epoch) + ".3.blah>\n" + head + tt.want
			if string(res.Reply) != want {
				t.Errorf("got\n%q\nwant\n%q", res.Reply, want)
			}
			if res.From != "joe@example.com" || res.To != "x@y.example" {
				t.Errorf("envelope %q -> %q", res.From, res.To)
			}
		})
	}
}

// TestCompatDate: the day has no leading zero and the time is UTC.
func TestCompatDate(t *testing.T) {
	at := time.Date(2027, 1, 2, 3, 4, 5, 0, time.FixedZone("X", -5*3600))
	r := &Responder{Compat: true, Interval: time.Hour, Max: 1, Dir: t.TempDir(), Now: func() time.Time { return at }, PID: 1}
	res, err := r.Respond(t.Context(), strings.NewReader("\n"), Envelope{Sender: "x@y.example"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(res.Reply), "Date: 2 Jan 2027 08:04:05 -0000\n") {
		t.Errorf("%q", res.Reply)
	}
}

// TestReferences: the References field is bounded, keeps the first and
// the latest identifiers, and takes only well-formed ones.
func TestReferences(t *testing.T) {
	var refs []string
	for i := range 30 {
		refs = append(refs, "<r"+string(rune('a'+i%26))+string(rune('a'+i/26))+"@x>")
	}
	hdr := "Message-ID: <m@x>\nReferences: " + strings.Join(refs, " ") + " <bad id@x> <>\n\n"
	r := &Responder{Body: "b", Dir: t.TempDir()}
	res, err := r.Respond(t.Context(), strings.NewReader(hdr), Envelope{Sender: "a@b.example", Recipient: "joe@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	want := "References: <raa@x>\n " + strings.Join(refs[len(refs)-maxReferences+2:], "\n ") + "\n <m@x>\n"
	if !strings.Contains(string(res.Reply), want) {
		t.Errorf("want %q in\n%s", want, res.Reply)
	}
	// In-Reply-To of the original stands for References when it has one
	// identifier; a message without a Message-ID gets neither field.
	res, _ = r.Respond(t.Context(), strings.NewReader("Message-ID: <m@x>\nIn-Reply-To: <p@x>\n\n"), Envelope{Sender: "c@b.example", Recipient: "joe@example.com"})
	if !strings.Contains(string(res.Reply), "References: <p@x>\n <m@x>\n") {
		t.Errorf("%s", res.Reply)
	}
	res, _ = r.Respond(t.Context(), strings.NewReader("In-Reply-To: <p@x>\n\n"), Envelope{Sender: "d@b.example", Recipient: "joe@example.com"})
	if strings.Contains(string(res.Reply), "In-Reply-To") || strings.Contains(string(res.Reply), "References") {
		t.Errorf("%s", res.Reply)
	}
}

// TestBodyEncoding: plain ASCII goes as 7bit, anything else as
// quoted-printable, line ends LF.
func TestBodyEncoding(t *testing.T) {
	tests := []struct {
		body, cte, text string
	}{
		{"Back Monday.", "7bit", "Back Monday.\n"},
		{"Back\r\nMonday.\r\n", "7bit", "Back\nMonday.\n"},
		{"From here on\n", "7bit", "From here on\n"},
		{"trailing space \n", "quoted-printable", "trailing space=20\n"},
		{strings.Repeat("a", 80) + "\n", "quoted-printable", strings.Repeat("a", 75) + "=\naaaaa\n"},
		{"zurück\n", "quoted-printable", "zur=C3=BCck\n"},
		{"bad \xff byte\n", "quoted-printable", "bad =EF=BF=BD byte\n"},
	}
	for _, tt := range tests {
		r := &Responder{Body: tt.body, Dir: t.TempDir()}
		res, err := r.Respond(t.Context(), strings.NewReader("\n"), Envelope{Sender: "a@b.example", Recipient: "joe@example.com"})
		if err != nil {
			t.Fatal(err)
		}
		head, text, _ := strings.Cut(string(res.Reply), "\n\n")
		if !strings.Contains(head, "Content-Transfer-Encoding: "+tt.cte+"\n") && !strings.HasSuffix(head, "Content-Transfer-Encoding: "+tt.cte) || text != tt.text {
			t.Errorf("%q: %s\n%q", tt.body, head, text)
		}
	}
}
