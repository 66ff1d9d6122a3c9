package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/dotqmail"
)

// ourBin is examples/dot-forward and nsHelper testdata/nshelper (which
// runs a program in the private mount namespace of the interop tests),
// both built once by TestMain.
var ourBin, nsHelper string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dot-forward-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	ourBin, nsHelper = filepath.Join(dir, "dot-forward"), filepath.Join(dir, "nshelper")
	for bin, pkg := range map[string]string{ourBin: ".", nsHelper: "./testdata/nshelper"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// world is what one run of dot-forward sees: a home directory (its
// working directory) and a qmail home with control files and a recording
// bin/qmail-queue, which keeps the message and envelope in rec/ and exits
// with the code in its file code.
type world struct {
	home, qmail string
}

const (
	dtline = "Delivered-To: joe@mx.example.net\n"
	rpline = "Return-Path: <s@t>\n"
	ufline = "From s@t Thu Jan 01 00:00:00 1970\n"
	body   = "Subject: hi\n\nFrom the body\nbye\n"
)

const recorder = `#!/bin/sh
cat > rec/msg
cat <&1 > rec/env
c=$(cat code)
if [ "$c" = kill ]; then kill -9 $$; fi
exit $c
`

func newWorld(t *testing.T, forward string, controls map[string]string, uid int) world {
	t.Helper()
	base := t.TempDir()
	os.Chmod(base, 0o755)
	w := world{home: filepath.Join(base, "home"), qmail: filepath.Join(base, "qmail")}
	for _, d := range []string{w.home, w.qmail + "/control", w.qmail + "/bin", w.qmail + "/rec"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, data string, mode os.FileMode) {
		if err := os.WriteFile(path, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	if forward != "" {
		write(filepath.Join(w.home, ".forward"), forward, 0o644)
	}
	for name, data := range controls {
		write(filepath.Join(w.qmail, "control", name), data, 0o644)
	}
	write(filepath.Join(w.qmail, "bin", "qmail-queue"), recorder, 0o755)
	write(filepath.Join(w.qmail, "code"), "0\n", 0o644)
	if uid >= 0 {
		os.Chown(w.home, uid, uid)
		os.Chown(filepath.Join(w.qmail, "rec"), uid, uid)
		os.Chown(filepath.Join(w.home, ".forward"), uid, uid)
	}
	return w
}

// env is qmail-local's environment for joe@mx.example.net.
func env(extra ...string) []string {
	return append([]string{"PATH=/usr/bin:/bin", "USER=joe", "HOST=mx.example.net", "NEWSENDER=s@t",
		"DTLINE=" + dtline, "RPLINE=" + rpline, "UFLINE=" + ufline}, extra...)
}

type outcome struct {
	code   int
	stderr string
	files  map[string]string // the home's files other than .forward, and rec/
}

var qpRE = regexp.MustCompile(`qp [0-9]+`)

func (w world) outcome(t *testing.T, err error, stderr string) outcome {
	t.Helper()
	o := outcome{stderr: qpRE.ReplaceAllString(stderr, "qp N"), files: map[string]string{}}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		o.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	for _, dir := range []string{w.home, filepath.Join(w.qmail, "rec")} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.Name() == ".forward" || !e.Type().IsRegular() {
				continue
			}
			b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
			o.files[filepath.Base(dir)+"/"+e.Name()] = string(b)
		}
	}
	return o
}

// runOurs runs our dot-forward directly, with QMAILHOME the world's
// qmail home.
func (w world) runOurs(t *testing.T, stdin string, environ []string, args ...string) outcome {
	t.Helper()
	cmd := exec.Command(ourBin, args...)
	cmd.Dir = w.home
	cmd.Env = append(environ, "QMAILHOME="+w.qmail)
	cmd.Stdin = openMsg(t, stdin)
	var se bytes.Buffer
	cmd.Stderr, cmd.Stdout = &se, &se
	return w.outcome(t, cmd.Run(), se.String())
}

func openMsg(t *testing.T, data string) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "msg")
	os.WriteFile(path, []byte(data), 0o644)
	os.Chmod(filepath.Dir(path), 0o755)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestVectors is D1 to D6 and the command line, for our program alone.
