package smtptest_test

import (
	"fmt"
	"net/smtp"
	"testing"
	"time"

	"github.com/qmailkit/qmailkit/smtpserver"
	"github.com/qmailkit/qmailkit/smtpserver/smtptest"
)

// A test that checks what the code under test sends.
func Example() {
	t := &testing.T{} // in a real test, the *testing.T of the test
	srv := smtptest.NewServer(t)
	defer srv.Close()

	// The code under test: here, net/smtp.
	err := smtp.SendMail(srv.Addr, nil, "app@example.com", []string{"user@example.org"},
		[]byte("Subject: welcome\r\n\r\nHello!\r\n"))
	if err != nil {
		fmt.Println(err)
		return
	}

	m := srv.WaitMessages(1, 5*time.Second)[0]
	h, _ := m.Header()
	fmt.Println(m.From, m.To, h.Get("Subject"))
	fmt.Printf("%q\n", m.Body())
	// Output:
	// app@example.com [user@example.org] welcome
	// "Hello!\n"
}

// Testing how a client handles a refused recipient and a slow server.
func ExampleServer_FailRecipient() {
	t := &testing.T{} // in a real test, the *testing.T of the test
	srv := smtptest.NewServer(t)
	defer srv.Close()
	srv.FailRecipient("gone@example.org", smtpserver.Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"})
	srv.Delay(smtptest.StageData, 10*time.Millisecond)

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
