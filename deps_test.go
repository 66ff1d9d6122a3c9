package qmailkit_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestTestServersNeedNoDNSLibrary: a program that only wants an SMTP or
// POP3 test server does not pull in github.com/miekg/dns (the SMTP client
// keeps it for its own resolver).
func TestTestServersNeedNoDNSLibrary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	for _, pkg := range []string{"./smtpserver/smtptest", "./pop3/pop3test", "./smtpserver"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		if strings.Contains(string(out), "github.com/miekg/dns") {
			t.Errorf("%s depends on github.com/miekg/dns", pkg)
		}
	}
}
