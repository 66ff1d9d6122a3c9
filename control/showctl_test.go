package control

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var showIDs = ShowSettings{UIDs: []int{7790, 7791, 7792, 0, 7793, 7794, 7795, 7796}, GIDs: []int{2107, 2108}}

const showHead = "qmail home directory: HOME.\n" +
	"user-ext delimiter: -.\n" +
	"paternalism (in decimal): 2.\n" +
	"silent concurrency limit: 120.\n" +
	"subdirectory split: 23.\n" +
	"user ids: 7790, 7791, 7792, 0, 7793, 7794, 7795, 7796.\n" +
	"group ids: 2107, 2108.\n"

// The whole report for a home with only control/me and one unknown file
// (every block).
const showMeOnly = "\nbadmailfrom: (Default.) Any MAIL FROM is allowed.\n" +
	"\nbouncefrom: (Default.) Bounce user name is MAILER-DAEMON.\n" +
	"\nbouncehost: (Default.) Bounce host name is mx.example.net.\n" +
	"\nconcurrencylocal: (Default.) Local concurrency is 10.\n" +
	"\nconcurrencyremote: (Default.) Remote concurrency is 20.\n" +
	"\ndatabytes: (Default.) SMTP DATA limit is 0 bytes.\n" +
	"\ndefaultdomain: (Default.) Default domain name is mx.example.net.\n" +
	"\ndefaulthost: (Default.) Default host name is mx.example.net.\n" +
	"\ndoublebouncehost: (Default.) 2B recipient host: mx.example.net.\n" +
	"\ndoublebounceto: (Default.) 2B recipient user: postmaster.\n" +
	"\nenvnoathost: (Default.) Presumed domain name is mx.example.net.\n" +
	"\nhelohost: (Default.) SMTP client HELO host name is mx.example.net.\n" +
	"\nidhost: (Default.) Message-ID host name is mx.example.net.\n" +
	"\nlocaliphost: (Default.) Local IP address becomes mx.example.net.\n" +
	"\nlocals: (Default.) Messages for me are delivered locally.\n" +
	"\nme: My name is mx.example.net.\n" +
	"\npercenthack: (Default.) The percent hack is not allowed.\n" +
	"\nplusdomain: (Default.) Plus domain name is mx.example.net.\n" +
	"\nqmqpservers: (Default.) No QMQP servers.\n" +
	"\nqueuelifetime: (Default.) Message lifetime in the queue is 604800 seconds.\n" +
	"\nrcpthosts: (Default.) SMTP clients may send messages to any recipient.\n" +
	"\nmorercpthosts: (Default.) No rcpthosts; morercpthosts is irrelevant.\n" +
	"\nmorercpthosts.cdb: (Default.) No effect.\n" +
	"\nsmtpgreeting: (Default.) SMTP greeting: 220 mx.example.net.\n" +
	"\nsmtproutes: (Default.) No artificial SMTP routes.\n" +
	"\ntimeoutconnect: (Default.) SMTP client connection timeout is 60 seconds.\n" +
	"\ntimeoutremote: (Default.) SMTP client data timeout is 1200 seconds.\n" +
	"\ntimeoutsmtpd: (Default.) SMTP server data timeout is 1200 seconds.\n" +
	"\nvirtualdomains: (Default.) No virtual domains.\n" +
	"\nfoo: I have no idea what this file does.\n"

func show(t *testing.T, d Dir) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := d.Show(&out, showIDs)
	return strings.ReplaceAll(out.String(), d.Home, "HOME"), err
}

func TestShowQ2(t *testing.T) {
	d := home(t, map[string]string{"me": "mx.example.net\n", "foo": "x"})
	got, err := show(t, d)
	if want := showHead + showMeOnly; got != want || err != nil {
		t.Errorf("err %v, diff:\n%s", err, lineDiff(got, want))
	}
}

// lineDiff shows the first differing line.
func lineDiff(got, want string) string {
	g, w := strings.SplitAfter(got, "\n"), strings.SplitAfter(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d: got %q want %q", i+1, gl, wl)
		}
	}
	return ""
}

