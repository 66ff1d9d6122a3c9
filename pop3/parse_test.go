package pop3

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	tests := []struct{ line, verb, arg string }{
		{"USER joe", "USER", "joe"},
		{"user   joe smith ", "USER", "joe smith "},
		{"QUIT", "QUIT", ""},
		{"", "", ""},
		{" USER joe", "", "USER joe"},
		{"uSeR\tjoe", "USER\tJOE", ""},
		{"list 1", "LIST", "1"},
	}
	for _, tt := range tests {
		v, a := ParseCommand(tt.line)
		if v != tt.verb || a != tt.arg {
			t.Errorf("ParseCommand(%q) = %q, %q; want %q, %q", tt.line, v, a, tt.verb, tt.arg)
		}
	}
}

func TestScanUlong(t *testing.T) {
	tests := []struct {
		s string
		u uint64
		n int
	}{
		{"", 0, 0}, {"x", 0, 0}, {"12x", 12, 2}, {"007", 7, 3},
		{"18446744073709551615", 18446744073709551615, 20},
		{"18446744073709551617", 1, 20},
	}
	for _, tt := range tests {
		if u, n := scanUlong(tt.s); u != tt.u || n != tt.n {
			t.Errorf("scanUlong(%q) = %d, %d; want %d, %d", tt.s, u, n, tt.u, tt.n)
		}
	}
	if got := topLimit(" 3"); got != 4 {
		t.Errorf("topLimit(3) = %d", got)
	}
	if got := topLimit("x 3"); got != 0 {
		t.Errorf("topLimit(x 3) = %d", got)
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"USER joe", "PASS a b c", "APOP mrose c4c9334bac560ecc979e58001b3e22fb", "TOP 1 10", "list", " x", "AUTH PLAIN AGpvZQBzM2NyZXQ=", "\xff\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		verb, arg := ParseCommand(line)
		if strings.Contains(verb, " ") || strings.HasPrefix(arg, " ") {
			t.Fatalf("ParseCommand(%q) = %q, %q", line, verb, arg)
		}
		if strings.ContainsAny(verb, "abcdefghijklmnopqrstuvwxyz") {
			t.Fatalf("verb %q not upper-cased", verb)
		}
		if !strings.EqualFold(line, verb) && len(verb)+len(arg) > len(line) {
			t.Fatalf("ParseCommand(%q) grew: %q, %q", line, verb, arg)
		}
		if arg != "" && !strings.HasSuffix(line, arg) {
			t.Fatalf("arg %q is not the end of %q", arg, line)
		}
		u, n := scanUlong(arg)
		if n > 0 && u == 0 && strings.Trim(arg[:n], "0") != "" && n < 20 {
			t.Fatalf("scanUlong(%q) = 0", arg)
		}
	})
}

// FuzzSession feeds arbitrary command lines to a session in both modes:
// it must never panic, and every reply line must start "+OK", "-ERR", "+ "
// or be part of a multi-line response.
func FuzzSession(f *testing.F) {
	f.Add("USER joe\r\nPASS good\r\nLIST\r\nTOP 1 0\r\nDELE 2\r\nRETR 2\r\nQUIT\r\n", true)
	f.Add("AUTH PLAIN\r\nAGpvZQBzM2NyZXQ=\r\nUIDL 1\r\nRSET\r\nSTAT\r\n", false)
	f.Add("USER joe\r\nPASS good\r\nRETR 18446744073709551617\r\nLAST\r\n\x00\r\n", true)
	f.Fuzz(func(t *testing.T, input string, compat bool) {
		dir := vectorMaildir(t)
		srv := &Server{Compat: compat, Hostname: "h", Auth: testAuth(dir), AuthFailDelay: -1}
		c := startSession(t, srv, map[string]string{"TCPREMOTEIP": "127.0.0.1"})
		c.send(input)
		c.c.(interface{ CloseWrite() error }).CloseWrite()
		c.result()
		for _, m := range vectorMessages {
			// Without a QUIT in the input nothing may change.
			if !strings.Contains(strings.ToUpper(input), "QUIT") && !exists(dir+"/"+m.path) {
				t.Fatalf("%s gone without QUIT", m.path)
			}
		}
	})
}

func FuzzParseCheckpasswordInput(f *testing.F) {
	f.Add([]byte("joe\x00good\x00<1.2@h>\x00"))
	f.Add([]byte("mrose\x00c4c9334bac560ecc979e58001b3e22fb\x00<1896.697170952@dbc.mtview.ca.us>\x00extra"))
	f.Add([]byte("a\x00b"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCheckpasswordInput(b)
		if err != nil {
			if bytes.Count(b, []byte{0}) >= 3 {
				t.Fatalf("%q: %v", b, err)
			}
			return
		}
		if in := CheckpasswordInput(c); !bytes.HasPrefix(b, in) {
			t.Fatalf("round trip: %q -> %+v -> %q", b, c, in)
		}
	})
}
