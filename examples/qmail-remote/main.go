// Command qmail-remote is a drop-in for qmail's qmail-remote, built on
// smtpclient: it delivers one message to the recipients at one host by SMTP
// and reports on standard output in qmail-remote's format.
//
//	qmail-remote host sender recip [recip ...]
//
// The message is read from standard input as qmail-queue stored it (LF line
// ends, no envelope). The report is zero or more recipient reports ('r'
// accepted, 'h' permanently rejected, 's' temporarily rejected) and one
// message report ('K' delivered, 'Z' retry, 'D' bounce), each a letter, a
// text and a NUL byte. The exit status is always 0.
//
// Configuration comes from $QMAILHOME (default /var/qmail): control/me,
// control/helohost, control/smtproutes, control/timeoutconnect and
// control/timeoutremote, with qmail's defaults; connect timeouts are
// remembered in queue/lock/tcpto as qmail-remote does. The client runs in qmail
// compatibility mode (HELO, no extensions, no TLS, IPv4, partial final lines
// refused), except that a bare CR in the message is always sent as a line
// end and dot-stuffed, so that it can never end the data early, and a
// null MX is refused with #5.1.10.
package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/qmailkit/qmailkit/control"
	"github.com/qmailkit/qmailkit/smtpclient"
)

func main() {
	os.Exit(run(context.Background(), os.Args, os.Getenv, os.Stdin, os.Stdout))
}

// run is qmail-remote with its environment passed in; it returns the exit
// status (always 0, as qmail-remote).
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) int {
	report := func(b []byte) int {
		stdout.Write(b)
		return 0
	}
	modern := len(args) > 1 && args[1] == "-modern"
	if modern {
		args = append(args[:1:1], args[2:]...)
	}
	if len(args) < 4 {
		return report([]byte("DI (qmail-remote) was invoked improperly. (#5.3.5)\n\x00"))
	}
	home := control.Home("", getenv)
	if fi, err := os.Stat(home); err != nil || !fi.IsDir() {
		return report([]byte("ZUnable to switch to home directory. (#4.3.0)\n\x00"))
	}
	c, err := configure(filepath.Join(home, "control"))
	if err != nil {
		return report([]byte("ZUnable to read control files. (#4.3.0)\n\x00"))
	}
	c.QmailCompat = !modern
	c.TCPTO = &smtpclient.FileTCPTO{Path: filepath.Join(home, "queue", "lock", "tcpto")}
	res, _ := c.Deliver(ctx, args[1], args[2], args[3:], stdin)
	return report(res.Report())
}

// configure reads qmail-remote's control files into a Client.
func configure(dir string) (*smtpclient.Client, error) {
	me, err := readLine(dir, "me")
	if err != nil {
		return nil, err
	}
	helo, err := readLine(dir, "helohost")
	if err != nil {
		return nil, err
	}
	if helo == "" {
		helo = me
	}
	if helo == "" {
		return nil, errors.New("no control/helohost or control/me")
	}
	c := &smtpclient.Client{Hostname: helo, QmailCompat: true}
	c.Timeouts.Connect = 60 * time.Second
	c.Timeouts.Remote = 1200 * time.Second
	if n, ok, err := readInt(dir, "timeoutconnect"); err != nil {
		return nil, err
	} else if ok {
		c.Timeouts.Connect = time.Duration(max(n, 1)) * time.Second
	}
	if n, ok, err := readInt(dir, "timeoutremote"); err != nil {
		return nil, err
	} else if ok {
		c.Timeouts.Remote = time.Duration(max(n, 1)) * time.Second
	}
	f, err := os.Open(filepath.Join(dir, "smtproutes"))
	switch {
	case err == nil:
		defer f.Close()
		if c.Routes, err = smtpclient.ParseRoutes(f); err != nil {
			return nil, err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	return c, nil
}

// readLine returns a one-line control file's first line with trailing
// spaces, tabs and CR removed; "" when the file does not exist.
func readLine(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return string(bytes.TrimRight(b, " \t\r")), nil
}

// readInt reads an integer control file: its leading decimal digits; ok is
// false when the file is absent or has no leading digit (the default stays).
func readInt(dir, name string) (n int, ok bool, err error) {
	s, err := readLine(dir, name)
	if err != nil {
		return 0, false, err
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' && n < 1<<30 {
		n = n*10 + int(s[i]-'0')
		i++
	}
	return n, i > 0, nil
}
