package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/qmailkit/qmailkit/internal/dnstest"
)

// Interop with Debian's rblsmtpd (package ucspi-tcp, 1:0.88-7; .ci/run
// installs it): both run with the same argv, environment and stdin against
// one DNS server, and their stdout, exit code and stderr (pid aside) must be
// the same bytes. djb's resolver asks port 53 of $DNSCACHEIP and nothing
// else, so the server listens on 127.53.N.1:53, which needs root.

func debianRblsmtpd(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("rblsmtpd")
	if err != nil {
		t.Skip("Debian's rblsmtpd is not installed (apt-get install ucspi-tcp)")
	}
	if os.Geteuid() != 0 {
		t.Skip("interop with Debian's rblsmtpd needs root: djb's resolver asks only port 53, and the test DNS server must listen there")
	}
	return path
}

// portServer starts the test DNS server on port 53 of a free 127.53.N.1.
func portServer(t *testing.T, records ...string) (*dnstest.Server, string) {
	t.Helper()
	for range 50 {
		host := fmt.Sprintf("127.53.%d.1", 1+rand.IntN(199))
		s, err := dnstest.Listen(t, net.JoinHostPort(host, "53"), records...)
		if err == nil {
			return s, host
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatal(err)
		}
	}
	t.Skip("no free 127.53.N.1:53 in 50 tries")
	return nil, ""
}

type outcome struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

var pidRE = regexp.MustCompile(` pid [0-9]+: `)

// runProg runs an rblsmtpd binary as argv0 with args, env and stdin.
func runProg(bin, argv0 string, args, env []string, stdin io.Reader) (outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Args[0] = argv0
	cmd.Env = env
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if ctx.Err() != nil {
		return outcome{}, fmt.Errorf("%s %q: still running after 90 s", bin, args)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return outcome{}, fmt.Errorf("%s: %w", bin, err)
	}
	return outcome{out.String(), pidRE.ReplaceAllString(errb.String(), " pid N: "), cmd.ProcessState.ExitCode(), took}, nil
}

