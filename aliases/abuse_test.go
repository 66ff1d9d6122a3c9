package aliases

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// An aliases file with a huge line, a huge continued entry, NUL bytes and
// binary junk: bounded, with newaliases' texts.
func TestAliasesAbuse(t *testing.T) {
	huge := "a: " + strings.Repeat("b, ", 1<<20) + "c\n"
	tests := []struct {
		name string
		max  int
		in   string
		text string // "" means success
	}{
		{"huge line under the limit", 0, huge, ""},
		{"huge line over the limit", 1 << 20, huge, "out of memory"},
		{"huge continuation over the limit", 1000, "a: b\n" + strings.Repeat(" c,\n", 300), "out of memory"},
		{"huge line without LF", 1000, strings.Repeat("x", 5000), "out of memory"},
		{"unlimited", -1, huge, ""},
		{"NUL in name", 0, "a\x00b: c\n", "NUL not permitted in recipient addresses"},
		{"NUL alone", 0, "\x00\n", "NUL not permitted in recipient addresses"},
		{"binary", 0, "\xff\xfe: \x80\x81\n", ""},
		{"unbalanced paren", 0, "a: (b\n", "unable to parse this line: a: (b\n"},
		{"stray paren", 0, "a: b)\n", ""},
		{"stray close", 0, "a: )b\n", "unable to parse this line: a: )b\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ar := NewAliasReader(strings.NewReader(tt.in), specControls)
			ar.MaxLineBytes = tt.max
			var err error
			for err == nil {
				_, err = ar.Next()
			}
			if err == io.EOF {
				err = nil
			}
			var e *Error
			switch {
			case tt.text == "" && err != nil:
				t.Errorf("got %v", err)
			case tt.text != "" && (!errors.As(err, &e) || e.Text != tt.text):
				t.Errorf("got %v, want %q", err, tt.text)
			}
		})
	}
}

// printforward and printmaillist on inputs whose lengths lie: an error,
// never a panic, and memory that follows the bytes actually read.
func TestPrintAbuse(t *testing.T) {
	le := func(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }
	hdr := make([]byte, 2048)
	copy(hdr, le(0xffffffff))
	for name, in := range map[string][]byte{
		"key length":  append(append(append([]byte{}, hdr...), le(0xfffffff0)...), le(1)...),
		"data length": append(append(append([]byte{}, hdr...), le(1)...), append(le(0xfffffff0), ':')...),
		"eod past":    hdr,
		"truncated":   hdr[:1000],
	} {
		var out bytes.Buffer
		if err := PrintForward(&out, bytes.NewReader(in)); err != ErrBadDatabase {
			t.Errorf("%s: got %v, want ErrBadDatabase", name, err)
		}
		allocs := testing.AllocsPerRun(3, func() { PrintForward(io.Discard, bytes.NewReader(in)) })
		if allocs > 50 {
			t.Errorf("%s: %v allocations", name, allocs)
		}
	}
	if err := PrintMaillist(io.Discard, strings.NewReader(strings.Repeat("&", 5000)+"\x00"), 1000); err == nil {
		t.Error("PrintMaillist: entry over the limit accepted")
	}
	if err := WriteMaillist(io.Discard, strings.NewReader(strings.Repeat("/", 5000)), 1000); err == nil {
		t.Error("WriteMaillist: line over the limit accepted")
	}
	fr := NewForwardReader(strings.NewReader(strings.Repeat("x", 5000)))
	fr.MaxBytes = 1000
	if _, err := fr.Next(); err == nil || err.(*Error).Text != "out of memory" {
		t.Errorf("ForwardReader: got %v", err)
	}
}
