package lspawn

import (
	"errors"
	"slices"
	"testing"
)

func TestParseRecord(t *testing.T) {
	for _, tt := range []struct {
		in     string
		n      int
		kind   byte
		fields []string
		err    bool
	}{
		{in: "Q", n: 0, kind: 'Q'},
		{in: "C1:7,", n: 1, kind: 'C', fields: []string{"7"}},
		{in: "R1:1,1:K,10:did 1+0+0\n,0:,", n: 4, kind: 'R', fields: []string{"1", "K", "did 1+0+0\n", ""}},
		{in: "D0:,3:a,b,", n: 2, kind: 'D', fields: []string{"", "a,b"}},
		{in: "", n: 0, err: true},
		{in: "C", n: 1, err: true},               // too few fields
		{in: "C1:7,1:8,", n: 1, err: true},       // too many
		{in: "C1:7", n: 1, err: true},            // no comma
		{in: "C2:7,", n: 1, err: true},           // overruns
		{in: "C01:7,", n: 1, err: true},          // leading zero
		{in: "C:7,", n: 1, err: true},            // no length
		{in: "C1x7,", n: 1, err: true},           // no colon
		{in: "C1:7;", n: 1, err: true},           // not a comma
		{in: "C12345678:x,", n: 1, err: true},    // length too long
		{in: "C9999999:x,", n: 1, err: true},     // overruns by far
		{in: "C-1:x,", n: 1, err: true},          // negative
		{in: "C1:", n: 1, err: true},             // cut
		{in: "C3:abc,trailing", n: 1, err: true}, // garbage after
		{in: "C18446744073709551617:x,", n: 1, err: true},
	} {
		kind, fields, err := parseRecord([]byte(tt.in), tt.n)
		if tt.err {
			if !errors.Is(err, ErrFormat) {
				t.Errorf("%q: err %v, want ErrFormat", tt.in, err)
			}
			continue
		}
		if err != nil || kind != tt.kind || !slices.Equal(fields, tt.fields) && len(fields)+len(tt.fields) > 0 {
			t.Errorf("%q: %q %q %v, want %q %q", tt.in, kind, fields, err, tt.kind, tt.fields)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, fields := range [][]string{nil, {""}, {"a", "", "b,c:d"}, {string(make([]byte, 5000))}} {
		b := appendRecord(nil, 'D', fields...)
		kind, got, err := parseRecord(b, len(fields))
		if err != nil || kind != 'D' || len(got) != len(fields) {
			t.Fatalf("%q: %q %q %v", b, kind, got, err)
		}
		for i := range got {
			if got[i] != fields[i] {
				t.Errorf("field %d: %q, want %q", i, got[i], fields[i])
			}
		}
	}
}

func TestParseID(t *testing.T) {
	for in, want := range map[string]bool{"1": true, "18446744073709551615": true, "0": true,
		"": false, "01": false, "-1": false, "+1": false, "1x": false, "18446744073709551616": false} {
		if _, err := parseID(in); (err == nil) != want {
			t.Errorf("parseID(%q): %v", in, err)
		}
	}
}

func TestParseReplyAndExit(t *testing.T) {
	for _, tt := range []struct {
		in   string
		ok   bool
		exit bool
	}{
		{"R1:3,1:K,3:did,0:,", true, false},
		{"R1:3,1:D,3:bad,3:err,", true, false},
		{"R1:3,1:X,3:bad,3:err,", false, false}, // status
		{"R1:3,2:KK,0:,0:,", false, false},
		{"X1:3,1:K,0:,0:,", false, false}, // kind
		{"R0:,1:K,0:,0:,", false, false},  // id
		{"X1:0,", true, true},
		{"X3:111,", true, true},
		{"X3:256,", false, true},
		{"X2:-1,", false, true},
		{"X2:07,", false, true},
		{"R1:0,", false, true},
		{"X0:,", false, true},
	} {
		var err error
		if tt.exit {
			_, err = parseExit([]byte(tt.in))
		} else {
			_, _, err = parseReply([]byte(tt.in))
		}
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrFormat)) {
			t.Errorf("%q: %v", tt.in, err)
		}
	}
}

// FuzzRecords: no input makes a parser panic, and what parseRecord accepts
// is re-encoded to the same bytes.
func FuzzRecords(f *testing.F) {
	for _, s := range []string{"Q", "C1:7,", "R1:1,1:K,10:did 1+0+0\n,0:,", "D1:1,3:a@b,3:c@d,2:10,", "X2:54,", "C01:7,", "C9999999:x,"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parseReply(b)
		parseExit(b)
		parseRequest(b, nil, 0)
		for n := range 5 {
			kind, fields, err := parseRecord(b, n)
			if err != nil {
				continue
			}
			if again := appendRecord(nil, kind, fields...); string(again) != string(b) {
				t.Fatalf("%q parsed as %q %q, encodes as %q", b, kind, fields, again)
			}
		}
	})
}
