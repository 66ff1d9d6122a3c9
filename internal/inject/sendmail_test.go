package inject

import (
	"errors"
	"reflect"
	"slices"
	"testing"
)

func TestSendmail(t *testing.T) {
	base := []string{"PATH=/bin", "NAME=Old", "MAILHOST=old.org", "QMAILNAME=q", "MAILNAME=m", "QMAILHOST=qh"}
	tests := []struct {
		name    string
		argv0   string
		args    []string
		env     []string
		path    string
		argv    []string
		set     []string // entries the environment must have
		unset   []string // names it must not have
		errText string
	}{
		{name: "19 plain", args: []string{"bob"}, path: "bin/qmail-inject", argv: []string{"bin/qmail-inject", "-a", "--", "bob"}},
		{name: "19 -t -oi", args: []string{"-t", "-oi"}, path: "bin/qmail-inject", argv: []string{"bin/qmail-inject", "-H", "--"}},
		{name: "20 -f", args: []string{"-f", "joe@x.org", "-t"}, env: base, path: "bin/qmail-inject",
			argv: []string{"bin/qmail-inject", "-H", "-f", "joe@x.org", "--"},
			set:  []string{"QMAILUSER=joe", "QMAILHOST=x.org", "PATH=/bin"}, unset: []string{"QMAILNAME", "MAILNAME", "NAME", "MAILHOST"}},
		{name: "20 -f no at", args: []string{"-fjoe", "bob"}, env: base, path: "bin/qmail-inject",
			argv: []string{"bin/qmail-inject", "-a", "-f", "joe", "--", "bob"},
			set:  []string{"QMAILUSER=joe"}, unset: []string{"QMAILHOST", "MAILHOST", "NAME"}},
		{name: "-f last at", args: []string{"-f", "a@b@c.org"}, path: "bin/qmail-inject",
			argv: []string{"bin/qmail-inject", "-a", "-f", "a@b@c.org", "--"}, set: []string{"QMAILUSER=a@b", "QMAILHOST=c.org"}},
		{name: "-F", args: []string{"-FJoe Q", "bob"}, path: "bin/qmail-inject", argv: []string{"bin/qmail-inject", "-a", "--", "bob"},
			set: []string{"MAILNAME=Joe Q"}},
		{name: "-F with -f (deviation)", args: []string{"-F", "Joe Q", "-fjoe@x.org"}, env: base, path: "bin/qmail-inject",
			argv: []string{"bin/qmail-inject", "-a", "-f", "joe@x.org", "--"}, set: []string{"MAILNAME=Joe Q"}, unset: []string{"NAME", "QMAILNAME"}},
		{name: "21 -bp", args: []string{"-bp", "-Z"}, path: "bin/qmail-qread", argv: []string{"bin/qmail-qread"}},
		{name: "21 mailq", argv0: "/usr/bin/mailq", args: []string{"-v"}, path: "bin/qmail-qread", argv: []string{"bin/qmail-qread"}},
		{name: "21 newaliases", argv0: "newaliases", errText: "sendmail: fatal: please use fastforward/newaliases instead\n"},
		{name: "22 -bs", args: []string{"-bs"}, env: []string{"PATH=/bin"}, path: "bin/qmail-smtpd", argv: []string{"bin/qmail-smtpd"},
			set: []string{"RELAYCLIENT=", "DATABYTES=0", "PROTO=TCP", "TCPLOCALIP=127.0.0.1", "TCPLOCALHOST=localhost",
				"TCPREMOTEIP=127.0.0.1", "TCPREMOTEHOST=localhost", "TCPREMOTEINFO=sendmail-bs"}},
		{name: "22 -bs with PROTO", args: []string{"-bs"}, env: []string{"PROTO=TCP", "TCPREMOTEIP=10.1.1.1"}, path: "bin/qmail-smtpd",
			argv: []string{"bin/qmail-smtpd"}, set: []string{"TCPREMOTEIP=10.1.1.1"}, unset: []string{"RELAYCLIENT", "DATABYTES"}},
		{name: "23 -bi", args: []string{"-bi"}, errText: SendmailUsage},
		{name: "-bm", args: []string{"-bm", "x"}, path: "bin/qmail-inject", argv: []string{"bin/qmail-inject", "-a", "--", "x"}},
		{name: "23 -q (deviation)", args: []string{"-q"}, path: ""},
		{name: "-q15m", args: []string{"-q15m", "-v"}, path: ""},
		{name: "24 ignored", args: []string{"-oem", "-odb", "-i", "-v", "-em", "bob"}, path: "bin/qmail-inject",
			argv: []string{"bin/qmail-inject", "-a", "--", "bob"}},
		{name: "24 --", args: []string{"--", "-bob"}, path: "bin/qmail-inject", argv: []string{"bin/qmail-inject", "-a", "--", "-bob"}},
		{name: "ignored with args", args: []string{"-B", "8BITMIME", "-p", "smtp:x", "-x", "-m", "-Ex", "-Jyy", "a", "b"}, path: "bin/qmail-inject",
			argv: []string{"bin/qmail-inject", "-a", "--", "a", "b"}},
		{name: "illegal", args: []string{"-X"}, errText: "sendmail: illegal option -- X\n" + SendmailUsage},
		{name: "-r", args: []string{"-r", "x"}, errText: "sendmail: illegal option -- r\n" + SendmailUsage},
		{name: "-N", args: []string{"-N", "x"}, errText: "sendmail: illegal option -- N\n" + SendmailUsage},
		{name: "missing", argv0: "/usr/lib/sendmail", args: []string{"-f"}, errText: "sendmail: option requires an argument -- f\n" + SendmailUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			argv0 := tt.argv0
			if argv0 == "" {
				argv0 = "/usr/sbin/sendmail"
			}
			run, err := Sendmail(argv0, tt.args, tt.env)
			if tt.errText != "" {
				var e *Error
				if !errors.As(err, &e) || e.Text != tt.errText || ExitCode(err) != 100 {
					t.Fatalf("err %v, want %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if run.Path != tt.path || (tt.argv != nil && !reflect.DeepEqual(run.Argv, tt.argv)) {
				t.Errorf("run %q %q, want %q %q", run.Path, run.Argv, tt.path, tt.argv)
			}
			for _, kv := range tt.set {
				if !slices.Contains(run.Env, kv) {
					t.Errorf("env %q lacks %q", run.Env, kv)
				}
			}
			e := newEnviron(run.Env)
			for _, n := range tt.unset {
				if _, ok := e.get(n); ok {
					t.Errorf("env %q has %s", run.Env, n)
				}
			}
		})
	}
}
