package command

import (
	"bytes"
	"context"
	"github.com/qmailkit/qmailkit/internal/mailtest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/dotqmail"
)

var _ dotqmail.Forwarder = (*fakeQueue)(nil)

// fakeQueue records what is forwarded.
type fakeQueue = mailtest.Forwarder

// file writes s to a new file in dir and returns its path.
func file(t *testing.T, dir, name, s string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func open(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

type result struct {
	code           int
	stdout, stderr string
}

// run calls a program with stdin from the file at in ("" for an empty one).
func run(t *testing.T, fn func(IO) int, in string, env []string, q dotqmail.Forwarder) result {
	t.Helper()
	if in == "" {
		in = file(t, t.TempDir(), "empty", "")
	}
	var so, se bytes.Buffer
	code := fn(IO{Stdin: open(t, in), Stdout: &so, Stderr: &se, Env: env, Forwarder: q})
	return result{code, so.String(), se.String()}
}

// setforward compiles src with our setforward into dir/name.
func setforward(t *testing.T, dir, name, src string) string {
	t.Helper()
	in := file(t, t.TempDir(), "in", src)
	db := filepath.Join(dir, name)
	r := run(t, func(o IO) int { return Setforward([]string{"setforward", db, db + ".tmp"}, o) }, in, nil, nil)
	if r.code != 0 {
		t.Fatalf("setforward: %+v", r)
	}
	return db
}

func ff(args ...string) func(IO) int {
	return func(o IO) int { return Fastforward(context.Background(), append([]string{"fastforward"}, args...), o) }
}

// fastforward's behaviour (see fastforward(1)): the owner- sender, a
// wildcard alias, programs, hostless aliases, unknown addresses with
// and without -p, and a real delivery through setforward's database.
func TestFastforwardVectors(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctl := filepath.Join(dir, "qmail", "control")
	os.MkdirAll(ctl, 0o755)
	file(t, ctl, "me", "example.net\n")
	file(t, dir, "aliases", "owner-list: listowner\nlist: :include:LIST, root\nroot: admin@example.org\n"+
		"prog: \"|echo hi\", ext@other.org\nloop1: loop2\n")
	if r := run(t, func(o IO) int {
		return Newaliases(filepath.Join(dir, "aliases"), filepath.Join(dir, "aliases.tmp"), filepath.Join(dir, "aliases.cdb"), o)
	}, "", []string{"QMAILHOME=" + filepath.Join(dir, "qmail")}, nil); r.code != 0 {
		t.Fatalf("newaliases: %+v", r)
	}
	file(t, dir, "LIST.bin", "&joe\x00&bob@x.y\x00")
	setforward(t, dir, "wild.cdb", "@example.net: catchall@example.org; list@: x@y.z;")
	f6 := setforward(t, dir, "f6.cdb", "a@example.org: &b@x.y, &c@x.y, |true;")
	msg := file(t, dir, "msg", "Subject: x\n\nhi\n")
	env := func(kv ...string) []string { return append([]string{"PATH=/usr/bin:/bin"}, kv...) }

	tests := []struct {
		name   string
		fn     func(IO) int
		env    []string
		want   result
		queued string // the sender and recipients queued, "" for none
	}{
		{"F1", ff("-n", "aliases.cdb"), env("RECIPIENT=list@example.net", "SENDER=b@s.t"),
			result{0, "", "from <owner-list@example.net>\nto <joe>\nto <bob@x.y>\nto <root@example.net>\n"}, ""},
		{"F1 empty sender", ff("-n", "aliases.cdb"), env("RECIPIENT=list@example.net", "SENDER="),
			result{0, "", "from <>\nto <joe>\nto <bob@x.y>\nto <root@example.net>\n"}, ""},
		{"F1 #@[]", ff("-n", "aliases.cdb"), env("RECIPIENT=list@example.net", "SENDER=#@[]"),
			result{0, "", "from <#@[]>\nto <joe>\nto <bob@x.y>\nto <root@example.net>\n"}, ""},
		{"F1 no SENDER", ff("-n", "aliases.cdb"), env("RECIPIENT=root@example.net"),
			result{0, "", "from <original envelope sender>\nto <admin@example.org>\n"}, ""},
		{"F2", ff("-n", "wild.cdb"), env("RECIPIENT=list@example.net", "SENDER=a@b"),
			result{0, "", "from <a@b>\nto <catchall@example.org>\n"}, ""},
		{"F2 local@", ff("-n", "wild.cdb"), env("RECIPIENT=list@other.net", "SENDER=a@b"),
			result{0, "", "from <a@b>\nto <x@y.z>\n"}, ""},
		{"F3", ff("-n", "aliases.cdb"), env("RECIPIENT=prog@example.net", "SENDER=a@b"),
			result{0, "", "run !echo hi\nfrom <a@b>\nto <ext@other.org>\n"}, ""},
		{"F4", ff("-n", "aliases.cdb"), env("RECIPIENT=loop1@example.net", "SENDER=a@b"),
			result{0, "", "from <a@b>\nto <loop2@example.net>\n"}, ""},
		{"F5", ff("-n", "aliases.cdb"), env("RECIPIENT=nobody@other.net", "SENDER=a@b"),
			result{100, "", "Sorry, no mailbox here by that name. (#5.1.1)\n"}, ""},
		{"F5 -p", ff("-np", "aliases.cdb"), env("RECIPIENT=nobody@other.net", "SENDER=a@b"), result{0, "", ""}, ""},
		{"F5 known -p", ff("-n", "-p", "aliases.cdb"), env("RECIPIENT=loop1@example.net", "SENDER=a@b"),
			result{99, "", "from <a@b>\nto <loop2@example.net>\n"}, ""},
		{"-d", ff("-nd", "aliases.cdb"), env("DEFAULT=loop1", "HOST=example.net", "SENDER=a@b"),
			result{0, "", "from <a@b>\nto <loop2@example.net>\n"}, ""},
		{"-d EXT", ff("-nd", "aliases.cdb"), env("EXT=loop1", "HOST=example.net", "SENDER=a@b"),
			result{0, "", "from <a@b>\nto <loop2@example.net>\n"}, ""},
		{"F6", ff(f6), env("RECIPIENT=a@example.org", "SENDER=s@t", "DTLINE=Delivered-To: a@example.org\n"),
			result{0, "", "fastforward: qp 4242\n"}, "s@t b@x.y c@x.y"},
		{"F6 -p", ff("-p", f6), env("RECIPIENT=a@example.org", "SENDER=s@t"),
			result{99, "", "fastforward: qp 4242\n"}, "s@t b@x.y c@x.y"},
		{"no forwarding", ff("-n", f6), env("RECIPIENT=nothing@x", "SENDER=s@t"),
			result{100, "", "Sorry, no mailbox here by that name. (#5.1.1)\n"}, ""},
		{"usage", ff(), env(), result{100, "", "fastforward: usage: fastforward [ -nNpP ] data.cdb\n"}, ""},
		{"illegal", ff("-x", "a"), env(), result{100, "", "fastforward: illegal option -- x\nfastforward: usage: fastforward [ -nNpP ] data.cdb\n"}, ""},
		{"no RECIPIENT", ff("-n", "aliases.cdb"), env(), result{100, "", "fastforward: fatal: $RECIPIENT must be set\n"}, ""},
		{"no DEFAULT", ff("-d", "aliases.cdb"), env("HOST=x"), result{100, "", "fastforward: fatal: $DEFAULT or $EXT must be set\n"}, ""},
		{"no HOST", ff("-d", "aliases.cdb"), env("DEFAULT=x"), result{100, "", "fastforward: fatal: $HOST must be set\n"}, ""},
		{"no cdb", ff("nosuch.cdb"), env(), result{111, "", "fastforward: fatal: unable to read nosuch.cdb: file does not exist\n"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &fakeQueue{}
			got := run(t, tt.fn, msg, tt.env, q)
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			queued := ""
			if q.Calls > 0 {
				queued = strings.Join(append([]string{q.Sender}, q.Rcpts...), " ")
			}
			if queued != tt.queued {
				t.Errorf("queued %q, want %q", queued, tt.queued)
			}
			if tt.name == "F6" && q.Msg != "Delivered-To: a@example.org\nSubject: x\n\nhi\n" {
				t.Errorf("message %q", q.Msg)
			}
		})
	}
}

func TestFastforwardPrograms(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	db := setforward(t, dir, "p.cdb", `ok@x: |cat>>out, &f@y; perm@x: |exit\ 77, &f@y; temp@x: |exit\ 3;
crash@x: |kill\ -9\ $$; pre@x: !cat; twice@x: |cat>>out2, |cat>>out2;`)
	msg := file(t, dir, "msg", "hello\n")
	env := []string{"PATH=/usr/bin:/bin", "SENDER=s@t"}
	for _, tt := range []struct {
		rcpt   string
		env    []string
		want   result
		queued bool
	}{
		{"ok@x", env, result{0, "", "fastforward: qp 4242\n"}, true},
		{"perm@x", env, result{100, "", ""}, false},
		{"temp@x", env, result{111, "", ""}, false},
		{"crash@x", env, result{111, "", "fastforward: fatal: child crashed in |kill -9 $$: no error\n"}, false},
		{"pre@x", []string{"PATH=/nonexistent"}, result{111, "", "fastforward: fatal: unable to run !cat: file does not exist\n"}, false},
		{"twice@x", env, result{0, "", ""}, false},
	} {
		q := &fakeQueue{}
		got := run(t, ff(db), msg, append(tt.env, "RECIPIENT="+tt.rcpt), q)
		if got != tt.want || (q.Calls > 0) != tt.queued {
			t.Errorf("%s: got %+v queued %v, want %+v queued %v", tt.rcpt, got, q.Calls > 0, tt.want, tt.queued)
		}
	}
	if b, _ := os.ReadFile("out"); string(b) != "hello\n" {
		t.Errorf("out = %q", b)
	}
	// the input is rewound after each program
	if b, _ := os.ReadFile("out2"); string(b) != "hello\nhello\n" {
		t.Errorf("out2 = %q", b)
	}
}

func TestFastforwardQueueFailure(t *testing.T) {
	dir := t.TempDir()
	db := setforward(t, dir, "d.cdb", "a@x: &b@y;")
	msg := file(t, dir, "msg", "m\n")
	for _, tt := range []struct {
		err  error
		want result
	}{
		{&dotqmail.ForwardError{Text: "mail server permanently rejected message (#5.3.0)", Perm: true},
			result{100, "", "fastforward: fatal: mail server permanently rejected message (#5.3.0)\n"}},
		{&dotqmail.ForwardError{Text: "qq write error or disk full (#4.3.0)"},
			result{111, "", "fastforward: fatal: qq write error or disk full (#4.3.0)\n"}},
	} {
		got := run(t, ff(db), msg, []string{"RECIPIENT=a@x"}, &fakeQueue{Err: tt.err})
		if got != tt.want {
			t.Errorf("got %+v, want %+v", got, tt.want)
		}
	}
}

func TestNewaliasesErrors(t *testing.T) {
	dir := t.TempDir()
	env := []string{"QMAILHOME=" + filepath.Join(dir, "nohome")}
	na := func(src string) func(IO) int {
		return func(o IO) int {
			return Newaliases(src, filepath.Join(dir, "aliases.tmp"), filepath.Join(dir, "aliases.cdb"), o)
		}
	}
	for _, tt := range []struct {
		in, want string
		code     int
	}{
		{"a: /var/mail/x\n", "newaliases: fatal: file delivery /var/mail/x not supported\n", 111},
		{"foo\n", "newaliases: fatal: unable to parse this line: foo\n\n", 111},
		{"foo: :include:\n", "newaliases: fatal: empty :include: filenames not permitted\n", 111},
		{"a: " + strings.Repeat("b", 801) + "@c.d\n", "newaliases: fatal: addresses over 800 bytes are not permitted\n", 100},
	} {
		got := run(t, na(file(t, dir, "aliases", tt.in)), "", env, nil)
		if got.code != tt.code || got.stderr != tt.want {
			t.Errorf("%q: got %+v", tt.in, got)
		}
		if _, err := os.Stat(filepath.Join(dir, "aliases.cdb")); err == nil {
			t.Errorf("%q: aliases.cdb written", tt.in)
		}
	}
	got := run(t, na(filepath.Join(dir, "nosuch")), "", env, nil)
	if want := "newaliases: fatal: unable to read " + filepath.Join(dir, "nosuch") + ": file does not exist\n"; got.stderr != want || got.code != 111 {
		t.Errorf("got %+v", got)
	}
}

func TestMaillistPrograms(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "l.bin")
	set := func(o IO) int { return Setmaillist([]string{"setmaillist", bin, bin + ".tmp"}, o) }
	in := file(t, dir, "in", "joe\n# c\n/lists/sub\nbob@x.y \n&carol@z.w\n\n")
	if r := run(t, set, in, nil, nil); r.code != 0 {
		t.Fatalf("setmaillist: %+v", r)
	}
	got := run(t, Printmaillist, bin, nil, nil)
	if want := (result{0, "&joe\n/lists/sub\n&bob@x.y\n&carol@z.w\n", ""}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	for _, tt := range []struct {
		fn   func(IO) int
		in   string
		want result
	}{
		{Printmaillist, "a\x00", result{100, "", "printmaillist: fatal: bad mailing list format\n"}},
		// the 256-byte output buffer is lost when printmaillist dies
		{Printmaillist, "&a\x00&b\x00x\x00", result{100, "", "printmaillist: fatal: bad mailing list format\n"}},
		{set, "a\x00b\n", result{111, "", "setmaillist: fatal: NUL in input\n"}},
		{set, strings.Repeat("a", 801) + "\n", result{111, "", "setmaillist: fatal: addresses must be under 800 bytes\n"}},
		{func(o IO) int { return Setmaillist([]string{"setmaillist", bin}, o) }, "", result{100, "", "setmaillist: usage: setmaillist list.bin list.tmp\n"}},
		{Printforward, "", result{100, "", "printmaillist: fatal: bad database format\n"}},
		{func(o IO) int { return Setforward(nil, o) }, "", result{100, "", "setforward: usage: setforward data.cdb data.tmp\n"}},
	} {
		if got := run(t, tt.fn, file(t, dir, "in", tt.in), nil, nil); got != tt.want {
			t.Errorf("%q: got %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// newaliases on /etc/aliases that is a FIFO without a writer, a symbolic
// link loop, or a directory: it neither hangs nor writes a database it
// should not.
func TestNewaliasesAbuse(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	syscallMkfifo(t, fifo)
	loop := filepath.Join(dir, "loop")
	os.Symlink("loop", loop)
	env := []string{"QMAILHOME=" + filepath.Join(dir, "nohome")}
	for _, tt := range []struct {
		src  string
		want result
	}{
		{fifo, result{0, "", ""}},
		{loop, result{111, "", "newaliases: fatal: unable to read " + loop + ": symbolic link loop\n"}},
		{dir, result{111, "", "newaliases: fatal: unable to read " + dir + ": is a directory\n"}},
	} {
		cdb := filepath.Join(dir, "aliases.cdb")
		os.Remove(cdb)
		got := run(t, func(o IO) int { return Newaliases(tt.src, cdb+".tmp", cdb, o) }, "", env, nil)
		if got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.src, got, tt.want)
		}
		if fi, err := os.Stat(cdb); (err == nil) != (tt.want.code == 0) || (err == nil && fi.Size() != 2048) {
			t.Errorf("%s: aliases.cdb %v %v", tt.src, fi, err)
		}
	}
}
