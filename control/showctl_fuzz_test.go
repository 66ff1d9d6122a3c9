package control

import (
	"bytes"
	"os"
	"strconv"
	"testing"
)

// qmailSafe is qmail-showctl's safeput.
func qmailSafe(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 32 || c > 126 {
			c = '?'
		}
		out[i] = c
	}
	return string(out)
}

// qmailDoLst is qmail-showctl's do_lst over control_readfile for a file
// holding data.
func qmailDoLst(name string, data []byte, pre, post string) string {
	var all []byte
	for _, l := range qmailLines(data) {
		l = qmailStrip(l)
		if len(l) > 0 && l[0] != 0 && l[0] != '#' {
			all = append(append(all, l...), 0)
		}
	}
	out := "\n" + name + ": \n"
	i := 0
	for j, c := range all {
		if c == 0 {
			out += pre + qmailSafe(all[i:j]) + post + "\n"
			i = j + 1
		}
	}
	return out
}

// qmailDoInt is do_int over control_readint: scan_ulong wraps, the value
// is stored in an int.
func qmailDoInt(name string, data []byte, def, pre, post string) string {
	l := qmailReadline(data)
	var u uint64
	n := 0
	for ; n < len(l) && l[n] >= '0' && l[n] <= '9'; n++ {
		u = u*10 + uint64(l[n]-'0')
	}
	if n == 0 {
		return "\n" + name + ": (Default.) " + pre + def + post + ".\n"
	}
	i := int32(u)
	if i < 0 {
		i = 0
	}
	return "\n" + name + ": " + pre + strconv.Itoa(int(i)) + post + ".\n"
}

// FuzzShow: Show's list, integer and string blocks are qmail-showctl's.
func FuzzShow(f *testing.F) {
	for _, s := range []string{"a\n#x\n\nb \n", "100junk\n", "4294967297\n", "a\x00b\nc\x00\n", "\x00x\n:h", "", "\xff\r\n"} {
		f.Add([]byte(s))
	}
	d := fuzzHome(f)
	if err := os.WriteFile(d.Path("me"), []byte("m\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, n := range []string{"locals", "databytes", "helohost"} {
			writeControl(t, d, n, data)
		}
		var out bytes.Buffer
		if err := d.Show(&out, ShowSettings{}); err != nil {
			t.Fatal(err)
		}
		got := out.String()
		for _, want := range []string{
			qmailDoLst("locals", data, "Messages for ", " are delivered locally."),
			qmailDoInt("databytes", data, "0", "SMTP DATA limit is ", " bytes"),
			"\nhelohost: SMTP client HELO host name is " + qmailSafe([]byte(qmailReadline(data))) + ".\n\nidhost: ",
		} {
			if !bytes.Contains(out.Bytes(), []byte(want)) {
				t.Errorf("%q: no %q in\n%s", data, want, got)
			}
		}
	})
}
