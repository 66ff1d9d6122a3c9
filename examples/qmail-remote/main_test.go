package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/smtpclient/scripted"
)

// home makes a qmail home with the given control files.
func home(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "control"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, "control", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runWith(t *testing.T, qmailhome string, stdin string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	env := func(k string) string {
		if k == "QMAILHOME" {
			return qmailhome
		}
		return ""
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if code := run(ctx, append([]string{"qmail-remote"}, args...), env, strings.NewReader(stdin), &out); code != 0 {
		t.Errorf("exit %d", code)
	}
	return out.String()
}

func nul(s string) string { return strings.ReplaceAll(s, `\0`, "\x00") }

const msg = "Subject: t\n\nhello\n"

var stdArgs = []string{"example.net", "snd@example.org", "r1@example.net", "r2@example.net"}

func step(name string, replies ...string) func(string, int, string) string {
	return func(s string, n int, _ string) string {
		if s == name && n <= len(replies) {
			return replies[n-1]
		}
		return ""
	}
}

// qmail-remote's reports for each kind of remote answer, through the
// program.
func TestVectors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reply  func(string, int, string) string
		args   []string
		msg    string
		report string
		log    []string
	}{
		{name: "1", report: `r\0r\0K127.0.0.1 accepted message.` + "\nRemote host said: 250 ok 12345 qp 678\n" + `\0`,
			log: []string{"HELO helo.example.org", "MAIL FROM:<snd@example.org>", "RCPT TO:<r1@example.net>", "RCPT TO:<r2@example.net>", "DATA", "<data>", "QUIT"}},
		{name: "2", reply: step("RCPT", "", "550 no such user"),
			report: `r\0h127.0.0.1 does not like recipient.` + "\nRemote host said: 550 no such user\n" + `\0K127.0.0.1 accepted message.` + "\nRemote host said: 250 ok 12345 qp 678\n" + `\0`},
		{name: "3", reply: step("RCPT", "550 no", "450 later"),
			report: `h127.0.0.1 does not like recipient.` + "\nRemote host said: 550 no\n" + `\0s127.0.0.1 does not like recipient.` + "\nRemote host said: 450 later\n" + `\0DGiving up on 127.0.0.1.` + "\n" + `\0`},
		{name: "4 554", reply: step("GREETING", "554 go away"), report: "ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 554 go away\n" + `\0`},
		{name: "4 250", reply: step("GREETING", "250 hello"), report: "ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 250 hello\n" + `\0`},
		{name: "4 multi-line", reply: step("GREETING", "220-hello\n220 there"), report: `r\0r\0K127.0.0.1 accepted message.` + "\nRemote host said: 250 ok 12345 qp 678\n" + `\0`},
		{name: "5", reply: step("HELO", "501 bad helo"), report: "ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 501 bad helo\n" + `\0`},
		{name: "6 553", reply: step("MAIL", "553 sender rejected"), report: "DConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 553 sender rejected\n" + `\0`},
		{name: "6 451", reply: step("MAIL", "451 try later"), report: "ZConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 451 try later\n" + `\0`},
		{name: "7", reply: step("DATA", "554 no data"), report: `r\0r\0D127.0.0.1 failed on DATA command.` + "\nRemote host said: 554 no data\n" + `\0`},
		{name: "8 452", reply: step(".", "452 full"), report: `r\0r\0Z127.0.0.1 failed after I sent the message.` + "\nRemote host said: 452 full\n" + `\0`},
		{name: "8 multi-line", reply: step(".", "554-first line\n554 second line"),
			report: `r\0r\0D127.0.0.1 failed after I sent the message.` + "\nRemote host said: 554-first line\n554 second line\n" + `\0`},
		{name: "9", reply: step(".", "CLOSE"), args: []string{"example.net", "snd@example.org", "r1@example.net"},
			report: `r\0ZConnected to 127.0.0.1 but connection died. Possible duplicate! (#4.4.2)` + "\n" + `\0`},
		{name: "11", msg: "Subject: t\n\nno final newline",
			report: `r\0r\0DSMTP cannot transfer messages with partial final lines. (#5.6.2)` + "\n" + `\0`},
		{name: "15", args: []string{"example.net", "", "a b@example.net", ".x@example.net", "a..b@example.net", `q"t\\@example.net`, "noat"},
			report: `r\0r\0r\0r\0r\0K127.0.0.1 accepted message.` + "\nRemote host said: 250 ok 12345 qp 678\n" + `\0`,
			log: []string{"HELO helo.example.org", "MAIL FROM:<>", `RCPT TO:<"a b"@example.net>`, `RCPT TO:<".x"@example.net>`,
				`RCPT TO:<"a..b"@example.net>`, `RCPT TO:<"q\"t\\\\"@example.net>`, "RCPT TO:<noat>", "DATA", "<data>", "QUIT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := scripted.New(t)
			srv.SetReply(tc.reply)
			h := home(t, map[string]string{"me": "me.example.org\n", "helohost": "helo.example.org\n", "smtproutes": ":127.0.0.1:" + strconv.Itoa(srv.Port) + "\n"})
			args := tc.args
			if args == nil {
				args = stdArgs
			}
			m := tc.msg
			if m == "" {
				m = msg
			}
			if got, want := runWith(t, h, m, args...), nul(tc.report); got != want {
				t.Errorf("report\n got %q\nwant %q", got, want)
			}
			srv.Settle()
			if tc.log != nil && !slices.Equal(srv.Log(), tc.log) {
				t.Errorf("dialogue\n got %q\nwant %q", srv.Log(), tc.log)
			}
		})
	}
}

