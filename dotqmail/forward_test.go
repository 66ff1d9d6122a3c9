package dotqmail

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeQmailQueue writes a qmail-queue stand-in that stores the message
// (descriptor 0) and the envelope (descriptor 1) in dir, writes $QQTEXT to
// descriptor 6 and exits $QQEXIT.
func fakeQmailQueue(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "qmail-queue")
	script := `#!/bin/sh
cat > "$QQDIR/msg" || exit 54
cat <&1 > "$QQDIR/env" || exit 54
pwd > "$QQDIR/pwd"
if [ -n "$QQTEXT" ]; then printf '%s' "$QQTEXT" >&6; fi
exit ${QQEXIT:-0}
`
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestQueueProgram(t *testing.T) {
	dir := t.TempDir()
	home := t.TempDir()
	qq := fakeQmailQueue(t, dir)
	tests := []struct {
		name   string
		exit   string
		text   string
		err    string // "" for success
		perm   bool
		sender string
		rcpts  []string
	}{
		{"success", "0", "", "", false, "a@b", []string{"c@d", "e@f", "c@d"}},
		{"no recipients", "0", "", "", false, "", nil},
		{"53", "53", "", "qq write error or disk full (#4.3.0)", false, "a@b", []string{"c@d"}},
		{"11", "11", "", "envelope address too long for qq (#5.1.3)", true, "a@b", []string{"c@d"}},
		{"35", "35", "", "qq permanent problem (#5.3.0)", true, "a@b", []string{"c@d"}},
		{"99", "99", "", "qq temporary problem (#4.3.0)", false, "a@b", []string{"c@d"}},
		{"82 D", "82", "Dno thanks", "no thanks", true, "a@b", []string{"c@d"}},
		{"82 Z", "82", "Zlater", "later", false, "a@b", []string{"c@d"}},
		{"82 short", "82", "D", "qq temporary problem (#4.3.0)", false, "a@b", []string{"c@d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &QueueProgram{Home: home, Env: []string{"PATH=/usr/bin:/bin", "QQDIR=" + dir,
				"QQEXIT=" + tt.exit, "QQTEXT=" + tt.text, "QMAILQUEUE=" + qq}}
			id, err := q.Forward(t.Context(), tt.sender, tt.rcpts, strings.NewReader("Delivered-To: x@y\nm\n"))
			if tt.err != "" {
				var fe *ForwardError
				if !errors.As(err, &fe) || fe.Text != tt.err || fe.Permanent() != tt.perm {
					t.Fatalf("err %v, want %q (permanent %v)", err, tt.err, tt.perm)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := strconv.Atoi(id); err != nil {
				t.Errorf("id %q is not a pid", id)
			}
			msg, _ := os.ReadFile(filepath.Join(dir, "msg"))
			env, _ := os.ReadFile(filepath.Join(dir, "env"))
			pwd, _ := os.ReadFile(filepath.Join(dir, "pwd"))
			want := "F" + tt.sender + "\x00"
			for _, r := range tt.rcpts {
				want += "T" + r + "\x00"
			}
			want += "\x00"
			if string(msg) != "Delivered-To: x@y\nm\n" || string(env) != want || strings.TrimSpace(string(pwd)) != home {
				t.Errorf("message %q, envelope %q (want %q), cwd %q", msg, env, want, pwd)
			}
		})
	}
	// The default path is QMAILHOME/bin/qmail-queue.
	os.MkdirAll(filepath.Join(home, "bin"), 0o755)
	os.Link(qq, filepath.Join(home, "bin", "qmail-queue"))
	q := &QueueProgram{Env: []string{"PATH=/usr/bin:/bin", "QQDIR=" + dir, "QMAILHOME=" + home}}
	if _, err := q.Forward(t.Context(), "s", []string{"r"}, strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if env, _ := os.ReadFile(filepath.Join(dir, "env")); string(env) != "Fs\x00Tr\x00\x00" {
		t.Errorf("envelope %q", env)
	}
	// A missing program.
	q = &QueueProgram{Path: filepath.Join(dir, "nosuch"), Home: dir}
	_, err := q.Forward(t.Context(), "s", []string{"r"}, strings.NewReader("x"))
	var fe *ForwardError
	if !errors.As(err, &fe) || fe.Text != "unable to exec qq (#4.3.0)" || fe.Perm {
		t.Errorf("missing program: %v", err)
	}
	// A missing home.
	q = &QueueProgram{Path: qq, Home: filepath.Join(dir, "nosuch")}
	if _, err := q.Forward(t.Context(), "s", []string{"r"}, strings.NewReader("x")); err == nil || err.Error() != "qq trouble in home directory (#4.3.0)" {
		t.Errorf("missing home: %v", err)
	}
	// Killed.
	os.WriteFile(filepath.Join(dir, "killed"), []byte("#!/bin/sh\nkill -9 $$\n"), 0o755)
	q = &QueueProgram{Path: filepath.Join(dir, "killed"), Home: dir}
	if _, err := q.Forward(t.Context(), "s", []string{"r"}, strings.NewReader("x")); err == nil || err.Error() != "qq crashed (#4.3.0)" {
		t.Errorf("killed: %v (%v)", err, errors.Unwrap(err))
	}
}

// TestQueueExitText checks the reports of qmail-queue's exit codes (see
// qmail-queue(8)), as qmail's qmail_close maps them: D permanent, Z temporary.
func TestQueueExitText(t *testing.T) {
	for _, tt := range []struct {
		code   int
		custom string
		want   string
	}{
		{0, "", ""}, {53, "", "Zqq write error or disk full (#4.3.0)"},
		{11, "", "Denvelope address too long for qq (#5.1.3)"}, {35, "", "Dqq permanent problem (#5.3.0)"},
		{99, "", "Zqq temporary problem (#4.3.0)"}, {82, "Dno thanks", "Dno thanks"},
		{82, "D", "Zqq temporary problem (#4.3.0)"}, {-1, "", "Zqq crashed (#4.3.0)"},
		{31, "", "Dmail server permanently rejected message (#5.3.0)"}, {120, "", "Zunable to exec qq (#4.3.0)"},
		{64, "", "Zqq trouble creating files in queue (#4.3.0)"}, {91, "", "Zqq internal bug (#4.3.0)"},
	} {
		if got := QueueExitText(tt.code, []byte(tt.custom)); got != tt.want {
			t.Errorf("QueueExitText(%d, %q) = %q, want %q", tt.code, tt.custom, got, tt.want)
		}
	}
}

// TestDeliverThroughQueueProgram forwards through a qmail-queue program:
// the summary carries its pid.
func TestDeliverThroughQueueProgram(t *testing.T) {
	dir := t.TempDir()
	qq := fakeQmailQueue(t, dir)
	e := newEnv(t)
	e.d.Forwarder = &QueueProgram{Path: qq, Home: dir, Env: []string{"QQDIR=" + dir, "PATH=/usr/bin:/bin"}}
	e.qmail(".qmail", "&a@b\nc@d\n", 0o644)
	res, err := e.deliver("Subject: s\n\nhi\n")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Report, "did 0+2+0\nqp ") || res.QP == "" || res.Report != "did 0+2+0\nqp "+res.QP+"\n" {
		t.Errorf("report %q", res.Report)
	}
	msg, _ := os.ReadFile(filepath.Join(dir, "msg"))
	env, _ := os.ReadFile(filepath.Join(dir, "env"))
	if string(msg) != "Delivered-To: joe@ex.com\nSubject: s\n\nhi\n" || string(env) != "Fa@b.c\x00Ta@b\x00Tc@d\x00\x00" {
		t.Errorf("message %q envelope %q", msg, env)
	}
	e.d.Forwarder.(*QueueProgram).Env = append(e.d.Forwarder.(*QueueProgram).Env, "QQEXIT=11")
	res, err = e.deliver("Subject: s\n\nhi\n")
	wantErr(t, err, 100, "Unable to forward message: envelope address too long for qq (#5.1.3).")
}
