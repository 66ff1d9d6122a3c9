package autorespond

import (
	"bufio"
	"strings"
	"testing"
	"time"
)

// TestCheck: each rule, in modern and in Compat mode.
func TestCheck(t *testing.T) {
	const me = "joe@example.com"
	tests := []struct {
		name      string
		sender    string
		header    string
		addressed bool
		modern    Reason
		compat    Reason
	}{
		{"plain", "bob@example.org", "To: joe@example.com\nSubject: hi\n", false, Replied, Replied},
		// RFC 3834 section 2: never to an empty return path; autorespond's
		// other senders.
		{"empty sender", "", "", false, NoSender, NoSender},
		{"mailer-daemon", "Mailer-Daemon@example.org", "", false, NoSender, NoSender},
		{"mailer-daemon prefix", "MAILER-DAEMONX@example.org", "", false, NoSender, NoSender},
		{"no at", "bob", "", false, NoSender, NoSender},
		{"double bounce", "#@[]", "", false, NoSender, NoSender},
		{"control character", "bob\n@example.org", "", false, NoSender, NoSender},
		{"owner-", "owner-list@example.org", "", false, NoSender, Replied},
		{"-request", "list-request@example.org", "", false, NoSender, Replied},
		{"angle bracket", "a<b>@example.org", "", false, NoSender, Replied},
		{"self", "JOE@example.com", "", false, FromSelf, Replied},
		{"self alias", "joe@example.net", "", false, FromSelf, Replied},
		// Lists (RFC 2369, RFC 2919).
		{"mailing-list", "bob@example.org", "Mailing-List: contact x@y\n", false, MailingList, MailingList},
		{"list-id", "bob@example.org", "List-Id: <l.example.org>\n", false, MailingList, Replied},
		{"list-unsubscribe", "bob@example.org", "list-unsubscribe: <mailto:u@x>\n", false, MailingList, Replied},
		// autorespond's own replies coming back.
		{"loop", "bob@example.org", "Delivered-To: Autoresponder\n", false, Loop, Loop},
		{"loop case", "bob@example.org", "delivered-to:  AUTORESPONDER \n", false, Loop, Loop},
		{"mailbox named autoresponder", "bob@example.org", "Delivered-To: autoresponder@example.com\n", false, Replied, Loop},
		{"loop second field", "bob@example.org", "Delivered-To: joe@example.com\nDelivered-To: Autoresponder\n", false, Loop, Replied},
		// Precedence.
		{"junk", "bob@example.org", "Precedence: junk\n", false, Bulk, Bulk},
		{"bulk", "bob@example.org", "Precedence: BULK\n", false, Bulk, Bulk},
		{"list", "bob@example.org", "Precedence: list\n", false, Bulk, Bulk},
		{"first-class", "bob@example.org", "Precedence: first-class\n", false, Replied, Replied},
		{"second precedence", "bob@example.org", "Precedence: normal\nPrecedence: bulk\n", false, Bulk, Replied},
		// RFC 3834 section 5: Auto-Submitted.
		{"auto-replied", "bob@example.org", "Auto-Submitted: auto-replied\n", false, AutoSubmitted, Replied},
		{"auto-generated", "bob@example.org", "Auto-Submitted: auto-generated; owner-email=x@y\n", false, AutoSubmitted, Replied},
		{"auto-notified", "bob@example.org", "Auto-Submitted: auto-notified\n", false, AutoSubmitted, Replied},
		{"auto-submitted no", "bob@example.org", "Auto-Submitted: No (a person)\n", false, Replied, Replied},
		{"auto-submitted empty", "bob@example.org", "Auto-Submitted:\n", false, AutoSubmitted, Replied},
		// RFC 3834 section 2: personal responders answer mail addressed to the
		// person.
		{"addressed to", "bob@example.org", "To: Joe <JOE@example.com>\n", true, Replied, Replied},
		{"addressed cc", "bob@example.org", "To: x@example.org\nCc: joe@example.net\n", true, Replied, Replied},
		{"addressed bcc", "bob@example.org", "Bcc: joe@example.com\n", true, Replied, Replied},
		{"addressed resent", "bob@example.org", "Resent-To: joe@example.com\n", true, Replied, Replied},
		{"not addressed", "bob@example.org", "To: list@example.org\n", true, NotAddressed, Replied},
		{"longer local part", "bob@example.org", "To: xjoe@example.com\n", true, NotAddressed, Replied},
		{"longer domain", "bob@example.org", "To: joe@example.com.evil\n", true, NotAddressed, Replied},
		{"in subject only", "bob@example.org", "To: x@y.example\nSubject: joe@example.com\n", true, NotAddressed, Replied},
		{"no To", "bob@example.org", "", true, NotAddressed, Replied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, compat := range []bool{false, true} {
				r := &Responder{Compat: compat, Addresses: []string{"joe@example.net"}, Addressed: tt.addressed}
				h, err := ReadHeader(bufio.NewReader(strings.NewReader(tt.header+"\nbody\n")), 1<<16, compat)
				if err != nil {
					t.Fatal(err)
				}
				want := tt.modern
				if compat {
					want = tt.compat
				}
				if got := r.Check(h, Envelope{Sender: tt.sender, Recipient: me}, epoch); got != want {
					t.Errorf("compat %v: %v, want %v", compat, got, want)
				}
			}
		})
	}
}

// TestActive: Since and Until bound the replies.
func TestActive(t *testing.T) {
	r := &Responder{Since: epoch, Until: epoch.Add(24 * time.Hour)}
	for _, tt := range []struct {
		at   time.Time
		want Reason
	}{
		{epoch.Add(-time.Second), Inactive},
		{epoch, Replied},
		{epoch.Add(24 * time.Hour), Replied},
		{epoch.Add(24*time.Hour + time.Second), Inactive},
	} {
		if got := r.Check(nil, Envelope{Sender: "a@b.example", Recipient: "j@e.example"}, tt.at); got != tt.want {
			t.Errorf("at %v: %v, want %v", tt.at, got, tt.want)
		}
	}
}

func TestReasonString(t *testing.T) {
	for r := Replied; r <= HeaderTooLarge; r++ {
		if s := r.String(); s == "" || strings.HasPrefix(s, "Reason(") {
			t.Errorf("%d: %q", r, s)
		}
	}
	if Reason(99).String() != "Reason(99)" {
		t.Error(Reason(99).String())
	}
}
