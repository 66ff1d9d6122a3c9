package tcprules

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmailkit/qmailkit/internal/golden"
)

func addGoldenSeeds(f *testing.F, ext string, add func([]byte)) {
	dir, err := golden.Path("tcprules")
	if err != nil {
		return // no seeds from the golden files; the fuzz target still runs
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"+ext))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			add(b)
		}
	}
}

// FuzzParse: the parser never panics; a file that compiles holds exactly
// the records Parse describes, in order; a refused line is reported as
// tcprules prints it.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:allow,RELAYCLIENT=\"\"\n:deny\n",
		"1.2.3.4-7:allow\n10.2-3.:deny,X=/y/\n",
		"2001:db8::allow\nfe80::deny\n",
		"joe@=host:allow\n=.example.com:deny\n",
		"1.2.3.18446744073709551617-2:allow\n",
		"1.2.3.4\x00-5:allow\n",
		"#c\n\nno colon\n1: allow\n",
		"x:allow,A=\"1\",B='2'\r\n",
		":allow,=||",
	} {
		f.Add([]byte(s))
	}
	addGoldenSeeds(f, ".rules", func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, in []byte) {
		rules, perr := Parse(bytes.NewReader(in))
		out, cerr := Compile(bytes.NewReader(in))
		if (perr == nil) != (cerr == nil) {
			t.Fatalf("Parse: %v; Compile: %v", perr, cerr)
		}
		if perr != nil {
			var pe *ParseError
			if !errors.As(perr, &pe) {
				t.Fatalf("Parse: %v is not a *ParseError", perr)
			}
			if strings.ContainsAny(pe.Text, "\x00\n") || pe.Line < 1 || !bytes.Contains(in, []byte(pe.Text)) {
				t.Fatalf("ParseError %+v", pe)
			}
			return
		}
		db, err := OpenBytes(out)
		if err != nil {
			t.Fatal(err)
		}
		it := db.c.Iter()
		for _, r := range rules {
			v := r.Value()
			for _, k := range r.Keys {
				if !it.Next() {
					t.Fatalf("cdb ends before key %q", k)
				}
				if string(it.Key()) != k || !bytes.Equal(it.Value(), v) {
					t.Fatalf("record %q=%q, want %q=%q", it.Key(), it.Value(), k, v)
				}
			}
		}
		if it.Next() || it.Err() != nil {
			t.Fatalf("extra record or error: %v", it.Err())
		}
		// Each rule's first key finds the first rule that has it.
		first := map[string]Rule{}
		for _, r := range rules {
			for _, k := range r.Keys {
				if _, ok := first[k]; !ok {
					first[k] = r
				}
			}
		}
		for k, r := range first {
			v, err := db.c.Get([]byte(k))
			if err != nil || !bytes.Equal(v, r.Value()) {
				t.Fatalf("Get(%q) = %q, %v; want line %d", k, v, err, r.Line)
			}
		}
	})
}

// FuzzLookup: lookups on arbitrary cdb bytes never panic. The input is
// "IP\nHOST\nINFO\n" followed by the cdb bytes (one argument: the fuzzer
// mutates a single byte slice much faster than four).
func FuzzLookup(f *testing.F) {
	add := func(ip, host, info string, cdb []byte) {
		f.Add(append([]byte(ip+"\n"+host+"\n"+info+"\n"), cdb...))
	}
	basic, _ := Compile(strings.NewReader("127.0.0.1:allow,RELAYCLIENT=\"\"\n10.:deny\n=.example.com:allow,X=\"1\"\n:deny\n"))
	add("127.0.0.1", "a.example.com", "joe", basic)
	add("10.1.2.3", "", "", basic[:2100])
	add("1.2.3.4", "x", "", make([]byte, 2048))
	addGoldenSeeds(f, ".cdb", func(b []byte) { add("192.0.2.50", "host.sub.example.com", "joe", b) })
	f.Fuzz(func(t *testing.T, in []byte) {
		parts := bytes.SplitN(in, []byte("\n"), 4)
		if len(parts) < 4 {
			return
		}
		ip, host, info, data := string(parts[0]), string(parts[1]), string(parts[2]), parts[3]
		// Lookup tries a key per dot of ip and host, each as long as the
		// text: quadratic, as in tcpserver, and harmless for real names
		// (at most 255 bytes), but slow for megabyte strings.
		if len(ip) > 1024 || len(host) > 1024 {
			return
		}
		db, err := OpenBytes(data)
		if err != nil {
			return
		}
		for _, h := range []*string{nil, &host} {
			for _, i := range []*string{nil, &info} {
				d, err := db.Lookup(ip, h, i)
				if err != nil {
					continue
				}
				r := d.Report()
				if d.Found != strings.HasPrefix(r, "rule ") {
					t.Fatalf("Found %v, report %q", d.Found, r)
				}
				d.Apply(map[string]string{})
			}
		}
	})
}
