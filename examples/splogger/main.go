// Command splogger is a drop-in for qmail's splogger: it copies the lines
// of its standard input to syslog, as qmail-start's logger
// (splogger(8)).
//
//	splogger [tag [facility]]
//
// Messages go to the daemon's socket /dev/log as the C library's syslog(3)
// sends them after openlog(tag, 0, facility): tag defaults to "splogger",
// no process id is added; facility is mail, or, when given, its leading
// decimal number times 8 (2 is mail; as in glibc, 0 or a value too large
// leaves syslog's default, user). Each line is logged as "STAMP TEXT",
// STAMP being the time as SECONDS.MICROSECONDS; bytes outside 32-126
// become '?'; empty lines are skipped; a line of more than 799 bytes goes
// out in pieces of 799, the later ones as "STAMP+TEXT" with the first
// one's stamp and priority. A line starting "warning:" is logged at
// priority warning, one starting "alert:" at alert, others at info. At
// the end of input splogger exits 0, dropping an unterminated last line;
// a message syslog cannot take is dropped.
package main

import (
	"io"
	"os"
	"time"

	"github.com/qmailkit/qmailkit/internal/syslog"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, syslog.DefaultPath))
}

// run copies stdin to the syslog daemon listening at path.
func run(args []string, stdin io.Reader, path string) int {
	l := &syslog.Logger{Path: path, Ident: "splogger", Facility: syslog.Mail}
	if len(args) > 0 {
		l.Ident = args[0]
		if len(args) > 1 {
			l.Facility = syslog.Facility(args[1])
		}
	}
	defer l.Close()
	syslog.Splog(stdin, l, time.Now) // a read error ends it as the end of input does
	return 0
}
