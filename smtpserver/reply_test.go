package smtpserver

import "testing"

func TestReplyFormat(t *testing.T) {
	tests := []struct {
		r    Reply
		enh  bool
		want string
	}{
		{Reply{250, "", "ok"}, false, "250 ok\r\n"},
		{Reply{250, "2.1.5", "ok"}, true, "250 2.1.5 ok\r\n"},
		{Reply{553, "", "sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"}, true, "553 5.7.1 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n"},
		{Reply{451, "", "qq temporary problem (#4.3.0)"}, true, "451 4.3.0 qq temporary problem (#4.3.0)\r\n"},
		{Reply{451, "", "no code here"}, true, "451 4.0.0 no code here\r\n"},
		{Reply{554, "", "bad (#9.x.1)"}, true, "554 5.0.0 bad (#9.x.1)\r\n"},
		{Reply{354, "", "go ahead"}, true, "354 go ahead\r\n"},
		{Reply{334, "", ""}, true, "334 \r\n"},
		{Reply{250, "", "a\nb\nc"}, false, "250-a\r\n250-b\r\n250 c\r\n"},
		{Reply{554, "5.3.0", "evil\r\n250 ok\x00"}, true, "554-5.3.0 evil?\r\n554 5.3.0 250 ok?\r\n"},
	}
	for _, tt := range tests {
		if got := string(tt.r.format(tt.enh)); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.r, got, tt.want)
		}
	}
	if !(Reply{Code: 550}).Permanent() || (Reply{Code: 451}).Permanent() {
		t.Error("Permanent")
	}
}
