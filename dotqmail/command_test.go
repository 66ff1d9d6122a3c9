package dotqmail_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/dotqmail"
)

// TestQmailLocal runs qmail-local's command line: its usage errors, -n,
// a delivery, qmail-local's exit codes, and a forward through $QMAILQUEUE
// run in -home.
func TestQmailLocal(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "joe")
	qhome := filepath.Join(dir, "qmail")
	for _, d := range []string{home, qhome} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		".qmail-box":  "./Mailbox\n",
		".qmail-fwd":  "&bob@example.org\n",
		".qmail-fail": "|echo no such list; exit 100\n",
		".qmail-busy": "|exit 75\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(home, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A qmail-queue that saves its working directory, message and envelope.
	qq := filepath.Join(dir, "qq")
	script := "#!/bin/sh\npwd > " + dir + "/qq.dir\ncat > " + dir + "/qq.msg\ncat <&1 > " + dir + "/qq.env\n"
	if err := os.WriteFile(qq, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	msg := filepath.Join(dir, "msg")
	if err := os.WriteFile(msg, []byte("Subject: s\n\nhi\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := func(ext string) []string {
		return []string{"joe", home, "joe-" + ext, "-", ext, "ex.com", "a@b", "./Maildir/"}
	}
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"no args", nil, 100, "", dotqmail.QmailLocalUsage},
		{"seven args", args("box")[:7], 100, "", dotqmail.QmailLocalUsage},
		{"relative home", []string{"joe", "joe", "joe", "", "", "ex.com", "a@b", "./Maildir/"}, 100, "", dotqmail.QmailLocalUsage},
		{"bad option", append([]string{"-x"}, args("box")...), 100, "", dotqmail.QmailLocalUsage},
		{"-home without dir", []string{"-home"}, 100, "", dotqmail.QmailLocalUsage},
		{"plan", append([]string{"-n"}, args("box")...), 0, "mbox ./Mailbox\ndid 1+0+0\n", ""},
		{"deliver", append([]string{"-nN", "--"}, args("box")...), 0, "did 1+0+0\n", ""},
		{"permanent", args("fail"), 100, "no such list\n", ""},
		{"temporary", args("busy"), 111, "", ""},
		{"no mailbox", args("none"), 100, "", "Sorry, no mailbox here by that name. (#5.1.1)\n"},
		{"forward", append([]string{"-home", qhome}, args("fwd")...), 0, "did 0+1+0\nqp ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdin, err := os.Open(msg)
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			var so, se bytes.Buffer
			env := []string{"PATH=/usr/bin:/bin", "QMAILQUEUE=" + qq}
			code := dotqmail.QmailLocal(t.Context(), tt.args, env, stdin, &so, &se)
			if code != tt.code || !strings.HasPrefix(so.String(), tt.stdout) || se.String() != tt.stderr {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q..., %q", code, so.String(), se.String(), tt.code, tt.stdout, tt.stderr)
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(home, "Mailbox")); !strings.Contains(string(b), "Delivered-To: joe-box@ex.com\n") {
		t.Errorf("Mailbox: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "qq.env")); string(b) != "Fa@b\x00Tbob@example.org\x00\x00" {
		t.Errorf("forward envelope %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "qq.dir")); string(b) != qhome+"\n" {
		t.Errorf("qmail-queue ran in %q, want -home %s", b, qhome)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "qq.msg")); !strings.HasPrefix(string(b), "Delivered-To: joe-fwd@ex.com\nSubject: s\n") {
		t.Errorf("forwarded message %q", b)
	}
}
