package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// setup makes a QMAILHOME with fixed control files and a fake
// qmail-queue that stores descriptor 0 in $QQDIR/msg and descriptor 1 in
// $QQDIR/env, then exits $QQEXIT.
func setup(t *testing.T) (home, qqdir string) {
	t.Helper()
	home, qqdir = t.TempDir(), t.TempDir()
	for _, d := range []string{"control", "bin"} {
		os.Mkdir(filepath.Join(home, d), 0o755)
	}
	for name, v := range map[string]string{"defaulthost": "ex.com\n", "defaultdomain": "ex.com\n", "plusdomain": "ex.com\n", "idhost": "mail.ex.com\n"} {
		os.WriteFile(filepath.Join(home, "control", name), []byte(v), 0o644)
	}
	script := "#!/bin/sh\ncat > \"$QQDIR/msg\" || exit 54\ncat <&1 > \"$QQDIR/env\" || exit 54\npwd > \"$QQDIR/pwd\"\nexit ${QQEXIT:-0}\n"
	if err := os.WriteFile(filepath.Join(home, "bin", "qmail-queue"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return home, qqdir
}

func env(home, qqdir string, extra ...string) []string {
	// extra first: the first of two entries wins, as with getenv.
	return append(extra, "PATH=/usr/bin:/bin", "QMAILHOME="+home, "QQDIR="+qqdir, "USER=joe")
}

var dateRe = regexp.MustCompile(`^Date: \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d -0000\n` +
	`Message-ID: <\d{14}\.(\d+)\.qmail@mail\.ex\.com>\n`)

func TestRun(t *testing.T) {
	home, qqdir := setup(t)
	tests := []struct {
		name   string
		args   []string
		extra  []string
		input  string
		code   int
		stdout string // "|" stands for the Date and Message-ID lines
		stderr string
		env    string // envelope given to qmail-queue; "-" for none
		msg    string // message after the Date and Message-ID lines
	}{
		{name: "1 print", args: []string{"-n"}, input: "To: bob\n\nhi\n",
			stdout: "Return-Path: <joe@ex.com>\n|From: joe@ex.com\nTo: bob@ex.com\n\nhi\n", env: "-"},
		{name: "2 queue", input: "To: bob\n\nhi\n", env: "Fjoe@ex.com\x00Tbob@ex.com\x00\x00",
			msg: "From: joe@ex.com\nTo: bob@ex.com\n\nhi\n"},
		{name: "4 order", input: "To: a, b\nCc: c\nBcc: d\n\n", env: "Fjoe@ex.com\x00Tb@ex.com\x00Ta@ex.com\x00Tc@ex.com\x00Td@ex.com\x00\x00",
			msg: "From: joe@ex.com\nTo: a@ex.com, b@ex.com\nCc: c@ex.com\n\n"},
		{name: "no recipients", args: []string{"-a"}, input: "To: bob\n\n", env: "Fjoe@ex.com\x00\x00"},
		{name: "8 -f", args: []string{"-f", "f@y.org", "x"}, input: "Return-Path: <rp@x.org>\n\n", env: "Ff@y.org\x00Tx@ex.com\x00\x00"},
		{name: "QMAILQUEUE relative", extra: []string{"QMAILQUEUE=bin/qmail-queue"}, input: "To: bob\n\n", env: "Fjoe@ex.com\x00Tbob@ex.com\x00\x00"},
		{name: "16 53", extra: []string{"QQEXIT=53"}, input: "To: bob\n\n", code: 111,
			stderr: "qmail-inject: fatal: qq write error or disk full (#4.3.0)\n"},
		{name: "16 11", extra: []string{"QQEXIT=11"}, input: "To: bob\n\n", code: 100,
			stderr: "qmail-inject: fatal: envelope address too long for qq (#5.1.3)\n"},
		{name: "no qmail-queue", extra: []string{"QMAILQUEUE=" + filepath.Join(qqdir, "none")}, input: "To: bob\n\n", code: 111,
			stderr: "qmail-inject: fatal: unable to exec qq (#4.3.0)\n", env: "-"},
		{name: "17 -x", args: []string{"-x"}, code: 100, stderr: "qmail-inject: illegal option -- x\n", env: "-"},
		{name: "11 From", input: "From: a: b\n\n", code: 100, stderr: "qmail-inject: fatal: unable to parse this line:\nFrom: a: b\n", env: "-"},
		{name: "bad home", extra: []string{"QMAILHOME=" + filepath.Join(qqdir, "nohome")}, code: 111,
			stderr: "qmail-inject: fatal: internal bug\n", env: "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, f := range []string{"msg", "env", "pwd"} {
				os.Remove(filepath.Join(qqdir, f))
			}
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"qmail-inject"}, tt.args...), env(home, qqdir, tt.extra...), strings.NewReader(tt.input), &stdout, &stderr)
			if code != tt.code || stderr.String() != tt.stderr {
				t.Fatalf("exit %d stderr %q, want %d %q", code, stderr.String(), tt.code, tt.stderr)
			}
			if tt.stdout != "" {
				head, rest, _ := strings.Cut(tt.stdout, "|")
				out := stdout.String()
				if !strings.HasPrefix(out, head) || !dateRe.MatchString(out[len(head):]) || !strings.HasSuffix(out, rest) {
					t.Errorf("stdout %q, want %q", out, tt.stdout)
				}
			}
			envl, err := os.ReadFile(filepath.Join(qqdir, "env"))
			if tt.env == "-" {
				if err == nil {
					t.Errorf("qmail-queue ran: %q", envl)
				}
			} else if tt.env != "" && string(envl) != tt.env {
				t.Errorf("envelope %q, want %q", envl, tt.env)
			}
			if tt.msg != "" {
				msg, _ := os.ReadFile(filepath.Join(qqdir, "msg"))
				m := dateRe.FindSubmatch(msg)
				if m == nil || string(msg[len(m[0]):]) != tt.msg || string(m[1]) != strconv.Itoa(os.Getpid()) {
					t.Errorf("message %q, want %q", msg, tt.msg)
				}
				if pwd, _ := os.ReadFile(filepath.Join(qqdir, "pwd")); strings.TrimSpace(string(pwd)) != home {
					t.Errorf("qmail-queue ran in %q, want %q", pwd, home)
				}
			}
		})
	}
}

