package autorespond_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/autorespond"
)

// A vacation message: the first message from a sender is answered, the
// second within the week is not, and a list's message never is.
func ExampleResponder_Respond() {
	dir, _ := os.MkdirTemp("", "vacation-")
	defer os.RemoveAll(dir)
	r := &autorespond.Responder{
		Subject: "Away until Monday",
		Body:    "I am away until Monday 14 December and will answer then.\n",
		Dir:     dir,
		Now:     func() time.Time { return time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC) },
		// Forwarder: &dotqmail.QueueProgram{} would queue the reply.
	}
	env := autorespond.Envelope{Sender: "bob@example.org", Recipient: "joe@example.com"}
	msg := "From: Bob <bob@example.org>\nTo: joe@example.com\nSubject: lunch?\nMessage-ID: <1@example.org>\n\nAre you free?\n"

	res, err := r.Respond(context.Background(), strings.NewReader(msg), env)
	fmt.Println(res.Reason, err)
	head, _, _ := strings.Cut(string(res.Reply), "\n\n")
	for line := range strings.SplitSeq(head, "\n") {
		if !strings.HasPrefix(line, "Message-ID:") {
			fmt.Println(line)
		}
	}

	res, _ = r.Respond(context.Background(), strings.NewReader(msg), env)
	fmt.Println(res.Reason)

	res, _ = r.Respond(context.Background(), strings.NewReader("List-Id: <l.example.org>\n\nhi\n"),
		autorespond.Envelope{Sender: "carol@example.org", Recipient: "joe@example.com"})
	fmt.Println(res.Reason)
	// Output:
	// replied <nil>
	// From: <joe@example.com>
	// To: <bob@example.org>
	// Subject: Away until Monday
	// Date: Tue, 08 Dec 2026 10:00:00 +0000
	// In-Reply-To: <1@example.org>
	// References: <1@example.org>
	// Auto-Submitted: auto-replied
	// MIME-Version: 1.0
	// Content-Type: text/plain; charset=utf-8
	// Content-Transfer-Encoding: 7bit
	// too many replies to this sender
	// mailing list
}
