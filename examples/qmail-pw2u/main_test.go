package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/assign"
)

// newHome makes a qmail home with the given users/ files.
func newHome(t *testing.T, files map[string]string) string {
	t.Helper()
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, "users"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(home, "users", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return home
}

func runIn(home, stdin string, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"/var/qmail/bin/qmail-pw2u"}, args...), func(k string) string {
		if k == "QMAILHOME" {
			return home
		}
		return ""
	}, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

const passwd = "root:x:0:0:root:/root:/bin/sh\n" +
	"joe:x:503:78:Joe:/home/joe:/bin/sh\n" +
	"alias:*:7790:2108::/var/qmail/alias:/bin/true\n" +
	"Upper:x:600:600::/home/upper:/bin/sh\n"

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-H"}, "" +
			"=joe:joe:503:78:/home/joe:::\n+joe-:joe:503:78:/home/joe:-::\n" +
			"+:alias:7790:2108:/var/qmail/alias:-::\n" +
			"=alias:alias:7790:2108:/var/qmail/alias:::\n+alias-:alias:7790:2108:/var/qmail/alias:-::\n.\n"},
		{[]string{"-HC"}, "" +
			"=joe:joe:503:78:/home/joe:::\n" +
			"+:alias:7790:2108:/var/qmail/alias:-::\n" +
			"=alias:alias:7790:2108:/var/qmail/alias:::\n.\n"},
		{[]string{"-H", "-c", ""}, "" +
			"=joe:joe:503:78:/home/joe:::\n" +
			"+:alias:7790:2108:/var/qmail/alias:-::\n" +
			"=alias:alias:7790:2108:/var/qmail/alias:::\n.\n"},
		{[]string{"-Hc+", "-/", "-u"}, "" +
			"=joe:joe:503:78:/home/joe:::\n+joe+:joe:503:78:/home/joe:-/::\n" +
			"+:alias:7790:2108:/var/qmail/alias:-/::\n" +
			"=alias:alias:7790:2108:/var/qmail/alias:::\n+alias+:alias:7790:2108:/var/qmail/alias:-/::\n" +
			"=Upper:Upper:600:600:/home/upper:::\n+Upper+:Upper:600:600:/home/upper:-/::\n.\n"},
		{[]string{"-uU", "-C", "-c", "=", "-H", "--", "-x"}, "" +
			"=joe:joe:503:78:/home/joe:::\n+joe=:joe:503:78:/home/joe:-::\n" +
			"+:alias:7790:2108:/var/qmail/alias:-::\n" +
			"=alias:alias:7790:2108:/var/qmail/alias:::\n+alias=:alias:7790:2108:/var/qmail/alias:-::\n.\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errs := runIn(newHome(t, nil), passwd, tc.args...)
			if code != 0 || errs != "" || out != tc.want {
				t.Errorf("exit %d stderr %q\n%s\nwant\n%s", code, errs, out, tc.want)
			}
		})
	}
}

func TestFatal(t *testing.T) {
	home := newHome(t, nil)
	for _, tc := range []struct {
		name, home, stdin string
		args              []string
		code              int
		stderr            string
	}{
		{"illegal option", home, passwd, []string{"-x"}, 100, "qmail-pw2u: illegal option -- x\n"},
		{"illegal bundled", home, passwd, []string{"-Hq"}, 100, "qmail-pw2u: illegal option -- q\n"},
		{"missing argument", home, passwd, []string{"-H", "-c"}, 100, "qmail-pw2u: option requires an argument -- c\n"},
		{"no alias", home, "joe:x:503:78:Joe:/home/joe:/bin/sh\n", []string{"-H"}, 111, "qmail-pw2u: fatal: unable to find alias user\n"},
		{"-h missing home", home, passwd, []string{"-h"}, 111, "qmail-pw2u: fatal: unable to stat /home/joe\n"},
		{"no home dir", filepath.Join(home, "none"), passwd, nil, 111, "qmail-pw2u: fatal: unable to chdir\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runIn(tc.home, tc.stdin, tc.args...)
			if code != tc.code || errs != tc.stderr {
				t.Errorf("exit %d stderr %q, want %d %q", code, errs, tc.code, tc.stderr)
			}
		})
	}
	// An unknown subuser's user.
	h := newHome(t, map[string]string{"subusers": "info:nobody:inf:\n"})
	if code, _, errs := runIn(h, passwd, "-H"); code != 111 || errs != "qmail-pw2u: fatal: unable to find nobody user for subuser\n" {
		t.Errorf("subuser: %d %q", code, errs)
	}
	// An unreadable control file.
	h = newHome(t, nil)
	os.Mkdir(filepath.Join(h, "users", "include"), 0o755)
	if code, _, errs := runIn(h, passwd, "-H"); code != 111 || errs != "qmail-pw2u: fatal: unable to read controls\n" {
		t.Errorf("controls: %d %q", code, errs)
	}
}

