package control

import (
	"bytes"
	"context"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/internal/cdb"
	"github.com/qmailkit/qmailkit/smtpserver"
)

// The functions below are qmail's control.c, constmap.c and the matchers
// of qmail-smtpd.c (rcpthosts.c, bmfcheck) transcribed byte for byte, as
// the fuzz targets' oracles.

// qmailStrip is control.c's striptrailingwhitespace.
func qmailStrip(b []byte) []byte {
	for len(b) > 0 {
		switch b[len(b)-1] {
		case '\n', ' ', '\t':
			b = b[:len(b)-1]
		default:
			return b
		}
	}
	return b
}

// qmailLines is getln over the whole file: each line with its LF, the last
// without one if the file does not end in LF.
func qmailLines(data []byte) [][]byte {
	var lines [][]byte
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			lines = append(lines, data)
			break
		}
		lines = append(lines, data[:i+1])
		data = data[i+1:]
	}
	return lines
}

// qmailReadline is control_readline: the first line, stripped.
func qmailReadline(data []byte) string {
	if lines := qmailLines(data); len(lines) > 0 {
		return string(qmailStrip(lines[0]))
	}
	return ""
}

// qmailReadint is control_readint with scan_ulong, except that a value
// past 2^63-1 saturates (qmail's unsigned long would wrap, then be cut to
// an int: the documented difference of Dir.Int).
func qmailReadint(data []byte, def int64) int64 {
	l := qmailReadline(data)
	i := 0
	for i < len(l) && l[i] >= '0' && l[i] <= '9' {
		i++
	}
	if i == 0 {
		return def
	}
	n, _ := new(big.Int).SetString(l[:i], 10)
	if !n.IsInt64() {
		return 1<<63 - 1
	}
	return n.Int64()
}

// qmailReadfile is control_readfile followed by constmap_init: the entries
// the list's constmap holds. Each kept line is stored NUL-terminated, a
// line is dropped when its first byte is NUL (empty or stripped to empty)
// or '#', and constmap splits the whole at NULs, so a NUL inside a line
// makes two entries; empty entries match nothing a server looks up and are
// left out.
func qmailReadfile(data []byte) []string {
	entries := []string{}
	for _, l := range qmailLines(data) {
		l = qmailStrip(l)
		if len(l) == 0 || l[0] == 0 || l[0] == '#' {
			continue
		}
		for _, e := range bytes.Split(l, []byte{0}) {
			if len(e) > 0 {
				entries = append(entries, string(e))
			}
		}
	}
	return entries
}

// qmailLower is case_lowerb: ASCII only.
func qmailLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// qmailRcpthosts is rcpthosts.c's rcpthosts for a domain: the domain and
// each of its suffixes starting at a dot, looked up case-insensitively in
// rcpthosts' constmap, then (lower-cased) in morercpthosts.cdb.
func qmailRcpthosts(list []string, more map[string]bool, domain string) bool {
	m := map[string]bool{}
	for _, e := range list {
		m[qmailLower(e)] = true
	}
	for j := 0; j < len(domain); j++ {
		if j == 0 || domain[j] == '.' {
			k := qmailLower(domain[j:])
			if m[k] || more[k] {
				return true
			}
		}
	}
	return false
}

// qmailBmfcheck is qmail-smtpd's bmfcheck: the whole address, or its
// "@domain" from the last '@', in badmailfrom's constmap.
func qmailBmfcheck(list []string, addr string) bool {
	m := map[string]bool{}
	for _, e := range list {
		m[qmailLower(e)] = true
	}
	if m[qmailLower(addr)] {
		return true
	}
	if j := strings.LastIndexByte(addr, '@'); j >= 0 && m[qmailLower(addr[j:])] {
		return true
	}
	return false
}

// fuzzHome makes a qmail home whose control files the fuzz function
// rewrites for each input (inputs run one at a time in a worker).
func fuzzHome(f *testing.F) Dir {
	h := f.TempDir()
	if err := os.Mkdir(filepath.Join(h, "control"), 0o755); err != nil {
		f.Fatal(err)
	}
	return Dir{Home: h}
}