// block returns the report's block for name ("\nNAME: ...\n...").
func block(report, name string) string {
	i := strings.Index(report, "\n"+name+": ")
	if i < 0 {
		return ""
	}
	rest := report[i+1:]
	j := strings.Index(rest, "\n\n")
	if j < 0 {
		return "\n" + rest
	}
	// A list's header line ends in ": \n", so the block goes on to the
	// next empty line.
	return "\n" + rest[:j+1]
}

func TestShowBlocks(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		block string
		want  string
	}{
		{"list Q2", map[string]string{"me": "m", "locals": "a\n#x\n\nb \n"}, "locals",
			"\nlocals: \nMessages for a are delivered locally.\nMessages for b are delivered locally.\n"},
		{"empty list", map[string]string{"me": "m", "locals": ""}, "locals", "\nlocals: \n"},
		{"list without final LF, NULs split", map[string]string{"me": "m", "badmailfrom": "a\x00b\nc\x00\nd"}, "badmailfrom",
			"\nbadmailfrom: \na not accepted in MAIL FROM.\nb not accepted in MAIL FROM.\nc not accepted in MAIL FROM.\n not accepted in MAIL FROM.\nd not accepted in MAIL FROM.\n"},
		{"list, line starting with NUL skipped", map[string]string{"me": "m", "smtproutes": "\x00x\n:h\n"}, "smtproutes",
			"\nsmtproutes: \nSMTP route: :h\n"},
		{"string, control bytes", map[string]string{"me": "m\r\x01\xff \t\nsecond\n"}, "me", "\nme: My name is m???.\n"},
		{"string, no me", map[string]string{}, "bouncehost", "\nbouncehost: (Default.) Bounce host name is bouncehost.\n"},
		{"string, no me: me block", map[string]string{}, "me", "\nme: (Default.) My name is undefined! Uh-oh.\n"},
		{"string, empty file", map[string]string{"me": "m", "helohost": "\n"}, "helohost", "\nhelohost: SMTP client HELO host name is .\n"},
		{"int", map[string]string{"me": "m", "databytes": "100junk\n"}, "databytes", "\ndatabytes: SMTP DATA limit is 100 bytes.\n"},
		{"int junk", map[string]string{"me": "m", "databytes": " 100\n"}, "databytes", "\ndatabytes: (Default.) SMTP DATA limit is 0 bytes.\n"},
		{"int negative as int", map[string]string{"me": "m", "queuelifetime": "3000000000\n"}, "queuelifetime", "\nqueuelifetime: Message lifetime in the queue is 0 seconds.\n"},
		{"int wraps at 2^32", map[string]string{"me": "m", "queuelifetime": "4294967297\n"}, "queuelifetime", "\nqueuelifetime: Message lifetime in the queue is 1 seconds.\n"},
		{"int wraps at 2^64", map[string]string{"me": "m", "timeoutconnect": "18446744073709551621\n"}, "timeoutconnect", "\ntimeoutconnect: SMTP client connection timeout is 5 seconds.\n"},
		{"rcpthosts present", map[string]string{"me": "m", "rcpthosts": "Example.org\n"}, "rcpthosts",
			"\nrcpthosts: \nSMTP clients may send messages to recipients at Example.org.\n"},
		{"morercpthosts with rcpthosts", map[string]string{"me": "m", "rcpthosts": "a\n"}, "morercpthosts",
			"\nmorercpthosts: (Default.) No effect.\n"},
		{"morercpthosts without rcpthosts", map[string]string{"me": "m", "morercpthosts": "b\n"}, "morercpthosts",
			"\nmorercpthosts: \nNo rcpthosts; doesn't matter that morercpthosts has b.\n"},
		{"morercpthosts.cdb only", map[string]string{"me": "m", "morercpthosts.cdb": ""}, "morercpthosts.cdb",
			"\nmorercpthosts.cdb: Oops! morercpthosts.cdb exists but morercpthosts doesn't.\n"},
		{"morercpthosts only", map[string]string{"me": "m", "morercpthosts": ""}, "morercpthosts.cdb",
			"\nmorercpthosts.cdb: Oops! morercpthosts exists but morercpthosts.cdb doesn't.\n"},
		{"hidden file listed", map[string]string{"me": "m", ".hidden": ""}, ".hidden", "\n.hidden: I have no idea what this file does.\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := show(t, home(t, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if b := block(got, tc.block); b != tc.want {
				t.Errorf("block %q, want %q", b, tc.want)
			}
		})
	}
}

