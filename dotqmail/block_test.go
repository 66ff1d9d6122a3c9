package dotqmail

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// promptly runs f and fails the test if it takes more than a few seconds:
// the regression tests of issue 17's finding 3 reproduce files that block
// forever on open, so a failure must not hang the test binary.
func promptly[T any](t *testing.T, what string, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("%s blocked for 5 seconds", what)
		panic("unreachable")
	}
}

// nonRegular makes path a file of the given kind that is not a regular
// file: a FIFO (open(2) for reading blocks until a writer comes), a FIFO
// held open by a reader, a unix socket, a symbolic link to /dev/null.
func nonRegular(t *testing.T, kind, path string) {
	t.Helper()
	switch kind {
	case "fifo", "fifo with a reader":
		if err := syscall.Mkfifo(path, 0o644); err != nil {
			t.Fatal(err)
		}
		if kind == "fifo with a reader" {
			fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { syscall.Close(fd) })
		}
	case "socket":
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
	case "device":
		if err := os.Symlink("/dev/null", path); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("kind %q", kind)
	}
}

var nonRegularKinds = []string{"fifo", "fifo with a reader", "socket", "device"}

// TestFIFODotQmail is issue 17's finding 3 for .qmail files: a FIFO named
// like a .qmail file stopped the server (Find, called at RCPT time, and
// the delivery blocked in open(2) for ever). Find must return at once and
// the delivery defer, without falling through to .qmail-default.
func TestFIFODotQmail(t *testing.T) {
	for _, kind := range nonRegularKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t)
			e.tg.Local, e.tg.Dash, e.tg.Ext = "joe-x", "-", "x"
			nonRegular(t, kind, filepath.Join(e.home, ".qmail-x"))
			e.qmail(".qmail-default", "./Mailbox\n", 0o644)
			const text = "Unable to open .qmail-x: not a regular file. (#4.3.0)"

			err := promptly(t, "Find", func() error { _, err := Find(e.home, "-", "x"); return err })
			wantErr(t, err, 111, text)
			if !errors.Is(err, errNotRegular) {
				t.Errorf("Find: %v does not wrap errNotRegular", err)
			}

			err = promptly(t, "Deliver", func() error { _, err := e.deliver("m\n"); return err })
			wantErr(t, err, 111, text)
			if e.read("Mailbox") != "" {
				t.Error("delivered by .qmail-default")
			}
		})
	}
	// A directory is still no file at all, as in qmail-local.
	e := newEnv(t)
	if err := os.Mkdir(filepath.Join(e.home, ".qmail-x"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.qmail(".qmail-default", "./Mailbox\n", 0o644)
	if f, err := Find(e.home, "-", "x"); err != nil || f.Name != ".qmail-default" {
		t.Errorf("directory .qmail-x: found %q, %v; want .qmail-default", f.Name, err)
	}
}

// TestFIFOMbox is issue 17's finding 3 for mbox lines: an mbox that is a
// FIFO blocked the delivery in open(2); a device or a socket is no mailbox
// either. The delivery defers at once and nothing is written.
func TestFIFOMbox(t *testing.T) {
	for _, kind := range nonRegularKinds {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t)
			e.tg.Local, e.tg.Dash, e.tg.Ext = "joe-x", "-", "x"
			nonRegular(t, kind, filepath.Join(e.home, "mbox"))
			e.qmail(".qmail-x", "./mbox\n./Mailbox\n", 0o644)
			err := promptly(t, "Deliver", func() error { _, err := e.deliver("m\n"); return err })
			wantErr(t, err, 111, "Unable to open ./mbox: not a regular file. (#4.2.1)")
			var de *Error
			if errors.As(err, &de) && (de.File != ".qmail-x" || de.Line != 1) {
				t.Errorf("located at %s:%d", de.File, de.Line)
			}
			if e.read("Mailbox") != "" {
				t.Error("the next line ran")
			}
		})
	}
}

// TestOpenRegular covers the open after the check: a FIFO, a socket or
// a device put in place of a .qmail file or an mbox after the stat is
// opened without blocking, or not at all, and refused.
func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	for _, kind := range nonRegularKinds {
		for _, flags := range []int{syscall.O_RDONLY, syscall.O_WRONLY | syscall.O_APPEND | syscall.O_CREAT} {
			path := filepath.Join(dir, strings.ReplaceAll(kind, " ", "-")+"-"+strconv.Itoa(flags))
			nonRegular(t, kind, path)
			err := promptly(t, kind, func() error {
				fd, _, err := openRegular(path, flags, 0o600)
				if err == nil {
					syscall.Close(fd)
				}
				return err
			})
			if err != errNotRegular {
				t.Errorf("%s, flags %#x: %v, want errNotRegular", kind, flags, err)
			}
		}
	}
	fd, st, err := openRegular(filepath.Join(dir, "new"), syscall.O_WRONLY|syscall.O_CREAT, 0o600)
	if err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		t.Fatalf("a new file: %v", err)
	}
	syscall.Close(fd)
	if _, _, err := openRegular(filepath.Join(dir, "nosuch"), syscall.O_RDONLY, 0); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("a missing file: %v", err)
	}
}

// TestFIFOMaildirLine: a Maildir line naming a FIFO (the Maildir, or its
// maildirsize) does not block the delivery either.
func TestFIFOMaildirLine(t *testing.T) {
	e := newEnv(t)
	e.tg.Local, e.tg.Dash, e.tg.Ext = "joe-x", "-", "x"
	nonRegular(t, "fifo", filepath.Join(e.home, "Maildir"))
	e.qmail(".qmail-x", "./Maildir/\n", 0o644)
	err := promptly(t, "Deliver", func() error { _, err := e.deliver("m\n"); return err })
	wantErr(t, err, 111, "Unable to chdir to maildir. (#4.2.1)")

	e.tg.Ext, e.tg.Local = "y", "joe-y"
	e.makeMaildir("Maildir2")
	nonRegular(t, "fifo", filepath.Join(e.home, "Maildir2", "maildirsize"))
	e.qmail(".qmail-y", "./Maildir2/\n", 0o644)
	err = promptly(t, "Deliver", func() error { _, err := e.deliver("m\n"); return err })
	if err != nil {
		t.Errorf("a FIFO maildirsize: %v", err)
	}
}
