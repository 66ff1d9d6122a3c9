package main

import (
	"bytes"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/internal/account"
	"github.com/qmailkit/qmailkit/internal/progtest"
)

const passwd = "root:x:0:0::/root:/bin/sh\n" +
	"alias:x:7790:2108::/var/qmail/alias:/bin/true\n" +
	"qmaild:x:7791:2107::/var/qmail:/bin/true\n" +
	"qmaill:x:7792:2107::/var/qmail:/bin/true\n" +
	"qmailp:x:7793:2107::/var/qmail:/bin/true\n" +
	"qmailq:x:7794:2108::/var/qmail:/bin/true\n" +
	"qmailr:x:7795:2108::/var/qmail:/bin/true\n" +
	"qmails:x:7796:2108::/var/qmail:/bin/true\n"

const group = "root:x:0:\nnofiles:x:2107:\nqmail:x:2108:\n"

// The built program with qmail's accounts (in a mount namespace of its
// own): the header with their ids, the report, exit codes.
func TestBinary(t *testing.T) {
	if why := account.CanIsolate(); why != "" {
		t.Skip(why)
	}
	bin := progtest.Build(t, "qmail-showctl")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "passwd"), []byte(passwd), 0o644)
	os.WriteFile(filepath.Join(dir, "group"), []byte(group), 0o644)
	home := filepath.Join(dir, "home")
	os.MkdirAll(filepath.Join(home, "control"), 0o755)
	os.WriteFile(filepath.Join(home, "control", "me"), []byte("mx.example.net\n"), 0o644)
	for _, tc := range []struct {
		name, home, passwd string
		code               int
		stdout, stderr     string
	}{
		{"ok", home, passwd, 0, "qmail home directory: " + home + ".\n" +
			"user-ext delimiter: -.\n" +
			"paternalism (in decimal): 2.\n" +
			"silent concurrency limit: 120.\n" +
			"subdirectory split: 23.\n" +
			"user ids: 7790, 7791, 7792, 0, 7793, 7794, 7795, 7796.\n" +
			"group ids: 2107, 2108.\n" +
			"\nbadmailfrom: (Default.) Any MAIL FROM is allowed.\n", ""},
		{"no home", filepath.Join(dir, "none"), passwd, 111, "Oops! Unable to chdir to " + filepath.Join(dir, "none") + ".\n", ""},
		{"no qmailr", home, strings.Replace(passwd, "qmailr:", "qmailR:", 1), 111, "", "fatal: unable to find user qmailr\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, "passwd"), []byte(tc.passwd), 0o644)
			cmd := account.Command(filepath.Join(dir, "passwd"), filepath.Join(dir, "group"), bin)
			cmd.Env = append(os.Environ(), "QMAILHOME="+tc.home)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if code := progtest.Run(t, cmd); code != tc.code || !strings.Contains(stdout.String(), tc.stdout) || stderr.String() != tc.stderr {
				t.Errorf("exit %d stdout %q stderr %q", code, stdout.String(), stderr.String())
			}
		})
	}
}

// Without qmail's accounts (the system here has no "alias"), run stops at
// the first one missing.
func TestMissingAccount(t *testing.T) {
	if _, err := user.Lookup("alias"); err == nil {
		t.Skip("this system has an alias account")
	}
	var stdout, stderr bytes.Buffer
	code := run(func(string) string { return t.TempDir() }, &stdout, &stderr)
	if code != 111 || stdout.Len() != 0 || stderr.String() != "fatal: unable to find user alias\n" {
		t.Errorf("exit %d stdout %q stderr %q", code, stdout.String(), stderr.String())
	}
}
