package dotqmail

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSpawnReport is qmail-lspawn's mapping of qmail-local's exit status
// to a report (0 K; 111, 71, 74, 75 Z; 100 and unlisted codes D; its own
// codes 112 to 126 with fixed texts), and the cut of an output longer than
// 3000 bytes to its first 2966 and a note.
func TestSpawnReport(t *testing.T) {
	tests := []struct {
		code int
		out  string
		want string
	}{
		{0, "did 1+0+0\n", "Kdid 1+0+0\n"},
		{111, "Temporary.\n", "ZTemporary.\n"},
		{71, "x", "Zx"}, {74, "x", "Zx"}, {75, "x", "Zx"},
		{100, "Sorry.\n", "DSorry.\n"},
		{99, "x", "Dx"}, {1, "x", "Dx"}, {2, "x", "Dx"}, {101, "x", "Dx"},
		{112, "ignored", "ZInternal qmail-lspawn bug.\n"},
		{113, "", "ZNot allowed to perform deliveries as root.\n"},
		{115, "", "ZNFS failure in qmail-local.\n"},
		{116, "", "ZUnable to find alias user!\n"},
		{117, "", "ZTrouble reading users/cdb in qmail-lspawn.\n"},
		{118, "", "ZTemporary failure in qmail-lspawn.\n"},
		{119, "", "ZOut of memory in qmail-lspawn.\n"},
		{120, "", "ZUnable to run qmail-local.\n"},
		{121, "", "ZUnable to run qmail-getpw.\n"},
		{126, "", "DUnable to run qmail-local.\n"},
		{-1, "partial", "Zqmail-local crashed.\n"},
		{0, "did 1+0+0\n\x00junk", "Kdid 1+0+0\n"},
	}
	for _, tt := range tests {
		if got := SpawnReport(tt.code, []byte(tt.out)); got != tt.want {
			t.Errorf("SpawnReport(%d, %q) = %q, want %q", tt.code, tt.out, got, tt.want)
		}
	}
	long := strings.Repeat("y", 5000)
	got := SpawnReport(100, []byte(long))
	if want := "D" + long[:2966] + "\nError report too long, sorry.\n"; got != want {
		t.Errorf("long report: %d bytes %q...", len(got), got[len(got)-40:])
	}
	if got := SpawnReport(0, []byte(long[:3000])); got != "K"+long[:3000] {
		t.Error("a 3000-byte report was cut")
	}
}

// fakeUsers is a Users backed by a map; a missing name goes to alias.
type fakeUsers struct {
	mu    sync.Mutex
	users map[string]User
	err   error
	calls int
}

func (f *fakeUsers) Lookup(ctx context.Context, local string) (User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return User{}, f.err
	}
	if u, ok := f.users[strings.ToLower(local)]; ok {
		return u, nil
	}
	u, ok := f.users["alias"]
	if !ok {
		return User{}, &LookupError{Code: 116}
	}
	u.Dash, u.Ext = "-", local
	return u, nil
}

// TestLocalLookupFailures covers the trash address "@domain", uid 0 and
// the lookup errors.
func TestLocalLookupFailures(t *testing.T) {
	users := &fakeUsers{users: map[string]User{"root": {Name: "root", UID: 0, GID: 0, Home: "/root"}}}
	l := &Local{Users: users}
	// "@domain" succeeds with an empty report; nothing runs.
	res, err := l.Deliver(t.Context(), "", "@example.com", strings.NewReader("m\n"))
	if err != nil || res.Report != "" || users.calls != 0 {
		t.Errorf("@domain: %+v, %v, %d lookups", res, err, users.calls)
	}
	// uid 0: qmail-lspawn refuses to deliver as root.
	res, err = l.Deliver(t.Context(), "a@b", "root@example.com", strings.NewReader("m\n"))
	if ExitCode(err) != 111 || res.Report != "Not allowed to perform deliveries as root.\n" {
		t.Errorf("root: %q, %v", res.Report, err)
	}
	// No alias user.
	res, err = l.Deliver(t.Context(), "a@b", "nosuch@example.com", strings.NewReader("m\n"))
	if ExitCode(err) != 111 || res.Report != "Unable to find alias user!\n" {
		t.Errorf("no alias: %q, %v", res.Report, err)
	}
	var le *LookupError
	if !errors.As(err, &le) || le.Code != 116 {
		t.Errorf("cause %v", err)
	}
	// An error without an exit code.
	users.err = errors.New("ldap down")
	res, err = l.Deliver(t.Context(), "a@b", "joe@example.com", strings.NewReader("m\n"))
	if ExitCode(err) != 111 || res.Report != "Temporary failure in qmail-lspawn.\n" {
		t.Errorf("plain error: %q, %v", res.Report, err)
	}
	// An adapter's code.
	users.err = &LookupError{Code: 117, Err: errors.New("corrupt")}
	res, _ = l.Deliver(t.Context(), "a@b", "joe@example.com", strings.NewReader("m\n"))
	if res.Report != "Trouble reading users/cdb in qmail-lspawn.\n" {
		t.Errorf("117: %q", res.Report)
	}
}

