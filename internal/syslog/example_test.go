package syslog_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/internal/syslog"
)

// printer is a Sender that prints what would be sent.
type printer struct{ l *syslog.Logger }

func (p printer) Log(sev int, msg string) error {
	fmt.Printf("%s\n", p.l.Format(sev, msg, time.Date(2026, 12, 7, 9, 5, 1, 0, time.UTC)))
	return nil
}

// splogger's copy of qmail-send's log, as syslog(3) would send it.
func ExampleSplog() {
	l := &syslog.Logger{Ident: "qmail", Facility: syslog.Mail}
	in := "status: local 0/10 remote 0/20\nwarning: trouble injecting bounce message, will try later\nunterminated"
	syslog.Splog(strings.NewReader(in), printer{l}, func() time.Time { return time.Unix(1700000000, 123456000) })
	// Output:
	// <22>Dec  7 09:05:01 qmail: 1700000000.123456 status: local 0/10 remote 0/20
	// <20>Dec  7 09:05:01 qmail: 1700000000.123456 warning: trouble injecting bounce message, will try later
}
