package dotforward

import (
	"bytes"
	"context"
	"errors"
	"github.com/qmailkit/qmailkit/internal/mailtest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/qq"
)

// Assert that the queue program of dotqmail is a Forwarder.
var _ Forwarder = (*dotqmail.QueueProgram)(nil)

const testMsg = "Subject: hi\n\nbody\n"

// queue records what is forwarded.
type queue = mailtest.Forwarder

// setup is a home directory with the given files and a Deliverer for
// joe@mx.example.net working in it.
func setup(t *testing.T, files map[string]string) (*Deliverer, *queue, *os.File) {
	t.Helper()
	home := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(home, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	q := &queue{}
	d := &Deliverer{
		Config:    testConfig,
		Sender:    "s@t",
		UFLine:    "From s@t Thu Jan 01 00:00:00 1970\n",
		RPLine:    "Return-Path: <s@t>\n",
		DTLine:    "Delivered-To: joe@mx.example.net\n",
		Forwarder: q,
		Dir:       home,
		Env:       []string{"PATH=/usr/bin:/bin"},
	}
	return d, q, msgFile(t, testMsg)
}

func msgFile(t *testing.T, data string) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "msg")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func errText(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Text
	}
	if err != nil {
		return "not an *Error: " + err.Error()
	}
	return ""
}

// TestPlan is dot-forward's decisions (forward, direct delivery, pipe,
// refused file deliveries, empty files, qualification) through Plan,
// with the -n lines.
func TestPlan(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		args  []string
		out   string
		code  int
		err   string
	}{
		{"D1", map[string]string{".forward": "bob@x.y, carol\n"}, []string{".forward"},
			"forward carol@mx.example.net\nforward bob@x.y\n", 99, ""},
		{"D2", map[string]string{".forward": "joe\n"}, []string{".forward"}, "direct delivery\n", 0, ""},
		{"D2 both", map[string]string{".forward": "\\joe, bob@x.y\n"}, []string{".forward"},
			"forward bob@x.y\ndirect delivery\n", 0, ""},
		{"D3 program", map[string]string{".forward": "\"|vacation joe\"\n"}, []string{".forward"},
			"pipe through vacation joe\n", 99, ""},
		{"D3 file", map[string]string{".forward": "a@b.c\n/var/mail/joe\n"}, []string{".forward"},
			"forward a@b.c\n", 0, "file delivery /var/mail/joe not supported"},
		{"D4 empty", map[string]string{".forward": ""}, []string{".forward"},
			"skipping empty file .forward\ndirect delivery\n", 0, ""},
		{"D4 missing", nil, []string{".forward"}, "direct delivery\n", 0, ""},
		{"D5", map[string]string{".forward": "u@h+, plain+, n@h\n"}, []string{".forward"},
			"forward n@h.example.net\nforward plain+@mx.example.net\nforward u@h.plus.example.net\n", 99, ""},
		{"files in order", map[string]string{"empty": "# nothing\n", "two": "joe\n", "three": "x@y.z\n"},
			[]string{"missing", "empty", "two", "three"}, "skipping empty file empty\ndirect delivery\n", 0, ""},
		{"no files", nil, nil, "direct delivery\n", 0, ""},
		{"parse error", map[string]string{".forward": "a, b> c\n"}, []string{".forward"},
			"forward c@mx.example.net\nforward a,b@mx.example.net\n", 0, "unable to parse this line: a, b> c\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, q, _ := setup(t, tt.files)
			var out bytes.Buffer
			res, err := d.Plan(t.Context(), tt.args, &out)
			code := ExitCode(res, err)
			if tt.err != "" {
				code = 0 // compared below
				if ExitCode(res, err) != 111 || errText(err) != tt.err {
					t.Errorf("error %v (exit %d), want %q (111)", err, ExitCode(res, err), tt.err)
				}
			}
			if out.String() != tt.out || code != tt.code {
				t.Errorf("plan %q, exit %d; want %q, %d", out.String(), code, tt.out, tt.code)
			}
			if q.Calls != 0 {
				t.Errorf("Plan forwarded")
			}
		})
	}
}

