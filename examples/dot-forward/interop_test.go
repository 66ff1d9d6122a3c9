package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const debianBin = "/usr/bin/dot-forward"

// needDebian skips unless Debian's dot-forward can be run with a qmail
// home of the test's own: it reads /var/lib/qmail/control and runs
// /var/lib/qmail/bin/qmail-queue (it has no $QMAILQUEUE), so each run
// gets a private mount namespace with the world's qmail home bind-mounted
// there, and nothing outside the test changes.
func needDebian(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(debianBin); err != nil {
		t.Skipf("%s not installed (Debian's dot-forward package): no interop test", debianBin)
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot give Debian's dot-forward a /var/lib/qmail of the test's own")
	}
	if fi, err := os.Stat("/var/lib/qmail"); err != nil || !fi.IsDir() {
		t.Skip("no /var/lib/qmail to mount the test's qmail home on")
	}
}

// runIn runs bin in a private mount namespace where the world's qmail
// home is /var/lib/qmail, in the world's home directory, as uid (when not
// negative).
func (w world) runIn(t *testing.T, bin, stdin string, environ []string, uid int, args ...string) outcome {
	t.Helper()
	cmd := exec.Command(nsHelper, append([]string{bin}, args...)...)
	cmd.Env = append(environ, "DFX_QMAIL="+w.qmail, "DFX_DIR="+w.home)
	if uid >= 0 {
		cmd.Env = append(cmd.Env, "DFX_UID="+strconv.Itoa(uid))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	cmd.Stdin = openMsg(t, stdin)
	var se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &se, &se
	return w.outcome(t, cmd.Run(), se.String())
}

type interopCase struct {
	name, forward string
	args          []string
	controls      map[string]string
	setup         func(t *testing.T, w world) // after the files are in place
	qq            string                      // qmail-queue's exit code, "kill" to be killed
	uid           int                         // -1: root
}

// interop runs both programs on identical worlds and compares their exit
// codes, standard error (with "qp N"), the files their programs wrote and
// what reached qmail-queue.
func interop(t *testing.T, tests []interopCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			controls := tt.controls
			if controls == nil {
				controls = map[string]string{"me": "mx.example.net\n"}
			}
			var got [2]outcome
			for i, bin := range []string{debianBin, ourBin} {
				w := newWorld(t, tt.forward, controls, tt.uid)
				if tt.qq != "" {
					os.WriteFile(filepath.Join(w.qmail, "code"), []byte(tt.qq+"\n"), 0o644)
				}
				if tt.setup != nil {
					tt.setup(t, w)
				}
				got[i] = w.runIn(t, bin, body, env("QMAILHOME=/var/lib/qmail"), tt.uid, tt.args...)
				if strings.HasPrefix(got[i].stderr, "helper: ") {
					t.Fatalf("%s: %s", bin, got[i].stderr)
				}
			}
			if !reflect.DeepEqual(got[0], got[1]) {
				t.Errorf("Debian's dot-forward:\n%s\nours:\n%s", show(got[0]), show(got[1]))
			}
		})
	}
}

func show(o outcome) string {
	s := fmt.Sprintf("  exit %d\n  stderr %q\n", o.code, o.stderr)
	for name, data := range o.files {
		s += fmt.Sprintf("  %s %q\n", name, data)
	}
	return s
}

// parseCases are .forward lines whose -n reports are compared.
var parseCases = []string{
	"joe\n", "Joe@MX.example.net\n", "\\joe, bob@x.y\n", "\"|vacation joe\"\n", "|vacation joe\n",
	"/var/mail/joe\n", ":include: /x\n", "", "# c\n", "u@h+, plain+, n@h\n", "<joe\n", "joe>\n", "\"foo\n",
	"a b c\n", "Joe Q <jq@x.y> (c), x\n", "a@b\n\nc\n", "a\x00b, c\n", "|a\x00b\n", "/x\x00y\n", "bad\"x\n",
	"grp: a, b;\n", "a@b@c\n", "@\n", "<>\n", "x@[1.2.3.4]\n", "x\n#y\n z\n", "\"a b\"@c\n",
	"joe@mx.example.net.\n", "a, b> c\n", "(only comment)\n", "x@y, \\\n", "x\\", "\x00\n", "[open\n",
	"(open\n", "x)\n", "a@b.c\r\n", "\tjoe \n", "JOE\n", "joe@mx.example.net\n", "\"joe\"@mx.example.net\n",
	"joe@[mx.example.net]\n", "+\n", "@+\n", "a+b+\n", "\"|\"\n", "\"/\"\n", "\\/x\n", "<|prog>\n",
}

