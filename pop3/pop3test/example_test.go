package pop3test_test

import (
	"fmt"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/qmailkit/qmailkit/pop3/pop3test"
)

// fetch is the code under test: it logs in, retrieves every message,
// deletes each one it got, and quits.
func fetch(addr, user, pass string) (msgs []string, err error) {
	c, err := textproto.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cmd := func(line string) (string, error) {
		if line != "" {
			if err := c.PrintfLine("%s", line); err != nil {
				return "", err
			}
		}
		reply, err := c.ReadLine()
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(reply, "+OK") {
			return "", fmt.Errorf("%s: %s", strings.Fields(line + " greeting")[0], reply)
		}
		return reply, nil
	}
	if _, err := cmd(""); err != nil {
		return nil, err
	}
	if _, err := cmd("USER " + user); err != nil {
		return nil, err
	}
	stat, err := cmd("PASS " + pass)
	if err != nil {
		return nil, err
	}
	n, _ := strconv.Atoi(strings.Fields(stat)[1])
	for i := 1; i <= n; i++ {
		if _, err := cmd("RETR " + strconv.Itoa(i)); err != nil {
			return msgs, err
		}
		lines, err := c.ReadDotLines()
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, strings.Join(lines, "\n"))
		if _, err := cmd("DELE " + strconv.Itoa(i)); err != nil {
			return msgs, err
		}
	}
	_, err = cmd("QUIT")
	return msgs, err
}

// Testing code that fetches mail: the first attempt fails at RETR, the
// second gets the messages and deletes them.
func Example() {
	srv := pop3test.NewUnstarted(pop3test.User("bob", "secret",
		"Subject: one\r\n\r\nfirst\r\n",
		"Subject: two\r\n\r\nsecond\r\n"))
	srv.Script(pop3test.OnAttempt(1).At("RETR", "2").Err("[SYS/TEMP] try again later"))
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	_, err := fetch(srv.Addr, "bob", "secret")
	fmt.Println("first fetch:", err)
	msgs, err := fetch(srv.Addr, "bob", "secret")
	fmt.Println("second fetch:", len(msgs), "messages,", err)
	fmt.Println("left on the server:", len(srv.Mailbox("bob")))
	for _, a := range srv.Attempts() {
		fmt.Println(a)
	}
	// Output:
	// first fetch: RETR: -ERR [SYS/TEMP] try again later
	// second fetch: 2 messages, <nil>
	// left on the server: 0
	// #1 +OK POP3 server ready; USER bob: +OK send PASS; PASS secret: +OK 2 messages; RETR 1: +OK 23 octets; DELE 1: +OK message 1 deleted; RETR 2: -ERR [SYS/TEMP] try again later
	// #2 +OK POP3 server ready; USER bob: +OK send PASS; PASS secret: +OK 2 messages; RETR 1: +OK 23 octets; DELE 1: +OK message 1 deleted; RETR 2: +OK 24 octets; DELE 2: +OK message 2 deleted; QUIT: +OK bye
}

// A login the server refuses, as a wrong password would be.
func ExampleRule_Err() {
	srv := pop3test.NewUnstarted(pop3test.User("bob", "secret"))
	srv.Script(pop3test.At("PASS").Err("[AUTH] authentication failed"))
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	_, err := fetch(srv.Addr, "bob", "secret")
	fmt.Println(err)
	// Output:
	// PASS: -ERR [AUTH] authentication failed
}