func TestShowMtimes(t *testing.T) {
	d := home(t, map[string]string{"me": "m", "morercpthosts": "a\n", "morercpthosts.cdb": ""})
	old := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		txt, db time.Time
		want    string
	}{
		{old.Add(time.Second), old, "Oops! morercpthosts.cdb is older than morercpthosts."},
		{old, old.Add(time.Second), "Modified recently enough; hopefully up to date."},
		{old.Add(500 * time.Millisecond), old, "Modified recently enough; hopefully up to date."}, // whole seconds
	} {
		os.Chtimes(d.Path("morercpthosts"), tc.txt, tc.txt)
		os.Chtimes(d.Path("morercpthosts.cdb"), tc.db, tc.db)
		got, _ := show(t, d)
		if b := block(got, "morercpthosts.cdb"); b != "\nmorercpthosts.cdb: "+tc.want+"\n" {
			t.Errorf("%v %v: %q", tc.txt, tc.db, b)
		}
	}
}

// Files that exist but cannot be read (directories here, as root cannot
// be denied) print "Oops! Trouble reading this file." and the report goes
// on; a read error of rcpthosts counts as present for morercpthosts.
func TestShowTrouble(t *testing.T) {
	d := home(t, map[string]string{"me": "m"})
	for _, n := range []string{"badmailfrom", "bouncefrom", "databytes", "rcpthosts"} {
		os.Mkdir(d.Path(n), 0o755)
	}
	got, err := show(t, d)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"badmailfrom", "bouncefrom", "databytes", "rcpthosts"} {
		if b := block(got, n); b != "\n"+n+": Oops! Trouble reading this file.\n" {
			t.Errorf("%s: %q", n, b)
		}
	}
	if b := block(got, "morercpthosts"); b != "\nmorercpthosts: (Default.) No effect.\n" {
		t.Errorf("morercpthosts: %q", b)
	}
	if !strings.HasSuffix(got, "\nvirtualdomains: (Default.) No virtual domains.\n") {
		t.Errorf("known directories listed as unknown:\n%s", got)
	}
}

func TestShowOops(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) Dir
		want  string
	}{
		{"no home", func(t *testing.T) Dir { return Dir{Home: filepath.Join(t.TempDir(), "none")} }, "Oops! Unable to chdir to HOME.\n"},
		{"home is a file", func(t *testing.T) Dir {
			p := filepath.Join(t.TempDir(), "f")
			os.WriteFile(p, nil, 0o644)
			return Dir{Home: p}
		}, "Oops! Unable to chdir to HOME.\n"},
		{"no control", func(t *testing.T) Dir { return Dir{Home: t.TempDir()} }, "Oops! Unable to chdir to control.\n"},
		{"me unreadable", func(t *testing.T) Dir {
			d := home(t, nil)
			os.Mkdir(d.Path("me"), 0o755)
			return d
		}, "Oops! Trouble reading control/me."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := show(t, tc.setup(t))
			if !errors.Is(err, ErrShow) || got != showHead+tc.want {
				t.Errorf("err %v, output %q", err, got)
			}
		})
	}
}

// A big control directory: a huge me, long list lines holding NULs (each
// line gives two entries, the second empty).
func TestShowAbuse(t *testing.T) {
	big := strings.Repeat(strings.Repeat("x", 5000)+"\x00\n", 200)
	d := home(t, map[string]string{"me": strings.Repeat("m", 100000), "locals": big})
	got, err := show(t, d)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(block(got, "locals"), "\n"); n != 402 {
		t.Errorf("locals block has %d lines", n)
	}
}

// FIFOs named like control files do not hang the report: they read as
// empty files.
func TestShowFIFO(t *testing.T) {
	d := home(t, nil)
	for _, n := range []string{"me", "locals", "databytes"} {
		if err := syscall.Mkfifo(d.Path(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan string, 1)
	go func() { got, _ := show(t, d); done <- got }()
	select {
	case got := <-done:
		for _, want := range []string{"\nlocals: \n\nme: My name is .\n", "\ndatabytes: (Default.) SMTP DATA limit is 0 bytes.\n"} {
			if !strings.Contains(got, want) {
				t.Errorf("no %q in\n%s", want, got)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the report hangs on a FIFO")
	}
}
