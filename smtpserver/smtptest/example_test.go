package smtptest_test

import (
	"errors"
	"fmt"
	"net/smtp"
	"net/textproto"
	"time"

	"github.com/qmailkit/qmailkit/smtpserver"
	"github.com/qmailkit/qmailkit/smtpserver/smtptest"
)

// A test of code that sends mail. In a test function,
// smtptest.NewServer(t) starts the server and stops it when the test
// ends; an Example has no t, so it uses NewUnstarted, Start and Close.
func Example() {
	srv := smtptest.NewUnstarted()
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	// The code under test: here, net/smtp.
	err := smtp.SendMail(srv.Addr, nil, "app@example.com", []string{"user@example.org"},
		[]byte("Subject: welcome\r\n\r\nHello!\r\n"))
	if err != nil {
		fmt.Println(err)
		return
	}

	m := srv.WaitMessages(1, 5*time.Second)[0]
	msg, _ := m.Parse()
	fmt.Println(m.From, m.To, msg.Header.Get("Subject"))
	fmt.Printf("%q\n", m.Raw)
	// Output:
	// app@example.com [user@example.org] welcome
	// "Subject: welcome\r\n\r\nHello!\r\n"
}

// notify is the code under test: it sends a notice and retries, up to
// three times, when the server answers with a temporary failure.
func notify(addr, to string) error {
	msg := []byte("Subject: your order\r\n\r\nhas shipped\r\n")
	var err error
	for range 3 {
		err = smtp.SendMail(addr, nil, "shop@example.com", []string{to}, msg)
		var reply *textproto.Error
		if err == nil || errors.As(err, &reply) && reply.Code >= 500 {
			return err
		}
	}
	return err
}

// A client that retries: the first attempt is told 451 after its data, the
// second succeeds. Attempts shows what each connection was told.
func Example_retry() {
	srv := smtptest.NewUnstarted()
	srv.Script(smtptest.OnAttempt(1).At(smtptest.StageData).Reply(451, "4.3.0", "try again later"))
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	fmt.Println("notify:", notify(srv.Addr, "bob@example.org"))
	for _, a := range srv.Attempts() {
		fmt.Println(a)
	}
	fmt.Println(len(srv.Messages()), "message accepted")
	// Output:
	// notify: <nil>
	// #1 220; MAIL <shop@example.com> 250; RCPT <bob@example.org> 250; DATA 451 4.3.0 try again later
	// #2 220; MAIL <shop@example.com> 250; RCPT <bob@example.org> 250; DATA 250
	// 1 message accepted
}

// Three attempts of one send: refused at the greeting, dropped after the
// data (the client cannot know whether the message arrived), then
// accepted.
func ExampleServer_Attempts() {
	srv := smtptest.NewUnstarted()
	srv.Script(
		smtptest.OnAttempt(1).At(smtptest.StageConnect).Reply(421, "4.3.2", "too busy"),
		smtptest.OnAttempt(2).At(smtptest.StageData).Drop(),
	)
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	fmt.Println("notify:", notify(srv.Addr, "bob@example.org"))
	for _, a := range srv.Attempts() {
		fmt.Println(a)
	}
	// Output:
	// notify: <nil>
	// #1 421 4.3.2 too busy
	// #2 220; MAIL <shop@example.com> 250; RCPT <bob@example.org> 250; DATA dropped after the message
	// #3 220; MAIL <shop@example.com> 250; RCPT <bob@example.org> 250; DATA 250
}

// A recipient refused with 550, the others accepted.
func ExampleServer_Script() {
	srv := smtptest.NewUnstarted()
	srv.Script(smtptest.At(smtptest.StageRcpt, "gone@example.org").Reply(550, "5.1.1", "no such user"))
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	c, err := smtp.Dial(srv.Addr)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.Mail("app@example.com")
	fmt.Println(c.Rcpt("gone@example.org"))
	fmt.Println(c.Rcpt("here@example.org"))
	w, _ := c.Data()
	fmt.Fprint(w, "Subject: x\r\n\r\nhi\r\n")
	fmt.Println(w.Close())
	fmt.Println(srv.WaitMessages(1, 5*time.Second)[0].To)
	// Output:
	// 550 "5.1.1 no such user"
	// <nil>
	// <nil>
	// [here@example.org]
}

// A server that refuses every session at the greeting.
func ExampleServer_Script_greeting() {
	srv := smtptest.NewUnstarted()
	srv.Script(smtptest.At(smtptest.StageConnect).Reply(554, "5.7.1", "no service for you"))
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	fmt.Println(notify(srv.Addr, "bob@example.org"))
	fmt.Println(len(srv.Attempts()), "attempt")
	// Output:
	// 554 "5.7.1 no service for you"
	// 1 attempt
}

// The older helpers are rules too: FailRecipient and Delay.
func ExampleServer_FailRecipient() {
	srv := smtptest.NewUnstarted()
	srv.FailRecipient("gone@example.org", smtpserver.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"})
	srv.Delay(smtptest.StageData, 10*time.Millisecond)
	if err := srv.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	err := smtp.SendMail(srv.Addr, nil, "app@example.com", []string{"gone@example.org"}, []byte("Subject: x\r\n\r\nhi\r\n"))
	fmt.Println(err)
	// Output:
	// 550 "5.1.1 no such user"
}
