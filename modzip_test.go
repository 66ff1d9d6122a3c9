package qmailkit_test

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestModuleZipPaths: every file of the module can go into the zip the Go
// module proxy serves (golang.org/x/mod/zip's rules): no name Windows
// reserves (nul, con, ...), no two paths that differ only in case, so that
// "go get" of the module works everywhere.
func TestModuleZipPaths(t *testing.T) {
	out, err := exec.Command("git", "ls-files").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	reserved := regexp.MustCompile(`(?i)^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$`)
	seen := map[string]string{}
	for _, p := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		for _, elem := range strings.Split(p, "/") {
			if reserved.MatchString(elem) {
				t.Errorf("%s: %q is a name Windows reserves: the module zip refuses it", p, elem)
			}
		}
		if q, ok := seen[strings.ToLower(p)]; ok {
			t.Errorf("%s and %s differ only in case", p, q)
		}
		seen[strings.ToLower(p)] = p
	}
}
