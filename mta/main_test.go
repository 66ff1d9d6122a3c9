package mta

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestMain runs the tests as nobody when started as root: a system refuses
// to deliver as root (dotqmail.Local), and Init refuses to make a home for
// root, so as root the tests rerun this binary under uid 65534.
func TestMain(m *testing.M) {
	if os.Geteuid() != 0 || os.Getenv("QMAILKIT_SYSTEM_TEST_NOBODY") != "" {
		os.Exit(m.Run())
	}
	os.Exit(rerunAsNobody())
}

func rerunAsNobody() int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "as nobody:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "system-nobody-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "as nobody:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	data, err := os.ReadFile(self)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "system.test"), data, 0o755)
	}
	tmp := filepath.Join(dir, "tmp")
	if err == nil {
		err = os.Mkdir(tmp, 0o700)
	}
	if err == nil {
		err = os.Chown(tmp, 65534, 65534)
	}
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "as nobody:", err)
		return 1
	}
	// The go command's files (the test log it reads for caching) belong to
	// root and nobody cannot write them: drop those flags.
	var args []string
	for _, a := range os.Args[1:] {
		if !strings.HasPrefix(a, "-test.testlogfile=") && !strings.HasPrefix(a, "-test.gocoverdir=") {
			args = append(args, a)
		}
	}
	cmd := exec.Command(filepath.Join(dir, "system.test"), args...)
	cmd.Dir = tmp
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, "HOME=" + tmp, "QMAILKIT_SYSTEM_TEST_NOBODY=1"}
	// A small file system of nobody's, for TestNearlyFullQueue.
	small := filepath.Join(dir, "small")
	if err := mountSmall(small); err != nil {
		fmt.Fprintln(os.Stderr, "as nobody: no small file system for TestNearlyFullQueue:", err)
	} else {
		defer syscall.Unmount(small, syscall.MNT_DETACH)
		cmd.Env = append(cmd.Env, "QMAILKIT_SYSTEM_TEST_SMALLFS="+small)
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "as nobody:", err)
		return 1
	}
	return 0
}

// mountSmall mounts a 48 MiB tmpfs at dir, owned by nobody.
func mountSmall(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size=48m,mode=0755,uid=65534,gid=65534"); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	return nil
}
