package helper

import (
	"bytes"
	"context"
	"errors"
	"github.com/qmailkit/qmailkit/internal/mailtest"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/qmailkit/qmailkit/dotqmail"
	"github.com/qmailkit/qmailkit/internal/qq"
)

// fakeQueue records what is forwarded.
type fakeQueue = mailtest.Forwarder

func msgFile(t *testing.T, s string) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "msg")
	os.WriteFile(path, []byte(s), 0o600)
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

func call(t *testing.T, fn func(context.Context, []string, IO) int, args []string, env []string, q *fakeQueue, msg string) result {
	t.Helper()
	var so, se bytes.Buffer
	o := IO{Stdin: msgFile(t, msg), Stdout: &so, Stderr: &se, Env: append([]string{"PATH=/usr/bin:/bin"}, env...)}
	if q != nil {
		o.Forwarder = q
	}
	code := fn(t.Context(), args, o)
	return result{code, so.String(), se.String()}
}

// TestBouncesaying checks bouncesaying(1): the text and exit 100, or with a
// program, 100 when the program exits 0.
func TestBouncesaying(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"Gone."}, 100, "Gone.\n"},
		{[]string{"Gone.", "true"}, 100, "Gone.\n"},
		{[]string{"Gone.", "false"}, 0, ""},
		{[]string{"Gone.", "sh", "-c", "exit 111"}, 111, "bouncesaying: fatal: temporary child error\n"},
		{[]string{"Gone.", "sh", "-c", "kill -9 $$"}, 111, "bouncesaying: fatal: child crashed\n"},
		{[]string{"Gone.", "/nonexistent"}, 0, ""},
		{nil, 100, "bouncesaying: usage: bouncesaying error [ program [ arg ... ] ]\n"},
	} {
		r := call(t, Bouncesaying, tt.args, nil, nil, "m\n")
		if r.code != tt.code || r.stderr != tt.stderr {
			t.Errorf("bouncesaying %q: %d %q, want %d %q", tt.args, r.code, r.stderr, tt.code, tt.stderr)
		}
	}
}

// TestExcept checks except(1): 100 when the program exits 0, else 0.
func TestExcept(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"true"}, 100}, {[]string{"false"}, 0}, {[]string{"/nonexistent"}, 0},
		{[]string{"sh", "-c", "exit 111"}, 111}, {[]string{"sh", "-c", "exit 100"}, 0},
		{[]string{"sh", "-c", "kill -9 $$"}, 111}, {nil, 100},
	} {
		r := call(t, Except, tt.args, nil, nil, "m\n")
		if r.code != tt.code {
			t.Errorf("except %q: %d (%q), want %d", tt.args, r.code, r.stderr, tt.code)
		}
		if tt.code == 111 && len(tt.args) > 0 && tt.args[2] == "exit 111" && r.stderr != "except: fatal: temporary child error\n" {
			t.Errorf("except 111: stderr %q", r.stderr)
		}
	}
	// The program reads the message.
	if r := call(t, Except, []string{"grep", "-q", "spam"}, nil, nil, "Subject: spam\n"); r.code != 100 {
		t.Errorf("except grep: %d", r.code)
	}
}

// TestCondredirect checks condredirect(1): when the program exits 0, the
// message is injected to the address with $SENDER and the exit is 99.
func TestCondredirect(t *testing.T) {
	env := []string{"SENDER=s@x", "DTLINE=Delivered-To: joe@ex.com\n", "NEWSENDER=other@x"}
	q := &fakeQueue{}
	r := call(t, Condredirect, []string{"x@y", "true"}, env, q, "Subject: s\n\nhi\n")
	if r.code != 99 || r.stderr != "condredirect: qp 4242\n" {
		t.Fatalf("condredirect true: %+v", r)
	}
	if q.Sender != "s@x" || strings.Join(q.Rcpts, ",") != "x@y" || q.Msg != "Delivered-To: joe@ex.com\nSubject: s\n\nhi\n" {
		t.Errorf("injected %+v", q)
	}
	// The program read the message: condredirect rewinds.
	q = &fakeQueue{}
	r = call(t, Condredirect, []string{"x@y", "grep", "-q", "hi"}, env, q, "Subject: s\n\nhi\n")
	if r.code != 99 || q.Msg != "Delivered-To: joe@ex.com\nSubject: s\n\nhi\n" {
		t.Errorf("after grep: %+v %q", r, q.Msg)
	}
	for _, tt := range []struct {
		args []string
		env  []string
		qerr error
		code int
	}{
		{[]string{"x@y", "false"}, env, nil, 0},
		{[]string{"x@y", "/nonexistent"}, env, nil, 0},
		{[]string{"x@y", "sh", "-c", "exit 111"}, env, nil, 111},
		{[]string{"x@y", "sh", "-c", "kill -9 $$"}, env, nil, 111},
		{[]string{"x@y"}, env, nil, 100},
		{[]string{"x@y", "true"}, []string{"DTLINE=x\n"}, nil, 100},
		{[]string{"x@y", "true"}, []string{"SENDER=s"}, nil, 100},
		{[]string{"x@y", "true"}, env, &dotqmail.ForwardError{Text: "no", Perm: true}, 100},
		{[]string{"x@y", "true"}, env, &dotqmail.ForwardError{Text: "later"}, 111},
	} {
		q := &fakeQueue{Err: tt.qerr}
		if r := call(t, Condredirect, tt.args, tt.env, q, "m\n"); r.code != tt.code {
			t.Errorf("condredirect %q env %q: %d (%q), want %d", tt.args, tt.env, r.code, r.stderr, tt.code)
		}
	}
}

