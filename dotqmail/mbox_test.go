package dotqmail

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"testing/synctest"
	"time"
)

func TestQuoteFrom(t *testing.T) {
	tests := []struct{ in, want string }{
		{"From x\n", ">From x\n"},
		{">From x\n", ">>From x\n"},
		{">>>From x\n", ">>>>From x\n"},
		{"From: x\n", "From: x\n"},
		{" From x\n", " From x\n"},
		{"From", "From\n"},
		{"From ", ">From \n"},
		{">", ">\n"},
		{">>\n>x\n", ">>\n>x\n"},
		{"Fro\nFrom me\n", "Fro\n>From me\n"},
		{"a From b\nFromage\n", "a From b\nFromage\n"},
		{"", ""},
		{"\n", "\n"},
		{"x", "x\n"},
		{"x\nFrom y", "x\n>From y\n"},
		{"x\r\nFrom y\r\n", "x\r\n>From y\r\n"},
		{">F\n", ">F\n"},
		{"From From \n", ">From From \n"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		if err := quoteFrom(context.Background(), w, strings.NewReader(tt.in)); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		if buf.String() != tt.want {
			t.Errorf("quoteFrom(%q) = %q, want %q", tt.in, buf.String(), tt.want)
		}
	}
}

// TestMboxLockTimeout: a lock held for 30 seconds defers the delivery with
// qmail-local's text, and nothing is written; a lock released in time is
// waited for.
func TestMboxLockTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		e.qmail(".qmail", "./Mailbox\n", 0o644)
		path := filepath.Join(e.home, "Mailbox")
		holder, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Close()
		fd := int(holder.Fd())
		if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
			t.Skipf("flock unsupported here: %v", err)
		}
		start := time.Now()
		_, err = e.deliver("m\n")
		wantErr(t, err, 111, "File has been locked for 30 seconds straight. (#4.3.0)")
		if waited := time.Since(start); waited < 30*time.Second || waited > 31*time.Second {
			t.Errorf("waited %v", waited)
		}
		if e.read("Mailbox") != "" {
			t.Error("written while locked")
		}

		unlocked := make(chan struct{})
		time.AfterFunc(10*time.Second, func() {
			syscall.Flock(fd, syscall.LOCK_UN)
			close(unlocked)
		})
		start = time.Now()
		if _, err := e.deliver("m\n"); err != nil {
			t.Fatal(err)
		}
		<-unlocked
		if waited := time.Since(start); waited < 10*time.Second || waited > 11*time.Second {
			t.Errorf("waited %v", waited)
		}
		if !strings.HasPrefix(e.read("Mailbox"), "From a@b.c ") {
			t.Errorf("mbox %q", e.read("Mailbox"))
		}
	})
}

// TestMboxAbsolutePath: an absolute mbox path is used as is.
func TestMboxAbsolutePath(t *testing.T) {
	e := newEnv(t)
	other := filepath.Join(t.TempDir(), "spool", "joe")
	os.MkdirAll(filepath.Dir(other), 0o755)
	e.qmail(".qmail", other+"\n", 0o644)
	if _, err := e.deliver("m\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(other)
	if !strings.HasSuffix(string(b), "Delivered-To: joe@ex.com\nm\n\n") {
		t.Errorf("mbox %q", b)
	}
}

// FuzzQuoteFrom compares the streaming quoter with a line-by-line
// reference of qmail-local's rule (gfrom).
func FuzzQuoteFrom(f *testing.F) {
	for _, s := range []string{"From x\n", ">From x\n>>From y", "From", "\n\nFrom \n", ">>>", "a\nFrom:\n From x\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var want strings.Builder
		if in != "" {
			lines := strings.SplitAfter(in, "\n")
			for _, l := range lines {
				if l == "" {
					continue
				}
				if strings.HasPrefix(strings.TrimLeft(l, ">"), "From ") {
					want.WriteByte('>')
				}
				want.WriteString(l)
			}
			if !strings.HasSuffix(in, "\n") {
				want.WriteByte('\n')
			}
		}
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		if err := quoteFrom(context.Background(), w, iotest.OneByteReader(strings.NewReader(in))); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		if buf.String() != want.String() {
			t.Fatalf("quoteFrom(%q) = %q, want %q", in, buf.String(), want.String())
		}
	})
}
