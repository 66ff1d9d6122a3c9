package maildir_test

import (
	"os"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/maildir"
)

// One message in qmail's maildir2mbox form.
func ExampleWriteMbox() {
	msg := "Return-Path: <joe@example.org>\nSubject: hi\n\nFrom here on\n"
	maildir.WriteMbox(os.Stdout, strings.NewReader(msg), time.Date(2000, 1, 2, 3, 4, 5, 0, time.UTC))
	// Output:
	// From joe@example.org Sun Jan 02 03:04:05 2000
	// Return-Path: <joe@example.org>
	// Subject: hi
	//
	// >From here on
}
