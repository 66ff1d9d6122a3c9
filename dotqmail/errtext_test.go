package dotqmail

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/qmailkit/qmailkit/internal/quotafs"
)

// TestErrorTexts: a system error in a report is worded as qmail-local's
// error_str words it (issue 18): "file does not exist", not the C
// library's "No such file or directory".
func TestErrorTexts(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env)
		code  int
		text  string // "HOME" stands for the home directory
	}{
		{"mbox in a missing directory", func(e *env) { e.qmail(".qmail", "./nodir/mbox\n", 0o644) },
			111, "Unable to open ./nodir/mbox: file does not exist. (#4.2.1)"},
		{"mbox below a file", func(e *env) {
			e.qmail("file", "", 0o644)
			e.qmail(".qmail", "./file/mbox\n", 0o644)
		}, 111, "Unable to open ./file/mbox: not a directory. (#4.2.1)"},
		{"absolute mbox path", func(e *env) { e.qmail(".qmail", e.home+"/nodir/mbox\n", 0o644) },
			111, "Unable to open HOME/nodir/mbox: file does not exist. (#4.2.1)"},
		{"missing home", func(e *env) { e.tg.Home += "/nodir" },
			111, "Unable to switch to HOME/nodir: file does not exist. (#4.3.0)"},
		{"missing shell", func(e *env) {
			e.d.Shell = e.home + "/nosuch-sh"
			e.qmail(".qmail", "|true\n", 0o644)
		}, 111, "Unable to run HOME/nosuch-sh: file does not exist. (#4.3.0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			home := e.home
			tt.setup(e)
			_, err := e.deliver("m\n")
			wantErr(t, err, tt.code, strings.ReplaceAll(tt.text, "HOME", home))
		})
	}
}

// TestReadErrorText: a message that cannot be read.
func TestReadErrorText(t *testing.T) {
	e := newEnv(t)
	e.qmail(".qmail", "./Mailbox\n", 0o644)
	_, err := e.d.Deliver(t.Context(), e.tg, eioReader{})
	wantErr(t, err, 111, "Unable to read message: input/output error. (#4.3.0)")
}

type eioReader struct{}

func (eioReader) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: "msg", Err: syscall.EIO}
}

// TestAccessDenied: EACCES reads "access denied" in qmail-local's reports,
// for the .qmail file, the home directory and an mbox. Root is never
// denied, so as root the test runs as nobody.
func TestAccessDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		asNobody(t, "TestAccessDenied")
		return
	}
	tests := []struct {
		name  string
		setup func(e *env)
		text  string // "HOME" stands for the home directory
	}{
		{".qmail unreadable", func(e *env) {
			e.qmail(".qmail", "./Mailbox\n", 0o644)
			os.Chmod(filepath.Join(e.home, ".qmail"), 0)
		}, "Unable to open .qmail: access denied. (#4.3.0)"},
		{"mbox not writable", func(e *env) {
			e.qmail(".qmail", "./Mailbox\n", 0o644)
			e.qmail("Mailbox", "", 0o444)
		}, "Unable to open ./Mailbox: access denied. (#4.2.1)"},
		{"mbox in a read-only directory", func(e *env) {
			os.Mkdir(filepath.Join(e.home, "ro"), 0o555)
			e.qmail(".qmail", "./ro/Mailbox\n", 0o644)
		}, "Unable to open ./ro/Mailbox: access denied. (#4.2.1)"},
		{"home not searchable", func(e *env) {
			locked := filepath.Join(e.home, "locked")
			os.Mkdir(filepath.Join(locked), 0o755)
			os.Mkdir(filepath.Join(locked, "joe"), 0o755)
			os.Chmod(locked, 0)
			e.tg.Home = filepath.Join(locked, "joe")
		}, "Unable to switch to HOME/locked/joe: access denied. (#4.3.0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			home := e.home
			tt.setup(e)
			_, err := e.deliver("m\n")
			wantErr(t, err, 111, strings.ReplaceAll(tt.text, "HOME", home))
			os.Chmod(filepath.Join(home, "locked"), 0o755) // for t.TempDir's removal
		})
	}
}

// TestOverQuota: EDQUOT, from a file system whose quota is full, reads
// "disk quota exceeded": an mbox that cannot grow is cut back to its old
// length, one that cannot be created is not, and a Maildir gets
// qmail-local's maildir text, which names no errno.
func TestOverQuota(t *testing.T) {
	home := quotafs.Dir(t, 1<<20)
	e := newEnv(t)
	e.home, e.tg.Home = home, home
	e.makeMaildir("Maildir")
	e.qmail("Mailbox", "From x Thu Jan 01 00:00:00 1970\nold\n\n", 0o600)
	tests := []struct {
		ext, qmail string
		text       string
	}{
		{"mbox", "./Mailbox\n", "Unable to write ./Mailbox: disk quota exceeded. (#4.3.0)"},
		{"new", "./New\n", "Unable to open ./New: disk quota exceeded. (#4.2.1)"},
		{"maildir", "./Maildir/\n", "Temporary error on maildir delivery. (#4.3.0)"},
	}
	for _, tt := range tests { // before the quota fills up
		e.qmail(".qmail-"+tt.ext, tt.qmail, 0o644)
	}
	before := e.read("Mailbox")
	quotafs.Fill(t, home, "fill")
	for _, tt := range tests {
		t.Run(tt.ext, func(t *testing.T) {
			e.tg.Local, e.tg.Dash, e.tg.Ext = "joe-"+tt.ext, "-", tt.ext
			_, err := e.deliver("Subject: s\n\n" + strings.Repeat("x", 8<<10) + "\n")
			wantErr(t, err, 111, tt.text)
		})
	}
	if got := e.read("Mailbox"); got != before {
		t.Errorf("Mailbox after the failed delivery: %d bytes, want the %d it had", len(got), len(before))
	}
	if _, err := os.Stat(filepath.Join(home, "New")); !os.IsNotExist(err) {
		t.Errorf("New: %v", err)
	}
	if tmp := e.maildirFiles("Maildir", "tmp"); len(tmp) != 0 {
		t.Errorf("Maildir/tmp holds %d files", len(tmp))
	}
}
