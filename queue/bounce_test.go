package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"strings"
	"testing"
	"time"
)

// The record of a failed recipient in bounce/N: "<addr>:", the report
// with a '/' before each empty line, and an empty line.
func TestBounceRecord(t *testing.T) {
	for _, tc := range []struct{ addr, report, want string }{
		{"n@ex.com", "Sorry, no mailbox here by that name. (#5.1.1)\n", "<n@ex.com>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"},
		{"nobody@example.com", "Sorry, no mailbox here by that name. (#5.1.1)\n", "<nobody@example.com>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"},
		{"r@x", "a\n\nb", "<r@x>:\na\n/b\n\n"},
		{"r@x", "", "<r@x>:\n\n"},
		{"r@x", "a\n\n\n", "<r@x>:\na\n/\n\n"},
		{"r@x", "a\n\n\n\n", "<r@x>:\na\n//\n\n"},
		{"bad\naddr@x", "t", "<bad_addr@x>:\nt\n\n"},
	} {
		if got := string(bounceRecord(tc.addr, tc.report)); got != tc.want {
			t.Errorf("bounceRecord(%q, %q) = %q, want %q", tc.addr, tc.report, got, tc.want)
		}
	}
}

func TestBounceEnvelope(t *testing.T) {
	b := Bounce{Host: "mx.ex.com", DoubleHost: "ex.com"}
	for _, tc := range []struct {
		sender         string
		env            string
		double, triple bool
	}{
		{"a@b", "F\x00Ta@b\x00", false, false},                                   // a bounce to the sender
		{"", "F#@[]\x00Tpostmaster@ex.com\x00", true, false},                     // a double bounce
		{"#@[]", "", false, true},                                                // a triple bounce: discarded
		{"list-owner-@ex.com-@[]", "F\x00Tlist-owner-@ex.com\x00", false, false}, // VERP: to the list owner
	} {
		env, double, triple := b.envelope(tc.sender)
		got := ""
		if !triple {
			got = string(envelopeRecords(Origin{}, env)[len("u0\x00p0\x00"):])
		}
		if got != tc.env || double != tc.double || triple != tc.triple {
			t.Errorf("envelope(%q) = %q double=%v triple=%v", tc.sender, got, double, triple)
		}
	}
	b.DoubleToEmpty = true
	if env, _, _ := b.envelope(""); env.Recipients[0] != "@ex.com" {
		t.Errorf("empty doublebounceto: %q", env.Recipients)
	}
	if env, _, _ := (Bounce{DoubleHost: "doublebouncehost"}).envelope(""); env.Recipients[0] != "postmaster@doublebouncehost" {
		t.Errorf("qmail's literal: %q", env.Recipients)
	}
}

// Empty Host and DoubleHost mean the machine's host name (os.Hostname), not
// qmail's literals "bouncehost" and "doublebouncehost", which stay
// reachable by setting them (as package mta does for qmail-send).
func TestBounceHostDefault(t *testing.T) {
	me, err := os.Hostname()
	if err != nil || me == "" {
		t.Skipf("no host name: %v", err)
	}
	for _, tc := range []struct {
		name                 string
		b                    Bounce
		from, double, report string
	}{
		{"zero", Bounce{}, "MAILER-DAEMON@" + me, "postmaster@" + me, "Reporting-MTA: dns; " + me},
		{"dsn", Bounce{DSN: true}, "MAILER-DAEMON@" + me, "postmaster@" + me, "Reporting-MTA: dns; " + me},
		{"host only", Bounce{Host: "mx.ex.com"}, "MAILER-DAEMON@mx.ex.com", "postmaster@" + me, "Reporting-MTA: dns; mx.ex.com"},
		{"double only", Bounce{DoubleHost: "ex.com", DSN: true}, "MAILER-DAEMON@" + me, "postmaster@ex.com", "Reporting-MTA: dns; " + me},
		{"qmail literals", Bounce{Host: "bouncehost", DoubleHost: "doublebouncehost", DSN: true}, "MAILER-DAEMON@bouncehost", "postmaster@doublebouncehost", "Reporting-MTA: dns; bouncehost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if env, _, _ := tc.b.envelope(""); env.Recipients[0] != tc.double {
				t.Errorf("double bounce to %q, want %q", env.Recipients[0], tc.double)
			}
			var w bytes.Buffer
			if err := tc.b.write(&w, bounceFixture(false)); err != nil {
				t.Fatal(err)
			}
			m, err := mail.ReadMessage(bytes.NewReader(w.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Header.Get("From"); got != tc.from {
				t.Errorf("From: %q, want %q", got, tc.from)
			}
			if tc.b.DSN && !strings.Contains(w.String(), tc.report) {
				t.Errorf("no %q in\n%s", tc.report, w.String())
			}
			if !tc.b.DSN && !strings.Contains(w.String(), "qmail-send program at "+strings.TrimPrefix(tc.from, "MAILER-DAEMON@")+".") {
				t.Errorf("greeting does not name %q:\n%s", tc.from, w.String())
			}
		})
	}
}

