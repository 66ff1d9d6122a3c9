package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinary builds sendmail and runs it against a QMAILHOME whose bin/
// holds stand-ins for qmail-inject, qmail-qread and qmail-smtpd that
// record their argv, environment and standard input, and exit $FAKEEXIT.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sendmail")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, name := range []string{"mailq", "newaliases"} {
		os.Symlink(bin, filepath.Join(dir, name))
	}
	home, rec := t.TempDir(), t.TempDir()
	os.Mkdir(filepath.Join(home, "bin"), 0o755)
	for _, p := range []string{"qmail-inject", "qmail-qread", "qmail-smtpd"} {
		script := "#!/bin/sh\n{ printf '%s\\n' \"$0\" \"$@\"; } > \"$REC/argv\"\nenv > \"$REC/env\"\ncat > \"$REC/stdin\"\npwd > \"$REC/pwd\"\nexit ${FAKEEXIT:-0}\n"
		if err := os.WriteFile(filepath.Join(home, "bin", p), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		prog   string
		args   []string
		extra  []string
		code   int
		argv   string // recorded argv, one per line; "" when nothing ran
		env    []string
		noenv  []string
		stderr string
	}{
		{name: "19", args: []string{"bob"}, argv: "bin/qmail-inject\n-a\n--\nbob\n"},
		{name: "19 -t -oi", args: []string{"-t", "-oi"}, argv: "bin/qmail-inject\n-H\n--\n"},
		{name: "20", args: []string{"-f", "joe@x.org", "-t"}, extra: []string{"NAME=n", "MAILHOST=m"},
			argv: "bin/qmail-inject\n-H\n-f\njoe@x.org\n--\n", env: []string{"QMAILUSER=joe", "QMAILHOST=x.org"}, noenv: []string{"NAME=", "MAILHOST="}},
		{name: "21 -bp", args: []string{"-bp"}, argv: "bin/qmail-qread\n"},
		{name: "21 mailq", prog: "mailq", argv: "bin/qmail-qread\n"},
		{name: "21 newaliases", prog: "newaliases", code: 100, stderr: "sendmail: fatal: please use fastforward/newaliases instead\n"},
		{name: "22 -bs", args: []string{"-bs"}, argv: "bin/qmail-smtpd\n", env: []string{"PROTO=TCP", "TCPREMOTEINFO=sendmail-bs", "DATABYTES=0", "RELAYCLIENT="}},
		{name: "22 -bs PROTO", args: []string{"-bs"}, extra: []string{"PROTO=UNIX"}, argv: "bin/qmail-smtpd\n", env: []string{"PROTO=UNIX"}, noenv: []string{"TCPREMOTEINFO="}},
		{name: "23 -bi", args: []string{"-bi"}, code: 100, stderr: "sendmail: usage: sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]\n"},
		{name: "23 -q", args: []string{"-q"}},
		{name: "illegal", args: []string{"-R", "x"}, code: 100, stderr: "sendmail: illegal option -- R\nsendmail: usage: sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]\n"},
		{name: "24", args: []string{"-oem", "-odb", "-i", "-v", "-em", "bob"}, argv: "bin/qmail-inject\n-a\n--\nbob\n"},
		{name: "24 --", args: []string{"--", "-bob"}, argv: "bin/qmail-inject\n-a\n--\n-bob\n"},
		{name: "exit code passes", args: []string{"bob"}, extra: []string{"FAKEEXIT=111"}, code: 111, argv: "bin/qmail-inject\n-a\n--\nbob\n"},
		{name: "bad home", args: []string{"bob"}, extra: []string{"QMAILHOME=" + filepath.Join(rec, "none")}, code: 111,
			stderr: "sendmail: fatal: unable to switch to qmail home directory\n"},
		{name: "no program", args: []string{"bob"}, extra: []string{"QMAILHOME=" + rec}, code: 111,
			stderr: "sendmail: fatal: unable to run qmail-inject\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, f := range []string{"argv", "env", "stdin", "pwd"} {
				os.Remove(filepath.Join(rec, f))
			}
			prog := bin
			if tt.prog != "" {
				prog = filepath.Join(dir, tt.prog)
			}
			cmd := exec.Command(prog, tt.args...)
			// os/exec keeps the last of duplicate entries: extra overrides.
			cmd.Env = append([]string{"PATH=/usr/bin:/bin", "QMAILHOME=" + home, "REC=" + rec}, tt.extra...)
			cmd.Stdin = strings.NewReader("To: x\n\nbody\n")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != tt.code || stderr.String() != tt.stderr {
				t.Fatalf("exit %d stderr %q, want %d %q", code, stderr.String(), tt.code, tt.stderr)
			}
			argv, err := os.ReadFile(filepath.Join(rec, "argv"))
			if string(argv) != tt.argv || (err != nil) != (tt.argv == "") {
				t.Fatalf("ran %q, want %q", argv, tt.argv)
			}
			if tt.argv == "" {
				return
			}
			if stdin, _ := os.ReadFile(filepath.Join(rec, "stdin")); string(stdin) != "To: x\n\nbody\n" {
				t.Errorf("stdin %q", stdin)
			}
			if pwd, _ := os.ReadFile(filepath.Join(rec, "pwd")); strings.TrimSpace(string(pwd)) != home {
				t.Errorf("ran in %q", pwd)
			}
			envb, _ := os.ReadFile(filepath.Join(rec, "env"))
			lines := "\n" + string(envb)
			for _, kv := range tt.env {
				if !strings.Contains(lines, "\n"+kv+"\n") {
					t.Errorf("env lacks %q:\n%s", kv, envb)
				}
			}
			for _, kv := range tt.noenv {
				if strings.Contains(lines, "\n"+kv) {
					t.Errorf("env has %q:\n%s", kv, envb)
				}
			}
		})
	}
}

