package smtptest_test

import (
	"fmt"
	"net/smtp"
	"testing"
	"time"

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
