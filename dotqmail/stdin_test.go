package dotqmail

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// accMode returns the access mode (O_RDONLY, O_WRONLY, O_RDWR) of f's
// descriptor.
func accMode(t *testing.T, f *os.File) int {
	t.Helper()
	fl, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), syscall.F_GETFL, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	return int(fl) & syscall.O_ACCMODE
}

// TestMessageStdinReadOnly: the descriptor of the message a program gets
// as its stdin is open for reading only, whether the message is a copy
// dotqmail made or the caller's file, even one it opened read-write.
func TestMessageStdinReadOnly(t *testing.T) {
	dir := t.TempDir()
	const body = "Subject: s\n\nhi\n"
	rw, err := os.OpenFile(filepath.Join(dir, "mess"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	io.WriteString(rw, body)
	ro, err := os.Open(rw.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for _, tt := range []struct {
		name    string
		r       io.Reader
		inPlace bool // stdin is the caller's own descriptor
	}{
		{"copy of a reader", strings.NewReader(body), false},
		{"copy of a pipe-like reader", io.MultiReader(strings.NewReader(body)), false},
		{"caller's read-write file", rw, false},
		{"caller's read-only file", ro, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := newMessage(tt.r, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer m.close()
			for range 2 { // as for two program lines
				f, err := m.stdin()
				if err != nil {
					t.Fatal(err)
				}
				if got := accMode(t, f); got != syscall.O_RDONLY {
					t.Errorf("stdin access mode %d, want O_RDONLY", got)
				}
				if (f == tt.r) != tt.inPlace {
					t.Errorf("stdin is the caller's file: %v, want %v", f == tt.r, tt.inPlace)
				}
				if _, err := f.Write([]byte("x")); err == nil {
					t.Errorf("a write to stdin succeeded")
				}
				got, _ := io.ReadAll(f)
				if string(got) != body {
					t.Errorf("stdin reads %q", got)
				}
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Errorf("the temporary directory holds %d files, want only mess", len(ents))
			}
		})
	}
	if fi, _ := rw.Stat(); fi.Size() != int64(len(body)) {
		t.Errorf("the caller's file is %d bytes", fi.Size())
	}
}

// stdinProgram is a .qmail program that does what the audit did: seek to
// the end of its stdin, the message, and write 100 MiB there; then it
// reports what happened, the size of the file on its stdin, its access
// mode, and leaves a file in its home directory.
const stdinProgram = `use POSIX; use Fcntl;
POSIX::lseek(0, 0, SEEK_END);
my $n = 0;
for (1..100) {
	my $w = POSIX::write(0, "\0" x 1048576, 1048576);
	if (!defined $w) { print "write: ", $!+0, "\n"; last }
	$n += $w;
}
print "wrote $n\n";
my @s = stat(STDIN);
print "size $s[7]\n";
my $fl = fcntl(STDIN, F_GETFL, 0);
printf "accmode %d\n", $fl & O_ACCMODE;
open(my $d, ">", "$ENV{HOME}/done") or die "done: $!";
print $d "done\n";
close($d) or die "done: $!";
`

// TestLocalSpawnStdinReadOnly is issue 17's re-audit: a root process
// spawning qmail-local for a user gave it, and so the user's .qmail
// programs, a read-write descriptor to a root-owned copy of the message,
// which a program grew to 100 MB (outside its quota) and could rewrite
// for the deliveries that follow. The program's write now fails with
// EBADF, the file does not grow, and the rest of the delivery works, for
// a copy dotqmail makes and for a root-owned file the caller opened
// read-write.
func TestLocalSpawnStdinReadOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: needs to deliver as another uid (65534)")
	}
	if testing.Short() {
		t.Skip("builds examples/qmail-local")
	}
	if _, err := os.Stat("/usr/bin/perl"); err != nil {
		t.Skip("no /usr/bin/perl for the .qmail program")
	}
	const uid, gid = 65534, 65534
	base := t.TempDir()
	os.Chmod(filepath.Dir(base), 0o755)
	os.Chmod(base, 0o755)
	bin := buildQmailLocal(t, base)
	spool := filepath.Join(base, "spool") // root's, as the mta's would be
	os.Mkdir(spool, 0o700)
	home := filepath.Join(base, "joe")
	os.Mkdir(home, 0o755)
	writeFile(t, filepath.Join(home, "prog.pl"), stdinProgram, 0o644)
	writeFile(t, filepath.Join(home, ".qmail-w"), "|/usr/bin/perl ./prog.pl\n./Maildir/\n", 0o644)
	writeFile(t, filepath.Join(home, ".qmail-flags"), "|cat /proc/self/fdinfo/0\n", 0o644)
	for _, d := range []string{"Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"} {
		os.Mkdir(filepath.Join(home, d), 0o700)
	}
	filepath.Walk(home, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, uid, gid) })
	users := UsersFunc(func(_ context.Context, local string) (User, error) {
		u := User{Name: "joe", UID: uid, GID: gid, Home: home}
		if _, ext, ok := strings.Cut(local, "-"); ok {
			u.Dash, u.Ext = "-", ext
		}
		return u, nil
	})
	l := &Local{Users: users, Program: bin, Spawn: true, TempDir: spool, Env: []string{"PATH=/usr/bin:/bin"}}

	const body = "Subject: s\n\nhi\n"
	mess := filepath.Join(base, "mess") // root's, 0600, opened read-write
	writeFile(t, mess, body, 0o600)
	rw, err := os.OpenFile(mess, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	flags := regexp.MustCompile(`(?m)^flags:\s*([0-7]+)$`)
	for _, tt := range []struct {
		name string
		msg  func() io.Reader
	}{
		{"copy", func() io.Reader { return strings.NewReader(body) }},
		{"caller's read-write file", func() io.Reader { rw.Seek(0, io.SeekStart); return rw }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(filepath.Join(home, "done"))
			res, err := l.Deliver(t.Context(), "a@b", "joe-w@example.com", tt.msg())
			if err != nil {
				t.Fatalf("%q, %v", res.Report, err)
			}
			want := "write: " + strconv.Itoa(int(syscall.EBADF)) + "\nwrote 0\nsize " + strconv.Itoa(len(body)) +
				"\naccmode 0\ndid 1+0+1\n"
			if res.Report != want {
				t.Errorf("report %q, want %q", res.Report, want)
			}
			if fi, err := os.Stat(mess); err != nil || fi.Size() != int64(len(body)) {
				t.Errorf("the caller's file: %v, %v", fi.Size(), err)
			}
			if ents, _ := os.ReadDir(spool); len(ents) != 0 {
				t.Errorf("the spool directory holds %d files", len(ents))
			}
			// The program's other actions and the next line work.
			fi, err := os.Stat(filepath.Join(home, "done"))
			if err != nil || fi.Sys().(*syscall.Stat_t).Uid != uid {
				t.Errorf("the program's file: %v", err)
			}
			ents, _ := os.ReadDir(filepath.Join(home, "Maildir", "new"))
			for _, e := range ents {
				p := filepath.Join(home, "Maildir", "new", e.Name())
				data, _ := os.ReadFile(p)
				if !bytes.HasSuffix(data, []byte(body)) || bytes.IndexByte(data, 0) >= 0 {
					t.Errorf("delivered %q", data)
				}
				os.Remove(p)
			}
			if len(ents) != 1 {
				t.Errorf("new/ holds %d messages", len(ents))
			}

			// What fcntl(0, F_GETFL) shows a program, as the kernel reports it.
			res, err = l.Deliver(t.Context(), "a@b", "joe-flags@example.com", tt.msg())
			m := flags.FindStringSubmatch(res.Report)
			if err != nil || m == nil {
				t.Fatalf("%q, %v", res.Report, err)
			}
			fl, _ := strconv.ParseInt(m[1], 8, 64)
			if fl&syscall.O_ACCMODE != syscall.O_RDONLY {
				t.Errorf("the program's stdin has flags %#o, not O_RDONLY", fl)
			}
		})
	}
}
