package inject

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

var fuzzSeeds = []string{
	"To: bob\n\nhi\n",
	"To: a, b\nCc: c\nBcc: d\n\n",
	"Resent-To: carol\nTo: bob\n\n",
	"Return-Path: <rp@x.org>\nTo: bob\n\n",
	"To: joe@mac+, x@host., <@r1,@r2:u@v.org>, u@[10.0.0.1], djb fred\n\n",
	"To: foo: bar, baz\n",
	"To: \"open\n",
	"From: joe)\n\n",
	"From: a: b\n\n",
	"From me Mon Jan  1 00:00:00 2024\nTo: bob\n\n",
	"To: bob\nthis is not a header\n",
	"Content-Length: 5\nTo: bob\n\n",
	"To: \"Bob B\" <bob> (friend (nested)), (c) carol\\ x, team: a, b;\n\n",
	"Cc: <>, foo@[], <@>, <.>, @, ., a\\\n\n",
	"Reply-To: [x\\]y] , \"q\\\"\" <a@b>\n\n",
	"To: bob\r\nSubject: x\r\n\r\nbody",
}

// FuzzPrepare runs the header parser and rewriter on any input: it must not
// panic, the body must come out as it went in (plus a final newline), and
// every rewritten field must lex again.
func FuzzPrepare(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	in := &Injector{DefaultHost: "ex.com", DefaultDomain: "ex.com", PlusDomain: "ex.com", IDHost: "mail.ex.com",
		User: "joe", SenderUser: "joe", MFT: []string{"list@ex.com"},
		Now: func() time.Time { return time.Unix(1700000000, 0) }, PID: 4321, MaxHeaderBytes: 1 << 16}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := in.Prepare(bytes.NewReader(data), Options{Strategy: ArgsAndHeader, Args: []string{"x"}})
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		out, err := io.ReadAll(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(out, m.Header) {
			t.Fatal("message does not start with its header")
		}
		if len(m.Recipients) == 0 || m.Recipients[0] != "x@ex.com" {
			t.Fatalf("recipients %q", m.Recipients)
		}
		if len(out) > 0 && out[len(out)-1] != '\n' {
			t.Fatalf("message does not end in a newline: %q", out)
		}
		// The body is the input after its header, untouched.
		if i := bytes.Index(data, []byte("\n\n")); i >= 0 && !bytes.Contains(data[:i+1], []byte("\nFrom ")) {
			body := data[i+1:]
			if len(body) > 1 && !bytes.HasSuffix(out, body) && !bytes.HasSuffix(out, append(append([]byte(nil), body...), '\n')) {
				t.Fatalf("body %q lost in %q", body, out)
			}
		}
	})
}

// FuzzTokens checks the lexer and printer: what unparse prints lexes again,
// and an address list that parsed prints as something that lexes.
func FuzzTokens(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	rw := &rewriter{
		defaultDomain: []token{{typ: tDot}, {typ: tAtom, s: "ex"}},
		defaultHost:   []token{{typ: tAt}, {typ: tAtom, s: "h"}},
		plusDomain:    []token{{typ: tDot}, {typ: tAtom, s: "p"}},
	}
	f.Fuzz(func(t *testing.T, s string) {
		field := []byte("To: " + s)
		toks, ok := tokenize(field)
		if !ok {
			return
		}
		printed := unparse(toks, lineLen)
		if _, ok := tokenize(printed); !ok {
			t.Fatalf("%q printed as %q, which does not lex", s, printed)
		}
		if !bytes.HasSuffix(printed, []byte("\n")) {
			t.Fatalf("%q printed without a final newline: %q", s, printed)
		}
		out, ok := addrList(toks, rw.rewrite)
		if !ok {
			return
		}
		printed = unparse(out, lineLen)
		if _, ok := tokenize(printed); !ok {
			t.Fatalf("%q rewritten as %q, which does not lex", s, printed)
		}
		if !strings.HasPrefix(string(printed), "To:") {
			t.Fatalf("field name lost: %q", printed)
		}
	})
}