func TestInterop(t *testing.T) {
	debian := debianRblsmtpd(t)
	bin := ours(t)
	long := strings.Repeat("0123456789", 25)
	s, host := portServer(t,
		`2.0.0.127.rbl.test. 60 IN TXT "listed " "see http://x/?ip=127.0.0.2"`,
		`2.0.0.127.rbl.test. 60 IN TXT "\009sec\001"`,
		`2.0.0.127.rbl2.test. 60 IN TXT "second list"`,
		`2.0.0.127.anti.test. 60 IN A 127.0.0.2`,
		`2.0.0.127.anti.test. 60 IN A 127.0.0.3`,
		`2.0.0.127.txtonly.test. 60 IN TXT "a TXT record is no A record"`,
		`2.0.0.127.empty.test. 60 IN TXT ""`,
		`2.0.0.127.empties.test. 60 IN TXT "" ""`,
		`2.0.0.127.empties.test. 60 IN TXT ""`,
		`2.0.0.127.long.test. 60 IN TXT "`+long+`"`,
		`2.0.0.127.big.test. 60 IN TXT "`+long+`" "`+long+`" "`+long+`"`,
		`2.0.0.127.bin.test. 60 IN TXT "\200\377 caf\195\169 \127\000 end"`,
		`2.0.0.127.cname.test. 60 IN CNAME target.test.`,
		`target.test. 60 IN TXT "via cname"`,
		`2.0.0.127.a\.rbl.test. 60 IN TXT "escaped dot"`,
		`7.2.0.192.rbl.test. 60 IN TXT "192.0.2.7 listed"`,
		`rbl.test. 60 IN TXT "no address"`,
		`1.rbl.test. 60 IN TXT "one"`,
		`2.1.rbl.test. 60 IN TXT "two one"`,
		`2001:db8::1.rbl.test. 60 IN TXT "IPv6 as text"`,
	)
	s.SetRcode("2.0.0.127.fail.test", dns.TypeANY, dns.RcodeServerFailure)
	s.SetRcode("2.0.0.127.refused.test", dns.TypeANY, dns.RcodeRefused)
	s.Truncate("2.0.0.127.big.test")

	label64 := strings.Repeat("a", 64) + ".test"
	r1 := "HELO x\r\nEHLO y\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nrset\r\nnoop\r\nVRFY x\r\n\r\nquit\r\n"
	lines := "QUIT\x00x\r\nquit\x00\r\nQUIT\r\r\nHELO\t\r\n helo\r\nQU\u0130T\r\n\n\r\nNoOp  x\r\n" + strings.Repeat("z", 70000) + "\r\nQUIT \r\nHELO\r\n"
	var many strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&many, "RCPT TO:<u%d@example.net>\r\nNOOP\r\n", i)
	}
	type tc struct {
		name  string
		ip    *string // $TCPREMOTEIP; nil: unset
		rbl   *string // $RBLSMTPD; nil: unset
		args  string  // split on spaces
		input string
		argv0 string
	}
	ip := new("127.0.0.2")
	tests := []tc{
		// R1, R2: $RBLSMTPD.
		{name: "R1 session", ip: new("192.0.2.7"), rbl: new("blocked because é\nx"), args: "echo ran", input: r1},
		{name: "R2 -perm -t 0", ip: ip, rbl: new("-perm"), args: "-t 0 echo ran"},
		{name: "R2 - -t 0", ip: ip, rbl: new("-"), args: "-t 0 echo ran"},
		{name: "R2 empty runs prog", ip: ip, rbl: new(""), args: "-t 0 -r rbl.test echo ran a b"},
		{name: "RBLSMTPD before lists", ip: ip, rbl: new("temp"), args: "-t 0 -a anti.test echo ran"},
		{name: "RBLSMTPD session", ip: ip, rbl: new("-no\x01way"), args: "-t 5 echo ran", input: "EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<a@b>\r\nQUIT\r\n"},
		{name: "RBLSMTPD session EOF", rbl: new("x"), args: "echo ran", input: "HELO\r\nRCPT\r\nQUIT"},
		{name: "RBLSMTPD 300 bytes", ip: ip, rbl: new(strings.Repeat("é", 150)), args: "-t 0 echo ran"},
		{name: "RBLSMTPD no prog", ip: ip, rbl: new("-x"), args: "-t 0"},
		// R3: lists, and the order of options.
		{name: "R3 listed", ip: ip, args: "-t 0 -r rbl.test echo ran"},
		{name: "R3 -b -r", ip: ip, args: "-t 0 -b -r rbl.test echo ran"},
		{name: "R3 -r -b", ip: ip, args: "-t 0 -r rbl.test -b echo ran"},
		{name: "-b -B -r", ip: ip, args: "-t 0 -b -B -r rbl.test echo ran"},
		{name: "-B -b -r", ip: ip, args: "-t 0 -B -b -r rbl.test echo ran"},
		{name: "-b -r nx -B -r", ip: ip, args: "-t 0 -b -r nx.test -B -r rbl.test echo ran"},
		{name: "R3 -a -r", ip: ip, args: "-t 0 -a anti.test -r rbl.test echo ran"},
		{name: "-r -a", ip: ip, args: "-t 0 -r rbl.test -a anti.test echo ran"},
		{name: "-a no A", ip: ip, args: "-t 0 -a txtonly.test -r rbl.test echo ran"},
		{name: "-a nx", ip: ip, args: "-t 0 -a nx.test -b -r rbl.test echo ran"},
		{name: "first listing wins", ip: ip, args: "-t 0 -r rbl2.test -b -r rbl.test echo ran"},
		{name: "R3 SERVFAIL fail open", ip: ip, args: "-t 0 -r fail.test echo ran"},
		{name: "R3 -c SERVFAIL", ip: ip, args: "-t 0 -c -r fail.test echo ran"},
		{name: "-c -C SERVFAIL", ip: ip, args: "-t 0 -c -C -r fail.test echo ran"},
		{name: "R3 -b SERVFAIL then listed", ip: ip, args: "-t 0 -b -r fail.test -r rbl.test echo ran"},
		{name: "-a SERVFAIL fail open", ip: ip, args: "-t 0 -a fail.test -r rbl.test echo ran"},
		{name: "-c -a SERVFAIL", ip: ip, args: "-t 0 -c -b -a fail.test -r rbl.test echo ran"},
		{name: "REFUSED -c", ip: ip, args: "-t 0 -c -r refused.test echo ran"},
		{name: "R3 empty string", ip: ip, args: "-t 0 -r empty.test echo ran"},
		{name: "empty strings", ip: ip, args: "-t 0 -r empties.test -r rbl2.test echo ran"},
		{name: "R3 250 bytes cut", ip: ip, args: "-t 0 -r long.test echo ran"},
		{name: "truncated over TCP", ip: ip, args: "-t 0 -b -r big.test echo ran"},
		{name: "binary TXT", ip: ip, args: "-t 0 -r bin.test echo ran"},
		{name: "CNAME", ip: ip, args: "-t 0 -r cname.test echo ran"},
		{name: "octal escape", ip: ip, args: `-t 0 -r a\056rbl.test echo ran`},
		{name: "case and dots", ip: ip, args: "-t 0 -r .RBL..Test. echo ran"},
		{name: "label of 64 fails", ip: ip, args: "-t 0 -b -r " + label64 + " -r rbl.test echo ran"},
		{name: "label of 64 -c", ip: ip, args: "-t 0 -c -r " + label64 + " echo ran"},
		{name: "-a numbers accept", ip: ip, args: "-t 0 -a 1.2.3.4 -r rbl.test echo ran"},
		{name: "-a short numbers", ip: new(""), args: "-t 0 -a 1.2.3 -r rbl.test echo ran"},
		{name: "other address", ip: new("192.0.2.7"), args: "-t 0 -r rbl.test echo ran"},
		{name: "no TCPREMOTEIP", args: "-t 0 -r rbl.test echo ran"},
		{name: "empty TCPREMOTEIP", ip: new(""), args: "-t 0 -r rbl.test echo ran"},
		{name: "leading dot", ip: new(".1"), args: "-t 0 -r rbl.test echo ran"},
		{name: "double dot", ip: new("1..2"), args: "-t 0 -r rbl.test echo ran"},
		{name: "trailing dot", ip: new("1.2."), args: "-t 0 -r rbl.test echo ran"},
		{name: "IPv6 as text", ip: new("2001:db8::1"), args: "-t 0 -r rbl.test echo ran"},
		{name: "no lists", ip: ip, args: "-t 0 echo ran"},
		{name: "listed session", ip: ip, args: "-b -r rbl.test echo ran", input: r1},
		// The command reader.
		{name: "lines", ip: ip, rbl: new("no"), args: "echo ran", input: lines},
		{name: "10000 commands", ip: ip, rbl: new("-no"), args: "-t 30 echo ran", input: many.String()},
		// R5 and the rest of argv.
		{name: "R5 -x foo", args: "-x foo"},
		{name: "-x", args: "-x"},
		{name: "-bx prog", args: "-bx echo ran"},
		{name: "-R", args: "-R echo ran"},
		{name: "-:", args: "-: echo ran"},
		{name: "R5 no prog", args: ""},
		{name: "options, no prog", ip: ip, args: "-b -r rbl.test"},
		{name: "-t no argument", args: "-t"},
		{name: "-bt no argument", args: "-bt"},
		{name: "-r no argument", args: "-r"},
		{name: "argv0 basename", args: "-x foo", argv0: "/x/y/foo"},
		{name: "attached arguments", ip: ip, args: "-t0 -bBcCbrrbl.test echo ran"},
		{name: "-- ends options", ip: ip, args: "-- -r rbl.test"},
		{name: "--word ends options", ip: ip, args: "--word echo ran"},
		{name: "- is a program", rbl: new(""), args: "- x"},
		{name: "prog args", ip: ip, args: "echo -b -r rbl.test"},
		{name: "-t not a number", ip: ip, args: "-t x -r rbl.test echo ran"},
		{name: "-t 5x", ip: ip, args: "-t 5x -r rbl.test echo ran", input: "QUIT\r\n"},
		{name: "no such program", rbl: new(""), args: "nosuch-rblsmtpd-test"},
		{name: "not executable", rbl: new(""), args: "/etc/hostname"},
		{name: "directory", rbl: new(""), args: "/tmp"},
	}
	// Both programs run on every case at once, many cases at a time:
	// Debian's waits 11 s on each SERVFAIL, idle.
	type pair struct {
		got, want outcome
		err       error
	}
	results := make([]pair, len(tests))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, tt := range tests {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			env := []string{"PATH=/bin:/usr/bin", "DNSCACHEIP=" + host}
			if tt.ip != nil {
				env = append(env, "TCPREMOTEIP="+*tt.ip)
			}
			if tt.rbl != nil {
				env = append(env, "RBLSMTPD="+*tt.rbl)
			}
			args := strings.Fields(tt.args)
			argv0 := tt.argv0
			if argv0 == "" {
				argv0 = "rblsmtpd"
			}
			var p pair
			var errs [2]error
			var both sync.WaitGroup
			both.Go(func() { p.want, errs[0] = runProg(debian, argv0, args, env, strings.NewReader(tt.input)) })
			both.Go(func() { p.got, errs[1] = runProg(bin, argv0, args, env, strings.NewReader(tt.input)) })
			both.Wait()
			p.err = errors.Join(errs[:]...)
			results[i] = p
		})
	}
	wg.Wait()
	same := 0
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := results[i].got, results[i].want
			if err := results[i].err; err != nil {
				t.Fatal(err)
			}
			if got.stdout != want.stdout {
				t.Errorf("stdout\n%q\nDebian's\n%q", got.stdout, want.stdout)
			}
			if got.code != want.code {
				t.Errorf("exit %d, Debian's %d", got.code, want.code)
			}
			if got.stderr != want.stderr {
				t.Errorf("stderr\n%q\nDebian's\n%q", got.stderr, want.stderr)
			}
			if !t.Failed() {
				same++
			}
			t.Logf("exit %d, %d bytes out, stderr %.80q; ours %v, Debian's %v", got.code, len(got.stdout), got.stderr, got.took.Round(time.Millisecond), want.took.Round(time.Millisecond))
		})
	}
	t.Logf("%d of %d cases: the same stdout, exit code and stderr as Debian's rblsmtpd", same, len(tests))
}

