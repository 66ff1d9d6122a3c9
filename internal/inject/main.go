package inject

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/qmailkit/qmailkit/internal/qq"
)

// Main is the program qmail-inject (see examples/qmail-inject) with its
// argv, environment ("NAME=value" entries) and descriptors as arguments;
// it returns the exit code: 0 when the message is queued (or printed with
// -n), 100 for a permanent error, 111 for a temporary one, after a
// "qmail-inject: fatal: ..." line on stderr. The message goes to
// $QMAILQUEUE, else QMAILHOME/bin/qmail-queue, run in QMAILHOME
// ($QMAILHOME, default /var/qmail).
func Main(argv, env []string, stdin io.Reader, stdout, stderr io.Writer) int {
	lookup := func(name string) (string, bool) {
		for _, kv := range env {
			if len(kv) > len(name) && kv[len(name)] == '=' && kv[:len(name)] == name {
				return kv[len(name)+1:], true
			}
		}
		return "", false
	}
	fail := func(err error) int {
		if e, ok := err.(*Error); ok {
			io.WriteString(stderr, e.Text)
		} else {
			io.WriteString(stderr, "qmail-inject: fatal: "+err.Error()+"\n")
		}
		return ExitCode(err)
	}
	home, ok := lookup("QMAILHOME")
	if !ok || home == "" {
		home = "/var/qmail"
	}
	in, err := Load(home, lookup)
	if err != nil {
		return fail(err)
	}
	if len(argv) == 0 {
		argv = []string{"qmail-inject"}
	}
	opts, err := in.ParseArgs(argv[0], argv[1:])
	if err != nil {
		return fail(err)
	}
	m, err := in.Prepare(bufio.NewReaderSize(stdin, 64<<10), opts)
	if err != nil {
		return fail(err)
	}
	if opts.Print {
		w := bufio.NewWriterSize(stdout, 64<<10)
		err := m.Print(w)
		w.Flush() // qmail-inject does not check its output either
		if err != nil {
			return fail(err)
		}
		return 0
	}
	// qmail_open: $QMAILQUEUE or bin/qmail-queue, run in QMAILHOME.
	qqPath, ok := lookup("QMAILQUEUE")
	if !ok || qqPath == "" {
		qqPath = "bin/qmail-queue"
	}
	if !filepath.IsAbs(qqPath) {
		qqPath = filepath.Join(home, qqPath)
	}
	q := &qq.Program{Path: qqPath, Dir: home, Env: env, Stderr: stderr}
	if err := m.Queue(context.Background(), q.Run); err != nil {
		return fail(err)
	}
	return 0
}

// SendmailMain is the program sendmail (qmail's wrapper, see
// examples/sendmail) with its argv, environment, standard error and exec
// as arguments: it changes to QMAILHOME ($QMAILHOME, default /var/qmail)
// and execs what [Sendmail] chooses (bin/qmail-inject, qmail-qread or
// qmail-smtpd). exec returns only when it fails; then, or when it cannot
// change directory, the result is 111 after a line on stderr.
func SendmailMain(argv, env []string, stderr io.Writer, exec func(path string, argv, env []string) error) int {
	home := ""
	for _, kv := range env {
		if len(kv) > 10 && kv[:10] == "QMAILHOME=" {
			home = kv[10:]
			break
		}
	}
	if home == "" {
		home = "/var/qmail"
	}
	if err := os.Chdir(home); err != nil {
		io.WriteString(stderr, "sendmail: fatal: unable to switch to qmail home directory\n")
		return 111
	}
	if len(argv) == 0 {
		argv = []string{"sendmail"}
	}
	r, err := Sendmail(argv[0], argv[1:], env)
	if err != nil {
		io.WriteString(stderr, err.(*Error).Text)
		return ExitCode(err)
	}
	if r.Path == "" {
		return 0 // -q
	}
	exec(r.Path, r.Argv, r.Env)
	io.WriteString(stderr, "sendmail: fatal: unable to run "+r.Name()+"\n")
	return 111
}