func TestForward(t *testing.T) {
	env := []string{"NEWSENDER=owner@x", "DTLINE=Delivered-To: joe@ex.com\n"}
	q := &fakeQueue{}
	msg := msgFile(t, "skip\nSubject: s\n\nhi\n")
	msg.Seek(5, io.SeekStart) // forward reads from the current offset
	var se bytes.Buffer
	code := Forward(t.Context(), []string{"a@b", "c@d"}, IO{Stdin: msg, Stderr: &se, Env: env, Forwarder: q})
	if code != 0 || se.String() != "forward: qp 4242\n" || q.Sender != "owner@x" ||
		strings.Join(q.Rcpts, ",") != "a@b,c@d" || q.Msg != "Delivered-To: joe@ex.com\nSubject: s\n\nhi\n" {
		t.Errorf("forward: %d %q %+v", code, se.String(), q)
	}
	// No addresses: still one injection.
	q = &fakeQueue{}
	if r := call(t, Forward, nil, env, q, "m\n"); r.code != 0 || q.Calls != 1 || len(q.Rcpts) != 0 {
		t.Errorf("no addresses: %+v %+v", r, q)
	}
	for _, tt := range []struct {
		env  []string
		qerr error
		code int
		text string
	}{
		{[]string{"DTLINE=x\n"}, nil, 100, "forward: fatal: NEWSENDER not set\n"},
		{[]string{"NEWSENDER=x"}, nil, 100, "forward: fatal: DTLINE not set\n"},
		{env, &dotqmail.ForwardError{Text: "qq write error or disk full (#4.3.0)"}, 111, "forward: fatal: qq write error or disk full (#4.3.0)\n"},
		{env, &dotqmail.ForwardError{Text: "envelope address too long for qq (#5.1.3)", Perm: true}, 100, "forward: fatal: envelope address too long for qq (#5.1.3)\n"},
		{env, errors.New("x"), 111, "forward: fatal: x\n"},
		{env, &dotqmail.ForwardError{Text: "unable to exec qq (#4.3.0)", Err: &qq.OpenError{Err: syscall.EMFILE}}, 111,
			"forward: fatal: unable to fork: process cannot open more files\n"},
	} {
		r := call(t, Forward, []string{"a@b"}, tt.env, &fakeQueue{Err: tt.qerr}, "m\n")
		if r.code != tt.code || r.stderr != tt.text {
			t.Errorf("forward env %q: %d %q, want %d %q", tt.env, r.code, r.stderr, tt.code, tt.text)
		}
	}
}

// TestPreline checks preline(1): the program reads $UFLINE, $RPLINE and
// $DTLINE before the message, and the options that leave each out.
func TestPreline(t *testing.T) {
	env := []string{"UFLINE=From s Thu Jan 01 00:00:00 1970\n", "RPLINE=Return-Path: <s>\n", "DTLINE=Delivered-To: j@x\n"}
	for _, tt := range []struct {
		args []string
		env  []string
		code int
		out  string
	}{
		{[]string{"-f", "cat"}, env, 0, "Return-Path: <s>\nDelivered-To: j@x\nm\n"},
		{[]string{"cat"}, env, 0, "From s Thu Jan 01 00:00:00 1970\nReturn-Path: <s>\nDelivered-To: j@x\nm\n"},
		{[]string{"-frd", "cat"}, env, 0, "m\n"},
		{[]string{"-f", "-r", "-d", "-D", "cat"}, env, 0, "Delivered-To: j@x\nm\n"},
		{[]string{"-fF", "--", "cat"}, env, 0, "From s Thu Jan 01 00:00:00 1970\nReturn-Path: <s>\nDelivered-To: j@x\nm\n"},
		{[]string{"sh", "-c", "cat >/dev/null; exit 99"}, env, 99, ""},
		{[]string{"sh", "-c", "cat >/dev/null; exit 100"}, env, 100, ""},
		{[]string{"cat"}, env[1:], 100, ""},
		{[]string{"-x", "cat"}, env, 100, ""},
		{nil, env, 100, ""},
		{[]string{"/nonexistent"}, env, 100, ""},
	} {
		r := call(t, Preline, tt.args, tt.env, nil, "m\n")
		if r.code != tt.code || r.stdout != tt.out {
			t.Errorf("preline %q: %d %q (%q), want %d %q", tt.args, r.code, r.stdout, r.stderr, tt.code, tt.out)
		}
	}
	// Programs that cannot be run: djb's error texts, execvp's errno.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "noexec"), []byte("#!/bin/sh\n"), 0o644)
	for _, tt := range []struct {
		prog, stderr string
	}{
		{"/nonexistent", "preline: fatal: unable to run /nonexistent: file does not exist\n"},
		{"nosuch-program", "preline: fatal: unable to run nosuch-program: file does not exist\n"},
		{dir + "/noexec", "preline: fatal: unable to run " + dir + "/noexec: access denied\n"},
	} {
		r := call(t, Preline, []string{tt.prog}, env, nil, "m\n")
		if r.code != 100 || r.stderr != tt.stderr {
			t.Errorf("preline %s: %d %q, want 100 %q", tt.prog, r.code, r.stderr, tt.stderr)
		}
	}
	// A message with "From " lines passes unquoted.
	r := call(t, Preline, []string{"-frd", "cat"}, env, nil, "From x\n")
	if r.stdout != "From x\n" {
		t.Errorf("preline quoted: %q", r.stdout)
	}
}
