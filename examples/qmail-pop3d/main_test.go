package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runAs runs the built program as a non-root user (65534 when the test
// runs as root, since qmail-pop3d refuses uid 0).
func runAs(t *testing.T, bin, dir, input string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if os.Getuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(input), &out, &errb
	cmd.Run()
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

func TestQmailPop3d(t *testing.T) {
	root, err := os.MkdirTemp("", "pop3d")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(root)
	os.Chmod(root, 0o755)
	bin := filepath.Join(root, "qmail-pop3d")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	md := filepath.Join(root, "Maildir")
	for _, s := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(md, s), 0o700)
	}
	p := filepath.Join(md, "new", "1000.1.host")
	os.WriteFile(p, []byte("Subject: one\n\nline1\n.dotline\nline3\n"), 0o600)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
	if os.Getuid() == 0 {
		filepath.Walk(md, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, 65534, 65534) })
	}

	out, _, code := runAs(t, bin, root, "STAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nSTAT\r\nCAPA\r\nQUIT\r\n", "Maildir")
	want := "+OK \r\n+OK 1 35\r\n+OK \r\n1 35\r\n.\r\n+OK \r\nSubject: one\r\n\r\nline1\r\n..dotline\r\nline3\r\n\r\n.\r\n+OK \r\n+OK 1 0\r\n-ERR unimplemented\r\n+OK \r\n"
	if out != want || code != 0 {
		t.Fatalf("session: exit %d\n%q\nwant\n%q", code, out, want)
	}
	if _, err := os.Stat(p); err == nil {
		t.Fatal("message not deleted")
	}

	// -modern: RFC 1939 sizes and STAT, no LAST, no extra empty line.
	p = filepath.Join(md, "new", "1001.1.host")
	os.WriteFile(p, []byte("Subject: two\n\nbody\n"), 0o600)
	os.Chtimes(p, old, old)
	if os.Getuid() == 0 {
		os.Lchown(p, 65534, 65534)
	}
	out, _, code = runAs(t, bin, root, "STAT\r\nRETR 1\r\nDELE 1\r\nSTAT\r\nLAST\r\nQUIT\r\n", "-modern", "Maildir")
	want = "+OK 1 messages\r\n+OK 1 22\r\n+OK 22 octets\r\nSubject: two\r\n\r\nbody\r\n.\r\n+OK message 1 deleted\r\n+OK 0 0\r\n-ERR unknown command\r\n+OK bye\r\n"
	if out != want || code != 0 {
		t.Fatalf("-modern session: exit %d\n%q\nwant\n%q", code, out, want)
	}
	for _, tt := range []struct{ args []string }{{nil}, {[]string{"NoSuchMaildir"}}} {
		out, _, code := runAs(t, bin, root, "", tt.args...)
		if out != "-ERR this user has no $HOME/Maildir\r\n" || code != 0 {
			t.Errorf("%v: %q, exit %d", tt.args, out, code)
		}
	}
	// A directory without new/ and cur/ cannot be scanned.
	os.Mkdir(filepath.Join(root, "Empty"), 0o755)
	if out, _, code := runAs(t, bin, root, "", "Empty"); out != "-ERR unable to scan $HOME/Maildir\r\n" || code != 0 {
		t.Errorf("Empty: %q, exit %d", out, code)
	}
	if os.Getuid() == 0 {
		var out, errb bytes.Buffer
		cmd := exec.Command(bin, "Maildir")
		cmd.Dir, cmd.Stdout, cmd.Stderr = root, &out, &errb
		cmd.Run()
		if errb.String() != "qmail-pop3d invoked as uid 0, terminating\n" || cmd.ProcessState.ExitCode() != 1 || out.Len() != 0 {
			t.Errorf("as root: %q %q exit %d", out.String(), errb.String(), cmd.ProcessState.ExitCode())
		}
	}
}