// TestForward is a forwarding delivery with an in-process queue: one injection per
// file, DTLINE and the message, $NEWSENDER, recipients as found.
func TestForward(t *testing.T) {
	d, q, msg := setup(t, map[string]string{".forward": "bob@x.y, carol\n"})
	res, err := d.Deliver(t.Context(), []string{".forward"}, msg)
	if err != nil || res.Code != 99 || res.QP != "4242" || res.File != ".forward" {
		t.Fatalf("%+v, %v", res, err)
	}
	if q.Calls != 1 || q.Sender != "s@t" || !reflect.DeepEqual(q.Rcpts, []string{"carol@mx.example.net", "bob@x.y"}) ||
		q.Msg != "Delivered-To: joe@mx.example.net\n"+testMsg {
		t.Errorf("injected %d: %q %q %q", q.Calls, q.Sender, q.Rcpts, q.Msg)
	}

	// Forwarded and delivered: exit 0 after the injection.
	d, q, msg = setup(t, map[string]string{".forward": "\\joe, bob@x.y\n"})
	res, err = d.Deliver(t.Context(), []string{".forward"}, msg)
	if err != nil || res.Code != 0 || res.QP != "4242" || q.Calls != 1 {
		t.Errorf("direct and forward: %+v, %v, %d injections", res, err, q.Calls)
	}

	// The queue's refusals: its text, its class.
	for _, tt := range []struct {
		err  error
		code int
		text string
	}{
		{&dotqmail.ForwardError{Text: "mail server permanently rejected message (#5.3.0)", Perm: true}, 100,
			"unable to forward message: mail server permanently rejected message (#5.3.0)"},
		{&dotqmail.ForwardError{Text: "qq write error or disk full (#4.3.0)"}, 111,
			"unable to forward message: qq write error or disk full (#4.3.0)"},
		{errors.New("queue: closed"), 111, "unable to forward message: queue: closed"},
		// qmail-queue's pipes could not be made, as QueueProgram says it.
		{&dotqmail.ForwardError{Text: "unable to exec qq (#4.3.0)", Err: &qq.OpenError{Err: syscall.EMFILE}}, 111,
			"unable to run qmail-queue: process cannot open more files"},
	} {
		d, q, msg := setup(t, map[string]string{".forward": "a@b.c\n"})
		q.Err = tt.err
		res, err := d.Deliver(t.Context(), []string{".forward"}, msg)
		if ExitCode(res, err) != tt.code || errText(err) != tt.text {
			t.Errorf("%v: exit %d %q, want %d %q", tt.err, ExitCode(res, err), errText(err), tt.code, tt.text)
		}
	}
	d, _, msg = setup(t, map[string]string{".forward": "a@b.c\n"})
	d.Forwarder = nil
	if res, err := d.Deliver(t.Context(), []string{".forward"}, msg); ExitCode(res, err) != 111 {
		t.Errorf("no Forwarder: %v", err)
	}
}

// TestPrograms: a program runs at once with UFLINE, RPLINE, DTLINE and
// the message on a pipe, and its exit code decides.
func TestPrograms(t *testing.T) {
	d, q, msg := setup(t, map[string]string{".forward": "a@b.c, \"|cat > out1\", \"|cat > out2; test -p /dev/stdin\"\n"})
	res, err := d.Deliver(t.Context(), []string{".forward"}, msg)
	if err != nil || res.Code != 99 {
		t.Fatalf("%+v, %v", res, err)
	}
	want := d.UFLine + d.RPLine + d.DTLine + testMsg
	for _, f := range []string{"out1", "out2"} { // the message was rewound after each
		if b, _ := os.ReadFile(filepath.Join(d.Dir, f)); string(b) != want {
			t.Errorf("%s: %q, want %q", f, b, want)
		}
	}
	if q.Msg != d.DTLine+testMsg {
		t.Errorf("forwarded after the programs: %q", q.Msg)
	}

	for _, tt := range []struct {
		cmd  string
		code int
		text string
	}{
		{"exit 0", 99, ""},
		{"exit 99", 111, ""},
		{"exit 1", 111, ""},
		{"exit 111", 111, ""},
		{"exit 100", 100, ""},
		{"exit 64", 100, ""},
		{"exit 65", 100, ""},
		{"exit 70", 100, ""},
		{"exit 76", 100, ""},
		{"exit 77", 100, ""},
		{"exit 78", 100, ""},
		{"exit 112", 100, ""},
		{"kill -9 $$", 111, "child crashed"},
	} {
		d, q, msg := setup(t, map[string]string{".forward": "x@y.z, \"|" + tt.cmd + "\"\n"})
		res, err := d.Deliver(t.Context(), []string{".forward"}, msg)
		if ExitCode(res, err) != tt.code || errText(err) != tt.text {
			t.Errorf("%s: exit %d %q, want %d %q", tt.cmd, ExitCode(res, err), errText(err), tt.code, tt.text)
		}
		if want := tt.code == 99; (q.Calls == 1) != want {
			t.Errorf("%s: %d injections", tt.cmd, q.Calls)
		}
	}

	// Output goes to Stdout and Stderr.
	d, _, msg = setup(t, map[string]string{".forward": "\"|echo out; echo err >&2\"\n"})
	var so, se bytes.Buffer
	d.Stdout, d.Stderr = &so, &se
	if _, err := d.Deliver(t.Context(), []string{".forward"}, msg); err != nil || so.String() != "out\n" || se.String() != "err\n" {
		t.Errorf("%v: stdout %q stderr %q", err, so.String(), se.String())
	}

	// No shell.
	d, _, msg = setup(t, map[string]string{".forward": "\"|true\"\n"})
	d.Shell = filepath.Join(d.Dir, "nosuch")
	res, err = d.Deliver(t.Context(), []string{".forward"}, msg)
	if ExitCode(res, err) != 111 || errText(err) != "unable to run "+d.Shell+": file does not exist" {
		t.Errorf("no shell: %d %q", ExitCode(res, err), errText(err))
	}

	// stdin that cannot be rewound.
	d, _, _ = setup(t, map[string]string{".forward": "\"|cat >/dev/null\"\n"})
	pr, pw, _ := os.Pipe()
	pw.WriteString(testMsg)
	pw.Close()
	defer pr.Close()
	res, err = d.Deliver(t.Context(), []string{".forward"}, pr)
	if ExitCode(res, err) != 111 || errText(err) != "unable to rewind input: unseekable descriptor" {
		t.Errorf("pipe stdin: %d %q", ExitCode(res, err), errText(err))
	}
}