// The time limit with a real clock: -t 2, a client sending HELO, then NOOP
// every second from 0.5 s: both end the session 2 s after the start, with
// the same replies.
func TestInteropR4(t *testing.T) {
	debian := debianRblsmtpd(t)
	bin := ours(t)
	type result struct {
		out  outcome
		prog string
		err  error
	}
	results := make(chan result, 2)
	for _, prog := range []string{debian, bin} {
		go func() {
			// An *os.File, so that the child reads the pipe itself and Wait
			// returns when it exits.
			pr, pw, err := os.Pipe()
			if err != nil {
				results <- result{prog: prog, err: err}
				return
			}
			go func() {
				defer pw.Close()
				if _, err := io.WriteString(pw, "HELO x\r\n"); err != nil {
					return
				}
				time.Sleep(500 * time.Millisecond)
				for range 10 {
					if _, err := io.WriteString(pw, "NOOP\r\n"); err != nil {
						return
					}
					time.Sleep(time.Second)
				}
			}()
			env := []string{"TCPREMOTEIP=192.0.2.7", "RBLSMTPD=-go away", "PATH=/bin:/usr/bin"}
			o, err := runProg(prog, "rblsmtpd", []string{"-t", "2", "echo", "ran"}, env, pr)
			pr.Close()
			results <- result{o, prog, err}
		}()
	}
	got := map[string]outcome{}
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		got[r.prog] = r.out
	}
	s220, s250 := "220 rblsmtpd.local\r\n", "250 rblsmtpd.local\r\n"
	for prog, o := range got {
		if o.took < 1900*time.Millisecond || o.took > 4*time.Second {
			t.Errorf("%s: session lasted %v with -t 2", prog, o.took)
		}
		if o.stdout != s220+s250+s250+s250 || o.code != 0 || o.stderr != "rblsmtpd: 192.0.2.7 pid N: 553 go away\n" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", prog, o.code, o.stdout, o.stderr)
		}
	}
}