func TestVectors(t *testing.T) {
	me := map[string]string{"me": "mx.example.net\n"}
	tests := []struct {
		name, forward string
		args          []string
		code          int
		stderr        string
	}{
		{"D1", "bob@x.y, carol\n", []string{"-n", ".forward"}, 99, "forward carol@mx.example.net\nforward bob@x.y\n"},
		{"D2", "Joe@MX.example.net\n", []string{"-n", ".forward"}, 0, "direct delivery\n"},
		{"D2 both", "\\joe, bob@x.y\n", []string{"-n", ".forward"}, 0, "forward bob@x.y\ndirect delivery\n"},
		{"D3", "\"|vacation joe\"\n", []string{"-n", ".forward"}, 99, "pipe through vacation joe\n"},
		{"D3 file", ":include: /x\n", []string{"-n", ".forward"}, 111, "dot-forward: fatal: file delivery /x not supported\n"},
		{"D4 empty", "# only\n", []string{"-n", ".forward"}, 0, "skipping empty file .forward\ndirect delivery\n"},
		{"D4 missing", "", []string{"-n", ".forward"}, 0, "direct delivery\n"},
		{"D5", "u@h+, plain+, n@h\n", []string{"-n", ".forward"}, 99,
			"forward n@h.mx.example.net\nforward plain+@mx.example.net\nforward u@h.mx.example.net\n"},
		{"-nN delivers", "\"|exit 0\"\n", []string{"-nN", ".forward"}, 99, ""},
		{"-- ends options", "a@b.c\n", []string{"-n", "--", ".forward"}, 99, "forward a@b.c\n"},
		{"--x ends options", "a@b.c\n", []string{"-n", "--x", ".forward"}, 99, "forward a@b.c\n"},
		{"illegal option", "", []string{"-x", ".forward"}, 100,
			"dot-forward: illegal option -- x\ndot-forward: usage: dot-forward [ -nN ] file ...\n"},
		{"no files", "", nil, 0, ""},
		{"parse error", "\"open\n", []string{".forward"}, 111, "dot-forward: fatal: unable to parse this line: \"open\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.forward, me, -1)
			o := w.runOurs(t, body, env(), tt.args...)
			if o.code != tt.code || o.stderr != tt.stderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", o.code, o.stderr, tt.code, tt.stderr)
			}
		})
	}

	// D6 through $QMAILQUEUE.
	w := newWorld(t, "bob@x.y, carol\n", me, -1)
	qq := filepath.Join(w.qmail, "bin", "qmail-queue")
	os.Rename(qq, qq+"-recorder")
	o := w.runOurs(t, body, env("QMAILQUEUE="+qq+"-recorder"), ".forward")
	if o.code != 99 || o.stderr != "dot-forward: info: qp N\n" || o.files["rec/env"] != "Fs@t\x00Tcarol@mx.example.net\x00Tbob@x.y\x00\x00" ||
		o.files["rec/msg"] != dtline+body {
		t.Errorf("D6: %+v", o)
	}
	os.WriteFile(filepath.Join(w.qmail, "code"), []byte("31\n"), 0o644)
	o = w.runOurs(t, body, env("QMAILQUEUE="+qq+"-recorder"), ".forward")
	if o.code != 100 || o.stderr != "dot-forward: fatal: unable to forward message: mail server permanently rejected message (#5.3.0)\n" {
		t.Errorf("D6 exit 31: %+v", o)
	}

	// Control files: me defaults to "me", the others to me.
	for _, tt := range []struct {
		controls map[string]string
		want     string
	}{
		{nil, "forward x@me.me\nforward y+@me.me\nforward z@a.me\n"},
		{map[string]string{"me": "m.example\n", "defaulthost": "dh\n", "defaultdomain": "dd.example\n", "plusdomain": "pd.example\n"},
			"forward x@dh.dd.example\nforward y+@dh.dd.example\nforward z@a.pd.example\n"},
	} {
		w := newWorld(t, "z@a+, y+, x\n", tt.controls, -1)
		o := w.runOurs(t, body, env(), "-n", ".forward")
		if o.code != 99 || o.stderr != tt.want {
			t.Errorf("controls %v: %d %q, want %q", tt.controls, o.code, o.stderr, tt.want)
		}
	}
	w = newWorld(t, "a\n", nil, -1)
	os.Mkdir(filepath.Join(w.qmail, "control", "me"), 0o755)
	if o := w.runOurs(t, body, env(), "-n", ".forward"); o.code != 111 || o.stderr != "dot-forward: fatal: unable to read controls: is a directory\n" {
		t.Errorf("control/me a directory: %+v", o)
	}
	w = newWorld(t, "a\n", nil, -1)
	cmd := exec.Command(ourBin, "-n", ".forward")
	cmd.Dir, cmd.Env = w.home, append(env(), "QMAILHOME="+w.qmail+"/nosuch")
	out, _ := cmd.CombinedOutput()
	if want := "dot-forward: fatal: unable to chdir to " + w.qmail + "/nosuch: file does not exist\n"; string(out) != want {
		t.Errorf("missing home: %q, want %q", out, want)
	}
}

