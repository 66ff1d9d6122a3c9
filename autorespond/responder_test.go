package autorespond

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit"
	"github.com/qmailkit/qmailkit/dotqmail"
)

var _ Forwarder = (*dotqmail.QueueProgram)(nil)
var _ Forwarder = dotqmail.ForwarderFunc(nil)

// queued is one message given to a fakeQueue.
type queued struct {
	from string
	to   []string
	msg  string
}

// fakeQueue is a Forwarder that keeps what it is given.
type fakeQueue struct {
	mu   sync.Mutex
	msgs []queued
	err  error
}

func (q *fakeQueue) Forward(ctx context.Context, from string, to []string, r io.Reader) (string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return "", err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return "", q.err
	}
	q.msgs = append(q.msgs, queued{from, to, string(b)})
	return "4242", nil
}

var epoch = time.Date(2026, 12, 8, 9, 5, 7, 0, time.UTC)

// clock is a Now that the test moves.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestVector15 is the spec's vector 15: "autorespond 10000 5 msg log 0 +",
// six messages from x@y.example within 10000 s: replies for the first
// five, the sixth is too many, and the log holds six entries each
// holding the sender.
func TestVector15(t *testing.T) {
	dir := t.TempDir()
	q := &fakeQueue{}
	c := &clock{epoch}
	for i := range 6 {
		r := &Responder{
			Compat: true, Interval: 10000 * time.Second, Max: 5, Dir: dir,
			Message: []byte("Gone fishing.\n"), Forwarder: q, Now: c.now, PID: 100 + i,
		}
		res, err := r.Respond(t.Context(), strings.NewReader("Subject: Hi\n\nbody\n"), Envelope{Sender: "x@y.example"})
		if err != nil {
			t.Fatal(err)
		}
		want := Replied
		if i == 5 {
			want = TooMany
		}
		if res.Reason != want {
			t.Errorf("message %d: %v, want %v", i+1, res.Reason, want)
		}
		c.t = c.t.Add(1000 * time.Second)
	}
	if len(q.msgs) != 5 {
		t.Errorf("%d replies queued, want 5", len(q.msgs))
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 6 {
		t.Fatalf("log holds %d entries, want 6", len(ents))
	}
	for i, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		want := "A" + strconv.Itoa(100+i) + "."
		if !strings.HasPrefix(e.Name(), want) || string(b) != "x@y.example" {
			t.Errorf("entry %s = %q", e.Name(), b)
		}
	}
}

// TestVector17 is the spec's vector 17: FLAG 0, ARSENDER '+', original
// "Subject: Hi", MESSAGE "Gone fishing.\n", sender x@y.example.
func TestVector17(t *testing.T) {
	q := &fakeQueue{}
	r := &Responder{
		Compat: true, Interval: 10000 * time.Second, Max: 5, Dir: t.TempDir(),
		Message: []byte("Gone fishing.\n"), Forwarder: q, Now: func() time.Time { return epoch }, PID: 4711,
	}
	res, err := r.Respond(t.Context(), strings.NewReader("Subject: Hi\n\nbody\n"), Envelope{Sender: "x@y.example"})
	if err != nil || res.Reason != Replied || res.ID != "4242" {
		t.Fatalf("%+v %v", res, err)
	}
	want := "Date: 8 Dec 2026 09:05:07 -0000\nMessage-ID: <" + unixStr(epoch) + ".4711.blah>\n" +
		"Delivered-To: Autoresponder\nTo: x@y.example\nFrom: \nSubject: Re: Hi\n\nGone fishing.\n\n\n\n"
	if len(q.msgs) != 1 || q.msgs[0].from != "" || len(q.msgs[0].to) != 1 || q.msgs[0].to[0] != "x@y.example" || q.msgs[0].msg != want {
		t.Fatalf("queued %+v\nwant %q", q.msgs, want)
	}
	if string(res.Reply) != want {
		t.Errorf("Result.Reply %q", res.Reply)
	}
}

