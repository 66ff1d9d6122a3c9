package smtpclient

import (
	"slices"
	"strings"
	"testing"
)

func TestXtext(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abc", "abc"},
		{"a+b=c", "a+2Bb+3Dc"},
		{"a b", "a+20b"},
		{"\r\n", "+0D+0A"},
		{"\x00", "+00"},
		{"jö", "j+C3+B6"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := xtext(tt.in); got != tt.want {
			t.Errorf("xtext(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// The DSN parameters go on MAIL and RCPT only to a server that offers
// DSN; DSNPassed tells for which recipients the server took a NOTIFY.
func TestDeliverDSN(t *testing.T) {
	dsn := &DSN{Ret: "HDRS", EnvID: "id+1 x", Recipients: []RecipientDSN{
		{Notify: "SUCCESS,FAILURE", ORcpt: "rfc822;a+b@example.net"},
		{ORcpt: "rfc822;b@example.net"},
		{Notify: "NEVER\r\nRSET", ORcpt: "bad type;c@example.net"}, // not sendable: dropped
		{Notify: "SUCCESS"},
	}}
	rcpts := []string{"a@example.net", "b@example.net", "c@example.net", "d@example.net", "e@example.net"}
	for _, tc := range []struct {
		name   string
		ext    []string
		compat bool
		want   []string
		passed []bool
	}{
		{
			name: "offered, pipelined",
			ext:  []string{"PIPELINING", "DSN"},
			want: []string{"MAIL FROM:<s@example.org> RET=HDRS ENVID=id+2B1+20x",
				"RCPT TO:<a@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bb@example.net",
				"RCPT TO:<b@example.net> ORCPT=rfc822;b@example.net",
				"RCPT TO:<c@example.net>",
				"RCPT TO:<d@example.net> NOTIFY=SUCCESS",
				"RCPT TO:<e@example.net>"},
			passed: []bool{true, false, false, false, false}, // d refused below
		},
		{
			name: "offered, one at a time",
			ext:  []string{"DSN"},
			want: []string{"MAIL FROM:<s@example.org> RET=HDRS ENVID=id+2B1+20x",
				"RCPT TO:<a@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bb@example.net",
				"RCPT TO:<b@example.net> ORCPT=rfc822;b@example.net",
				"RCPT TO:<c@example.net>",
				"RCPT TO:<d@example.net> NOTIFY=SUCCESS",
				"RCPT TO:<e@example.net>"},
			passed: []bool{true, false, false, false, false},
		},
		{
			name: "not offered",
			ext:  []string{"PIPELINING"},
			want: []string{"MAIL FROM:<s@example.org>", "RCPT TO:<a@example.net>", "RCPT TO:<b@example.net>",
				"RCPT TO:<c@example.net>", "RCPT TO:<d@example.net>", "RCPT TO:<e@example.net>"},
			passed: []bool{false, false, false, false, false},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.SetExt(tc.ext)
			f.SetReply(func(step string, n int, line string) string {
				if step == "RCPT" && strings.HasPrefix(line, "RCPT TO:<d@") {
					return "550 5.1.1 no"
				}
				return ""
			})
			c := fakeClient(t, f)
			res, err := c.DeliverDSN(t.Context(), "example.net", "s@example.org", rcpts, strings.NewReader(testMsg), dsn)
			if err != nil {
				t.Fatal(err)
			}
			f.Settle()
			var got []string
			for _, l := range f.Log() {
				if strings.HasPrefix(l, "MAIL") || strings.HasPrefix(l, "RCPT") {
					got = append(got, l)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("dialogue\n got %q\nwant %q", got, tc.want)
			}
			for i, r := range res.Recipients {
				if r.DSNPassed != tc.passed[i] {
					t.Errorf("%s: DSNPassed %v", r.Address, r.DSNPassed)
				}
			}
			if res.Recipients[3].Err == nil {
				t.Error("d accepted")
			}
		})
	}
}

// QmailCompat never sends the parameters (it sends HELO, not EHLO).
func TestDeliverDSNCompat(t *testing.T) {
	f := newFake(t)
	f.SetExt([]string{"DSN"})
	c := fakeClient(t, f)
	c.QmailCompat = true
	res, err := c.DeliverDSN(t.Context(), "example.net", "s@example.org", []string{"a@example.net"}, strings.NewReader(testMsg),
		&DSN{Ret: "FULL", Recipients: []RecipientDSN{{Notify: "SUCCESS"}}})
	if err != nil {
		t.Fatal(err)
	}
	f.Settle()
	for _, l := range f.Log() {
		if strings.Contains(l, "NOTIFY") || strings.Contains(l, "RET=") {
			t.Errorf("sent %q", l)
		}
	}
	if res.Recipients[0].DSNPassed {
		t.Error("DSNPassed in compat mode")
	}
}

// Abuse: a huge ORCPT and ENVID are encoded, never split a line.
func TestDeliverDSNHuge(t *testing.T) {
	f := newFake(t)
	f.SetExt([]string{"DSN"})
	c := fakeClient(t, f)
	big := strings.Repeat("\r\n ", 300)
	_, err := c.DeliverDSN(t.Context(), "example.net", "s@example.org", []string{"a@example.net"}, strings.NewReader(testMsg),
		&DSN{EnvID: big, Recipients: []RecipientDSN{{ORcpt: "rfc822;" + big}}})
	if err != nil {
		t.Fatal(err)
	}
	f.Settle()
	log := f.Log()
	enc := strings.Repeat("+0D+0A+20", 300)
	if !slices.Contains(log, "MAIL FROM:<s@example.org> ENVID="+enc) || !slices.Contains(log, "RCPT TO:<a@example.net> ORCPT=rfc822;"+enc) {
		t.Errorf("dialogue %q", log)
	}
}
