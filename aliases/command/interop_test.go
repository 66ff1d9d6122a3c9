package command

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/aliases"
	"github.com/qmailkit/qmailkit/dotqmail"
)

// controlSets are the control files the aliases table is compiled with.
var controlSets = []map[string]string{
	{"me": "mx.example.net\n", "defaulthost": "mx\n", "defaultdomain": "example.net\n"},
	{"me": "mx.example.net\n"},
	{},
	{"me": "example.net  \t\n", "plusdomain": "plus.example.org\n", "defaulthost": "host+\n", "defaultdomain": "dom\r\n"},
}

// aliasFiles are /etc/aliases inputs: the documented examples, the N1 errors and
// tokenizer corners.
var aliasFiles = []string{
	"postmaster: root\n",
	"root: Joe@Example.COM, bob\n  , \"quoted name\"@example.org\n",
	"owner-list: Listmaster\nlist: :include:/lists/x\n",
	"list: :include:L, root\nOwner-X: y\nowner-: z\n",
	"prog: |/usr/bin/vacation joe,\n\t\"|cat > /dev/null\"\n",
	"mix: joe+, <a@b>, Some Name <c@d.e>, (comment) f@g\n",
	"hostless: x@\n",
	"a: u@h+\n",
	"a@example.com: b\n",
	"a: /var/mail/x\n",
	": foo\n", "foo:\n", "foo\n", "foo: \"bar\n", "foo: <bar\n", "foo: :include:\n",
	"a: b\n\n c\n#x\n d\n",
	"a: \"|prog\"\nA: other\n",
	"local@: x\n",
	"a b c\n",
	"a: b\nc: d",
	"a: b\n c",
	"",
	"\n\n\n",
	"# only\n#comments\n",
	" leading: space\n",
	"a: b;c;d\n",
	"a: group: x, y;, z\n",
	"a: <@route,@r2:x@y>\n",
	"a: x@[1.2.3.4], [5.6.7.8]\n",
	"a: \"x@y\"\n",
	"a: x\\@y, \\|z\n",
	"a: (nested (comment)) b (c)\n",
	"a: b)c\n",
	"a: b]c\n",
	"a: \"|x\" <y@z>\n",
	"a: :include: \"/a b\"\n",
	"a: :include:./rel, :include:.dot\n",
	"a: :Include:x\n",
	"a: :include:x@y\n",
	"a: b\r\nc: d\r\n",
	"a: \xe9t\xe9@\xfcber.de\n",
	"a: \"\"\n",
	"a: <>\n",
	"a: b@\"\"\n",
	"a: \"b\x00c\"\n",
	"a: \"|b\x00c\"\n",
	"a: :include:\"b\x00c\"\n",
	"a: \"/b\x00c\"\n",
	"x\x00y: z\n",
	"a: " + strings.Repeat("b", 780) + "\n",
	"a: " + strings.Repeat("b", 800) + "\n",
	"a: " + strings.Repeat("b", 798) + "@\n",
	"a: b\nc: d\n#e: f\n g: h\nowner-i: j, k\n",
	"a: b+\n",
	"a: b.c+\n",
	"a: @x\n",
	"@example.net: catchall\n",
	"a: ,,, b,,\n",
	"a: b c, d e\n",
	"a\\ b: c\n",
	"a:b\n",
	"a: \"b\\\"c\"@d\n",
	"a: |\n",
	"a: /\n",
}