// TestLocalInProcess runs deliveries in-process, as a non-root process
// does.
func TestLocalInProcess(t *testing.T) {
	if os.Geteuid() == 0 {
		asNobody(t, "TestLocalInProcess")
		return
	}
	home := filepath.Join(t.TempDir(), "joe")
	os.Mkdir(home, 0o755)
	writeFile(t, filepath.Join(home, ".qmail-list"), "./Mailbox\n", 0o644)
	users := &fakeUsers{users: map[string]User{"joe": {Name: "joe", UID: os.Getuid(), GID: os.Getgid(), Home: home}}}
	users.users["joe-list"] = User{Name: "joe", UID: os.Getuid(), GID: os.Getgid(), Home: home, Dash: "-", Ext: "list"}
	l := &Local{Users: users}
	res, err := l.Deliver(t.Context(), "a@b", "Joe-List@example.com", strings.NewReader("m\n"))
	if err != nil || res.Report != "did 1+0+0\n" {
		t.Fatalf("%+v, %v", res, err)
	}
	b, _ := os.ReadFile(filepath.Join(home, "Mailbox"))
	if !strings.Contains(string(b), "Delivered-To: Joe-List@example.com\n") {
		t.Errorf("mbox %q", b)
	}

	// Local.Timeout bounds an in-process delivery too.
	writeFile(t, filepath.Join(home, ".qmail-hang"), hangers[1].line, 0o644)
	users.users["joe-hang"] = User{Name: "joe", UID: os.Getuid(), GID: os.Getgid(), Home: home, Dash: "-", Ext: "hang"}
	l.Timeout = time.Second
	o := promptly(t, "Deliver", func() outcome {
		res, err := l.Deliver(t.Context(), "a@b", "joe-hang@example.com", strings.NewReader("m\n"))
		return outcome{res, err}
	})
	if ExitCode(o.err) != 111 || o.res.Report != "Timeout on program delivery. (#4.3.0)\n" {
		t.Errorf("timeout: %q, %v", o.res.Report, o.err)
	}
	if left := groupGone(t, readPgid(t, filepath.Join(home, "pgid"))); left != nil {
		t.Errorf("processes %v of the program's group survived", left)
	}
	// A delivery whose context is already cancelled is deferred.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	l.Spawn, l.Program = true, "/bin/true"
	if res, err := l.Deliver(ctx, "a@b", "joe-hang@example.com", strings.NewReader("m\n")); ExitCode(err) != 111 {
		t.Errorf("cancelled: %q, %v", res.Report, err)
	}
}