// TestProgramNotReading: a program that exits without reading a large
// message does not stall the delivery; one that never exits is killed
// when the context ends.
func TestProgramNotReading(t *testing.T) {
	d, _, _ := setup(t, map[string]string{".forward": "\"|exit 0\"\n"})
	big := msgFile(t, strings.Repeat("x", 4<<20))
	res, err := d.Deliver(t.Context(), []string{".forward"}, big)
	if err != nil || res.Code != 99 {
		t.Errorf("exit without reading: %+v, %v", res, err)
	}

	d, _, _ = setup(t, map[string]string{".forward": "\"|sleep 1000\"\n"})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err = d.Deliver(ctx, []string{".forward"}, big)
	if ExitCode(res, err) != 111 || time.Since(start) > 10*time.Second {
		t.Errorf("never exits: %v after %v", err, time.Since(start))
	}
}

// TestAbuse: what a user can put where .forward is read.
func TestAbuse(t *testing.T) {
	t.Run("FIFO without writer", func(t *testing.T) {
		d, _, msg := setup(t, nil)
		if err := syscall.Mkfifo(filepath.Join(d.Dir, ".forward"), 0o644); err != nil {
			t.Skip(err)
		}
		var out bytes.Buffer
		res, err := d.Plan(t.Context(), []string{".forward"}, &out)
		if err != nil || res.Code != 0 || out.String() != "skipping empty file .forward\ndirect delivery\n" {
			t.Errorf("%q, %v", out.String(), err)
		}
		if res, err := d.Deliver(t.Context(), []string{".forward"}, msg); err != nil || res.Code != 0 {
			t.Errorf("Deliver: %+v, %v", res, err)
		}
	})
	t.Run("FIFO with a silent writer", func(t *testing.T) {
		d, _, msg := setup(t, nil)
		path := filepath.Join(d.Dir, ".forward")
		if err := syscall.Mkfifo(path, 0o644); err != nil {
			t.Skip(err)
		}
		r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		w, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		res, err := d.Deliver(t.Context(), []string{".forward"}, msg)
		if ExitCode(res, err) != 111 || errText(err) != "unable to read .forward: temporary failure" {
			t.Errorf("%d %q", ExitCode(res, err), errText(err))
		}
	})
	t.Run("directory", func(t *testing.T) {
		d, _, msg := setup(t, nil)
		os.Mkdir(filepath.Join(d.Dir, ".forward"), 0o755)
		res, err := d.Deliver(t.Context(), []string{".forward"}, msg)
		if ExitCode(res, err) != 111 || errText(err) != "unable to read .forward: is a directory" {
			t.Errorf("%d %q", ExitCode(res, err), errText(err))
		}
	})
	t.Run("symlinks", func(t *testing.T) {
		d, q, msg := setup(t, map[string]string{"real": "a@b.c\n"})
		os.Symlink("real", filepath.Join(d.Dir, ".forward"))
		os.Symlink("nowhere", filepath.Join(d.Dir, ".dangling"))
		os.Symlink(".loop", filepath.Join(d.Dir, ".loop"))
		res, err := d.Deliver(t.Context(), []string{".dangling", ".forward"}, msg)
		if err != nil || res.Code != 99 || !reflect.DeepEqual(q.Rcpts, []string{"a@b.c"}) {
			t.Errorf("through a link: %+v, %v", res, err)
		}
		res, err = d.Deliver(t.Context(), []string{".loop"}, msg)
		if ExitCode(res, err) != 111 || errText(err) != "unable to open .loop: symbolic link loop" {
			t.Errorf("loop: %d %q", ExitCode(res, err), errText(err))
		}
		os.Symlink("/dev/zero", filepath.Join(d.Dir, ".zero"))
		res, err = d.Deliver(t.Context(), []string{".zero"}, msg)
		if ExitCode(res, err) != 111 || errText(err) != "out of memory" {
			t.Errorf("/dev/zero: %d %q", ExitCode(res, err), errText(err))
		}
	})
	t.Run("not a directory", func(t *testing.T) {
		d, _, msg := setup(t, map[string]string{"file": ""})
		res, err := d.Deliver(t.Context(), []string{"file/.forward"}, msg)
		if ExitCode(res, err) != 111 || errText(err) != "unable to open file/.forward: not a directory" {
			t.Errorf("%d %q", ExitCode(res, err), errText(err))
		}
	})
	t.Run("NUL bytes", func(t *testing.T) {
		// Cut at the NUL, as C strings: a line holding only a NUL
		// forwards to the empty address, as Debian's dot-forward does.
		d, q, msg := setup(t, map[string]string{".forward": "\x00\n\"a\x00b\"@c.d, e\x00\n"})
		res, err := d.Deliver(t.Context(), []string{".forward"}, msg)
		if err != nil || res.Code != 99 || !reflect.DeepEqual(q.Rcpts, []string{"", "e", "a"}) {
			t.Errorf("%+v, %v, %q", res, err, q.Rcpts)
		}
	})
	t.Run("huge", func(t *testing.T) {
		var b strings.Builder
		for b.Len() < 16<<20 {
			b.WriteString("# a comment line that is long enough to make the file big quickly, a, b, c\n")
		}
		b.WriteString("x@y.z\n")
		d, q, msg := setup(t, map[string]string{".forward": b.String()})
		res, err := d.Deliver(t.Context(), []string{".forward"}, msg)
		if err != nil || res.Code != 99 || !reflect.DeepEqual(q.Rcpts, []string{"x@y.z"}) {
			t.Errorf("%+v, %v", res, err)
		}
	})
	t.Run("thousands of addresses", func(t *testing.T) {
		// Lines "u0", "u1, u2", "u3", "u4, u5"...: each line's addresses
		// are found right to left.
		var b strings.Builder
		var want []string
		for i := 0; i < 20000; i += 3 {
			a, c, e := "u"+strconv.Itoa(i)+"@example.org", "u"+strconv.Itoa(i+1)+"@example.org", "u"+strconv.Itoa(i+2)+"@example.org"
			b.WriteString(a + "\n" + c + ", " + e + "\n")
			want = append(want, a, e, c)
		}
		d, q, msg := setup(t, map[string]string{".forward": b.String()})
		res, err := d.Deliver(t.Context(), []string{".forward"}, msg)
		if err != nil || res.Code != 99 || q.Calls != 1 || !reflect.DeepEqual(q.Rcpts, want) {
			t.Fatalf("%v, %d injections, %d recipients (want %d, in file order)", err, q.Calls, len(q.Rcpts), len(want))
		}
		d.MaxForward = 1000
		q.Calls = 0
		res, err = d.Deliver(t.Context(), []string{".forward"}, msg)
		if ExitCode(res, err) != 111 || errText(err) != "out of memory" || q.Calls != 0 {
			t.Errorf("over MaxForward: %d %q, %d injections", ExitCode(res, err), errText(err), q.Calls)
		}
	})
}

// TestCancel: a cancelled context stops the reading of a long file.
func TestCancel(t *testing.T) {
	d, q, msg := setup(t, map[string]string{".forward": strings.Repeat("# comment\n", 1<<16) + "a@b.c\n"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res, err := d.Deliver(ctx, []string{".forward"}, msg)
	if ExitCode(res, err) != 111 || !errors.Is(err, context.Canceled) || q.Calls != 0 {
		t.Errorf("%d %v, %d injections", ExitCode(res, err), err, q.Calls)
	}
}