// The bytes on the wire: every line end CRLF, every line dot-stuffed.
func TestBlast(t *testing.T) {
	srv := scripted.New(t)
	h := home(t, map[string]string{"helohost": "h", "smtproutes": ":127.0.0.1:" + strconv.Itoa(srv.Port) + "\n"})
	runWith(t, h, "Subject: t\n\n.lead\nx\r.\nafter\n", "example.net", "s@x", "r@example.net")
	srv.Settle()
	if got := srv.Data(); len(got) != 1 || got[0] != "Subject: t\r\n\r\n..lead\r\nx\r\n..\r\nafter\r\n.\r\n" {
		t.Errorf("sent %q", got)
	}
}

func TestSetup(t *testing.T) {
	ok := map[string]string{"me": "me.example.org"}
	for _, tc := range []struct {
		name   string
		home   func(t *testing.T) string
		args   []string
		report string
	}{
		{"12 two arguments", func(t *testing.T) string { return home(t, ok) }, []string{"example.net", "s@x"}, "DI (qmail-remote) was invoked improperly. (#5.3.5)\n"},
		{"no home", func(t *testing.T) string { return filepath.Join(t.TempDir(), "missing") }, stdArgs, "ZUnable to switch to home directory. (#4.3.0)\n"},
		{"no me nor helohost", func(t *testing.T) string { return home(t, nil) }, stdArgs, "ZUnable to read control files. (#4.3.0)\n"},
		{"unreadable smtproutes", func(t *testing.T) string {
			h := home(t, ok)
			os.Mkdir(filepath.Join(h, "control", "smtproutes"), 0o755)
			return h
		}, stdArgs, "ZUnable to read control files. (#4.3.0)\n"},
		{"13 literal is this host", func(t *testing.T) string { return home(t, ok) }, []string{"[127.0.0.1]", "s@x", "r@x"},
			"DSorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n"},
		{"13 bare literal", func(t *testing.T) string { return home(t, ok) }, []string{"127.0.0.1", "s@x", "r@x"},
			"DSorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := runWith(t, tc.home(t), msg, tc.args...); got != tc.report+"\x00" {
				t.Errorf("report %q, want %q", got, tc.report+"\x00")
			}
		})
	}
}

func TestControlFiles(t *testing.T) {
	dir := home(t, map[string]string{"me": "me.example\n", "timeoutconnect": "7 seconds\n", "timeoutremote": "x\n", "smtproutes": ":relay.example:2525\n"})
	c, err := configure(filepath.Join(dir, "control"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "me.example" || c.Timeouts.Connect.Seconds() != 7 || c.Timeouts.Remote.Seconds() != 1200 || !c.QmailCompat {
		t.Errorf("client %+v", c)
	}
	if rt, ok := c.Routes.Lookup("any.example"); !ok || rt.Relay != "relay.example" || rt.Port != 2525 {
		t.Errorf("route %+v", rt)
	}
	dir = home(t, map[string]string{"me": "me.example", "helohost": "helo.example \t\nsecond\n"})
	if c, err = configure(filepath.Join(dir, "control")); err != nil || c.Hostname != "helo.example" {
		t.Errorf("helohost: %v %v", c, err)
	}
}

// The built program: exit status 0 and the report on stdout.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "qmail-remote")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	srv := scripted.New(t)
	h := home(t, map[string]string{"me": "helo.example.org", "smtproutes": ":127.0.0.1:" + strconv.Itoa(srv.Port) + "\n"})
	cmd := exec.Command(bin, stdArgs...)
	cmd.Env = append(os.Environ(), "QMAILHOME="+h)
	cmd.Stdin = strings.NewReader(msg)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "r\x00r\x00K127.0.0.1 accepted message.\nRemote host said: 250 ok 12345 qp 678\n\x00"; string(out) != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	cmd = exec.Command(bin, "x")
	if out, err = cmd.Output(); err != nil || string(out) != "DI (qmail-remote) was invoked improperly. (#5.3.5)\n\x00" {
		t.Errorf("improper: %q %v", out, err)
	}
}

func TestModern(t *testing.T) {
	srv := scripted.New(t)
	srv.SetExt([]string{"PIPELINING", "8BITMIME"})
	h := home(t, map[string]string{"helohost": "helo.example.org", "smtproutes": ":127.0.0.1:" + strconv.Itoa(srv.Port) + "\n"})
	got := runWith(t, h, "Subject: t\n\nno final newline", append([]string{"-modern"}, stdArgs...)...)
	if want := "r\x00r\x00K127.0.0.1 accepted message.\nRemote host said: 250 ok 12345 qp 678\n\x00"; got != want {
		t.Errorf("report %q, want %q", got, want)
	}
	srv.Settle()
	if log := srv.Log(); log[0] != "EHLO helo.example.org" || log[1] != "MAIL FROM:<snd@example.org>" {
		t.Errorf("dialogue %q", log)
	}
	if got := runWith(t, h, msg, "-modern", "x", "y"); got != "DI (qmail-remote) was invoked improperly. (#5.3.5)\n\x00" {
		t.Errorf("-modern with two arguments: %q", got)
	}
}
