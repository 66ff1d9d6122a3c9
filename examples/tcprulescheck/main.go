// Command tcprulescheck shows what a rules cdb says about a connection, a
// drop-in for ucspi-tcp's tcprulescheck:
//
//	TCPREMOTEIP=1.2.3.4 TCPREMOTEHOST=host TCPREMOTEINFO=joe tcprulescheck rules.cdb
//
// TCPREMOTEIP defaults to 0.0.0.0; TCPREMOTEHOST and TCPREMOTEINFO are used
// only when set (set and empty is not the same as unset). It prints "rule
// KEY:" or "default:", one "set environment variable NAME=VALUE" line per
// assignment, and "allow connection" or "deny connection", and exits 0; 100
// without an argument; 111 when the cdb cannot be read. See package
// github.com/qmailkit/qmailkit/tcprules.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/qmailkit/qmailkit/internal/errstr"
	"github.com/qmailkit/qmailkit/tcprules"
)

func main() {
	os.Exit(run(os.Args, os.LookupEnv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprint(stderr, "tcprulescheck: usage: tcprulescheck rules.cdb\n")
		return 100
	}
	ip, ok := getenv("TCPREMOTEIP")
	if !ok {
		ip = "0.0.0.0"
	}
	opt := func(name string) *string {
		if v, ok := getenv(name); ok {
			return &v
		}
		return nil
	}
	d, err := check(args[1], ip, opt("TCPREMOTEHOST"), opt("TCPREMOTEINFO"))
	if err != nil {
		fmt.Fprintf(stderr, "tcprulescheck: fatal: unable to read %s: %s\n", args[1], errstr.Text(err))
		return 111
	}
	if _, err := io.WriteString(stdout, d.Report()); err != nil {
		return 111
	}
	return 0
}

func check(path, ip string, host, info *string) (tcprules.Decision, error) {
	db, err := tcprules.Open(path)
	if err != nil {
		return tcprules.Decision{}, err
	}
	defer db.Close()
	return db.Lookup(ip, host, info)
}
