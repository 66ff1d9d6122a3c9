package progtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestHomeEnvRun(t *testing.T) {
	home := Home(t, map[string]string{"control/me": "m\n", "queue/lock/": ""})
	if b, err := os.ReadFile(filepath.Join(home, "control", "me")); err != nil || string(b) != "m\n" {
		t.Errorf("control/me: %q %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(home, "queue", "lock")); err != nil || !fi.IsDir() {
		t.Errorf("queue/lock: %v", err)
	}
	if env := Env(home); env("QMAILHOME") != home || env("PATH") != "" {
		t.Error("Env")
	}
	if code := Run(t, exec.Command("/bin/sh", "-c", "exit 7")); code != 7 {
		t.Errorf("exit %d", code)
	}
}