// TestUnderQmailLocal runs dot-forward as a .qmail program line, the way
// it is installed ("|dot-forward .forward" then "./Mailbox"): exit 99
// makes qmail-local skip the mbox line, exit 0 lets it deliver.
func TestUnderQmailLocal(t *testing.T) {
	for _, tt := range []struct {
		name, forward string
		mbox          bool   // whether ./Mailbox gets the message
		envelope      string // what reached qmail-queue
	}{
		{"forward only", "bob@x.y\n", false, "Fjoe-sender@ex.com\x00Tbob@x.y\x00\x00"},
		{"forward and keep", "\\joe, bob@x.y\n", true, "Fjoe-sender@ex.com\x00Tbob@x.y\x00\x00"},
		{"no .forward", "", true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.forward, map[string]string{"me": "ex.com\n"}, -1)
			os.WriteFile(filepath.Join(w.home, ".qmail"), []byte("|"+ourBin+" .forward\n./Mailbox\n"), 0o644)
			var out bytes.Buffer
			d := &dotqmail.Deliverer{
				Env:    []string{"PATH=/usr/bin:/bin", "QMAILHOME=" + w.qmail},
				Stdout: &out, Stderr: &out,
			}
			res, err := d.Deliver(t.Context(), dotqmail.Target{User: "joe", Home: w.home, Local: "joe", Domain: "ex.com",
				Sender: "joe-sender@ex.com", DefaultDelivery: "./Maildir/"}, openMsg(t, body))
			if err != nil {
				t.Fatalf("%v\n%s", err, res.Report)
			}
			mbox, _ := os.ReadFile(filepath.Join(w.home, "Mailbox"))
			if (len(mbox) > 0) != tt.mbox {
				t.Errorf("Mailbox %q", mbox)
			}
			env, _ := os.ReadFile(filepath.Join(w.qmail, "rec", "env"))
			msg, _ := os.ReadFile(filepath.Join(w.qmail, "rec", "msg"))
			if string(env) != tt.envelope || tt.envelope != "" && string(msg) != "Delivered-To: joe@ex.com\n"+body {
				t.Errorf("queued %q %q", env, msg)
			}
			if tt.envelope != "" && !strings.Contains(out.String(), "dot-forward: info: qp ") {
				t.Errorf("output %q", out.String())
			}
		})
	}
}

// TestNeverExits: dot-forward has no time limit of its own; qmail-local's
// covers it, killing dot-forward and the program it runs (both in the
// .qmail program's process group: dot-forward starts no group of its
// own).
func TestNeverExits(t *testing.T) {
	w := newWorld(t, "\"|echo $$ > pid; exec sleep 1000\"\n", map[string]string{"me": "ex.com\n"}, -1)
	os.WriteFile(filepath.Join(w.home, ".qmail"), []byte("|"+ourBin+" .forward\n./Mailbox\n"), 0o644)
	d := &dotqmail.Deliverer{Env: []string{"PATH=/usr/bin:/bin", "QMAILHOME=" + w.qmail}, Timeout: time.Second}
	start := time.Now()
	res, err := d.Deliver(t.Context(), dotqmail.Target{User: "joe", Home: w.home, Local: "joe", Domain: "ex.com",
		Sender: "s@t", DefaultDelivery: "./Maildir/"}, openMsg(t, body))
	if dotqmail.ExitCode(err) != 111 || !strings.Contains(res.Report, "Timeout on program delivery. (#4.3.0)") {
		t.Errorf("%q, %v", res.Report, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
	b, _ := os.ReadFile(filepath.Join(w.home, "pid"))
	pid := strings.TrimSpace(string(b))
	if pid == "" {
		t.Fatal("the program did not start")
	}
	for i := 0; ; i++ {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break // gone, or a zombie waiting for init
		}
		if i == 100 {
			t.Fatalf("the program %s survived: %s", pid, stat)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
