package inject

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseAddressList(t *testing.T) {
	stop := errors.New("stop")
	tests := []struct {
		line string
		want []string // "+" marks an address with an '@' token
		err  error
	}{
		{"bob@x.y, carol\n", []string{"carol", "+bob@x.y"}, nil},
		{"a b c", []string{"c", "b", "a"}, nil},
		{"Joe Q <jq@x.y> (c), x", []string{"x", "+jq@x.y"}, nil},
		{"\\joe, \"|vacation joe\"", []string{"|vacation joe", "joe"}, nil},
		{"\"a@b\"", []string{"a@b"}, nil},
		{"grp: a, b;", []string{"b", "a", "grp"}, nil},
		{"<>, <joe", []string{"<joe", ""}, nil},
		{"x@[1.2.3.4] (only) ", []string{"+x@[1.2.3.4]"}, nil},
		{"a, b> c", []string{"c", "a,b"}, ErrSyntax},
		{"\"open", nil, ErrSyntax},
		{"(open", nil, ErrSyntax},
		{"x)", []string{"x)"}, nil},
		{"a, b, c", []string{"c"}, stop},
	}
	for _, tt := range tests {
		var got []string
		err := ParseAddressList([]byte(tt.line), func(addr string, hasAt bool) error {
			if hasAt {
				addr = "+" + addr
			}
			got = append(got, addr)
			if tt.err == stop {
				return stop
			}
			return nil
		})
		if !errors.Is(err, tt.err) || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: %q, %v; want %q, %v", tt.line, got, err, tt.want, tt.err)
		}
	}
}

// FuzzParseAddressList: no panic; an address said to have an '@' shows
// one; a line that lexes and has no '>' always parses.
func FuzzParseAddressList(f *testing.F) {
	for _, s := range []string{"bob@x.y, carol\n", "Joe Q <jq@x.y> (c), x", "grp: a, b;", "a, b> c", "\"open",
		"<>, <joe", "x@[1.2.3.4]", "\\joe, \"|vacation joe\"", "a\x00b, c", "(c (nested)) x\\"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		err := ParseAddressList(line, func(addr string, hasAt bool) error {
			if hasAt && !strings.Contains(addr, "@") {
				t.Fatalf("address %q has an '@' token but no '@'", addr)
			}
			return nil
		})
		if _, ok := tokenize(line); ok && !bytes.Contains(line, []byte(">")) && err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if err != nil && !errors.Is(err, ErrSyntax) {
			t.Fatalf("%q: %v", line, err)
		}
	})
}
