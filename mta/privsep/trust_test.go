package privsep

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestTrustUsersCDB: the helper believes users/cdb only when it and users/
// belong to root and only root may write them.
func TestTrustUsersCDB(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: the files are given to root and to another account")
	}
	const account = 65534
	for _, tt := range []struct {
		name            string
		dirUID, cdbUID  int
		dirMode, cdbMod os.FileMode
		symlink         bool   // users/ is a symbolic link to a root directory
		refused         string // the path's base name and the reason; "" when trusted
	}{
		{"root's, 0644", 0, 0, 0o755, 0o644, false, ""},
		{"root's, read-only", 0, 0, 0o555, 0o444, false, ""},
		{"cdb owned by the account", 0, account, 0o755, 0o644, false, "cdb: owned by uid 65534, not root"},
		{"cdb group-writable", 0, 0, 0o755, 0o664, false, "cdb: writable by group or others"},
		{"cdb world-writable", 0, 0, 0o755, 0o646, false, "cdb: writable by group or others"},
		{"users/ owned by the account", account, 0, 0o755, 0o644, false, "users: owned by uid 65534, not root"},
		{"users/ group-writable", 0, 0, 0o775, 0o644, false, "users: writable by group or others"},
		{"users/ a symbolic link", 0, 0, 0o755, 0o644, true, "users: not a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			home := t.TempDir()
			dir := filepath.Join(home, "users")
			real := dir
			if tt.symlink {
				real = filepath.Join(home, "elsewhere")
				if err := os.Symlink(real, dir); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Mkdir(real, 0o700); err != nil {
				t.Fatal(err)
			}
			cdb := filepath.Join(dir, "cdb")
			if err := os.WriteFile(cdb, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, f := range []struct {
				path string
				uid  int
				mode os.FileMode
			}{{cdb, tt.cdbUID, tt.cdbMod}, {real, tt.dirUID, tt.dirMode}} {
				if err := os.Chown(f.path, f.uid, f.uid); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(f.path, f.mode); err != nil {
					t.Fatal(err)
				}
			}
			fi, err := os.Stat(cdb)
			if err != nil {
				t.Fatal(err)
			}
			for name, err := range map[string]error{"trustUsersCDB": trustUsersCDB(cdb, fi), "CheckUsers": CheckUsers(home)} {
				var ue *UntrustedError
				switch {
				case tt.refused == "" && err != nil:
					t.Errorf("%s: %v, want trusted", name, err)
				case tt.refused != "" && !errors.As(err, &ue):
					t.Errorf("%s: %v, want an *UntrustedError", name, err)
				case tt.refused != "" && !strings.Contains(filepath.Base(ue.Path)+": "+ue.Reason, tt.refused):
					t.Errorf("%s: %v, want %q", name, err, tt.refused)
				case tt.refused != "" && !strings.Contains(ue.report(), ue.Path):
					t.Errorf("%s: report %q does not name %s", name, ue.report(), ue.Path)
				}
			}
		})
	}
	// No users/cdb: nothing to refuse at start (the helper then asks the
	// system's passwd only).
	if err := CheckUsers(t.TempDir()); err != nil {
		t.Errorf("no users/cdb: %v", err)
	}
}

// TestCheckHome: the start-up check warns when the account can write the
// home directory itself (an older home, which the account owns), with the
// command that fixes it; MakeRunDir gives such a home the account's run/.
func TestCheckHome(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: files of other owners")
	}
	const uid, gid = 1652, 1652
	for _, tt := range []struct {
		name     string
		uid, gid int
		mode     os.FileMode
		bad      bool
	}{
		{"root's", 0, 0, 0o755, false},
		{"the account's", uid, gid, 0o755, true},
		{"group-writable", 0, gid, 0o775, true},
		{"world-writable", 0, 0, 0o777, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "home")
			if err := os.Mkdir(home, 0o700); err != nil {
				t.Fatal(err)
			}
			os.Chown(home, tt.uid, tt.gid)
			os.Chmod(home, tt.mode)
			if err := CheckHome(home, uid, gid); (err != nil) != tt.bad {
				t.Errorf("CheckHome: %v, want an error %v", err, tt.bad)
			}
			if err := MakeRunDir(home, uid, gid); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(filepath.Join(home, "run"))
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != gid || fi.Mode() != 0o755|os.ModeDir {
				t.Errorf("run/: uid %d gid %d mode %v", st.Uid, st.Gid, fi.Mode())
			}
		})
	}
	if fix := HomeFix("/var/lib/qmailkit"); fix != "chown root:root /var/lib/qmailkit && chmod 755 /var/lib/qmailkit" {
		t.Errorf("HomeFix: %q", fix)
	}
	// run/ as a symbolic link (the account's, made in an older home) is
	// refused.
	home := t.TempDir()
	os.Symlink("/etc", filepath.Join(home, "run"))
	if err := MakeRunDir(home, uid, gid); err == nil {
		t.Errorf("MakeRunDir took a symbolic link")
	}
}

// TestOthersCanRun: the program and every directory above it must be o+x.
func TestOthersCanRun(t *testing.T) {
	// t.TempDir's parent is private: work in a shared directory.
	base, err := os.MkdirTemp("", "otherscanrun")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if p, ok := OthersCanRun(base); !ok {
		t.Skipf("%s is not reachable by others here (%s is not o+x)", base, p)
	}
	for _, tt := range []struct {
		name              string
		dirMode, fileMode os.FileMode
		bad               string // "" when runnable
	}{
		{"shared", 0o755, 0o755, ""},
		{"private dir", 0o700, 0o755, "dir"},
		{"private file", 0o755, 0o700, "dir/prog"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := filepath.Join(base, tt.name)
			if err := os.MkdirAll(filepath.Join(d, "dir"), 0o755); err != nil {
				t.Fatal(err)
			}
			prog := filepath.Join(d, "dir", "prog")
			if err := os.WriteFile(prog, nil, tt.fileMode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(prog, tt.fileMode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(d, "dir"), tt.dirMode); err != nil {
				t.Fatal(err)
			}
			got, ok := OthersCanRun(prog)
			want := ""
			if tt.bad != "" {
				want = filepath.Join(d, tt.bad)
			}
			if ok != (tt.bad == "") || got != want {
				t.Errorf("OthersCanRun = %q, %v; want %q, %v", got, ok, want, tt.bad == "")
			}
		})
	}
}