func unixStr(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// TestVector16 is the spec's vector 16 through the library: the reasons
// of the messages not answered, and the loop, permanent.
func TestVector16(t *testing.T) {
	tests := []struct {
		name   string
		sender string
		header string
		want   Reason
	}{
		{"empty sender", "", "Subject: x\n\n", NoSender},
		{"mailer-daemon", "MAILER-DAEMON@h.example", "Subject: x\n\n", NoSender},
		{"precedence bulk", "x@y.example", "Precedence: Bulk\n\n", Bulk},
		{"delivered-to", "x@y.example", "Delivered-To: autoresponder\n\n", Loop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			q := &fakeQueue{}
			r := &Responder{Compat: true, Interval: time.Hour, Max: 5, Dir: dir, Forwarder: q, Message: []byte("m\n")}
			res, err := r.Respond(t.Context(), strings.NewReader(tt.header+"body\n"), Envelope{Sender: tt.sender})
			if res.Reason != tt.want {
				t.Errorf("reason %v, want %v", res.Reason, tt.want)
			}
			if (tt.want == Loop) != (err != nil) || tt.want == Loop && (!errors.Is(err, ErrLoop) || !qmailkit.IsPermanent(err)) {
				t.Errorf("error %v", err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 || len(q.msgs) != 0 {
				t.Errorf("logged %d, queued %d: a refused message is neither logged nor answered", len(ents), len(q.msgs))
			}
		})
	}
}

// TestModernReply: the reply's fields, envelope and encoding.
func TestModernReply(t *testing.T) {
	q := &fakeQueue{}
	r := &Responder{
		Body: "Je suis absent jusqu'à lundi.\n", Dir: t.TempDir(), Forwarder: q,
		Now: func() time.Time { return epoch }, PID: 7, Hostname: "mx.example.com",
	}
	hdr := "From: Bob <bob@example.org>\nTo: joe@example.com\nSubject: =?utf-8?q?caf=C3=A9?= plans\n" +
		"Message-ID: <m1@example.org>\nReferences: <r0@example.org>\n <r1@example.org>\n\nbody\n"
	res, err := r.Respond(t.Context(), strings.NewReader(hdr), Envelope{Sender: "bob@example.org", Recipient: "joe@example.com"})
	if err != nil || res.Reason != Replied {
		t.Fatalf("%+v %v", res, err)
	}
	if len(q.msgs) != 1 || q.msgs[0].from != "" || strings.Join(q.msgs[0].to, ",") != "bob@example.org" {
		t.Fatalf("queued %+v", q.msgs)
	}
	msg := q.msgs[0].msg
	head, body, _ := strings.Cut(msg, "\n\n")
	for _, want := range []string{
		"From: <joe@example.com>\n",
		"To: <bob@example.org>\n",
		"Subject: =?utf-8?q?Re:_caf=C3=A9_plans?=\n",
		"Date: Tue, 08 Dec 2026 09:05:07 +0000\n",
		"In-Reply-To: <m1@example.org>\n",
		"References: <r0@example.org>\n <r1@example.org>\n <m1@example.org>\n",
		"Auto-Submitted: auto-replied\n",
		"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n",
	} {
		if !strings.Contains(head+"\n", want) {
			t.Errorf("header lacks %q:\n%s", want, head)
		}
	}
	if !strings.Contains(head, "Message-ID: <") || !strings.Contains(head, ".autorespond@mx.example.com>\n") {
		t.Errorf("Message-ID:\n%s", head)
	}
	if body != "Je suis absent jusqu'=C3=A0 lundi.\n" {
		t.Errorf("body %q", body)
	}
	if strings.Contains(msg, "\r") || strings.Contains(msg, "Delivered-To") || strings.Contains(msg, "body") {
		t.Errorf("reply holds CR, Delivered-To or the original's text:\n%s", msg)
	}
}

// TestModernSubject: the reply's subject from Subject or the original.
func TestModernSubject(t *testing.T) {
	tests := []struct {
		name, subject, orig, want string
	}{
		{"configured", "Away", "Hi", "Away"},
		{"re", "", "Hi", "Re: Hi"},
		{"already re", "", "RE: Hi", "RE: Hi"},
		{"none", "", "", "Automatic reply"},
		{"newline injection", "Away\nBcc: victim@example.net", "", "Away Bcc: victim@example.net"},
		{"folded original", "", "Hi\n there", "Re: Hi there"},
		{"utf-8 configured", "Abwesend – zurück", "", "=?utf-8?q?Abwesend_=E2=80=93_zur=C3=BCck?="},
		{"long", "", strings.Repeat("x", 5000), "Re: " + strings.Repeat("x", maxSubject-4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Responder{Subject: tt.subject, Body: "b", Dir: t.TempDir(), Now: func() time.Time { return epoch }}
			hdr := ""
			if tt.orig != "" {
				hdr = "Subject: " + tt.orig + "\n"
			}
			res, err := r.Respond(t.Context(), strings.NewReader(hdr+"\nbody\n"), Envelope{Sender: "a@b.example", Recipient: "joe@example.com"})
			if err != nil || res.Reason != Replied {
				t.Fatalf("%+v %v", res, err)
			}
			if !strings.Contains(string(res.Reply), "\nSubject: "+tt.want+"\n") {
				t.Errorf("want Subject: %q in\n%s", tt.want, res.Reply)
			}
			if strings.Contains(string(res.Reply), "\nBcc:") {
				t.Error("header injection")
			}
		})
	}
}

// TestForwardError: a reply that cannot be queued is returned with the
// error, and the message stays logged.
func TestForwardError(t *testing.T) {
	boom := errors.New("qq down")
	r := &Responder{Body: "b", Dir: t.TempDir(), Forwarder: &fakeQueue{err: boom}}
	res, err := r.Respond(t.Context(), strings.NewReader("\n"), Envelope{Sender: "a@b.example", Recipient: "j@e.example"})
	if !errors.Is(err, boom) || res.Reason != Replied || res.Reply == nil {
		t.Fatalf("%+v %v", res, err)
	}
}

// TestNoFrom: a modern reply needs a From address, and its absence is
// found before the message is logged.
func TestNoFrom(t *testing.T) {
	dir := t.TempDir()
	r := &Responder{Body: "b", Dir: dir}
	if _, err := r.Respond(t.Context(), strings.NewReader("\n"), Envelope{Sender: "a@b.example"}); err == nil {
		t.Fatal("no error without From and Recipient")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Error("logged")
	}
}

// TestMissingDir: the log directory must exist and be a directory (a
// FIFO there does not block); nothing is queued.
func TestMissingDir(t *testing.T) {
	q := &fakeQueue{}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	for _, dir := range []string{"", filepath.Join(t.TempDir(), "nope"), fifo, file} {
		r := &Responder{Body: "b", Dir: dir, Forwarder: q}
		_, err := r.Respond(t.Context(), strings.NewReader("\n"), Envelope{Sender: "a@b.example", Recipient: "j@e.example"})
		if !errors.Is(err, ErrLogDir) || qmailkit.IsPermanent(err) {
			t.Errorf("dir %q: %v", dir, err)
		}
	}
	if len(q.msgs) != 0 {
		t.Error("queued without a log")
	}
}

// TestUnwritableDir: a log entry that cannot be made is ErrLogEntry.
func TestUnwritableDir(t *testing.T) {
	dir := t.TempDir()
	// Every name the entry could take is a directory already (a test
	// that works as root too, unlike a read-only directory).
	r := &Responder{Body: "b", Dir: dir, PID: 9, Now: func() time.Time { return epoch }}
	name := "A9." + unixStr(epoch)
	os.Mkdir(filepath.Join(dir, name), 0o700)
	for i := 1; i < 1000; i++ {
		os.Mkdir(filepath.Join(dir, name+"."+strconv.Itoa(i)), 0o700)
	}
	_, err := r.Respond(t.Context(), strings.NewReader("\n"), Envelope{Sender: "a@b.example", Recipient: "j@e.example"})
	if !errors.Is(err, ErrLogEntry) {
		t.Fatalf("%v", err)
	}
}

// TestHugeHeader: a header beyond MaxHeaderBytes is not answered and not
// logged, and the reader stops at the limit.
func TestHugeHeader(t *testing.T) {
	for _, compat := range []bool{false, true} {
		dir := t.TempDir()
		r := &Responder{Compat: compat, Body: "b", Message: []byte("m"), Dir: dir, Max: 5, Interval: time.Hour, MaxHeaderBytes: 1 << 16}
		src := &countReader{r: io.MultiReader(strings.NewReader("Subject: x\n"), &repeatReader{line: "X-Junk: " + strings.Repeat("y", 100) + "\n"})}
		res, err := r.Respond(t.Context(), src, Envelope{Sender: "a@b.example", Recipient: "j@e.example"})
		if err != nil || res.Reason != HeaderTooLarge {
			t.Fatalf("compat %v: %+v %v", compat, res, err)
		}
		if src.n > 1<<17 {
			t.Errorf("read %d bytes for a limit of 64 KiB", src.n)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Error("logged")
		}
		// One line of a megabyte, no line end.
		src = &countReader{r: &repeatReader{line: "y"}}
		res, _ = r.Respond(t.Context(), src, Envelope{Sender: "a@b.example"})
		if res.Reason != HeaderTooLarge || src.n > 1<<17 {
			t.Errorf("compat %v: one long line: %v after %d bytes", compat, res.Reason, src.n)
		}
	}
}

type countReader struct {
	r io.Reader
	n int
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

// repeatReader repeats line for ever.
type repeatReader struct {
	line string
	off  int
}

func (r *repeatReader) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		c := copy(b[n:], r.line[r.off:])
		n += c
		r.off = (r.off + c) % len(r.line)
	}
	return n, nil
}

// TestNULs: NUL bytes in the header and the message file.
func TestNULs(t *testing.T) {
	r := &Responder{
		Compat: true, Interval: time.Hour, Max: 5, Dir: t.TempDir(), Message: []byte("Gone\x00fishing\n"),
		Now: func() time.Time { return epoch }, PID: 1,
	}
	res, err := r.Respond(t.Context(), strings.NewReader("Subject: a\x00b\n\n"), Envelope{Sender: "x@y.example"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.IndexByte(res.Reply, 0) >= 0 || !bytes.HasSuffix(res.Reply, []byte("Subject: Re: a\nGone\n\n\n")) {
		t.Errorf("%q", res.Reply)
	}
	m := &Responder{Body: "x\x00y", Dir: t.TempDir()}
	res, err = m.Respond(t.Context(), strings.NewReader("Subject: a\x00b\n\n"), Envelope{Sender: "x@y.example", Recipient: "j@e.example"})
	if err != nil || bytes.IndexByte(res.Reply, 0) >= 0 {
		t.Errorf("%q %v", res.Reply, err)
	}
}

// TestConcurrent: one Responder used by several goroutines at once, as a
// mail server's deliveries would: every sender is answered once, and two
// messages of one sender at the same moment get at most one reply (each
// may see the other's entry: then neither is answered).
func TestConcurrent(t *testing.T) {
	q := &fakeQueue{}
	r := &Responder{Body: "b", Dir: t.TempDir(), Forwarder: q}
	send := func(sender string) {
		if _, err := r.Respond(t.Context(), strings.NewReader("Subject: x\n\n"), Envelope{Sender: sender, Recipient: "joe@example.com"}); err != nil {
			t.Error(err)
		}
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() { send("s" + strconv.Itoa(i) + "@example.org") })
	}
	wg.Wait()
	if len(q.msgs) != 16 {
		t.Errorf("%d replies to 16 senders", len(q.msgs))
	}
	for range 2 {
		wg.Go(func() { send("same@example.org") })
	}
	wg.Wait()
	if n := len(q.msgs) - 16; n > 1 {
		t.Errorf("%d replies to one sender", n)
	}
}

// TestLogger: a line per decision.
func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	r := &Responder{Body: "b", Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	r.Respond(t.Context(), strings.NewReader("Precedence: bulk\n\n"), Envelope{Sender: "a@b.example", Recipient: "j@e.example"})
	r.Respond(t.Context(), strings.NewReader("\n"), Envelope{Sender: "a@b.example", Recipient: "j@e.example"})
	out := buf.String()
	if strings.Count(out, "\n") != 2 || !strings.Contains(out, `result="junk, bulk or list precedence"`) || !strings.Contains(out, "result=replied") || !strings.Contains(out, "sender=a@b.example") {
		t.Errorf("%s", out)
	}
}
