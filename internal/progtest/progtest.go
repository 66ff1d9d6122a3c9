// Package progtest holds what the tests of the drop-in programs under
// examples/ share: building the program, a qmail home with files, its
// environment, and exit codes.
package progtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Build builds the package in the current directory (the test's own
// command) as name in a temporary directory and returns its path. With
// -short it skips the test.
func Build(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the program")
	}
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Home makes a temporary directory holding files: each key a path
// relative to it (a key ending in "/" a directory), each value the file's
// contents. Missing parent directories are made.
func Home(t testing.TB, files map[string]string) string {
	t.Helper()
	home := t.TempDir()
	for name, content := range files {
		p := filepath.Join(home, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if strings.HasSuffix(name, "/") {
			err = os.MkdirAll(p, 0o755)
		} else {
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return home
}

// Env is a getenv that knows only QMAILHOME, set to home.
func Env(home string) func(string) string {
	return func(k string) string {
		if k == "QMAILHOME" {
			return home
		}
		return ""
	}
}

// Run runs cmd and returns its exit status; a command that could not be
// run fails the test.
func Run(t testing.TB, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	return cmd.ProcessState.ExitCode()
}