// TestBinary builds qmail-inject and runs it as a program: the message
// streams through a pipe to the fake qmail-queue, and the pid in the
// Message-ID is the program's.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program")
	}
	bin := filepath.Join(t.TempDir(), "qmail-inject")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	home, qqdir := setup(t)
	body := strings.Repeat("0123456789abcdef\n", 64<<10) // 1 MiB
	cmd := exec.Command(bin, "-H", "zed")
	cmd.Env = env(home, qqdir, "NAME=Joe Q")
	cmd.Stdin = strings.NewReader("To: bob\nSubject: big\n\n" + body + "no newline")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	envl, _ := os.ReadFile(filepath.Join(qqdir, "env"))
	if string(envl) != "Fjoe@ex.com\x00Tzed@ex.com\x00Tbob@ex.com\x00\x00" {
		t.Errorf("envelope %q", envl)
	}
	msg, _ := os.ReadFile(filepath.Join(qqdir, "msg"))
	m := dateRe.FindSubmatch(msg)
	want := "From: \"Joe Q\" <joe@ex.com>\nTo: bob@ex.com\nSubject: big\n\n" + body + "no newline\n"
	if m == nil || string(m[1]) != strconv.Itoa(cmd.Process.Pid) || string(msg[len(m[0]):]) != want {
		t.Errorf("message (%d bytes) starts %q", len(msg), msg[:min(len(msg), 200)])
	}

	// -n with a closed standard output: no SIGPIPE death, exit 0 as qmail.
	cmd = exec.Command(bin, "-n")
	cmd.Env = env(home, qqdir)
	cmd.Stdin = strings.NewReader("To: bob\n\n" + body)
	r, w, _ := os.Pipe()
	r.Close()
	cmd.Stdout = w
	err := cmd.Run()
	w.Close()
	if err != nil {
		t.Errorf("-n to a closed pipe: %v", err)
	}
}
