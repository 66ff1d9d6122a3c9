// Command rblsmtpd keeps clients listed in DNS block lists away from an SMTP
// server, a drop-in for ucspi-tcp's rblsmtpd:
//
//	tcpserver 0 25 rblsmtpd [-bBcC] [-t timeout] [-r base] [-a base] qmail-smtpd
//
// It runs between tcpserver and the SMTP server, so that descriptors 0 and 1
// are the client's connection. It decides about the client at
// $TCPREMOTEIP: $RBLSMTPD first (set and empty: accept; "-TEXT": block
// with 553; anything else: block with 451), then each -r and -a list in the
// order given, the -b/-B (553/451 for a listing) and -c/-C (fail
// closed/open) settings applying to the lists after them. A client that is
// not blocked gets the program, run in rblsmtpd's place with its arguments
// and the same environment (searched in $PATH when it has no slash). A
// blocked client gets one line on stderr, "rblsmtpd: IP pid PID: MESSAGE",
// and a fake SMTP session that refuses every recipient with MESSAGE and ends
// after -t seconds (60; -t 0 writes MESSAGE once), and rblsmtpd exits 0.
//
// Usage errors print getopt's "rblsmtpd: illegal option -- X" or
// "rblsmtpd: option requires an argument -- X" and the usage line, exit 100;
// a program that cannot be run gives "rblsmtpd: fatal: unable to run PROG:
// ERR", exit 111. DNS goes to $DNSCACHEIP, else the servers of
// /etc/resolv.conf, port 53, as with djb's resolver. The behaviour is
// Debian's ucspi-tcp 0.88 rblsmtpd's, byte for byte (no default list, as
// Debian's build); see package github.com/qmailkit/qmailkit/rbl for the
// decision and the session. Like 0.88, it reverses $TCPREMOTEIP as text
// whatever it holds, so an IPv6 client is looked up as "2001:db8::1." +
// base; the package's modern mode, for Go servers, uses RFC 5782's nibbles
// instead. A list that answers SERVFAIL costs no time, where djb's resolver
// waits 11 s.
//
// As in rblsmtpd, the time limit is an alarm: when it is up the process
// exits 0 wherever it is, whether the client is sending, silent, or not
// reading. Lines are read as they come and not kept, so a client cannot
// make the session use more memory by sending long lines or many commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/qmailkit/qmailkit/internal/errstr"
	"github.com/qmailkit/qmailkit/rbl"
)

const usage = "rblsmtpd: usage: rblsmtpd [ -b ] [ -R ] [ -t timeout ] [ -r base ] [ -a base ] smtpd [ arg ... ]\n"

func main() {
	os.Exit(run(&proc{
		args:      os.Args,
		lookupEnv: os.LookupEnv,
		environ:   os.Environ,
		stdin:     os.Stdin,
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		pid:       os.Getpid(),
		exec:      syscall.Exec,
		alarm: func(d time.Duration) {
			time.AfterFunc(d, func() { os.Exit(0) })
		},
	}))
}

// proc is what rblsmtpd gets from and does to its process, so that tests
// can run it in theirs.
type proc struct {
	args      []string
	lookupEnv func(string) (string, bool)
	environ   func() []string
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
	pid       int
	resolver  rbl.DNSBLResolver                           // nil: rbl.DNSResolver
	exec      func(path string, argv, env []string) error // syscall.Exec
	alarm     func(time.Duration)                         // ends the process after the time; nil: none
}

// options are rblsmtpd's command line.
type options struct {
	sources []rbl.Source
	timeout uint64 // -t as djb's scan_ulong reads it
	prog    []string
}

