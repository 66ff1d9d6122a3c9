package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "checkpassword")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// checkpassword's contract: fd 3 in, exit 1/2/111, or exec of the rest in
// the home directory with USER, HOME and SHELL set.
func TestCheckpassword(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o755)
	uid, gid := os.Getuid(), os.Getgid()
	passwd := filepath.Join(dir, "passwd")
	os.WriteFile(passwd, []byte(fmt.Sprintf(
		"joe:{PLAIN}good:%d:%d::%s:/bin/sh\nmrose:{PLAIN}tanstaaf:%d:%d::%s:/bin/false\nbad line\n", uid, gid, home, uid, gid, home)), 0o644)
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte(fmt.Sprintf("joe:{PLAIN}good:%d:%d::%s:/bin/sh\nmrose:{PLAIN}tanstaaf:%d:%d::%s:/bin/false\n", uid, gid, home, uid, gid, home)), 0o644)
	show := []string{"/bin/sh", "-c", `echo "$USER $HOME $SHELL $(pwd -P) $X"`}
	tests := []struct {
		name  string
		args  []string
		fd3   string
		code  int
		out   string
		noFD3 bool
	}{
		{"ok", append([]string{"-f", good}, show...), "joe\x00good\x00<1.2@h>\x00", 0, fmt.Sprintf("joe %s /bin/sh %s kept\n", home, home), false},
		{"apop", append([]string{"-f", good}, show...), "mrose\x00c4c9334bac560ecc979e58001b3e22fb\x00<1896.697170952@dbc.mtview.ca.us>\x00", 0, fmt.Sprintf("mrose %s /bin/false %s kept\n", home, home), false},
		{"bad password", append([]string{"-f", good}, show...), "joe\x00bad\x00<1.2@h>\x00", 1, "", false},
		{"unknown user", append([]string{"-f", good}, show...), "ann\x00good\x00<1.2@h>\x00", 1, "", false},
		{"too long", append([]string{"-f", good}, show...), "joe\x00good\x00" + strings.Repeat("x", 600) + "\x00", 1, "", false},
		{"no prog", []string{"-f", good}, "joe\x00good\x00\x00", 2, "", false},
		{"unterminated", append([]string{"-f", good}, show...), "joe\x00good", 2, "", false},
		{"broken file", append([]string{"-f", passwd}, show...), "joe\x00good\x00\x00", 111, "", false},
		{"missing file", append([]string{"-f", filepath.Join(dir, "none")}, show...), "joe\x00good\x00\x00", 111, "", false},
		{"prog missing", []string{"-f", good, filepath.Join(dir, "nonexistent")}, "joe\x00good\x00\x00", 111, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, w, _ := os.Pipe()
			go func() { w.Write([]byte(tt.fd3)); w.Close() }()
			cmd := exec.Command(bin, tt.args...)
			cmd.ExtraFiles = []*os.File{r}
			cmd.Env = append(os.Environ(), "X=kept")
			var out bytes.Buffer
			cmd.Stdout = &out
			cmd.Run()
			r.Close()
			if code := cmd.ProcessState.ExitCode(); code != tt.code || out.String() != tt.out {
				t.Fatalf("exit %d, output %q; want %d, %q", code, out.String(), tt.code, tt.out)
			}
		})
	}
}
