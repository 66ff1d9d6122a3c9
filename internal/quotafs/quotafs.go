// Package quotafs gives tests a directory where writes fail with EDQUOT
// ("disk quota exceeded") for real: a btrfs subvolume with a qgroup
// limit, on a loop-mounted image file in the test's temporary directory.
// It needs root, the kernel's btrfs and loop drivers, and the btrfs-progs
// programs (mkfs.btrfs, btrfs); without them the test is skipped with the
// reason.
package quotafs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Dir returns a directory (mode 0755, owned by root) on a file system of
// its own whose quota is limit bytes. The file system is unmounted when
// the test ends.
func Dir(t testing.TB, limit int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("quotafs: not root: no loop-mounted file system with a quota")
	}
	for _, p := range []string{"mkfs.btrfs", "btrfs"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("quotafs: %s not found (Debian's btrfs-progs): no file system with a quota", p)
		}
	}
	base := t.TempDir()
	img, mnt := filepath.Join(base, "fs.img"), filepath.Join(base, "mnt")
	f, err := os.Create(img)
	if err == nil {
		err = f.Truncate(128 << 20) // sparse; mkfs.btrfs wants about 114 MiB
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(skip bool, argv ...string) {
		t.Helper()
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			if skip {
				t.Skipf("quotafs: %q: %v\n%s", argv, err, out)
			}
			t.Fatalf("quotafs: %q: %v\n%s", argv, err, out)
		}
	}
	run(false, "mkfs.btrfs", "-q", "-f", img)
	run(true, "mount", "-o", "loop", img, mnt) // no loop device, no btrfs: skip
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	dir := filepath.Join(mnt, "quota")
	run(false, "btrfs", "quota", "enable", mnt)
	run(false, "btrfs", "subvolume", "create", dir)
	run(false, "btrfs", "qgroup", "limit", strconv.FormatInt(limit, 10), dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Fill writes zeros to dir/name until the quota refuses more, and
// returns once a write or its fsync has failed with EDQUOT.
func Fill(t testing.TB, dir, name string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for i := 0; i < 1<<14; i++ { // at most 1 GiB
		_, err := f.Write(buf)
		if err == nil && i%16 == 15 {
			err = f.Sync()
		}
		if errors.Is(err, syscall.EDQUOT) {
			return
		}
		if err != nil {
			t.Fatalf("quotafs: filling %s: %v", dir, err)
		}
	}
	t.Fatalf("quotafs: %s took 1 GiB without EDQUOT", dir)
}
