package smtpserver

import (
	"context"
	"fmt"
	"io"
	"maps"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// dsnSink is a DSNEnqueuer that keeps the DSN parameters it is given.
type dsnSink struct {
	sink
	mu    sync.Mutex
	mail  []map[string]string
	rcpt  [][]map[string]string
	plain int // messages given through Enqueue
}

func (k *dsnSink) Enqueue(ctx context.Context, from string, to []string, r io.Reader) (string, error) {
	k.mu.Lock()
	k.plain++
	k.mu.Unlock()
	return k.sink.Enqueue(ctx, from, to, r)
}

func (k *dsnSink) EnqueueDSN(ctx context.Context, from string, to []string, mail map[string]string, rcpt []map[string]string, r io.Reader) (string, error) {
	if rcpt != nil && len(rcpt) != len(to) {
		return "", fmt.Errorf("%d recipients, %d parameter maps", len(to), len(rcpt))
	}
	k.mu.Lock()
	k.mail = append(k.mail, maps.Clone(mail))
	k.rcpt = append(k.rcpt, rcpt)
	k.mu.Unlock()
	return k.sink.Enqueue(ctx, from, to, r)
}

func TestDecodeXtext(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"abc", "abc", true},
		{"a+2Bb", "a+b", true},
		{"a+3Db", "a=b", true},
		{"a+3db", "a=b", true}, // lower-case hex accepted
		{"+20", " ", true},
		{"+E9", "\xe9", true},
		{"", "", true},
		{"+zz", "", false},
		{"a+", "", false},
		{"a+4", "", false},
		{"a+4G", "", false},
		{"a=b", "", false},
		{"a b", "", false},
		{"a\x00b", "", false},
		{"a\x7fb", "", false},
		{"a\xc3\xa9", "", false},
		{"+00", "", false},
		{"+0D+0A", "", false},
		{"+7F", "", false},
		{"+1F", "", false},
	}
	for _, tt := range tests {
		got, ok := decodeXtext(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("decodeXtext(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseNotify(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"NEVER", "NEVER", true},
		{"never", "NEVER", true},
		{"SUCCESS", "SUCCESS", true},
		{"delay,failure", "FAILURE,DELAY", true},
		{"FAILURE,SUCCESS,DELAY", "SUCCESS,FAILURE,DELAY", true},
		{"", "", false},
		{"NEVER,SUCCESS", "", false},
		{"SUCCESS,NEVER", "", false},
		{"SUCCESS,SUCCESS", "", false},
		{"SUCCESS,", "", false},
		{",SUCCESS", "", false},
		{"SUCCESS FAILURE", "", false},
		{"ALWAYS", "", false},
	}
	for _, tt := range tests {
		got, ok := parseNotify(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseNotify(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseRcptParams(t *testing.T) {
	long := "rfc822;" + strings.Repeat("a", 493) // 500 characters
	tests := []struct {
		rest string
		dsn  bool
		want map[string]string
		code int
	}{
		{"", true, nil, 0},
		{"  ", true, nil, 0},
		{"NOTIFY=SUCCESS", true, map[string]string{"NOTIFY": "SUCCESS"}, 0},
		{"notify=failure,delay orcpt=rfc822;a+2Bb@c", true, map[string]string{"NOTIFY": "FAILURE,DELAY", "ORCPT": "rfc822;a+b@c"}, 0},
		{"ORCPT=utf-8;j+C3+B6e@c", true, map[string]string{"ORCPT": "utf-8;j\xc3\xb6e@c"}, 0},
		{"ORCPT=" + long, true, map[string]string{"ORCPT": long}, 0},
		{"NOTIFY=SUCCESS", false, nil, 555},
		{"FOO=BAR", true, nil, 555},
		{"ORCPT=" + long + "a", true, nil, 501},
		{"NOTIFY=SUCCESS NOTIFY=FAILURE", true, nil, 501},
		{"ORCPT=rfc822;a@b ORCPT=rfc822;a@b", true, nil, 501},
		{"NOTIFY", true, nil, 501},
		{"NOTIFY=", true, nil, 501},
		{"NOTIFY=NEVER,SUCCESS", true, nil, 501},
		{"ORCPT=rfc822", true, nil, 501},
		{"ORCPT=rfc822;", true, nil, 501},
		{"ORCPT=;a@b", true, nil, 501},
		{"ORCPT=rfc(822);a@b", true, nil, 501},
		{"ORCPT=rfc822;a+zz@b", true, nil, 501},
		{"ORCPT=rfc822;a@b+", true, nil, 501},
		{"ORCPT=rfc822;a+0D+0Ab@c", true, nil, 501},
		{"ORCPT=rfc822;a+00b@c", true, nil, 501},
	}
	for _, tt := range tests {
		got, r := parseRcptParams(tt.rest, tt.dsn)
		code := 0
		if r != nil {
			code = r.Code
			if r.Enhanced != "5.5.4" {
				t.Errorf("parseRcptParams(%q): enhanced %q", tt.rest, r.Enhanced)
			}
		}
		if code != tt.code || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseRcptParams(%q, %v) = %v, %d; want %v, %d", tt.rest, tt.dsn, got, code, tt.want, tt.code)
		}
	}
}

func TestParseMailParamsDSN(t *testing.T) {
	tests := []struct {
		rest string
		dsn  bool
		want map[string]string
		code int
	}{
		{"", true, nil, 0},
		{"RET=HDRS", true, map[string]string{"RET": "HDRS"}, 0},
		{"ret=full ENVID=QQ+2B1", true, map[string]string{"RET": "FULL", "ENVID": "QQ+1"}, 0},
		{"ENVID=" + strings.Repeat("x", 100), true, map[string]string{"ENVID": strings.Repeat("x", 100)}, 0},
		{"SIZE=10 ENVID=x BODY=8BITMIME", true, map[string]string{"ENVID": "x"}, 0},
		{"RET=HDRS", false, nil, 555},
		{"ENVID=x", false, nil, 555},
		{"RET=ALL", true, nil, 501},
		{"RET", true, nil, 501},
		{"RET=HDRS RET=HDRS", true, nil, 501},
		{"ENVID=a ENVID=b", true, nil, 501},
		{"ENVID=", true, nil, 501},
		{"ENVID", true, nil, 501},
		{"ENVID=" + strings.Repeat("x", 101), true, nil, 501},
		{"ENVID=a+zz", true, nil, 501},
		{"ENVID=a+", true, nil, 501},
		{"ENVID=a+00", true, nil, 501},
		{"ENVID=a=b", true, nil, 501},
	}
	for _, tt := range tests {
		p, r := parseMailParams(tt.rest, true, false, tt.dsn)
		code := 0
		if r != nil {
			code = r.Code
		}
		if got := p.dsn(); code != tt.code || code == 0 && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseMailParams(%q, dsn=%v) = %v, %d; want %v, %d", tt.rest, tt.dsn, got, code, tt.want, tt.code)
		}
	}
}

// TestDSNSession runs DSN transactions over a connection: the extension is
// offered only to an Enqueuer that takes the parameters and never in
// Compat mode, and the parameters reach the Enqueuer per recipient.
func TestDSNSession(t *testing.T) {
	t.Run("offered", func(t *testing.T) {
		k := &dsnSink{}
		srv := compatServer(&k.sink)
		srv.Compat = false
		srv.Enqueuer = k
		c := start(t, srv, qmailEnv())
		c.expect("220 *")
		c.send("EHLO x\r\n")
		if lines := c.reply(); !strings.Contains(strings.Join(lines, "\n"), "250-DSN\n") && lines[len(lines)-1] != "250 DSN" {
			t.Fatalf("EHLO reply without DSN: %q", lines)
		}
		c.send("MAIL FROM:<a@example.net> RET=HDRS ENVID=QQ+2B314\r\n")
		c.expect("250 2.1.0 *")
		c.send("RCPT TO:<b@example.com> NOTIFY=FAILURE ORCPT=rfc822;b+2Bx@example.com\r\n")
		c.expect("250 2.1.5 *")
		c.send("RCPT TO:<c@example.com>\r\n")
		c.expect("250 2.1.5 *")
		c.send("RCPT TO:<b@example.com> NOTIFY=NEVER\r\n") // a duplicate: its first parameters stay
		c.expect("250 2.1.5 *")
		c.send("RCPT TO:<d@example.com> NOTIFY=NEVER,SUCCESS\r\n")
		c.expect("501 5.5.4 *")
		c.send("RCPT TO:<d@example.com> NOTIFY=SUCCESS NOTIFY=SUCCESS\r\n")
		c.expect("501 5.5.4 *")
		c.send("RCPT TO:<d@example.com> X=Y\r\n")
		c.expect("555 5.5.4 *")
		c.send("RCPT TO:<d@example.com> NOTIFY=SUCCESS,DELAY\r\n")
		c.expect("250 2.1.5 *")
		c.send("DATA\r\n")
		c.expect("354 *")
		c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
		c.expect("250 2.0.0 *")
		// A transaction without parameters takes the plain path.
		c.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
		c.expect("250 2.1.0 *")
		c.expect("250 2.1.5 *")
		c.expect("354 *")
		c.send("x\r\n.\r\n")
		c.expect("250 2.0.0 *")
		// BDAT carries them too; RSET forgets them.
		c.send("MAIL FROM:<a@example.net> ENVID=e1\r\nRSET\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.com> ORCPT=rfc822;b@example.com\r\n")
		c.expect("250 2.1.0 *")
		c.expect("250 2.0.0 *")
		c.expect("250 2.1.0 *")
		c.expect("250 2.1.5 *")
		c.send("BDAT 3 LAST\r\nx\r\n")
		c.expect("250 2.0.0 *")
		c.send("QUIT\r\n")
		c.expect("221 *")
		c.wait()
		if k.plain != 1 || len(k.mail) != 2 {
			t.Fatalf("plain %d, dsn %d", k.plain, len(k.mail))
		}
		if want := map[string]string{"RET": "HDRS", "ENVID": "QQ+314"}; !reflect.DeepEqual(k.mail[0], want) {
			t.Errorf("mail params %v, want %v", k.mail[0], want)
		}
		want := []map[string]string{
			{"NOTIFY": "FAILURE", "ORCPT": "rfc822;b+x@example.com"},
			nil,
			{"NOTIFY": "SUCCESS,DELAY"},
		}
		if !reflect.DeepEqual(k.rcpt[0], want) {
			t.Errorf("rcpt params %v, want %v", k.rcpt[0], want)
		}
		msgs := k.messages()
		if got := msgs[0].to; !reflect.DeepEqual(got, []string{"b@example.com", "c@example.com", "d@example.com"}) {
			t.Errorf("recipients %q", got)
		}
		if k.mail[1] != nil || !reflect.DeepEqual(k.rcpt[1], []map[string]string{{"ORCPT": "rfc822;b@example.com"}}) {
			t.Errorf("BDAT params %v %v", k.mail[1], k.rcpt[1])
		}
	})
	for _, tc := range []struct {
		name   string
		compat bool
		plain  bool // an Enqueuer without EnqueueDSN
	}{{"compat", true, false}, {"plain enqueuer", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			k := &dsnSink{}
			srv := compatServer(&k.sink)
			srv.Compat = tc.compat
			srv.Enqueuer = k
			if tc.plain {
				srv.Enqueuer = &k.sink
			}
			c := start(t, srv, qmailEnv())
			c.expect("220 *")
			c.send("EHLO x\r\n")
			if lines := c.reply(); strings.Contains(strings.Join(lines, "\n"), "DSN") {
				t.Fatalf("DSN offered: %q", lines)
			}
			c.send("MAIL FROM:<a@example.net> RET=HDRS\r\n")
			if tc.compat {
				c.expect("250 ok*") // qmail ignores parameters
				c.send("RCPT TO:<b@example.com> NOTIFY=NEVER\r\n")
				c.expect("250 ok*")
			} else {
				c.expect("555 5.5.4 *")
				c.send("MAIL FROM:<a@example.net>\r\n")
				c.expect("250 2.1.0 *")
				c.send("RCPT TO:<b@example.com> NOTIFY=NEVER\r\n")
				c.expect("555 5.5.4 *")
			}
			c.send("QUIT\r\n")
			c.expect("221 *")
			c.wait()
			if len(k.mail) != 0 {
				t.Errorf("EnqueueDSN called")
			}
		})
	}
}

// TestDSNManyRecipients gives 1000 recipients, each with the longest ORCPT:
// each is kept once, the limit on recipients bounds the memory, and the
// 1001st is refused as any other.
func TestDSNManyRecipients(t *testing.T) {
	k := &dsnSink{}
	srv := compatServer(&k.sink)
	srv.Compat = false
	srv.Enqueuer = k
	c := start(t, srv, qmailEnv())
	c.expect("220 *")
	c.send("EHLO x\r\n")
	c.reply()
	c.send("MAIL FROM:<a@example.net>\r\n")
	c.expect("250 *")
	orcpt := strings.Repeat("+41", 164) // 492 bytes encoded
	for i := range 1001 {
		c.send(fmt.Sprintf("RCPT TO:<r%d@example.com> NOTIFY=SUCCESS ORCPT=rfc822;%s\r\n", i, orcpt))
		if i < 1000 {
			c.expect("250 *")
		} else {
			c.expect("452 *")
		}
	}
	c.send("DATA\r\n")
	c.expect("354 *")
	c.send("x\r\n.\r\n")
	c.expect("250 *")
	c.send("QUIT\r\n")
	c.expect("221 *")
	c.wait()
	if len(k.rcpt) != 1 || len(k.rcpt[0]) != 1000 || k.rcpt[0][999]["ORCPT"] != "rfc822;"+strings.Repeat("A", 164) {
		t.Fatalf("got %d messages", len(k.rcpt))
	}
}

// FuzzDSNParams checks that the parameter parsers never accept what they
// must refuse: every accepted value is within RFC 3461's limits and free
// of control characters, and NOTIFY's is canonical.
func FuzzDSNParams(f *testing.F) {
	for _, s := range []string{"NOTIFY=NEVER", "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bb@c", "ORCPT=x;+zz", "RET=HDRS ENVID=a+", "ENVID=+00", "NOTIFY=NEVER,SUCCESS"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		p, r := parseRcptParams(rest, true)
		if r == nil {
			for k, v := range p {
				if hasControl(v) && k != "ORCPT" || strings.ContainsAny(v, "\x00\r\n") {
					t.Fatalf("%s=%q accepted", k, v)
				}
			}
			if n, ok := p["NOTIFY"]; ok {
				if again, ok := parseNotify(n); !ok || again != n {
					t.Fatalf("NOTIFY %q not canonical", n)
				}
			}
		}
		m, r := parseMailParams(rest, true, true, true)
		if r == nil && m.hasEnvID && (m.envid == "" || len(m.envid) > maxEnvID || hasControl(m.envid)) {
			t.Fatalf("ENVID %q accepted", m.envid)
		}
		if dec, ok := decodeXtext(rest); ok && len(dec) > len(rest) {
			t.Fatalf("xtext %q decoded longer", rest)
		}
	})
}
