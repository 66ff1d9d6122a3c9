package maildir

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The regression tests of issue 17, finding 1: a POP3 server reading
// mailboxes with its own rights, a user who made Maildir/cur a symbolic
// link to the qmail home's users/ and new to control/ read
// users/poppasswd and the TLS key through RETR, and DELE removed files
// there. Every reader of a Maildir must reach nothing outside it.

// secretName is named like a message, so that name checks let it through.
const secretName = "1700000000.M1P1Q1R0123456789abcdef.victim"

// outsideTree is the files an attack aims at, outside the Maildir.
type outsideTree struct {
	users, control string // the targets of cur and new
}

// files returns every file under the tree with its content.
func (o outsideTree) files(t *testing.T) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, dir := range []string{o.users, o.control} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			got[filepath.Join(filepath.Base(dir), e.Name())] = string(b)
		}
	}
	return got
}

// symlinkedMaildir makes the audit's Maildir: cur a symbolic link to a
// directory holding poppasswd and a secret named like a message, new one
// to a directory holding the private key and another such secret; both
// old enough for any listing.
func symlinkedMaildir(t *testing.T) (Dir, outsideTree) {
	t.Helper()
	base := t.TempDir()
	d, err := Create(filepath.Join(base, "Maildir"))
	if err != nil {
		t.Fatal(err)
	}
	o := outsideTree{users: filepath.Join(base, "users"), control: filepath.Join(base, "control")}
	old := time.Unix(1000, 0)
	for dir, files := range map[string][]string{
		o.users:   {"poppasswd", secretName + ":2,"},
		o.control: {"servercert.pem", secretName},
	} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			p := filepath.Join(dir, f)
			if err := os.WriteFile(p, []byte("secret "+f+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(p, old, old)
		}
	}
	for sub, target := range map[string]string{"cur": o.users, "new": o.control} {
		p := filepath.Join(string(d), sub)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	return d, o
}

// leaks reports the messages of a listing that come from outside.
func leaks(msgs []Message) []string {
	var out []string
	for _, m := range msgs {
		if strings.HasPrefix(m.Name, secretName) || m.Name == "poppasswd" || m.Name == "servercert.pem" {
			out = append(out, m.Path())
		}
	}
	return out
}

func TestSymlinkedSubdirs(t *testing.T) {
	crafted := []Message{
		{Subdir: "cur", Name: "poppasswd"},
		{Subdir: "cur", Name: secretName + ":2,"},
		{Subdir: "new", Name: "servercert.pem"},
		{Subdir: "new", Name: secretName},
	}
	for _, tt := range []struct {
		name string
		op   func(t *testing.T, d Dir) error
	}{
		{"Open", func(t *testing.T, d Dir) error {
			_, err := Open(string(d))
			return err
		}},
		{"List", func(t *testing.T, d Dir) error {
			msgs, err := d.List()
			if l := leaks(msgs); len(l) > 0 {
				t.Errorf("List shows files outside the maildir: %q", l)
			}
			return err
		}},
		{"Scan", func(t *testing.T, d Dir) error {
			msgs, err := d.Scan()
			if l := leaks(msgs); len(l) > 0 {
				t.Errorf("Scan shows files outside the maildir: %q", l)
			}
			return err
		}},
		{"OpenMessage", func(t *testing.T, d Dir) error {
			var errs []error
			for _, m := range crafted {
				f, err := d.OpenMessage(m)
				if err == nil {
					b, _ := io.ReadAll(f)
					f.Close()
					t.Errorf("OpenMessage(%s) read %q", m.Path(), b)
				}
				errs = append(errs, err)
			}
			return errors.Join(errs...)
		}},
		{"Remove", func(t *testing.T, d Dir) error {
			var errs []error
			for _, m := range crafted {
				errs = append(errs, d.Remove(m))
			}
			return errors.Join(errs...)
		}},
		{"SetFlags", func(t *testing.T, d Dir) error {
			var errs []error
			for _, m := range crafted {
				_, err := d.SetFlags(m, "ST")
				errs = append(errs, err)
			}
			return errors.Join(errs...)
		}},
		{"Move", func(t *testing.T, d Dir) error {
			var errs []error
			for _, m := range crafted {
				_, err := d.Move(m)
				errs = append(errs, err)
			}
			return errors.Join(errs...)
		}},
		{"RecalculateQuota", func(t *testing.T, d Dir) error {
			u, err := d.RecalculateQuota(Quota{Bytes: 1 << 20})
			if err == nil && u != (Usage{}) {
				t.Errorf("quota counts files outside the maildir: %+v", u)
			}
			return err
		}},
		{"quota at delivery", func(t *testing.T, d Dir) error {
			dl := &Deliverer{Quota: Quota{Bytes: 1 << 20}}
			_, err := dl.Deliver(t.Context(), d, strings.NewReader("x\n"))
			b, rerr := os.ReadFile(filepath.Join(string(d), "maildirsize"))
			if rerr == nil && !strings.HasSuffix(string(b), "\n0 0\n") {
				t.Errorf("maildirsize counts files outside the maildir: %q", b)
			}
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, o := symlinkedMaildir(t)
			before := o.files(t)
			err := tt.op(t, d)
			if tt.name != "quota at delivery" && tt.name != "List" && err == nil {
				// List shows nothing or fails; a delivery
				// through new/ fails or is refused by os.Root.
				t.Errorf("%s succeeded on a maildir whose new and cur are symbolic links", tt.name)
			}
			t.Log(err)
			if after := o.files(t); !mapsEqual(after, before) {
				t.Errorf("%s changed files outside the maildir: %v, was %v", tt.name, after, before)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestSymlinkedTmp: Clean, which qmail-pop3d runs at every login, must
// not remove old files in a directory tmp/ points to.
func TestSymlinkedTmp(t *testing.T) {
	d := newDir(t)
	outside := t.TempDir()
	victim := filepath.Join(outside, "queued-message")
	if err := os.WriteFile(victim, []byte("someone's mail\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1000, 0)
	os.Chtimes(victim, old, old)
	tmp := filepath.Join(string(d), "tmp")
	os.Remove(tmp)
	if err := os.Symlink(outside, tmp); err != nil {
		t.Fatal(err)
	}
	n, err := d.Clean(time.Unix(1e9, 0))
	if err == nil || n != 0 {
		t.Errorf("Clean through a symbolic link: %d removed, err %v; want 0 and an error", n, err)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("Clean removed a file outside the maildir: %v", err)
	}
}

// TestSymlinkedMessage: a symbolic link named like a message is not a
// message: OpenMessage refuses it, and Remove and SetFlags act on the link
// only.
func TestSymlinkedMessage(t *testing.T) {
	d := newDir(t)
	secret := filepath.Join(t.TempDir(), "servercert.pem")
	os.WriteFile(secret, []byte("secret\n"), 0o600)
	if err := os.Symlink(secret, filepath.Join(string(d), "cur", secretName+":2,")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(string(d), "new", secretName)); err != nil {
		t.Fatal(err)
	}
	msgs, err := d.List()
	if err != nil || len(msgs) != 0 {
		t.Errorf("List = %v, %v; want no message", paths(msgs), err)
	}
	cur := Message{Subdir: "cur", Name: secretName + ":2,"}
	if f, err := d.OpenMessage(cur); err == nil {
		b, _ := io.ReadAll(f)
		f.Close()
		t.Errorf("OpenMessage of a symbolic link read %q", b)
	}
	if _, err := d.SetFlags(Message{Subdir: "new", Name: secretName}, "S"); err != nil {
		t.Errorf("SetFlags: %v", err)
	}
	if err := d.Remove(cur); err != nil {
		t.Errorf("Remove: %v", err)
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "secret\n" {
		t.Errorf("the link's target: %q, %v", b, err)
	}
}

// TestSymlinkedMaildirPath: the path a caller gives may itself be a
// symbolic link (~/Maildir to /var/mail/joe, as qmail setups do); only
// what is inside the Maildir is never followed.
func TestSymlinkedMaildirPath(t *testing.T) {
	d := newDir(t)
	put(t, d, "new", "a", "a\n", time.Unix(1000, 0))
	link := Dir(filepath.Join(t.TempDir(), "Maildir"))
	if err := os.Symlink(string(d), string(link)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(string(link)); err != nil {
		t.Fatal(err)
	}
	msgs, err := link.List()
	if err != nil || !slices.Equal(paths(msgs), []string{"new/a"}) {
		t.Fatalf("List = %v, %v", paths(msgs), err)
	}
	m, err := link.SetFlags(msgs[0], "S")
	if err != nil {
		t.Fatal(err)
	}
	f, err := link.OpenMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := link.Remove(m); err != nil {
		t.Fatal(err)
	}
	wantFiles(t, d, "cur", nil)
}

// TestNotRegularMessage: a FIFO, a socket, a device or a directory named
// like a message is skipped by the listings and refused by OpenMessage, at
// once: open(2) of a FIFO waits for a writer.
func TestNotRegularMessage(t *testing.T) {
	for _, tt := range []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"FIFO", mkfifo},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{"socket", func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			t.Cleanup(func() { l.Close() })
		}},
		{"device", func(t *testing.T, path string) {
			// /dev/null's numbers: reading it would not block, but a
			// message must be a regular file.
			if err := syscall.Mknod(path, syscall.S_IFCHR|0o600, 1<<8|3); err != nil {
				t.Skipf("mknod: %v (needs root)", err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newDir(t)
			put(t, d, "new", "good", "good\n", time.Unix(1000, 0))
			for _, p := range []string{"new/" + secretName, "cur/" + secretName + ",S=5:2,"} {
				tt.make(t, filepath.Join(string(d), p))
			}
			promptly(t, "List", func() error {
				msgs, err := d.List()
				if err != nil || !slices.Equal(paths(msgs), []string{"new/good"}) {
					t.Errorf("List = %v, %v; want new/good only", paths(msgs), err)
				}
				return nil
			})
			promptly(t, "Scan", func() error {
				msgs, err := d.Scan()
				if err != nil || !slices.Equal(paths(msgs), []string{"new/good"}) {
					t.Errorf("Scan = %v, %v; want new/good only", paths(msgs), err)
				}
				return nil
			})
			for _, m := range []Message{{Subdir: "new", Name: secretName}, {Subdir: "cur", Name: secretName + ",S=5:2,"}} {
				err := promptly(t, "OpenMessage", func() error {
					f, err := d.OpenMessage(m)
					if err == nil {
						f.Close()
					}
					return err
				})
				if err == nil {
					t.Errorf("OpenMessage(%s) opened a %s", m.Path(), tt.name)
				}
				t.Log(err)
			}
			if u, err := d.RecalculateQuota(Quota{Bytes: 100}); err != nil || u != (Usage{Bytes: 5, Count: 1}) {
				t.Errorf("RecalculateQuota = %+v, %v; want the good message only", u, err)
			}
		})
	}
}

// TestFIFODirsReaders: a FIFO in place of the Maildir or of one of its
// directories fails every reader at once (open(2) of a FIFO waits for a
// writer; with O_DIRECTORY it fails with ENOTDIR).
func TestFIFODirsReaders(t *testing.T) {
	readers := []struct {
		name string
		f    func(d Dir) error
	}{
		{"Open", func(d Dir) error { _, err := Open(string(d)); return err }},
		{"List", func(d Dir) error { _, err := d.List(); return err }},
		{"Scan", func(d Dir) error { _, err := d.Scan(); return err }},
		{"Clean", func(d Dir) error { _, err := d.Clean(time.Unix(1e9, 0)); return err }},
		{"OpenMessage", func(d Dir) error {
			f, err := d.OpenMessage(Message{Subdir: "cur", Name: "x:2,"})
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"RecalculateQuota", func(d Dir) error { _, err := d.RecalculateQuota(Quota{Count: 10}); return err }},
	}
	for _, fifo := range []string{"", "tmp", "new", "cur"} {
		for _, r := range readers {
			t.Run(fifo+"/"+r.name, func(t *testing.T) {
				d := newDir(t)
				mkfifo(t, filepath.Join(string(d), fifo))
				err := promptly(t, r.name, func() error { return r.f(d) })
				uses := map[string]bool{"": true, "tmp": r.name == "Open" || r.name == "Clean",
					"new": r.name != "Clean" && r.name != "OpenMessage", "cur": r.name != "Clean"}
				if uses[fifo] && err == nil {
					t.Errorf("%s succeeded with a FIFO for %q", r.name, fifo)
				}
			})
		}
	}
}

// TestSymlinkedFolder: the quota count skips a Maildir++ folder that is a
// symbolic link, and a folder's new/ or cur/ that is one, instead of
// counting the files they point to.
func TestSymlinkedFolder(t *testing.T) {
	d := newDir(t)
	put(t, d, "cur", "a,S=3:2,", "aa\n", time.Unix(1000, 0))
	outside := t.TempDir()
	for i := range 5 {
		os.WriteFile(filepath.Join(outside, secretName+strings.Repeat("x", i)), []byte("secret\n"), 0o600)
	}
	folder, err := Create(filepath.Join(string(d), ".Evil"))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(string(folder), "new"))
	if err := os.Symlink(outside, filepath.Join(string(folder), "new")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(string(d), ".Linked")); err != nil {
		t.Fatal(err)
	}
	u, err := d.RecalculateQuota(Quota{Count: 100})
	if err != nil || u != (Usage{Bytes: 3, Count: 1}) {
		t.Errorf("RecalculateQuota = %+v, %v; want 3 bytes in 1 message", u, err)
	}
}