const origMess = "Received: (qmail 4242 invoked by uid 1000); 29 Jul 1996 11:35:35 -0000\nSubject: x\nTo: n@ex.com\n\nhi\n"

func bounceFixture(double bool) bounceMessage {
	m := bounceMessage{
		id:      457,
		sender:  "a@b",
		rcpt:    "a@b",
		records: append(bounceRecord("n@ex.com", "Sorry, no mailbox here by that name. (#5.1.1)\n"), bounceRecord("r@remote.example", "1.2.3.4 does not like recipient.\nRemote host said: 550 5.1.1 unknown user\nGiving up on 1.2.3.4.\n")...),
		mess:    strings.NewReader(origMess),
		birth:   time.Unix(838640135, 0),
		now:     time.Unix(838640135+3600, 0),
	}
	if double {
		m.sender, m.rcpt, m.double = "", "postmaster@ex.com", true
	}
	return m
}

// Golden bounce and double bounce (qmail-send's QSBMF texts).
func TestBounceGolden(t *testing.T) {
	b := Bounce{Host: "mx.ex.com", DoubleHost: "ex.com"}
	for _, tc := range []struct {
		name   string
		b      Bounce
		double bool
	}{
		{"bounce.golden", b, false},
		{"doublebounce.golden", b, true},
		{"bounce-maxbytes.golden", Bounce{Host: "mx.ex.com", MaxBytes: 80}, false},
		{"bounce-dsn.golden", Bounce{Host: "mx.ex.com", DSN: true}, false},
		{"bounce-dsn-maxbytes.golden", Bounce{Host: "mx.ex.com", DSN: true, MaxBytes: 90}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w bytes.Buffer
			if err := tc.b.write(&w, bounceFixture(tc.double)); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, w.Bytes())
			got := w.String()
			if tc.b.DSN {
				for _, want := range []string{"Content-Type: multipart/report;", "report-type=delivery-status",
					"Final-Recipient: rfc822; n@ex.com\nAction: failed\nStatus: 5.1.1\n",
					"Final-Recipient: rfc822; r@remote.example\nAction: failed\nStatus: 5.1.1\nRemote-MTA: dns; 1.2.3.4\nDiagnostic-Code: smtp; 550 5.1.1 unknown user\n", "Reporting-MTA: dns; mx.ex.com\n"} {
					if !strings.Contains(got, want) {
						t.Errorf("DSN lacks %q", want)
					}
				}
				if strings.Contains(got, "\r") {
					t.Error("DSN has CR")
				}
				return
			}
			head, body, _ := strings.Cut(got, "\n\n")
			if !strings.HasPrefix(body, "Hi. This is the qmail-send program at mx.ex.com.\n") || !strings.HasPrefix(body, "Hi. This is the") {
				t.Errorf("body starts %q", body[:40])
			}
			if !strings.Contains(head, "\nFrom: MAILER-DAEMON@mx.ex.com\n") || !strings.Contains(head, "\nSubject: failure notice") {
				t.Errorf("header %q", head)
			}
			brk, rp := "--- Below this line is a copy of the message.\n\nReturn-Path: <a@b>\n", "To: a@b\n"
			if tc.double {
				brk, rp = "--- Below this line is the original bounce.\n\nReturn-Path: <>\n", "To: postmaster@ex.com\n"
			}
			if !strings.Contains(got, brk) || !strings.Contains(head, rp) {
				t.Errorf("missing %q or %q", brk, rp)
			}
			// QSBMF: paragraphs, the recipient ones each start with <addr>:.
			paras := strings.Split(strings.SplitN(body, "\n\n--- ", 2)[0], "\n\n")
			if len(paras) != 3 || !strings.HasPrefix(paras[1], "<n@ex.com>:\n") || !strings.HasPrefix(paras[2], "<r@remote.example>:\n") {
				t.Errorf("paragraphs %q", paras)
			}
		})
	}
}

func TestCRLFToLF(t *testing.T) {
	var b bytes.Buffer
	c := &crlfToLF{w: &b}
	for _, p := range []string{"a\r", "\nb\r", "c\r\n\r", ""} {
		c.Write([]byte(p))
	}
	c.flush()
	if b.String() != "a\nb\rc\n\r" {
		t.Errorf("%q", b.String())
	}
}