func writeControls(t *testing.T, qmail string, set map[string]string) {
	t.Helper()
	ctl := filepath.Join(qmail, "control")
	os.RemoveAll(ctl)
	if err := os.MkdirAll(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, v := range set {
		file(t, ctl, name, v)
	}
}

// TestInteropNewaliases compiles every aliases file with every control
// set with Debian's qmail-newaliases (in a mount namespace, its paths being
// fixed) and ours, and compares the cdb bytes, the messages and the exit
// codes.
func TestInteropNewaliases(t *testing.T) {
	needNS(t, "/usr/sbin/qmail-newaliases")
	root := t.TempDir()
	etc, qmail, work := filepath.Join(root, "etc"), filepath.Join(root, "qmail"), filepath.Join(root, "work")
	for _, d := range []string{etc, work + "/in", work + "/out"} {
		os.MkdirAll(d, 0o755)
	}
	for ai, src := range aliasFiles {
		file(t, work+"/in", fmt.Sprintf("%03d", ai), src)
	}
	for ci, set := range controlSets {
		writeControls(t, qmail, set)
		os.RemoveAll(work + "/out")
		os.MkdirAll(work+"/out", 0o755)
		r := nsRun(t, etc, qmail, work, []string{"PATH=/usr/bin:/bin"}, "", "batch", "/usr/sbin/qmail-newaliases")
		if r.code != 0 {
			t.Fatalf("batch: %+v", r)
		}
		for ai, src := range aliasFiles {
			t.Run(fmt.Sprintf("controls%d/aliases%d", ci, ai), func(t *testing.T) {
				name := filepath.Join(work, "out", fmt.Sprintf("%03d", ai))
				code, _ := os.ReadFile(name + ".code")
				so, _ := os.ReadFile(name + ".stdout")
				se, _ := os.ReadFile(name + ".stderr")
				deb := result{atoi(string(code)), string(so), string(se)}
				debCDB, _ := os.ReadFile(name + ".cdb")

				dir := t.TempDir()
				in := file(t, dir, "aliases", src)
				ours := run(t, func(o IO) int {
					return Newaliases(in, filepath.Join(dir, "aliases.tmp"), filepath.Join(dir, "aliases.cdb"), o)
				}, "", []string{"QMAILHOME=" + qmail}, nil)
				ours.stderr = strings.ReplaceAll(ours.stderr, in, "/etc/aliases")
				ourCDB, _ := os.ReadFile(filepath.Join(dir, "aliases.cdb"))
				if deb != ours {
					t.Errorf("aliases %q:\nDebian %+v\nours   %+v", src, deb, ours)
				}
				if !bytes.Equal(debCDB, ourCDB) {
					t.Errorf("aliases %q: cdb differs\nDebian %q\nours   %q", src, printed(t, debCDB), printed(t, ourCDB))
				}
			})
		}
	}
	// the real program, paths and all, in the namespace: one run
	file(t, etc, "aliases", aliasFiles[1])
	os.Remove(filepath.Join(etc, "aliases.cdb"))
	if r := nsRun(t, etc, qmail, "", []string{"QMAILHOME=/var/lib/qmail"}, "", "ours:newaliases"); r.code != 0 {
		t.Fatalf("newaliases in the namespace: %+v", r)
	}
	if fi, err := os.Stat(filepath.Join(etc, "aliases.cdb")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("/etc/aliases.cdb: %v %v", fi, err)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// printed is printforward's view of a database, for messages.
func printed(t *testing.T, db []byte) string {
	in := file(t, t.TempDir(), "db", string(db))
	r := run(t, Printforward, in, nil, nil)
	return r.stdout + r.stderr
}

var forwardInputs = []string{
	`Foo@Ex: bar@x.y, |prog a, !pl, /lists/f, ?own@x, b\,c\ d, \#x;`,
	"a: b", "a: b;;", "a, b: c;", "a:: b;", "a: b\x00;", "a", "a: b;\\", "# only a comment",
	"a: ?s; b: ?t, &u;\n# comment ; , :\nc:d,e,f;",
	"a: ,,;", "a: ;", "A@B: &C@D;", "a: " + strings.Repeat("b", 800) + ";", "a: " + strings.Repeat("b", 801) + ";",
	"a: &" + strings.Repeat("b", 800) + ";", "a: /" + strings.Repeat("b", 2000) + ";",
	"\xe9: \xfc\x01\x7f;", ": x;", "a: ?;", "a: ?\\;;", "\\: \\::;",
	"a@x: |cat\\ >\\ /dev/null, !preline, .rel, /abs;\n@x: catch;\nx@: local;",
}

func TestInteropSetforwardPrintforward(t *testing.T) {
	needDebian(t, "/usr/bin/setforward", "/usr/bin/printforward")
	dir := t.TempDir()
	for _, src := range forwardInputs {
		deb := compareCompile(t, dir, "/usr/bin/setforward", Setforward, src)
		if deb != nil {
			comparePrint(t, dir, "/usr/bin/printforward", Printforward, deb)
		}
	}
}

// compareCompile runs Debian's program deb and ours as "PROG out out.tmp"
// on the input src and compares their messages, exit codes and output
// files; it returns Debian's (nil when none was written).
func compareCompile(t *testing.T, dir, deb string, ours func([]string, IO) int, src string) []byte {
	t.Helper()
	in := file(t, dir, "in", src)
	var outs [2]result
	var files [2][]byte
	for j := range 2 {
		out := filepath.Join(dir, fmt.Sprintf("out%d", j))
		os.Remove(out)
		if j == 0 {
			outs[j] = execRun(t, dir, nil, in, deb, out, out+".tmp")
		} else {
			outs[j] = run(t, func(o IO) int { return ours([]string{filepath.Base(deb), out, out + ".tmp"}, o) }, in, nil, nil)
		}
		files[j], _ = os.ReadFile(out)
	}
	if outs[0] != outs[1] || !bytes.Equal(files[0], files[1]) {
		t.Errorf("%s %q:\nDebian %+v %q\nours   %+v %q", filepath.Base(deb), src, outs[0], files[0], outs[1], files[1])
	}
	return files[0]
}

func comparePrint(t *testing.T, dir, deb string, ours func(IO) int, input []byte) {
	t.Helper()
	in := file(t, dir, "pin", string(input))
	a := execRun(t, dir, nil, in, deb)
	b := run(t, ours, in, nil, nil)
	if a != b {
		t.Errorf("%s of %q:\nDebian %+v\nours   %+v", filepath.Base(deb), input, a, b)
	}
}

// corruptDBs are databases printforward must refuse (or print) exactly as
// Debian's does, partial output included.
func corruptDBs(t *testing.T, dir string) [][]byte {
	db := setforward(t, dir, "good.cdb", "a: b, |c, /d;\nowner: ?x;\n"+strings.Repeat("long"+strings.Repeat("x", 100)+": y;\n", 10))
	good, _ := os.ReadFile(db)
	le := func(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }
	rec := func(k, d string) []byte {
		return append(append(append(le(uint32(len(k))), le(uint32(len(d)))...), k...), d...)
	}
	mk := func(recs ...[]byte) []byte {
		body := bytes.Join(recs, nil)
		h := make([]byte, 2048)
		copy(h, le(uint32(2048+len(body))))
		return append(h, body...)
	}
	withEOD := func(b []byte, eod uint32) []byte {
		c := append([]byte{}, b...)
		copy(c, le(eod))
		return c
	}
	return [][]byte{
		good,
		good[:100],
		good[:2048],
		good[:2060],
		good[:len(good)-300],
		withEOD(good, 0),
		withEOD(good, 2049),
		withEOD(good, 0xffffffff),
		mk(rec("", "x")),
		mk(rec("xkey", "")),
		mk(rec(":k", "&a\x00bad\x00")),
		mk(rec(":k", "&a")),
		mk(rec(":k", "&"+strings.Repeat("a", 898)+"\x00")),
		mk(rec(":k", "&"+strings.Repeat("a", 899)+"\x00")),
		mk(rec(":k", "")),
		mk(rec("?k", "a\x00b\xff")),
		mk(rec(":k", "\x00")),
		append(mk(rec(":"+strings.Repeat("k", 300), "|x\x00")), rec("?z", "")...),
		mk(rec(":"+strings.Repeat("k", 300), "|x\x00"), rec("?z", "")),
		mk(rec(":"+strings.Repeat("k", 300), "|x\x00"), rec("bad", "")),
		mk(append(le(0xfffffff0), le(5)...)),
		mk(append(le(1), le(0xfffffff0)...)),
	}
}

func TestInteropPrintforwardCorrupt(t *testing.T) {
	needDebian(t, "/usr/bin/printforward")
	dir := t.TempDir()
	for _, db := range corruptDBs(t, dir) {
		comparePrint(t, dir, "/usr/bin/printforward", Printforward, db)
	}
}

var maillistInputs = []string{
	"joe\n# c\n/lists/sub\nbob@x.y \n&carol@z.w\n\n",
	"a\x00b\n", "#\x00\n", strings.Repeat("a", 800) + "\n", strings.Repeat("a", 801) + "\n",
	"/" + strings.Repeat("a", 2000) + "\n", "no final LF", "crlf\r\n", "  \t \n", " lead\n",
	".rel\n&x\n&&y\n", "",
}

var binaryLists = []string{
	"&joe\x00/lists/sub\x00&bob@x.y\x00&carol@z.w\x00",
	"a\x00", "&a\x00&b\x00x\x00", "&a", "\x00", "&a\nb\x00", "&a \x00/b\t\x00",
	"&" + strings.Repeat("a", 898) + "\x00", "&" + strings.Repeat("a", 899) + "\x00",
	strings.Repeat("&"+strings.Repeat("a", 50)+"\x00", 10) + "bad\x00",
	strings.Repeat("&"+strings.Repeat("a", 50)+"\x00", 20) + "bad\x00",
	strings.Repeat("/"+strings.Repeat("b", 700)+"\x00", 3) + "&x",
	"", ".x\x00",
}

func TestInteropMaillist(t *testing.T) {
	needDebian(t, "/usr/bin/setmaillist", "/usr/bin/printmaillist")
	dir := t.TempDir()
	for _, src := range maillistInputs {
		compareCompile(t, dir, "/usr/bin/setmaillist", Setmaillist, src)
	}
	for _, b := range binaryLists {
		comparePrint(t, dir, "/usr/bin/printmaillist", Printmaillist, []byte(b))
	}
}

var qpLine = regexp.MustCompile(`qp [0-9]+`)

// TestInteropFastforward runs Debian's fastforward and ours on the same
// databases, lists and environments, with -n and with real deliveries
// through a recording qmail-queue, and compares messages, exit codes and
// what was queued.
func TestInteropFastforward(t *testing.T) {
	needNS(t, "/usr/bin/fastforward", "/usr/bin/setforward")
	root := t.TempDir()
	etc, qmail, dir := filepath.Join(root, "etc"), filepath.Join(root, "qmail"), filepath.Join(root, "home")
	for _, d := range []string{etc, qmail + "/bin", dir, dir + "/lists"} {
		os.MkdirAll(d, 0o755)
	}
	writeControls(t, qmail, map[string]string{"me": "example.net\n"})
	rec := filepath.Join(root, "rec")
	os.MkdirAll(rec, 0o777)
	qq := file(t, qmail+"/bin", "qmail-queue", "#!/bin/sh\ncat > "+rec+"/msg\ncat <&1 > "+rec+"/env\nexit ${QQEXIT:-0}\n")
	os.Chmod(qq, 0o755)

	file(t, etc, "aliases", "owner-list: listowner\nlist: :include:LIST, root\nroot: admin@example.org\n"+
		"prog: \"|echo hi\", ext@other.org\nloop1: loop2\nloop2: loop1\nself: self\n"+
		"bad: :include:nosuch\nsecret: :include:secret\nfifo: :include:fifo\nlink: :include:link, \"|echo ran\"\n")
	if r := nsRun(t, etc, qmail, "", []string{"QMAILHOME=/var/lib/qmail"}, "", "/usr/sbin/qmail-newaliases"); r.code != 0 {
		t.Fatalf("newaliases: %+v", r)
	}
	aliasesDB, _ := os.ReadFile(filepath.Join(etc, "aliases.cdb"))
	file(t, dir, "aliases.cdb", string(aliasesDB))
	file(t, dir, "LIST.bin", "&joe\x00&bob@x.y\x00/lists/sub\x00|echo never\x00&list@example.net\x00")
	file(t, dir+"/lists", "sub", "&sub@x.y\x00.rel\x00&joe\x00&"+strings.Repeat("l", 899)+"\x00&"+strings.Repeat("m", 898)+"\x00")
	os.Chmod(file(t, dir, "secret.bin", "&s@x.y\x00"), 0o640)
	os.Chmod(file(t, dir, "private", "&p@x.y\x00"), 0o600)
	os.Symlink("private", filepath.Join(dir, "link.bin"))
	syscallMkfifo(t, filepath.Join(dir, "fifo.bin"))
	fwd := filepath.Join(dir, "fwd.cdb")
	setforward := func(src string) {
		in := file(t, root, "in", src)
		if r := execRun(t, dir, nil, in, "/usr/bin/setforward", fwd, fwd+".tmp"); r.code != 0 {
			t.Fatalf("setforward: %+v", r)
		}
	}
	setforward("a@example.org: &b@x.y, &c@x.y, |true;\n@example.net: catchall@example.org;\nx@: local@wild;\n" +
		"o@x: ?own\\ er\x01\xe9, &t@x;\nr@x: &o@x, &q@x;\nq@x: &\x01\xff@y;\nperm@x: |exit\\ 77, &z@x;\n" +
		"own@x: ?s2;\nown@x: &d@e;\nexp@x: &own@x;\n" +
		"c1@x: &c2@x, &dup@y;\nc2@x: &c1@x, &out@y, &out@y, &dup@y, |echo\\ c2;")
	w, err := aliases.Create(filepath.Join(dir, "nul.cdb"), filepath.Join(dir, "nul.tmp"))
	if err != nil {
		t.Fatal(err)
	}
	w.Put(aliases.Record{Key: "?nul@x", Data: "a\x00b"})
	w.Put(aliases.Record{Key: ":nul@x", Data: "&t@x\x00&u\x00\x01@x\x00|\x00&v@x"})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	msg := file(t, root, "msg", "Subject: x\n\nhi\n")

	cases := []struct {
		args []string
		env  []string
	}{
		{[]string{"-n", "aliases.cdb"}, []string{"RECIPIENT=list@example.net", "SENDER=b@s.t"}},
		{[]string{"-n", "aliases.cdb"}, []string{"RECIPIENT=LIST@Example.NET", "SENDER=#@[]"}},
		{[]string{"-n", "aliases.cdb"}, []string{"RECIPIENT=list@example.net", "SENDER="}},
		{[]string{"-n", "aliases.cdb"}, []string{"RECIPIENT=list@example.net"}},
		{[]string{"-n", "aliases.cdb"}, []string{"RECIPIENT=prog@example.net", "SENDER=a@b"}},
		{[]string{"-n", "aliases.cdb"}, []string{"RECIPIENT=loop1@example.net", "SENDER=a@b"}},
		{[]string{"-n", "aliases.cdb"}, []string{"RECIPIENT=self@anything", "SENDER=a@b"}},
		{[]string{"-n", "aliases.cdb"}, []string{"RECIPIENT=nobody@other.net", "SENDER=a@b"}},
		{[]string{"-np", "aliases.cdb"}, []string{"RECIPIENT=nobody@other.net", "SENDER=a@b"}},
		{[]string{"-np", "aliases.cdb"}, []string{"RECIPIENT=loop1@x", "SENDER=a@b"}},
		{[]string{"-n", "aliases.cdb"}, []string{"RECIPIENT=bad@x", "SENDER=a@b"}},
		{[]string{"-n", "aliases.cdb"}, []string{"RECIPIENT=secret@x", "SENDER=a@b"}},
		{[]string{"-n", "aliases.cdb"}, []string{"RECIPIENT=fifo@x", "SENDER=a@b"}},
		{[]string{"-n", "aliases.cdb"}, []string{"RECIPIENT=link@x", "SENDER=a@b"}},
		{[]string{"-nd", "aliases.cdb"}, []string{"DEFAULT=list", "HOST=example.net", "SENDER=a@b"}},
		{[]string{"-nd", "aliases.cdb"}, []string{"EXT=list", "HOST=example.net", "SENDER=a@b"}},
		{[]string{"-nd", "aliases.cdb"}, []string{"HOST=example.net"}},
		{[]string{"-nd", "aliases.cdb"}, []string{"DEFAULT=x"}},
		{[]string{"-n", "aliases.cdb"}, nil},
		{[]string{"-n"}, nil},
		{[]string{"-z", "aliases.cdb"}, nil},
		{[]string{"-n", "nosuch.cdb"}, []string{"RECIPIENT=x"}},
		{[]string{"-n", "LIST.bin"}, []string{"RECIPIENT=x"}},
		{[]string{"-n", "fwd.cdb"}, []string{"RECIPIENT=any@example.net", "SENDER=a@b"}},
		{[]string{"-n", "fwd.cdb"}, []string{"RECIPIENT=x@other", "SENDER=a@b"}},
		{[]string{"-n", "fwd.cdb"}, []string{"RECIPIENT=o@x", "SENDER=a@b"}},
		{[]string{"-n", "fwd.cdb"}, []string{"RECIPIENT=r@x", "SENDER=a@b"}},
		{[]string{"-n", "fwd.cdb"}, []string{"RECIPIENT=exp@x", "SENDER=a@b"}},
		{[]string{"-n", "fwd.cdb"}, []string{"RECIPIENT=own@x", "SENDER=a@b"}},
		{[]string{"-n", "fwd.cdb"}, []string{"RECIPIENT=c1@x", "SENDER=a@b"}},
		{[]string{"-n", "fwd.cdb"}, []string{"RECIPIENT=C2@X", "SENDER=a@b"}},
		{[]string{"-n", "nul.cdb"}, []string{"RECIPIENT=nul@x", "SENDER=a@b"}},
		{[]string{"fwd.cdb"}, []string{"RECIPIENT=a@example.org", "SENDER=s@t", "DTLINE=Delivered-To: a@example.org\n"}},
		{[]string{"-p", "fwd.cdb"}, []string{"RECIPIENT=a@example.org", "SENDER=s@t"}},
		{[]string{"fwd.cdb"}, []string{"RECIPIENT=a@example.org", "SENDER=s@t", "QQEXIT=31"}},
		{[]string{"fwd.cdb"}, []string{"RECIPIENT=a@example.org", "SENDER=s@t", "QQEXIT=53"}},
		{[]string{"fwd.cdb"}, []string{"RECIPIENT=perm@x", "SENDER=s@t"}},
		{[]string{"aliases.cdb"}, []string{"RECIPIENT=list@example.net", "SENDER=b@s.t", "DTLINE=Delivered-To: x\n"}},
	}
	t.Chdir(dir)
	for i, c := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			var outs [2]result
			var queued [2]string
			for j := range 2 {
				os.Remove(rec + "/msg")
				os.Remove(rec + "/env")
				env := append([]string{"PATH=/usr/bin:/bin"}, c.env...)
				if j == 0 {
					outs[j] = nsRun(t, etc, qmail, dir, env, msg, append([]string{"/usr/bin/fastforward"}, c.args...)...)
				} else {
					env = append(env, "QMAILHOME="+qmail, "QMAILQUEUE="+qq)
					outs[j] = run(t, ff(c.args...), msg, env, &dotqmail.QueueProgram{Env: env})
				}
				outs[j].stderr = qpLine.ReplaceAllString(outs[j].stderr, "qp N")
				m, _ := os.ReadFile(rec + "/msg")
				e, _ := os.ReadFile(rec + "/env")
				queued[j] = string(m) + "|" + string(e)
			}
			if outs[0] != outs[1] || queued[0] != queued[1] {
				t.Errorf("fastforward %q %q:\nDebian %+v %q\nours   %+v %q", c.args, c.env, outs[0], queued[0], outs[1], queued[1])
			}
		})
	}
}