// buildQmailLocal builds examples/qmail-local into a directory anyone may
// read.
func buildQmailLocal(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "qmail-local")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/qmailkit/qmailkit/examples/qmail-local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestLocalSpawn runs deliveries in a child process: under another uid
// when the test runs as root, as the same user otherwise.
func TestLocalSpawn(t *testing.T) {
	if testing.Short() {
		t.Skip("builds examples/qmail-local")
	}
	base, err := os.MkdirTemp("", "dotqmail-spawn-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	bin := buildQmailLocal(t, base)
	uid, gid := os.Getuid(), os.Getgid()
	root := uid == 0
	if root {
		uid, gid = 65534, 65534
	}
	home := filepath.Join(base, "joe")
	os.Mkdir(home, 0o755)
	writeFile(t, filepath.Join(home, ".qmail-id"), "|id -u; id -G\n./Maildir/\n", 0o644)
	writeFile(t, filepath.Join(home, ".qmail-bounce"), "|echo no thanks; exit 100\n", 0o644)
	writeFile(t, filepath.Join(home, ".qmail-defer"), "|echo later; exit 111\n", 0o644)
	writeFile(t, filepath.Join(home, ".qmail-crash"), "|kill -9 $PPID; sleep 1\n", 0o644)
	writeFile(t, filepath.Join(home, ".qmail-env"), "|env; echo --; tr '\\0' '\\n' < /proc/$PPID/environ\n", 0o644)
	for _, h := range hangers {
		writeFile(t, filepath.Join(home, ".qmail-hang-"+strings.Fields(h.name)[0]), h.line, 0o644)
	}
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	// The Maildir is made by the user, as it would be.
	if out, err := exec.Command("sh", "-c", "mkdir -m 700 "+home+"/Maildir "+home+"/Maildir/tmp "+home+"/Maildir/new "+home+"/Maildir/cur").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if root {
		filepath.Walk(home, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, uid, gid) })
	}
	u := User{Name: "joe", UID: uid, GID: gid, Home: home}
	users := UsersFunc(func(ctx context.Context, local string) (User, error) {
		v := u
		if l, ext, ok := strings.Cut(local, "-"); ok && l == "joe" {
			v.Dash, v.Ext = "-", ext
		}
		return v, nil
	})
	l := &Local{Users: users, Program: bin, Spawn: true, Env: []string{"PATH=/usr/bin:/bin", "SECRET_TOKEN=hunter2", "QMAILHOME=/var/qmail"}}

	res, err := l.Deliver(t.Context(), "a@b", "joe-id@example.com", strings.NewReader("Subject: s\n\nhi\n"))
	if err != nil {
		t.Fatalf("%q, %v", res.Report, err)
	}
	want := []string{strconv.Itoa(uid), strconv.Itoa(gid), "did 1+0+1"}
	got := strings.Split(strings.TrimSpace(res.Report), "\n")
	if !root && len(got) == 3 {
		got[1] = want[1] // an ordinary user keeps its supplementary groups
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("report %q, want lines %q (uid, only group, did)", res.Report, want)
	}
	ents, _ := os.ReadDir(filepath.Join(home, "Maildir", "new"))
	if len(ents) != 1 {
		t.Fatalf("new/ holds %d files", len(ents))
	}
	fi, _ := os.Stat(filepath.Join(home, "Maildir", "new", ents[0].Name()))
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || fi.Mode().Perm() != 0o600 {
		t.Errorf("delivered file owner %d mode %v, want %d 0600", st.Uid, fi.Mode(), uid)
	}

	for _, tt := range []struct {
		rcpt   string
		code   int
		report string
	}{
		{"joe-bounce@example.com", 100, "no thanks\n"},
		{"joe-defer@example.com", 111, "later\n"},
		{"joe-crash@example.com", 111, "qmail-local crashed.\n"},
		{"joe-nosuch@example.com", 100, "Sorry, no mailbox here by that name. (#5.1.1)\n"},
	} {
		res, err := l.Deliver(t.Context(), "a@b", tt.rcpt, strings.NewReader("m\n"))
		if ExitCode(err) != tt.code || res.Report != tt.report {
			t.Errorf("%s: %q, %v; want %d %q", tt.rcpt, res.Report, err, tt.code, tt.report)
		}
	}

	// Issue 17, finding 10: neither the programs nor the qmail-local
	// child (whose environment the user's programs can read in /proc)
	// get more than the allow-list of Local.Env.
	res, err = l.Deliver(t.Context(), "a@b", "joe-env@example.com", strings.NewReader("m\n"))
	if err != nil || strings.Contains(res.Report, "hunter2") || !strings.Contains(res.Report, "QMAILHOME=/var/qmail\n") ||
		!strings.Contains(res.Report, "RECIPIENT=joe-env@example.com\n") {
		t.Errorf("environments of the program and of qmail-local: %q, %v", res.Report, err)
	}

	// Issue 17, finding 3: a program that does not end is killed with
	// its process group when Local.Timeout passes, though it runs in a
	// qmail-local child, as another user.
	l.Timeout = time.Second
	for _, h := range hangers {
		t.Run("timeout/"+h.name, func(t *testing.T) {
			os.Remove(filepath.Join(home, "pgid"))
			rcpt := "joe-hang-" + strings.Fields(h.name)[0] + "@example.com"
			o := promptly(t, "Deliver", func() outcome {
				res, err := l.Deliver(t.Context(), "a@b", rcpt, strings.NewReader("m\n"))
				return outcome{res, err}
			})
			res, err := o.res, o.err
			if ExitCode(err) != 111 {
				t.Errorf("exit code %d", ExitCode(err))
			}
			if res.Report != "Timeout on delivery. (#4.3.0)\n" {
				t.Errorf("report %q", res.Report)
			}
			if left := groupGone(t, readPgid(t, filepath.Join(home, "pgid"))); left != nil {
				t.Errorf("processes %v of the program's group survived", left)
			}
		})
	}
	l.Timeout = 0

	// A program that cannot be run.
	l.Program = filepath.Join(base, "nosuch")
	res, err = l.Deliver(t.Context(), "a@b", "joe-id@example.com", strings.NewReader("m\n"))
	if ExitCode(err) != 100 || res.Report != "Unable to run qmail-local.\n" {
		t.Errorf("missing program: %q, %v", res.Report, err)
	}
}