func TestRunExecFails(t *testing.T) {
	var stderr bytes.Buffer
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	code := run([]string{"sendmail", "-bs"}, []string{"QMAILHOME=" + t.TempDir()}, &stderr,
		func(path string, argv, env []string) error { return os.ErrNotExist })
	if code != 111 || stderr.String() != "sendmail: fatal: unable to run qmail-smtpd\n" {
		t.Errorf("exit %d %q", code, stderr.String())
	}
}

// TestThroughQmailInject runs the whole chain: sendmail -t -f execs the real
// qmail-inject, which hands the message to a fake qmail-queue.
func TestThroughQmailInject(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two programs")
	}
	home, rec := t.TempDir(), t.TempDir()
	for _, d := range []string{"bin", "control"} {
		os.Mkdir(filepath.Join(home, d), 0o755)
	}
	os.WriteFile(filepath.Join(home, "control", "me"), []byte("ex.com\n"), 0o644)
	for _, p := range []string{"sendmail", "qmail-inject"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(home, "bin", p), "../"+p).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", p, err, out)
		}
	}
	qq := "#!/bin/sh\ncat > \"$REC/msg\"\ncat <&1 > \"$REC/env\"\n"
	os.WriteFile(filepath.Join(home, "bin", "qmail-queue"), []byte(qq), 0o755)
	cmd := exec.Command(filepath.Join(home, "bin", "sendmail"), "-t", "-F", "Joe Q", "-f", "joe@x.org", "-oi", "extra")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "QMAILHOME=" + home, "REC=" + rec, "USER=someone", "NAME=Other"}
	cmd.Stdin = strings.NewReader("To: bob\nSubject: hi\n\n.\nbody")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	env, _ := os.ReadFile(filepath.Join(rec, "env"))
	if string(env) != "Fjoe@x.org\x00Textra@ex.com\x00Tbob@ex.com\x00\x00" {
		t.Errorf("envelope %q", env)
	}
	msg, _ := os.ReadFile(filepath.Join(rec, "msg"))
	if !strings.HasSuffix(string(msg), "\nFrom: \"Joe Q\" <joe@x.org>\nTo: bob@ex.com\nSubject: hi\n\n.\nbody\n") {
		t.Errorf("message %q", msg)
	}
}
