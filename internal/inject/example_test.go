package inject_test

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/qmailkit/qmailkit/internal/inject"
)

// An Injector filled by hand (Load reads the same values from the
// environment and QMAILHOME/control) prints a message as qmail-inject -n.
func Example() {
	in := &inject.Injector{
		DefaultHost: "ex.com", DefaultDomain: "ex.com", PlusDomain: "ex.com", IDHost: "mail.ex.com",
		User: "joe", SenderUser: "joe", Name: "Joe Q", HasName: true,
		Now: func() time.Time { return time.Unix(1700000000, 0) }, PID: 4321,
	}
	m, err := in.Prepare(strings.NewReader("To: bob, carol@mac+\nBcc: dave\nSubject: hi\n\nhello\n"), inject.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("envelope: %s -> %q\n", m.Sender, m.Recipients)
	m.Print(os.Stdout)
	// Output:
	// envelope: joe@ex.com -> ["carol@mac.ex.com" "bob@ex.com" "dave@ex.com"]
	// Return-Path: <joe@ex.com>
	// Date: 14 Nov 2023 22:13:20 -0000
	// Message-ID: <20231114221320.4321.qmail@mail.ex.com>
	// From: "Joe Q" <joe@ex.com>
	// To: bob@ex.com, carol@mac.ex.com
	// Subject: hi
	//
	// hello
}

// Sendmail says what the sendmail wrapper runs.
func ExampleSendmail() {
	run, err := inject.Sendmail("sendmail", []string{"-t", "-oi", "-f", "joe@x.org"}, []string{"NAME=Joe"})
	if err != nil {
		fmt.Print(err.(*inject.Error).Text)
		return
	}
	fmt.Println(run.Path, run.Argv[1:], run.Env)
	_, err = inject.Sendmail("sendmail", []string{"-bi"}, nil)
	fmt.Print(err.(*inject.Error).Text)
	// Output:
	// bin/qmail-inject [-H -f joe@x.org --] [QMAILHOST=x.org QMAILUSER=joe]
	// sendmail: usage: sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]
}

// Rewrite shows qmail-inject's address rewriting with defaulthost
// ee.movie.edu, defaultdomain ee.movie.edu and plusdomain movie.edu.
func ExampleInjector_Rewrite() {
	in := &inject.Injector{DefaultHost: "ee.movie.edu", DefaultDomain: "ee.movie.edu", PlusDomain: "movie.edu"}
	for _, a := range []string{"joe", "joe@mac", "joe@mac+", "joe@mac.movie.edu.", "joe@[1.2.3.4]"} {
		s, _, _ := in.Rewrite(a)
		fmt.Println(a, "->", s)
	}
	// Output:
	// joe -> joe@ee.movie.edu
	// joe@mac -> joe@mac.ee.movie.edu
	// joe@mac+ -> joe@mac.movie.edu
	// joe@mac.movie.edu. -> joe@mac.movie.edu
	// joe@[1.2.3.4] -> joe@[1.2.3.4]
}
