package rbl

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/miekg/dns"
)

// refSession is rblsmtpd's command loop written the plain way: whole lines,
// one CR dropped, NUL made LF, the verb before the first space.
func refSession(in []byte, msg string) string {
	out := s220
	for {
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			return out
		}
		line := bytes.TrimSuffix(in[:i], []byte("\r"))
		in = in[i+1:]
		line = bytes.ReplaceAll(line, []byte{0}, []byte{'\n'})
		v, _, _ := bytes.Cut(line, []byte(" "))
		lower := make([]byte, len(v))
		for j, c := range v {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			lower[j] = c
		}
		switch string(lower) {
		case "quit":
			return out + s221
		case "helo", "ehlo", "mail", "rset", "noop":
			out += s250
		default:
			out += msg + "\r\n"
		}
	}
}

// FuzzSession: whatever the client sends, and however it is split into
// reads, the replies are those of rblsmtpd's command loop.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"HELO x\r\nEHLO y\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nrset\r\nnoop\r\nVRFY x\r\n\r\nquit\r\n",
		"QUIT\x00x\r\nquit\x00\r\nQUIT\r\r\nQUIT \r\n",
		"HELO\r\nQUIT",
		"\r\n\n\r\r\n",
		"QU\u0130T\r\nR\u017fET\r\nnOoP\n",
		strings.Repeat("x", 5000) + "\r\nHELO\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		want := refSession(in, "451 no")
		s := &Session{Message: "451 no"}
		for _, r := range []io.Reader{bytes.NewReader(in), iotest.OneByteReader(bytes.NewReader(in))} {
			var out bytes.Buffer
			if err := s.Serve(t.Context(), r, &out); err != nil {
				t.Fatalf("Serve: %v", err)
			}
			if out.String() != want {
				t.Fatalf("replies\n%q\nwant\n%q", out.String(), want)
			}
		}
	})
}

// FuzzMessage: the reply to a listed client is one line of at most 200
// bytes of printable ASCII after the code, byte for byte the list's text
// with every other byte as '?'.
func FuzzMessage(f *testing.F) {
	for _, s := range []string{"", "listed", "blocked because é\nx", "\tsec\x01\xff", strings.Repeat("é", 150), "-perm"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, text string, permanent bool) {
		code := 451
		if permanent {
			code = 553
		}
		m := Result{Code: code, Text: text}.Message()
		prefix := "451 "
		if permanent {
			prefix = "553 "
		}
		body, ok := strings.CutPrefix(m, prefix)
		if !ok {
			t.Fatalf("%q does not start with %q", m, prefix)
		}
		if len(body) != min(len(text), MaxText) {
			t.Fatalf("%d bytes of text from %d", len(body), len(text))
		}
		for i := 0; i < len(body); i++ {
			c, w := body[i], text[i]
			if c < 32 || c > 126 || (w >= 32 && w <= 126 && c != w) || ((w < 32 || w > 126) && c != '?') {
				t.Fatalf("byte %d: %#x for %#x", i, c, w)
			}
		}
		// $RBLSMTPD's text is cleaned the same way.
		if o := Override("x" + text); o.Code != 451 || o.Message() != "451 "+("x" + body)[:min(len(body)+1, MaxText)] {
			t.Fatalf("Override: %q", o.Message())
		}
	})
}

// FuzzDjbName: any dotted name either fails (label or name too long) or
// becomes a name miekg/dns packs, with as many labels as djb's reading
// gives.
func FuzzDjbName(f *testing.F) {
	for _, s := range []string{"7.2.0.192.zen.example", ".a..b.", `a\056b`, `a\777\`, "2001:db8::1.x", strings.Repeat("a", 64), strings.Repeat("ab.", 90)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		q, err := djbName(name)
		if err != nil {
			return
		}
		m := new(dns.Msg)
		m.SetQuestion(q, dns.TypeTXT)
		if _, err := m.Pack(); err != nil {
			t.Fatalf("djbName(%q) = %q: %v", name, q, err)
		}
		if !strings.Contains(name, `\`) {
			want := 0
			for _, l := range strings.Split(name, ".") {
				if l != "" {
					want++
				}
			}
			if got := dns.CountLabel(q); got != want {
				t.Fatalf("djbName(%q) = %q: %d labels, want %d", name, q, got, want)
			}
		}
	})
}

// FuzzTXT: whatever bytes a TXT record holds (split into character-strings
// of up to 255), LookupTXT's reading of miekg/dns's unpacked record gives
// them back unchanged, for the cleaning of the reply to see.
func FuzzTXT(f *testing.F) {
	f.Add([]byte("listed \tsec\x01\xff\"\\ caf\xc3\xa9"), uint8(7))
	f.Add(bytes.Repeat([]byte{0, '\\', '"', 200}, 300), uint8(255))
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		if len(data) > 1200 {
			return
		}
		size := max(int(chunk), 1)
		var rdata []byte
		for rest := data; ; {
			n := min(size, len(rest))
			rdata = append(append(rdata, byte(n)), rest[:n]...)
			rest = rest[n:]
			if len(rest) == 0 {
				break
			}
		}
		wire := []byte{0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 1, 'x', 0, 0, 16, 0, 1}
		wire = append(wire, 0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60, byte(len(rdata)>>8), byte(len(rdata)))
		wire = append(wire, rdata...)
		m := new(dns.Msg)
		if err := m.Unpack(wire); err != nil {
			t.Fatalf("unpack: %v", err)
		}
		got, err := txtBytes(m.Answer[0].(*dns.TXT))
		if err != nil || got != string(data) {
			t.Fatalf("txtBytes = %q, %v; want %q", got, err, data)
		}
	})
}
