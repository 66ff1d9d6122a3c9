package inject

import (
	"path/filepath"
	"strings"
)

// SendmailUsage is what sendmail prints for a usage error (exit 100).
const SendmailUsage = "sendmail: usage: sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]\n"

// Run is the program the sendmail wrapper hands over to: Path relative to
// QMAILHOME ("bin/qmail-inject", "bin/qmail-qread", "bin/qmail-smtpd"), its
// argv (Argv[0] is Path, as qmail's execv gives it) and its environment.
// An empty Path means there is nothing to run: exit 0.
type Run struct {
	Path string
	Argv []string
	Env  []string
}

// Name is the program's name for sendmail's "unable to run" message.
func (r Run) Name() string { return filepath.Base(r.Path) }

// Sendmail decides what qmail's sendmail wrapper runs for argv0 (its
// invocation name matters: mailq, newaliases) and args, in environment env
// ("NAME=value" entries), as qmail's sendmail does, with two deviations:
// -q (a queue run) is accepted and runs nothing, and -F keeps its effect
// when combined with -f. Errors are *Error with sendmail's texts.
func Sendmail(argv0 string, args, env []string) (Run, error) {
	e := newEnviron(env)
	var (
		header  bool
		sender  string
		hasFrom bool
		name    string
		hasName bool
		queue   bool
	)
	usage := func(prev error) error {
		text := SendmailUsage
		if ge, ok := prev.(*Error); ok {
			text = ge.Text + text
		}
		return &Error{Text: text, Perm: true}
	}
	g := newGetopt(argv0, args, "vimte:f:p:o:B:F:EJxb:q")
	for {
		c, arg, done, err := g.next()
		if err != nil {
			return Run{}, usage(err)
		}
		if done {
			break
		}
		switch c {
		case 't':
			header = true
		case 'f':
			sender, hasFrom = arg, true
		case 'F':
			name, hasName = arg, true
			e.set("MAILNAME", arg)
		case 'E', 'J', 'q':
			// -E and -J (Sony NEWS-OS) take an optional argument in the
			// same word; so does -q (a queue interval).
			g.skipArg()
			if c == 'q' {
				queue = true
			}
		case 'b':
			switch arg[0:min(1, len(arg))] {
			case "m":
			case "p":
				return Run{Path: "bin/qmail-qread", Argv: []string{"bin/qmail-qread"}, Env: e.list()}, nil
			case "s":
				if _, ok := e.get("PROTO"); !ok {
					for _, kv := range [][2]string{
						{"RELAYCLIENT", ""}, {"DATABYTES", "0"}, {"PROTO", "TCP"},
						{"TCPLOCALIP", "127.0.0.1"}, {"TCPLOCALHOST", "localhost"},
						{"TCPREMOTEIP", "127.0.0.1"}, {"TCPREMOTEHOST", "localhost"},
						{"TCPREMOTEINFO", "sendmail-bs"},
					} {
						e.set(kv[0], kv[1])
					}
				}
				return Run{Path: "bin/qmail-smtpd", Argv: []string{"bin/qmail-smtpd"}, Env: e.list()}, nil
			default:
				return Run{}, usage(nil)
			}
		}
		// B, p, v, i, x, m, e, o: accepted and ignored.
	}
	rest := g.rest()
	switch progName(argv0) {
	case "mailq":
		return Run{Path: "bin/qmail-qread", Argv: []string{"bin/qmail-qread"}, Env: e.list()}, nil
	case "newaliases":
		return Run{}, &Error{Text: "sendmail: fatal: please use fastforward/newaliases instead\n", Perm: true}
	}
	if queue {
		return Run{}, nil
	}
	argv := []string{"bin/qmail-inject", "-a"}
	if header {
		argv[1] = "-H"
	}
	if hasFrom {
		argv = append(argv, "-f", sender)
		for _, n := range []string{"QMAILNAME", "MAILNAME", "NAME", "QMAILHOST", "MAILHOST"} {
			e.unset(n)
		}
		if at := strings.LastIndexByte(sender, '@'); at >= 0 {
			e.set("QMAILHOST", sender[at+1:])
			e.set("QMAILUSER", sender[:at])
		} else {
			e.set("QMAILUSER", sender)
		}
		if hasName {
			e.set("MAILNAME", name) // qmail loses -F here; we keep it
		}
	}
	argv = append(argv, "--")
	argv = append(argv, rest...)
	return Run{Path: "bin/qmail-inject", Argv: argv, Env: e.list()}, nil
}

// environ is an ordered environment that keeps its entries' order.
type environ struct{ kv []string }

func newEnviron(env []string) *environ {
	return &environ{kv: append([]string(nil), env...)}
}

func (e *environ) get(name string) (string, bool) {
	for _, kv := range e.kv {
		if strings.HasPrefix(kv, name+"=") {
			return kv[len(name)+1:], true
		}
	}
	return "", false
}

func (e *environ) unset(name string) {
	out := e.kv[:0]
	for _, kv := range e.kv {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	e.kv = out
}

func (e *environ) set(name, value string) {
	e.unset(name)
	e.kv = append(e.kv, name+"="+value)
}

func (e *environ) list() []string { return append([]string(nil), e.kv...) }