// The control files of QMAILHOME/users, the -home flag, and relative home
// directories checked against QMAILHOME; the output compiles and answers.
func TestControlFilesAndHomes(t *testing.T) {
	home := newHome(t, map[string]string{
		"exclude":   "bob\n",
		"mailnames": "joe:joe:joe.shmoe\n",
		"subusers":  "info:joe:inf:\n",
		"append":    "=postmaster:alias:7790:2108:/var/qmail/alias:-:postmaster:\n",
	})
	uid := os.Getuid()
	if uid == 0 {
		uid = 503 // as root we can give the homes any owner
	}
	mk := func(dir string, owner int) {
		p := filepath.Join(home, dir)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if os.Getuid() == 0 {
			if err := os.Chown(p, owner, -1); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("homes/joe", uid)
	mk("homes/alias", uid)
	mk("homes/bob", uid)
	mk("homes/eve", uid+1) // not hers
	pw := "" +
		"joe:x:" + strconv.Itoa(uid) + ":78:Joe:homes/joe:/bin/sh\n" +
		"alias:x:" + strconv.Itoa(uid) + ":2108::homes/alias:\n" +
		"bob:x:" + strconv.Itoa(uid) + ":78::homes/bob:\n" +
		"eve:x:" + strconv.Itoa(uid) + ":78::homes/eve:\n" +
		"nohome:x:" + strconv.Itoa(uid) + ":78::homes/none:\n"
	if os.Getuid() != 0 {
		// Without root eve's home cannot belong to another uid: give
		// her a uid that reads as 0, which is skipped too.
		pw = strings.ReplaceAll(pw, "eve:x:", "eve:x:x")
	}
	code, out, errs := runIn(filepath.Join(t.TempDir(), "wrong"), pw, "-home", home)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d %q", code, errs)
	}
	u := strconv.Itoa(uid)
	want := "" +
		"=joe:joe:" + u + ":78:homes/joe:::\n+joe-:joe:" + u + ":78:homes/joe:-::\n" +
		"=joe.shmoe:joe:" + u + ":78:homes/joe:::\n+joe.shmoe-:joe:" + u + ":78:homes/joe:-::\n" +
		"+:alias:" + u + ":2108:homes/alias:-::\n" +
		"=alias:alias:" + u + ":2108:homes/alias:::\n+alias-:alias:" + u + ":2108:homes/alias:-::\n" +
		"=info:joe:" + u + ":78:homes/joe:-:inf:\n+info-:joe:" + u + ":78:homes/joe:-:inf-:\n" +
		"=postmaster:alias:7790:2108:/var/qmail/alias:-:postmaster:\n" +
		".\n"
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	// qmail-newu accepts it, and lookups follow it.
	cdbPath := filepath.Join(home, "users", "cdb")
	if err := assign.Compile(cdbPath, strings.NewReader(out)); err != nil {
		t.Fatal(err)
	}
	db, err := assign.Open(cdbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for local, wantExt := range map[string]string{"Joe.Shmoe-Lists": "Lists", "info-x": "inf-x", "stranger": "stranger"} {
		res, err := db.Lookup(local)
		if err != nil || res.Ext != wantExt {
			t.Errorf("%s: %+v %v", local, res, err)
		}
	}
}

func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program")
	}
	bin := filepath.Join(t.TempDir(), "qmail-pw2u")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-H")
	cmd.Env = append(os.Environ(), "QMAILHOME="+newHome(t, nil))
	cmd.Stdin = strings.NewReader(passwd)
	out, err := cmd.Output()
	if err != nil || !strings.HasSuffix(string(out), "+:alias:7790:2108:/var/qmail/alias:-::\n=alias:alias:7790:2108:/var/qmail/alias:::\n+alias-:alias:7790:2108:/var/qmail/alias:-::\n.\n") {
		t.Errorf("%v %q", err, out)
	}
}