// The DSN is a well-formed multipart/report that a MIME parser reads back.
func TestDSNParses(t *testing.T) {
	var w bytes.Buffer
	if err := (Bounce{Host: "mx.ex.com", DSN: true}).write(&w, bounceFixture(false)); err != nil {
		t.Fatal(err)
	}
	e, err := mail.ReadMessage(&w)
	if err != nil {
		t.Fatal(err)
	}
	ct, params, err := mime.ParseMediaType(e.Header.Get("Content-Type"))
	if err != nil || ct != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("content type %q %v %v", ct, params, err)
	}
	mr := multipart.NewReader(e.Body, params["boundary"])
	var types []string
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		types = append(types, ct)
		body, _ := io.ReadAll(p)
		if ct == "message/rfc822" && !strings.HasSuffix(string(body), "\nhi\n") {
			t.Errorf("original message part %q", body)
		}
		if ct == "message/delivery-status" {
			// The local failure keeps qmail's text; the remote one is the
			// server's reply, with its status and host.
			for _, want := range []string{
				"Final-Recipient: rfc822; n@ex.com\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: X-qmail; Sorry, no mailbox here by that name. (#5.1.1)\n",
				"Final-Recipient: rfc822; r@remote.example\nAction: failed\nStatus: 5.1.1\nRemote-MTA: dns; 1.2.3.4\nDiagnostic-Code: smtp; 550 5.1.1 unknown user\n",
			} {
				if !strings.Contains(string(body), want) {
					t.Errorf("delivery-status part without %q:\n%s", want, body)
				}
			}
		}
	}
	if strings.Join(types, " ") != "text/plain message/delivery-status message/rfc822" {
		t.Errorf("parts %v", types)
	}
}

// Header fields are folded as go-message v0.18 folded them when it wrote
// these reports (testdata/fold.json is its output), so that reports stay
// byte-identical: at the last space or tab within 76 bytes, a longer word
// kept whole up to 998 bytes, a value with CR or LF refused.
func TestWriteField(t *testing.T) {
	b, err := os.ReadFile("testdata/fold.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Key, Value, Want string
		Err              bool
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		var w bytes.Buffer
		err := writeField(&w, tc.Key, tc.Value)
		if tc.Err {
			if !errors.Is(err, errFieldNewline) {
				t.Errorf("writeField(%q, %q): error %v, want errFieldNewline", tc.Key, tc.Value, err)
			}
			continue
		}
		if err != nil || w.String() != tc.Want {
			t.Errorf("writeField(%q, %q) = %q, %v\nwant %q", tc.Key, tc.Value, w.String(), err, tc.Want)
		}
	}
}

// A recipient whose address holds a newline cannot inject header fields
// into the report: the report is refused.
func TestDSNHeaderInjection(t *testing.T) {
	m := bounceFixture(false)
	m.rcpt = "a\nBcc: victim@example.com\n@b"
	var w bytes.Buffer
	err := (Bounce{Host: "mx.ex.com", DSN: true}).write(&w, m)
	if !errors.Is(err, errFieldNewline) {
		t.Fatalf("write: %v, want errFieldNewline; wrote\n%s", err, w.String())
	}
	if strings.Contains(w.String(), "Bcc:") {
		t.Errorf("injected field written:\n%s", w.String())
	}
}

// FuzzWriteField: every line of a folded field ends in CRLF, every line
// but the first starts with a space or tab, no line is longer than 998
// bytes and more, and the field unfolds (each CRLF removed) to the value
// unless it holds a word too long to fit a line, where a space is
// inserted.
func FuzzWriteField(f *testing.F) {
	for _, s := range []string{"", "a", " lead", "multipart/report; boundary=qmailkit-457-838643735; report-type=delivery-status", strings.Repeat("word ", 40), strings.Repeat("y", 1200), "a\tb c", strings.Repeat(" ", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		var w bytes.Buffer
		if err := writeField(&w, "To", v); err != nil {
			if !strings.ContainsAny(v, "\r\n") {
				t.Fatalf("writeField(%q): %v", v, err)
			}
			return
		}
		out := w.String()
		if !strings.HasPrefix(out, "To: ") || !strings.HasSuffix(out, "\r\n") {
			t.Fatalf("writeField(%q) = %q", v, out)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
		for i, l := range lines {
			if i > 0 && (l == "" || l[0] != ' ' && l[0] != '\t') {
				t.Fatalf("writeField(%q): continuation line %q", v, l)
			}
			if len(l) > foldHard+1 {
				t.Fatalf("writeField(%q): line of %d bytes", v, len(l))
			}
		}
		longWord := false
		for _, word := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\t' }) {
			longWord = longWord || len(word) > foldHard-10
		}
		unfolded := strings.ReplaceAll(strings.TrimSuffix(out, "\r\n"), "\r\n", "")
		if !longWord && unfolded != "To: "+v {
			t.Fatalf("writeField(%q) unfolds to %q", v, unfolded)
		}
	})
}