// asNobody runs one test of this test binary as uid and gid 65534, for the
// paths a root process never takes (Local delivers in-process only when it
// is not root).
func asNobody(t *testing.T, name string) {
	t.Helper()
	if testing.Short() {
		t.Skip("running as root: the test runs as nobody without -short")
	}
	self, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("", "dotqmail-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "dotqmail.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	os.Mkdir(tmp, 0o700)
	os.Chown(tmp, 65534, 65534)
	os.Chmod(dir, 0o755)
	cmd := exec.Command(bin, "-test.run", "^"+name+"$", "-test.v", "-test.count", "1")
	cmd.Dir = tmp
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, "HOME=" + tmp}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	t.Logf("as nobody:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s as nobody: %v\n%s", name, err, out)
	}
}

// TestUnreadableQmail: a .qmail file that cannot be read for lack of
// permission defers the message instead of being taken for missing
// (qmail-local reports EACCES on a .qmail file as a temporary error).
// Root reads everything, so it runs as nobody.
func TestUnreadableQmail(t *testing.T) {
	if os.Geteuid() == 0 {
		asNobody(t, "TestUnreadableQmail")
		return
	}
	e := newEnv(t)
	e.tg.Local, e.tg.Dash, e.tg.Ext = "joe-x", "-", "x"
	e.qmail(".qmail-x", "./Mailbox\n", 0o644)
	e.qmail(".qmail-default", "./Mailbox\n", 0o644)
	os.Chmod(filepath.Join(e.home, ".qmail-x"), 0)
	_, err := e.deliver("m\n")
	wantErr(t, err, 111, "Unable to open .qmail-x: access denied. (#4.3.0)")
	if e.read("Mailbox") != "" {
		t.Error("delivered by .qmail-default")
	}
}

// outcome is a delivery's result, for promptly.
type outcome struct {
	res Result
	err error
}

// TestLocalOtherUID is issue 17's finding 2: a process that is not root
// ran every recipient's programs, and opened the files their .qmail lines
// name, with its own rights, whatever uid users/cdb gave the recipient (a
// program printed the server's uid and read its private key). Such a
// delivery is now deferred before anything of the user's is read or run,
// in-process or in a child; the process's own uid and gid are delivered.
func TestLocalOtherUID(t *testing.T) {
	if os.Geteuid() == 0 {
		asNobody(t, "TestLocalOtherUID")
		return
	}
	uid, gid := os.Geteuid(), os.Getegid()
	home := filepath.Join(t.TempDir(), "joe")
	os.Mkdir(home, 0o755)
	writeFile(t, filepath.Join(home, "SECRET"), "the server's private key\n", 0o600)
	writeFile(t, filepath.Join(home, ".qmail-x"), "|touch "+filepath.Join(home, "marker")+"; id -u; cat SECRET\n", 0o644)
	other := uid + 1
	if other == 0 || other > 65534 {
		other = 1
	}
	for _, tt := range []struct {
		name     string
		uid, gid int
		spawn    bool
		want     string
	}{
		{"other uid", other, gid, false, fmt.Sprintf("Unable to switch to uid %d gid %d: not running as root (uid %d gid %d). (#4.3.0)\n", other, gid, uid, gid)},
		{"other gid", uid, gid + 1, false, fmt.Sprintf("Unable to switch to uid %d gid %d: not running as root (uid %d gid %d). (#4.3.0)\n", uid, gid+1, uid, gid)},
		{"other uid, spawned", other, gid, true, fmt.Sprintf("Unable to switch to uid %d gid %d: not running as root (uid %d gid %d). (#4.3.0)\n", other, gid, uid, gid)},
		{"own ids", uid, gid, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(filepath.Join(home, "marker"))
			users := &fakeUsers{users: map[string]User{"joe-x": {Name: "joe", UID: tt.uid, GID: tt.gid, Home: home, Dash: "-", Ext: "x"}}}
			l := &Local{Users: users, Spawn: tt.spawn, Program: "/nonexistent/qmail-local", Env: []string{"PATH=/usr/bin:/bin"}}
			res, err := l.Deliver(t.Context(), "a@b", "joe-x@example.com", strings.NewReader("m\n"))
			_, statErr := os.Stat(filepath.Join(home, "marker"))
			if tt.want == "" {
				if err != nil || !strings.Contains(res.Report, "the server's private key") || statErr != nil {
					t.Errorf("own ids: %q, %v", res.Report, err)
				}
				return
			}
			if ExitCode(err) != 111 || res.Report != tt.want {
				t.Errorf("report %q, %v; want %q", res.Report, err, tt.want)
			}
			var ie *IDError
			if !errors.As(err, &ie) || ie.UID != tt.uid || ie.EUID != uid {
				t.Errorf("cause %v, want an *IDError", err)
			}
			if statErr == nil {
				t.Error("the user's program ran")
			}
		})
	}
}