func writeControl(t *testing.T, d Dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(d.Path(name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// FuzzOneLine: Line, Int and LineDefault read a one-line file as qmail's
// control_readline and control_readint do.
func FuzzOneLine(f *testing.F) {
	for _, s := range []string{
		"mx.example.org\n", "  mx.example.org \t\nsecond\n", "host\r\n", "", "\n", "x",
		"100junk\n", "x12\n", "0\n", "18446744073709551616\n", "9223372036854775807", "9223372036854775808",
		"007 \t \n", " 12\n", "a\x00b\n", "\t\t\n\n",
	} {
		f.Add([]byte(s))
	}
	d := fuzzHome(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		writeControl(t, d, "x", data)
		line, ok, err := d.Line("x")
		if want := qmailReadline(data); line != want || !ok || err != nil {
			t.Errorf("Line = %q %v %v, want %q", line, ok, err, want)
		}
		n, err := d.Int("x", 7)
		if want := qmailReadint(data, 7); n != want || err != nil {
			t.Errorf("Int = %d %v, want %d", n, err, want)
		}
		writeControl(t, d, "me", data)
		def, err := d.LineDefault("missing", true, "def")
		if def != qmailReadline(data) || err != nil {
			t.Errorf("LineDefault(missing, me) = %q %v", def, err)
		}
	})
}

// FuzzList: List reads a list file into the entries qmail's
// control_readfile and constmap_init make of it.
func FuzzList(f *testing.F) {
	for _, s := range []string{
		"example.com\n.example.net\n", "#comment\n\n  \nx \t\n", "a\r\nb", "", "\n\n",
		"a\x00b\n", "\x00a\n", "a\x00\n", "a\x00\x00b\n#\x00c\n", "a\x00#b\n",
		strings.Repeat("x", 5000) + "\n",
	} {
		f.Add([]byte(s))
	}
	d := fuzzHome(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		writeControl(t, d, "l", data)
		got, ok, err := d.List("l")
		if want := qmailReadfile(data); !slices.Equal(got, want) || !ok || err != nil {
			t.Errorf("List = %q %v %v, want %q", got, ok, err, want)
		}
		got, ok, err = d.ListDefault("l", true)
		if want := qmailReadfile(data); !slices.Equal(got, want) || !ok || err != nil {
			t.Errorf("ListDefault = %q %v %v, want %q", got, ok, err, want)
		}
	})
}

// FuzzPolicy: the rcpthosts (with morercpthosts.cdb) and badmailfrom
// matchers SMTPPolicy gives a server decide as qmail-smtpd does, for any
// bytes: case is folded in ASCII only, as qmail's case_lowerb does.
func FuzzPolicy(f *testing.F) {
	for _, s := range []struct{ rcpthosts, more, bmf, domain, addr string }{
		{"example.com\n", "more.example", "@bad.example\n", "example.com", "x@bad.example"},
		{".example.com\n", "", "joe@x.example\n", "a.b.EXAMPLE.com", "JOE@x.example"},
		{"example.com\n", ".more.example", "", "x.more.example", "a@b@bad.example"},
		{"a\x00b\n", "", "@b\x00c@d\n", "b", "x@d"},
		{"#x\n\n", "", "\n", "", ""},
		{"..\n.\n", "", "@\n", "..", "@"},
		{"link.example\n", "", "", "lin\u212a.example", "x@lin\u212a.example"},
		{"\xff.example\n", "", "", "\xfe.example", "\xfe"},
	} {
		f.Add([]byte(s.rcpthosts), s.more, []byte(s.bmf), s.domain, s.addr)
	}
	d := fuzzHome(f)
	f.Fuzz(func(t *testing.T, rcpthosts []byte, more string, bmf []byte, domain, addr string) {
		writeControl(t, d, "rcpthosts", rcpthosts)
		writeControl(t, d, "badmailfrom", bmf)
		// morercpthosts.cdb is made by qmail-newmrh: lower-cased keys,
		// never an empty one.
		moreKeys := map[string]bool{}
		w, err := cdb.Create(d.Path("morercpthosts.cdb"))
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range strings.Split(more, ",") {
			if k = qmailLower(k); k == "" {
				continue
			}
			moreKeys[k] = true
			w.Put([]byte(k), nil)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		var srv smtpserver.Server
		closeFn, err := d.SMTPPolicy(&srv, false)
		if err != nil {
			t.Fatal(err)
		}
		defer closeFn()

		rh := qmailReadfile(rcpthosts)
		got, err := srv.RcptHostsContext(context.Background(), nil, domain)
		want := qmailRcpthosts(rh, moreKeys, domain)
		if err != nil || got != want {
			t.Errorf("RcptHosts(%q) with %q and more %q = %v %v, want %v", domain, rh, more, got, err, want)
		}
		bl := qmailReadfile(bmf)
		gotB, wantB := srv.BadMailFromContext(context.Background(), nil, addr), qmailBmfcheck(bl, addr)
		if gotB != wantB {
			t.Errorf("BadMailFrom(%q) with %q = %v, want %v", addr, bl, gotB, wantB)
		}
	})
}