// parse reads the command line as djb's getopt ("bBcCt:r:a:") does; on a
// usage error it prints getopt's line, if any, and the usage line.
func parse(args []string, stderr io.Writer) (options, bool) {
	o := options{timeout: 60}
	progname := ""
	if len(args) > 0 {
		progname = args[0][strings.LastIndexByte(args[0], '/')+1:]
	}
	fail := func(problem string, c byte) (options, bool) {
		if problem != "" {
			fmt.Fprintf(stderr, "%s: %s -- %c\n", progname, problem, c)
		}
		io.WriteString(stderr, usage)
		return options{}, false
	}
	var permanent, failClosed bool
	i := 1
args:
	for i < len(args) {
		a := args[i]
		if len(a) == 0 || a[0] != '-' || a == "-" {
			break
		}
		if a[1] == '-' {
			i++ // "--", or anything starting with it, ends the options
			break
		}
		for pos := 1; pos < len(a); pos++ {
			c := a[pos]
			switch c {
			case 'b', 'B':
				permanent = c == 'b'
				continue
			case 'c', 'C':
				failClosed = c == 'c'
				continue
			case 't', 'r', 'a':
			default:
				return fail("illegal option", c)
			}
			arg := a[pos+1:]
			if arg == "" {
				i++
				if i >= len(args) {
					return fail("option requires an argument", c)
				}
				arg = args[i]
			}
			switch c {
			case 't':
				o.timeout = scanUlong(arg)
			case 'r':
				o.sources = append(o.sources, rbl.Source{Base: arg, Permanent: permanent, FailClosed: failClosed})
			case 'a':
				o.sources = append(o.sources, rbl.Source{Base: arg, Allow: true, FailClosed: failClosed})
			}
			i++
			continue args
		}
		i++
	}
	if i >= len(args) {
		return fail("", 0)
	}
	o.prog = args[i:]
	return o, true
}

// scanUlong is djb's scan_ulong: the leading decimal digits, 0 when none,
// wrapping as C's unsigned long.
func scanUlong(s string) uint64 {
	var u uint64
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		u = u*10 + uint64(s[i]-'0')
	}
	return u
}

func run(p *proc) int {
	o, ok := parse(p.args, p.stderr)
	if !ok {
		return 100
	}
	ip, _ := p.lookupEnv("TCPREMOTEIP")
	var res rbl.Result
	if v, set := p.lookupEnv("RBLSMTPD"); set {
		res = rbl.Override(v)
	} else {
		c := &rbl.Checker{Sources: o.sources, DNS: p.resolver, Compat: true}
		res = c.Check(context.Background(), ip)
	}
	if !res.Blocked() {
		err := pathexec(p, o.prog)
		fmt.Fprintf(p.stderr, "rblsmtpd: fatal: unable to run %s: %s\n", o.prog[0], errstr.Text(err))
		return 111
	}
	msg := res.Message()
	fmt.Fprintf(p.stderr, "rblsmtpd: %s pid %d: %s\n", ip, p.pid, msg)
	s := &rbl.Session{Message: msg}
	switch {
	case o.timeout == 0:
		s.Timeout = -1
	case uint32(o.timeout) == 0:
		// alarm() takes an unsigned int: rblsmtpd sets none.
		s.Timeout = math.MaxInt64
	default:
		s.Timeout = time.Duration(uint32(o.timeout)) * time.Second
		if p.alarm != nil {
			p.alarm(s.Timeout)
		}
	}
	// Every end of the session (QUIT, EOF, the time, an error) exits 0.
	s.Serve(context.Background(), p.stdin, p.stdout)
	return 0
}

// pathexec runs prog in this process as djb's pathexec_run does: a name
// with a slash as it is, otherwise each directory of $PATH in turn
// (/bin:/usr/bin when unset, "." for an empty one), going on past a missing
// file and past a file it may not run; the error reported is the last
// other than "does not exist" when there was one.
func pathexec(p *proc, prog []string) error {
	env := p.environ()
	file := prog[0]
	if strings.Contains(file, "/") {
		return p.exec(file, prog, env)
	}
	path, ok := p.lookupEnv("PATH")
	if !ok {
		path = "/bin:/usr/bin"
	}
	var saved error
	for {
		dir, rest, more := strings.Cut(path, ":")
		if dir == "" {
			dir = "."
		}
		err := p.exec(dir+"/"+file, prog, env)
		if !errors.Is(err, syscall.ENOENT) {
			saved = err
			if !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EISDIR) {
				return err
			}
		}
		if !more {
			if saved != nil {
				return saved
			}
			return err
		}
		path = rest
	}
}