// TestInteropPlan compares -n on each line of parseCases, and with
// control files set and unset.
func TestInteropPlan(t *testing.T) {
	needDebian(t)
	var tests []interopCase
	for i, f := range parseCases {
		tests = append(tests, interopCase{name: strconv.Itoa(i) + " " + strconv.Quote(f), forward: f,
			args: []string{"-n", ".forward"}, uid: -1})
	}
	for _, c := range []map[string]string{
		{"dummy": ""},
		{"me": "m.example\n", "defaulthost": "dh\n", "defaultdomain": "dd.example\n", "plusdomain": "pd.example\n"},
		{"me": "  spaced \t\n", "defaultdomain": "\n"},
	} {
		tests = append(tests, interopCase{name: fmt.Sprintf("controls %v", c), forward: "z@a+, y+, x\n",
			args: []string{"-n", ".forward"}, controls: c, uid: -1})
	}
	tests = append(tests,
		interopCase{name: "options", forward: "a@b.c\n", args: []string{"-nNn", "--x", ".forward"}, uid: -1},
		interopCase{name: "illegal option", forward: "a@b.c\n", args: []string{"-nq", ".forward"}, uid: -1},
		interopCase{name: "no files", uid: -1, args: []string{"-n"}},
		interopCase{name: "files in order", forward: "x@y.z\n", args: []string{"-n", "nosuch", ".empty", ".self", ".forward"},
			setup: func(t *testing.T, w world) {
				os.WriteFile(filepath.Join(w.home, ".empty"), []byte("# c\n"), 0o644)
				os.WriteFile(filepath.Join(w.home, ".self"), []byte("joe\n"), 0o644)
			}, uid: -1},
	)
	interop(t, tests)
}

// TestInteropDeliver compares real deliveries (D6): programs run, what
// they got on stdin, what reached qmail-queue, and qmail-queue's failure
// texts.
func TestInteropDeliver(t *testing.T) {
	needDebian(t)
	tests := []interopCase{
		{name: "D6", forward: "bob@x.y, carol\n", uid: -1},
		{name: "forward and deliver", forward: "\\joe, bob@x.y\n", uid: -1},
		{name: "programs", forward: "\"|cat > out1\", a@b.c\n\"|cat > out2; echo $USER $HOST >> out2\"\n", uid: -1},
		{name: "program output", forward: "\"|echo out; echo err >&2\"\n", uid: -1},
		{name: "program not reading", forward: "\"|exit 0\", x@y.z\n", uid: -1},
		{name: "program crash", forward: "\"|kill -9 $$\"\n", uid: -1},
		{name: "program then parse error", forward: "\"|cat > out\"\n\"open\n", uid: -1},
		{name: "forward then program failure", forward: "\"|exit 64\", a@b.c\n", uid: -1},
		{name: "direct with program", forward: "joe, \"|cat > out\"\n", uid: -1},
		{name: "empty address", forward: "\x00\nx@y.z\n", uid: -1},
		{name: "qmail-queue missing", forward: "a@b.c\n", uid: -1,
			setup: func(t *testing.T, w world) { os.Remove(filepath.Join(w.qmail, "bin", "qmail-queue")) }},
		{name: "as nobody", forward: "a@b.c, \"|id -u > out\"\n", uid: 65534},
	}
	// Not 82: Debian's build has no descriptor 6 for a custom text (see
	// package dotforward's Compatibility).
	for _, code := range []string{"1", "11", "31", "40", "41", "51", "52", "53", "54", "55", "56", "61", "62", "66",
		"67", "71", "72", "73", "74", "81", "91", "99", "100", "111", "115", "120", "kill"} {
		tests = append(tests, interopCase{name: "qmail-queue exit " + code, forward: "a@b.c\n", qq: code, uid: -1})
	}
	for _, code := range []string{"0", "1", "64", "65", "70", "76", "77", "78", "99", "100", "111", "112", "113"} {
		tests = append(tests, interopCase{name: "program exit " + code, forward: "x@y.z, \"|cat >/dev/null; exit " + code + "\"\n", uid: -1})
	}
	for i := range tests {
		tests[i].args = []string{".forward"}
	}
	interop(t, tests)
}

// TestInteropAbuse compares what a user can put where .forward is read.
func TestInteropAbuse(t *testing.T) {
	needDebian(t)
	var huge, many strings.Builder
	for huge.Len() < 4<<20 {
		huge.WriteString("# a comment line long enough to make the file big quickly, a, b, c\n")
	}
	huge.WriteString("x@y.z\n")
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&many, "u%d@example.org, u%d\n", i, i)
	}
	dot := func(t *testing.T, w world) string { return filepath.Join(w.home, ".forward") }
	tests := []interopCase{
		{name: "FIFO", setup: func(t *testing.T, w world) { syscall.Mkfifo(dot(t, w), 0o644) }},
		{name: "directory", setup: func(t *testing.T, w world) { os.Mkdir(dot(t, w), 0o755) }},
		{name: "symlink", setup: func(t *testing.T, w world) {
			os.WriteFile(filepath.Join(w.home, "real"), []byte("a@b.c\n"), 0o644)
			os.Symlink("real", dot(t, w))
		}},
		{name: "dangling symlink", setup: func(t *testing.T, w world) { os.Symlink("nowhere", dot(t, w)) }},
		{name: "symlink loop", setup: func(t *testing.T, w world) { os.Symlink(".forward", dot(t, w)) }},
		{name: "NUL bytes", forward: "\x00\x00\n\"a\x00b\"@c.d, e\x00f\n|p\x00q\n"},
		{name: "huge", forward: huge.String()},
		{name: "thousands of addresses", forward: many.String()},
		{name: "unreadable", forward: "a@b.c\n", uid: 65534,
			setup: func(t *testing.T, w world) { os.Chmod(dot(t, w), 0) }},
		{name: "home not searchable", forward: "a@b.c\n", uid: 65534, args: []string{"sub/.forward"},
			setup: func(t *testing.T, w world) { os.Mkdir(filepath.Join(w.home, "sub"), 0) }},
	}
	for i := range tests {
		if tests[i].uid == 0 {
			tests[i].uid = -1
		}
		if tests[i].args == nil {
			tests[i].args = []string{".forward"}
		}
	}
	interop(t, tests)
}
