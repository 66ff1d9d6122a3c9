package queue

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeMessage writes the files of a preprocessed message directly.
func fakeMessage(t *testing.T, q *Queue, id ID, size int, birth int64, info string, local, remote string, bounce bool) {
	t.Helper()
	write := func(kind, content string) {
		if err := os.WriteFile(q.path(kind, id), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("mess", strings.Repeat("m", size))
	write("info", info)
	b := time.Unix(birth, 0)
	os.Chtimes(q.path("info", id), b, b)
	if local != "" {
		write("local", local)
	}
	if remote != "" {
		write("remote", remote)
	}
	if bounce {
		write("bounce", "<x@y>:\nno\n\n")
	}
}

// qmail-qread's lines: the date, #N, size and <sender> of a message,
// then one line per recipient.
func TestWriteQread(t *testing.T) {
	q := openTest(t, Options{})
	fakeMessage(t, q, 457, 1234, 838640135, "Fjoe@a.example\x00", "Tbob@example.com\x00", "", false)
	var b bytes.Buffer
	if err := WriteQread(&b, q); err != nil {
		t.Fatal(err)
	}
	if want := "29 Jul 1996 11:35:35 GMT  #457  1234  <joe@a.example> \n\tlocal\tbob@example.com\n"; b.String() != want {
		t.Fatalf("got %q\nwant %q", b.String(), want)
	}

	fakeMessage(t, q, 26902, 99, 951782400, "F\x00", "Tl1@x\x00Dl2@x\x00", "Dr1@y\x00Tr\x01\xff@y\x00", true)
	fakeMessage(t, q, 480, 5, 0, "Fa@b\x00", "", "", false)         // no recipients left
	os.WriteFile(q.path("info", 481), []byte("Fgone@x\x00"), 0o600) // mess missing
	os.WriteFile(filepath.Join(q.Dir(), "info", "20", "junk"), nil, 0o600)
	b.Reset()
	if err := WriteQread(&b, q); err != nil {
		t.Fatal(err)
	}
	// Directory order within info/20 is the file system's: compare per message.
	got := b.String()
	for _, want := range []string{
		"29 Jul 1996 11:35:35 GMT  #457  1234  <joe@a.example> \n\tlocal\tbob@example.com\n",
		"29 Feb 2000 00:00:00 GMT  #26902  99  <>  bouncing\n\tlocal\tl1@x\n  done\tlocal\tl2@x\n  done\tremote\tr1@y\n\tremote\tr__@y\n",
		"1 Jan 1970 00:00:00 GMT  #480  5  <a@b> \n",
		"warning: trouble with #481: file does not exist\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Index(got, "#26902") > strings.Index(got, "#457") {
		t.Error("info/15 listed after info/20")
	}
	if strings.Contains(got, "junk") {
		t.Error("non-numeric name listed")
	}
}

func TestStat(t *testing.T) {
	q := openTest(t, Options{})
	for range 3 {
		if _, err := q.Inject(t.Context(), Envelope{Sender: "a@b", Recipients: []string{"c@d"}}, strings.NewReader("x\n")); err != nil {
			t.Fatal(err)
		}
	}
	fakeMessage(t, q, 457, 10, 0, "F\x00", "", "", false)
	st, err := q.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st != (Stats{Messages: 4, Unprocessed: 3}) {
		t.Errorf("Stat = %+v", st)
	}
	var b bytes.Buffer
	WriteQstat(&b, st)
	if want := "messages in queue: 4\nmessages in queue but not yet preprocessed: 3\n"; b.String() != want {
		t.Errorf("qstat %q", b.String())
	}
}

func TestMessage(t *testing.T) {
	q := openTest(t, Options{})
	fakeMessage(t, q, 23, 7, 1000, "Fs@x\x00", "Ta@l\x00", "Tb@r\x00Dc@r\x00Tpartial", false)
	m, err := q.Message(23)
	if err != nil {
		t.Fatal(err)
	}
	want := []Recipient{{"a@l", false, false}, {"b@r", true, false}, {"c@r", true, true}}
	if m.Sender != "s@x" || m.Size != 7 || m.Birth.Unix() != 1000 || len(m.Recipients) != 3 {
		t.Fatalf("%+v", m)
	}
	for i, r := range want {
		if m.Recipients[i] != r {
			t.Errorf("recipient %d = %+v, want %+v", i, m.Recipients[i], r)
		}
	}
}
